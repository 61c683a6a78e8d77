//! Browser flows: the authorization endpoint, sign-in, consent and RP-initiated logout.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::{Kind, PageError, PageResult};
use super::extract::{Client, CsrfField, Org, PageForm};
use super::oauth::{OrgFromPath, client_info};
use maud::html;

use super::pages::{self, Page, see_other};
use super::views::signin::{self as views, After};
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;
use crate::oauth::authorize::{self, AuthorizeParams, Refusal, Step, ValidRequest};
use crate::oauth::logout::{self, LogoutError, LogoutParams};
use crate::oauth::{OAuthError, OAuthErrorKind, parse_scope};
use crate::sessions::service::ClientInfo;
use crate::signin::{self, LoginError, SignIn};

fn page_error(org: &Organization, status: StatusCode, message: &str) -> Response {
    Page::error(&org.name, status, message).into_response()
}

/// The signed-in session, if any (see [`super::extract::current_session`]).
async fn current_session(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> Result<Option<(Session, User)>, crate::error::Error> {
    super::extract::current_session(state, org, headers).await
}

const CANNOT_CHECK: &str = "We cannot check your sign-in right now. Please try again in a moment.";

/// The session lookup failed: see [`super::extract::SignedIn`].
fn lookup_failed(org: &Organization, e: &crate::error::Error) -> PageError {
    PageError::domain(org, e, CANNOT_CHECK)
}

fn unavailable(org: &Organization) -> Response {
    PageError::say(org, Kind::RetryLater, CANNOT_CHECK).into_response()
}

/// A step that failed: the status by the error's kind (503 with `Retry-After` when the database cannot
/// serve now, a logged 500 for a fault).
fn failed(org: &Organization, _what: &str, e: &crate::error::Error) -> Response {
    PageError::domain(org, e, "Something went wrong on our side.").into_response()
}

/// The kind of a step's OAuth error, as the OAuth surface would answer it.
fn oauth_kind(e: &OAuthError) -> Kind {
    use OAuthErrorKind::*;
    match &e.kind {
        InvalidRequest | UnsupportedMediaType | PayloadTooLarge | InvalidGrant
        | UnauthorizedClient | UnsupportedGrantType | InvalidScope => Kind::BadRequest,
        InvalidClient | BearerTokenMissing | InvalidToken => Kind::Unauthorized,
        InsufficientScope => Kind::Forbidden,
        RateLimited(limited) => Kind::Limited(*limited),
        TemporarilyUnavailable => Kind::RetryLater,
        ServerError => Kind::Fault,
    }
}

/// [`failed`] for a step whose error is already an OAuth error.
fn failed_oauth(org: &Organization, what: &str, e: &OAuthError) -> PageError {
    let kind = oauth_kind(e);
    let message = match kind {
        Kind::RetryLater => {
            tracing::warn!(error = %e.description, "{what}: try again later");
            "We cannot complete this right now. Please try again in a moment."
        }
        Kind::Fault => {
            tracing::error!(error = %e.description, "{what} failed");
            "Something went wrong on our side. Please try again."
        }
        _ => "This request cannot be completed. Start again from the application.",
    };
    PageError::say(org, kind, message)
}

fn refusal(state: &AppState, org: &Organization, refusal: Refusal) -> PageError {
    match refusal {
        Refusal::Page(message) => PageError::say(org, Kind::BadRequest, &message),
        Refusal::Redirect {
            redirect_uri,
            state: s,
            error,
            description,
        } => {
            let issuer = state.provider.issuer(org);
            let location = authorize::error_redirect(
                &issuer,
                &redirect_uri,
                s.as_deref(),
                error,
                &description,
            );
            PageError::redirect(&location)
        }
        Refusal::Internal(e) => failed_oauth(org, "authorization", &e),
    }
}

/// What `proceed` knows about the browser: its session, the consent it gave, the policy's demand.
struct Browser {
    session: Option<(Session, User)>,
    consented: Option<String>,
    mfa_required: bool,
}

async fn browser(
    state: &AppState,
    org: &Organization,
    req: &ValidRequest,
    headers: &HeaderMap,
) -> PageResult<Browser> {
    let deps = &state.deps;
    let session = current_session(state, org, headers)
        .await
        .map_err(|e| lookup_failed(org, &e))?;
    let Some((_, user)) = &session else {
        return Ok(Browser {
            session,
            consented: None,
            mfa_required: false,
        });
    };
    let consented = deps
        .db()
        .tenant(&org.id)
        .consent_scope(&user.id, &req.app.id)
        .await;
    let consented = consented.map_err(|e| lookup_failed(org, &e.into()))?;
    let mfa_required = crate::mfa::required_by_policy(deps, org, user)
        .await
        .map_err(|e| lookup_failed(org, &e))?;
    Ok(Browser {
        session,
        consented,
        mfa_required,
    })
}

/// Where `proceed` stands: the request, and whether it is stored and since when.
struct Request<'a> {
    params: &'a AuthorizeParams,
    req: &'a ValidRequest,
    pending_id: Option<&'a str>,
    resumed_from: Option<i64>,
}

