//! The challenge: a second factor proved after the password (or for step-up), or enrolled when the
//! organization requires one the user lacks.

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{challenge_cookie_name, challenge_path};
use crate::http::AppState;
use crate::http::error::{Kind, PageError, PageResult};
use crate::http::extract::{Client, CsrfField, Org, PageForm};
use crate::http::pages::{self, Page, see_other};
use crate::http::views::mfa as views;
use crate::mfa::challenge::{self, Challenge, Finished};
use crate::mfa::{self, Method, ProofError, totp};
use crate::model::orgs::Organization;
use crate::model::users::User;
use crate::oauth::authorize;
use crate::sessions::service::ClientInfo;

/// The open challenge behind this browser's cookie: (id, challenge, user).
async fn current_challenge(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> PageResult<(String, Challenge, User)> {
    let expired = || PageError::page(Kind::BadRequest, views::challenge_expired(org));
    let config = state.deps.config();
    let cookie = challenge_cookie_name(config, &org.slug);
    let id = pages::cookie_value(headers, &cookie).ok_or_else(expired)?;
    match challenge::load(&state.deps, org, &id).await {
        Ok(Some((open, user))) => Ok((id, open, user)),
        Ok(None) => Err(expired()),
        Err(e) => Err(PageError::failed(org, &e)),
    }
}

/// CSP `form-action` sources for pages whose forms end at `after`: when that resumes an authorization
/// request, the redirect chain ends at the client's redirect URI.
async fn form_targets(state: &AppState, org: &Organization, after: &str) -> Vec<String> {
    let prefix = format!("/o/{}/authorize/resume?req=", org.slug);
    let Some(req) = after.strip_prefix(&prefix) else {
        return vec![];
    };
    match authorize::load_pending(&state.provider, org, req).await {
        Ok(Some((params, _))) => params
            .redirect_uri
            .as_deref()
            .and_then(pages::csp_source)
            .into_iter()
            .collect(),
        _ => vec![],
    }
}

/// The challenge page for `open`: the enrolment when the user must enrol, else the user's methods.
async fn render(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    (open, user): (&Challenge, &User),
    sent: bool,
    error: Option<&str>,
) -> PageResult<Page> {
    let deps = &state.deps;
    let (csrf, csrf_cookie) = pages::csrf_token(deps.config(), headers);
    let failed = |e| PageError::failed(org, &e);
    let mut page = if open.enrol {
        let enrolment = totp::begin(deps, org, user).await.map_err(failed)?;
        views::challenge_enrolment(org, &enrolment, &csrf, error)
    } else {
        let factors = mfa::factors(deps, user).await.map_err(failed)?;
        views::challenge(org, &factors, &csrf, sent, error)
    };
    page.form_targets = form_targets(state, org, &open.after).await;
    page.cookies.extend(csrf_cookie);
    Ok(page)
}

#[derive(Debug, Default, Deserialize)]
pub struct ChallengeQuery {
    sent: Option<String>,
}

pub async fn challenge_page(
    State(state): State<AppState>,
    Org(org): Org,
    headers: HeaderMap,
    Query(query): Query<ChallengeQuery>,
) -> PageResult<Page> {
    let (_, open, user) = current_challenge(&state, &org, &headers).await?;
    let sent = query.sent.is_some();
    render(&state, &org, &headers, (&open, &user), sent, None).await
}

#[derive(Debug, Deserialize)]
pub struct ProofForm {
    pub(super) csrf: Option<String>,
    method: Option<String>,
    pub(super) code: Option<String>,
    pub(super) enrolment: Option<String>,
}

impl CsrfField for ProofForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// A posted challenge form (from our origin with the CSRF cookie's token, see [`PageForm`]) for the
/// browser's open challenge.
pub struct ChallengeForm {
    pub form: ProofForm,
    pub id: String,
    pub open: Challenge,
    pub user: User,
    headers: HeaderMap,
}

impl FromRequest<AppState> for ChallengeForm {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = request.into_parts();
        let Org(org) = Org::from_request_parts(&mut parts, state)
            .await
            .map_err(PageError::answer)?;
        let headers = parts.headers.clone();
        let request = Request::from_parts(parts, body);
        let PageForm(form) = PageForm::<ProofForm>::from_request(request, state).await?;
        let (id, open, user) = current_challenge(state, &org, &headers).await?;
        Ok(ChallengeForm {
            form,
            id,
            open,
            user,
            headers,
        })
    }
}

impl ChallengeForm {
    /// The challenge page again, saying `message`, with the status of `kind`.
    async fn again(
        &self,
        state: &AppState,
        org: &Organization,
        kind: Kind,
        message: &str,
    ) -> PageError {
        let open = (&self.open, &self.user);
        match render(state, org, &self.headers, open, false, Some(message)).await {
            Ok(page) => PageError::page(kind, page),
            Err(e) => e,
        }
    }

    /// Ends the challenge after a proof: the cookies to set (the session's, for a sign-in).
    async fn finish(
        &self,
        state: &AppState,
        org: &Organization,
        method: Method,
        client: &ClientInfo,
    ) -> PageResult<Vec<String>> {
        let config = state.deps.config();
        let clear = pages::clear_cookie(config, &challenge_cookie_name(config, &org.slug));
        let (id, open, user) = (&self.id, &self.open, &self.user);
        match challenge::finish(&state.deps, org, id, open, user, method, client).await {
            Ok(Finished::SignedIn(_, token)) => Ok(vec![
                clear,
                // A new session id at every sign-in: nothing set before login survives it.
                pages::session_cookie(config, org, &token),
            ]),
            Ok(Finished::SteppedUp) => Ok(vec![clear]),
            Ok(Finished::Gone) => Err(PageError::say(
                org,
                Kind::BadRequest,
                "This sign-in has expired or was already completed.",
            )),
            Err(e) => Err(PageError::failed(org, &e)),
        }
    }
}