impl Request<'_> {
    /// The stored request's id, storing it first if it is not yet.
    async fn pending(&self, state: &AppState, org: &Organization) -> PageResult<String> {
        match self.pending_id {
            Some(id) => Ok(id.to_string()),
            None => authorize::save_pending(&state.provider, org, self.params)
                .await
                .map_err(|e| failed_oauth(org, "saving the authorization request", &e)),
        }
    }
}

/// The redirect telling the client that the request cannot go on without the user (`prompt=none`).
fn fail_redirect(state: &AppState, org: &Organization, req: &ValidRequest, error: &str) -> String {
    let description = match error {
        "login_required" => "the user must sign in",
        "interaction_required" => "the user must prove a second factor",
        _ => "the user must consent",
    };
    let issuer = state.provider.issuer(org);
    let state_param = req.state.as_deref();
    authorize::error_redirect(&issuer, &req.redirect_uri, state_param, error, description)
}

/// Runs the decision for a validated request: sign in, consent, or issue the code.
async fn proceed(
    state: &AppState,
    org: &Organization,
    request: Request<'_>,
    consent_just_given: bool,
    headers: &HeaderMap,
    client: &ClientInfo,
) -> PageResult {
    let req = request.req;
    let browser = browser(state, org, req, headers).await?;
    let step = authorize::next_step(
        req,
        browser.session.as_ref().map(|(s, _)| s),
        browser.mfa_required,
        browser.consented.as_deref(),
        request.resumed_from,
        consent_just_given,
        state.deps.now(),
    );
    let base = format!("/o/{}", org.slug);
    match step {
        Step::Fail(error) => Ok(see_other(&fail_redirect(state, org, req, error), vec![])),
        Step::Login => {
            let id = request.pending(state, org).await?;
            Ok(see_other(&format!("{base}/login?req={id}"), vec![]))
        }
        Step::SecondFactor => {
            let (session, user) = browser.session.expect("SecondFactor implies a session");
            let id = request.pending(state, org).await?;
            let after = format!("{base}/authorize/resume?req={id}");
            Err(super::mfa::step_up(state, org, &session, &user, &after).await)
        }
        Step::Consent => {
            let id = request.pending(state, org).await?;
            Ok(see_other(&format!("{base}/consent?req={id}"), vec![]))
        }
        Step::Issue => {
            let (session, user) = browser.session.expect("Issue implies a session");
            issue(state, org, &request, (&session, &user), client).await
        }
    }
}

/// Issues the code (once per stored request) and sends the browser back to the client.
async fn issue(
    state: &AppState,
    org: &Organization,
    request: &Request<'_>,
    (session, user): (&Session, &User),
    client: &ClientInfo,
) -> PageResult {
    let provider = &state.provider;
    if let Some(id) = request.pending_id {
        let finished = authorize::finish_pending(provider, org, id)
            .await
            .map_err(|e| failed_oauth(org, "finishing the authorization request", &e))?;
        if !finished {
            let message = "This sign-in request was already completed.";
            return Err(PageError::say(org, Kind::BadRequest, message));
        }
    }
    let location = authorize::issue_code(provider, org, request.req, session, user, client)
        .await
        .map_err(|e| failed_oauth(org, "issuing the code", &e))?;
    Ok(see_other(&location, vec![]))
}

const MALFORMED_REQUEST: &str =
    "The authorization request is malformed (a parameter is repeated or invalid).";

pub async fn authorize(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    headers: HeaderMap,
    params: Result<Query<AuthorizeParams>, axum::extract::rejection::QueryRejection>,
) -> PageResult {
    let Ok(Query(params)) = params else {
        return Err(PageError::say(&org, Kind::BadRequest, MALFORMED_REQUEST));
    };
    let req = authorize::validate(&state.provider, &org, &params)
        .await
        .map_err(|r| refusal(&state, &org, r))?;
    let request = Request {
        params: &params,
        req: &req,
        pending_id: None,
        resumed_from: None,
    };
    proceed(&state, &org, request, false, &headers, &client).await
}

/// `POST /authorize` (OpenID Connect Core §3.1.2.1): the same request, form-encoded. It answers with a
/// 303 to the same request as a GET, so everything after behaves exactly as for a GET, and the browser
/// sends its session cookie (SameSite=Lax cookies are not sent on a cross-site POST, but are on the
/// top-level GET that follows).
pub async fn authorize_post(
    Org(org): Org,
    form: Result<axum::Form<AuthorizeParams>, axum::extract::rejection::FormRejection>,
) -> PageResult {
    let malformed = || PageError::say(&org, Kind::BadRequest, MALFORMED_REQUEST);
    let axum::Form(params) = form.map_err(|_| malformed())?;
    let query = serde_urlencoded::to_string(&params).map_err(|_| malformed())?;
    Ok(see_other(
        &format!("/o/{}/authorize?{query}", org.slug),
        vec![],
    ))
}

#[derive(Debug, Deserialize)]
pub struct PendingQuery {
    req: Option<String>,
}

/// Loads and re-validates a stored request.
async fn load_request(
    state: &AppState,
    org: &Organization,
    id: Option<&str>,
) -> PageResult<(AuthorizeParams, ValidRequest, i64)> {
    let expired = || {
        let message = "This sign-in request has expired or was already used. Start again from the application.";
        PageError::say(org, Kind::BadRequest, message)
    };
    let id = id.filter(|s| !s.is_empty()).ok_or_else(expired)?;
    let (params, created_at) = authorize::load_pending(&state.provider, org, id)
        .await
        .map_err(|e| failed_oauth(org, "loading the authorization request", &e))?
        .ok_or_else(expired)?;
    match authorize::validate(&state.provider, org, &params).await {
        Ok(req) => Ok((params, req, created_at)),
        Err(r) => Err(refusal(state, org, r)),
    }
}

pub async fn resume(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    headers: HeaderMap,
    Query(query): Query<PendingQuery>,
) -> PageResult {
    let (params, req, created_at) = load_request(&state, &org, query.req.as_deref()).await?;
    let request = Request {
        params: &params,
        req: &req,
        pending_id: query.req.as_deref(),
        resumed_from: Some(created_at),
    };
    proceed(&state, &org, request, false, &headers, &client).await
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    req: Option<String>,
    return_to: Option<String>,
}

/// Where a sign-in continues, the CSP `form-action` targets that implies, and the request's login hint.
async fn after_sign_in(
    state: &AppState,
    org: &Organization,
    req: Option<&str>,
    return_to: Option<&str>,
) -> PageResult<(After, Vec<String>, Option<String>)> {
    match req.filter(|r| !r.is_empty()) {
        Some(req_id) => {
            let (_, req, _) = load_request(state, org, Some(req_id)).await?;
            let targets = pages::csp_source(&req.redirect_uri).into_iter().collect();
            Ok((After::Request(req_id.to_string()), targets, req.login_hint))
        }
        None => {
            let after = After::Page(pages::safe_return_to(&org.slug, return_to));
            Ok((after, vec![], None))
        }
    }
}