pub async fn challenge_submit(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    ch: ChallengeForm,
) -> PageResult {
    let Some(method) = ch.form.method.as_deref().and_then(Method::parse) else {
        let message = "Choose how to verify.";
        return Err(ch.again(&state, &org, Kind::BadRequest, message).await);
    };
    let factors = mfa::factors(&state.deps, &ch.user)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    let code = ch.form.code.as_deref().unwrap_or_default();
    let proof = mfa::Proof {
        method,
        code,
        binding: &ch.id,
    };
    let (kind, message) =
        match mfa::prove(&state.deps, &org, &ch.user, &factors, proof, &client).await {
            Ok(()) => {
                let cookies = ch.finish(&state, &org, method, &client).await?;
                return Ok(see_other(&ch.open.after, cookies));
            }
            Err(ProofError::Wrong | ProofError::Unavailable) => (
                Kind::Unauthorized,
                "That code is not right, or has expired. Try again.",
            ),
            Err(ProofError::Locked(limited)) => (
                Kind::Limited(limited),
                "Too many wrong codes. Please wait a few minutes and try again.",
            ),
            Err(ProofError::Busy) => {
                return Err(PageError::failed(&org, &crate::error::Error::Busy));
            }
            Err(ProofError::Other(e)) => return Err(PageError::failed(&org, &e)),
        };
    Err(ch.again(&state, &org, kind, message).await)
}

pub async fn challenge_email(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    ch: ChallengeForm,
) -> PageResult {
    let factors = mfa::factors(&state.deps, &ch.user)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    if factors.email().is_none() {
        let message = "Email codes are not turned on for this account.";
        return Err(ch.again(&state, &org, Kind::BadRequest, message).await);
    }
    match mfa::email_code::send(&state.deps, &org, &ch.user, &ch.id, &client).await {
        Ok(()) => Ok(see_other(
            &format!("{}?sent=1", challenge_path(&org)),
            vec![],
        )),
        Err(crate::error::Error::RateLimited(limited)) => {
            let message =
                "Too many codes were sent. Please wait and try again, or use another method.";
            Err(ch
                .again(&state, &org, Kind::Limited(limited), message)
                .await)
        }
        Err(e) => Err(PageError::failed(&org, &e)),
    }
}

/// Enrolment inside a challenge (the policy or the application requires a factor the user lacks).
pub async fn challenge_enrol(
    State(state): State<AppState>,
    Org(org): Org,
    Client(client): Client,
    ch: ChallengeForm,
) -> PageResult {
    if !ch.open.enrol {
        return Ok(see_other(&challenge_path(&org), vec![]));
    }
    let deps = &state.deps;
    let proof = challenge::enrolment_proof(deps, &org, &ch.id, &ch.user)
        .await
        .map_err(|e| PageError::failed(&org, &e))?;
    let Some(proof) = proof else {
        return Ok(see_other(&challenge_path(&org), vec![]));
    };
    let enrolment_id = ch.form.enrolment.as_deref().unwrap_or_default();
    let code = ch.form.code.as_deref().unwrap_or_default();
    match totp::confirm(deps, &org, &proof, &ch.user, enrolment_id, code, &client).await {
        Ok(codes) => {
            let cookies = ch.finish(&state, &org, Method::Totp, &client).await?;
            let codes = codes.unwrap_or_default();
            let mut page = views::recovery_codes(&org, &codes, &ch.open.after);
            page.cookies = cookies;
            Ok(page.into_response())
        }
        Err(totp::ConfirmError::Wrong) => Err(wrong_enrolment_code(&state, &org, &ch).await),
        Err(totp::ConfirmError::Expired) => {
            let message = "That setup expired. Scan this new code and try again.";
            Err(ch.again(&state, &org, Kind::BadRequest, message).await)
        }
        Err(totp::ConfirmError::Other(e)) => Err(PageError::failed(&org, &e)),
    }
}

/// A wrong code during enrolment: the same enrolment again while it lasts, else a new one.
async fn wrong_enrolment_code(
    state: &AppState,
    org: &Organization,
    ch: &ChallengeForm,
) -> PageError {
    let (csrf, csrf_cookie) = pages::csrf_token(state.deps.config(), &ch.headers);
    let enrolment_id = ch.form.enrolment.as_deref().unwrap_or_default();
    match totp::pending(&state.deps, org, &ch.user, enrolment_id).await {
        Ok(Some(enrolment)) => {
            let message = "That code is not right. Check the app and try again.";
            let mut page = views::challenge_enrolment(org, &enrolment, &csrf, Some(message));
            page.cookies.extend(csrf_cookie);
            PageError::page(Kind::Unauthorized, page)
        }
        Ok(None) => {
            let message = "Too many wrong codes. Scan this new code and try again.";
            ch.again(state, org, Kind::Unauthorized, message).await
        }
        Err(e) => PageError::failed(org, &e),
    }
}