pub async fn login_form(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> PageResult<Page> {
    let passkeys = state.deps.webauthn().is_some();
    let (req, return_to) = (query.req.as_deref(), query.return_to.as_deref());
    let (after, targets, hint) = after_sign_in(&state, &org, req, return_to).await?;
    let hint = hint.unwrap_or_default();
    Ok(pages::with_csrf(state.deps.config(), &headers, |csrf| {
        views::login(&org, &after, csrf, &hint, None, targets, passkeys)
    }))
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    req: Option<String>,
    return_to: Option<String>,
    csrf: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

impl CsrfField for LoginForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
    const MALFORMED: &'static str = "The sign-in form was malformed.";
}

/// The sign-in page again after a refused attempt, saying `message`.
struct LoginAgain<'a> {
    org: &'a Organization,
    after: &'a After,
    form: &'a LoginForm,
    targets: Vec<String>,
    passkeys: bool,
}

impl LoginAgain<'_> {
    fn page(self, message: &str) -> Page {
        let csrf = self.form.csrf.as_deref().unwrap_or_default();
        let email = self.form.email.as_deref().unwrap_or_default();
        let (org, after) = (self.org, self.after);
        views::login(
            org,
            after,
            csrf,
            email,
            Some(message),
            self.targets,
            self.passkeys,
        )
    }

    /// An unconfirmed address: the page with the link to send the confirmation again.
    fn unverified(self) -> Page {
        let email = self.form.email.as_deref().unwrap_or_default();
        let mut resend = format!(
            "/o/{}/verify-email/resend?email={}",
            self.org.slug,
            url::form_urlencoded::byte_serialize(email.trim().as_bytes()).collect::<String>()
        );
        if let Some(req) = self.after.req() {
            resend.push_str("&req=");
            resend.extend(url::form_urlencoded::byte_serialize(req.as_bytes()));
        }
        let message = "Confirm your email address first: open the link we emailed you.";
        views::with_resend_link(self.page(message), &resend)
    }
}

pub async fn login_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    PageForm(form): PageForm<LoginForm>,
) -> PageResult {
    let (req, return_to) = (form.req.as_deref(), form.return_to.as_deref());
    let (after, targets, _) = after_sign_in(&state, &org, req, return_to).await?;
    let passkeys = state.deps.webauthn().is_some();
    let again = LoginAgain {
        org: &org,
        after: &after,
        form: &form,
        targets,
        passkeys,
    };
    let email = form.email.as_deref().unwrap_or_default();
    let password = form.password.as_deref().unwrap_or_default();
    if email.trim().is_empty() || password.is_empty() {
        let page = again.page("Enter your email and password.");
        return Err(PageError::page(Kind::BadRequest, page));
    }
    let location = match &after {
        After::Request(req_id) => format!("/o/{}/authorize/resume?req={req_id}", org.slug),
        After::Page(Some(to)) => to.clone(),
        After::Page(None) => format!("/o/{}/account", org.slug),
    };
    let deps = &state.deps;
    match signin::password_login(deps, &org, email, password, &location, &client).await {
        Ok(SignIn::Session(_, token)) => Ok(signed_in(&state, &org, &location, &token)),
        Ok(SignIn::SecondFactor(challenge)) => {
            Ok(super::mfa::to_challenge(deps.config(), &org, &challenge))
        }
        Err(e) => Err(login_refused(&org, again, e)),
    }
}

/// The session cookie of a new sign-in, and on to `location`.
fn signed_in(state: &AppState, org: &Organization, location: &str, token: &str) -> Response {
    // A new session id at every sign-in: nothing set before login survives it (no fixation).
    let config = state.deps.config();
    let cookie = pages::session_cookie(config, org, token);
    see_other(location, vec![cookie])
}

fn login_refused(org: &Organization, again: LoginAgain<'_>, e: LoginError) -> PageError {
    match e {
        LoginError::InvalidCredentials => PageError::page(
            Kind::Unauthorized,
            again.page("Incorrect email or password."),
        ),
        LoginError::EmailNotVerified => PageError::page(Kind::Forbidden, again.unverified()),
        LoginError::RateLimited(limited) => PageError::page(
            Kind::Limited(limited),
            again.page("Too many sign-in attempts. Please wait a few minutes and try again."),
        ),
        LoginError::Busy => PageError::say(
            org,
            Kind::RetryLater,
            "We are busy right now. Please try again in a moment.",
        ),
        LoginError::Other(e) => PageError::domain(org, &e, "Something went wrong on our side."),
    }
}

pub async fn consent_form(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<PendingQuery>,
) -> PageResult {
    let req_id = query.req.clone().unwrap_or_default();
    let (_, req, _) = load_request(&state, &org, Some(&req_id)).await?;
    let session = current_session(&state, &org, &headers)
        .await
        .map_err(|e| lookup_failed(&org, &e))?;
    let Some((_, user)) = session else {
        return Ok(see_other(
            &format!("/o/{}/login?req={req_id}", org.slug),
            vec![],
        ));
    };
    let scopes = parse_scope(&req.scope);
    let mut page = pages::with_csrf(state.deps.config(), &headers, |csrf| {
        super::views::consent::consent(&org, &req.app.name, &scopes, &user.email, &req_id, csrf)
    });
    page.form_targets = pages::csp_source(&req.redirect_uri).into_iter().collect();
    Ok(page.into_response())
}

#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    req: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

impl CsrfField for ConsentForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
    const MALFORMED: &'static str = "The consent form was malformed.";
}

/// The redirect telling the client that the user denied access.
fn denied_redirect(state: &AppState, org: &Organization, req: &ValidRequest) -> String {
    let issuer = state.provider.issuer(org);
    let (uri, s) = (&req.redirect_uri, req.state.as_deref());
    authorize::error_redirect(&issuer, uri, s, "access_denied", "the user denied access")
}

const CHOOSE_ALLOW_OR_DENY: &str = "Choose Allow or Deny.";

pub async fn consent_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    headers: HeaderMap,
    PageForm(form): PageForm<ConsentForm>,
) -> PageResult {
    let allow = match form.decision.as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(PageError::say(&org, Kind::BadRequest, CHOOSE_ALLOW_OR_DENY)),
    };
    let req_id = form.req.unwrap_or_default();
    let (params, req, created_at) = load_request(&state, &org, Some(&req_id)).await?;
    let session = current_session(&state, &org, &headers)
        .await
        .map_err(|e| lookup_failed(&org, &e))?;
    let Some((_, user)) = session else {
        let login = format!("/o/{}/login?req={req_id}", org.slug);
        return Ok(see_other(&login, vec![]));
    };
    if !allow {
        let _ = authorize::finish_pending(&state.provider, &org, &req_id).await;
        return Ok(see_other(&denied_redirect(&state, &org, &req), vec![]));
    }
    authorize::record_consent(&state.provider, &org, &req, &user, &client)
        .await
        .map_err(|e| failed_oauth(&org, "recording consent", &e))?;
    let request = Request {
        params: &params,
        req: &req,
        pending_id: Some(&req_id),
        resumed_from: Some(created_at),
    };
    proceed(&state, &org, request, true, &headers, &client).await
}

/// RP-initiated logout: the protocol is `oauth::logout`; this reads the request, asks for confirmation
/// when needed, and clears the session cookie.
pub async fn logout(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    method: axum::http::Method,
    headers: HeaderMap,
    Query(query): Query<LogoutParams>,
    body: axum::body::Bytes,
) -> Response {
    let is_post = method == axum::http::Method::POST;
    let params = match is_post {
        true => serde_urlencoded::from_bytes::<LogoutParams>(&body).ok(),
        false => Some(query),
    };
    let Some(params) = params else {
        let malformed = "The sign-out request was malformed.";
        return page_error(&org, StatusCode::BAD_REQUEST, malformed);
    };
    let plan = match logout_plan(&state, &org, &headers, &params).await {
        Ok(plan) => plan,
        Err(refused) => return refused,
    };
    let config = state.deps.config();
    let cookie_name = pages::session_cookie_name(config, &org.slug);
    let session_token = pages::cookie_value(&headers, &cookie_name);
    let confirmed = is_post && logout_confirmed(config, &headers, &params);
    if plan.needs_confirmation(session_token.is_some(), confirmed) {
        return logout_confirmation(&state, &org, &headers, &plan);
    }
    if let Some(token) = session_token
        && let Err(e) =
            logout::sign_out(&state.provider, &org, &token, &client_info(&addr, &headers)).await
    {
        return failed(&org, "logout", &e);
    }
    signed_out(&org, &plan, pages::clear_cookie(config, &cookie_name))
}

/// What the logout request asks for, checked against the session it would end (if any).
async fn logout_plan(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    params: &LogoutParams,
) -> Result<logout::Logout, Response> {
    let Ok(session) = current_session(state, org, headers).await else {
        return Err(unavailable(org));
    };
    let signed_in = session.as_ref().map(|(s, user)| logout::SignedIn {
        user_id: &user.id,
        session_id: &s.public_id,
    });
    match logout::check(&state.provider, org, params, signed_in, state.deps.now()).await {
        Ok(plan) => Ok(plan),
        Err(LogoutError::Failed(e)) => Err(failed(org, "checking the logout hint", &e)),
        Err(refused) => Err(page_error(org, StatusCode::BAD_REQUEST, refused.message())),
    }
}

/// The user confirmed on our own form: same origin, with its CSRF token.
fn logout_confirmed(
    config: &crate::config::Config,
    headers: &HeaderMap,
    params: &LogoutParams,
) -> bool {
    params.confirm.as_deref() == Some("yes")
        && super::extract::form_verified(
            config,
            headers,
            super::extract::Expected::BrowserCookie,
            params.csrf.as_deref(),
        )
}

/// Signed out: back to the client's registered URI, or a page saying so.
fn signed_out(org: &Organization, plan: &logout::Logout, clear: String) -> Response {
    match plan.redirect_location() {
        Some(location) => see_other(&location, vec![clear]),
        None => {
            let mut page = Page::new(
                &org.name,
                "Signed out",
                html! { p { "You are signed out." } },
            );
            page.cookies.push(clear);
            page.into_response()
        }
    }
}

/// "Do you want to sign out?": a form that posts the checked request back with a CSRF token.
fn logout_confirmation(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    plan: &logout::Logout,
) -> Response {
    let (csrf, csrf_cookie) = pages::csrf_token(state.deps.config(), headers);
    let optional = |name: &str, value: &Option<String>| match value {
        Some(v) => pages::hidden(name, v),
        None => html! {},
    };
    let body = html! {
        p { "Do you want to sign out of " (org.name) "?" }
        form method="post" action={ "/o/" (org.slug) "/logout" } {
            (pages::hidden("csrf", &csrf))
            (pages::hidden("confirm", "yes"))
            (optional("client_id", &plan.client_id))
            (optional("post_logout_redirect_uri", &plan.redirect))
            (optional("state", &plan.state))
            button type="submit" { "Sign out" }
        }
    };
    let mut page = Page::new(&org.name, "Sign out", body);
    page.form_targets = plan
        .redirect
        .as_deref()
        .and_then(pages::csp_source)
        .into_iter()
        .collect();
    page.cookies.extend(csrf_cookie);
    page.into_response()
}
