//! Second-factor pages: the challenge after the password (and for step-up), enrolment of an
//! authenticator app, and the account page's factor management. The logic is in [`crate::mfa`]; these
//! handlers parse forms, call it and render.
//!
//! The open challenge's id lives in an HttpOnly cookie (never in a URL). Challenge forms use the
//! double-submit CSRF cookie (there is no session yet); account forms use the session's CSRF token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, PreEscaped, html};
use serde::Deserialize;

use super::AppState;
use super::account::{SignedIn, checked, signed_in, unexpected};
use super::oauth::{OrgFromPath, client_info};
use super::pages::{self, Page, error_banner, hidden, see_other};
use crate::config::Config;
use crate::mfa::challenge::{self, Challenge, Finished};
use crate::mfa::step_up::{self as step_ups, StepUp};
use crate::mfa::{self, Factors, Method, ProofError, totp};

/// What a re-rendered challenge page says, and with which status.
struct Say<'a> {
    sent: bool,
    error: Option<&'a str>,
    status: StatusCode,
}

impl<'a> Say<'a> {
    fn error(error: &'a str, status: StatusCode) -> Self {
        Self {
            sent: false,
            error: Some(error),
            status,
        }
    }
}
use crate::oauth::authorize;
use crate::orgs::Organization;
use crate::sessions::Session;
use crate::users::{CredentialKind, User};

fn challenge_cookie_name(config: &Config, slug: &str) -> String {
    if config.is_https() {
        format!("__Host-latchkey-mfa-{slug}")
    } else {
        format!("latchkey-mfa-{slug}")
    }
}

fn challenge_path(org: &Organization) -> String {
    format!("/o/{}/login/mfa", org.slug)
}

/// Sends the browser to the challenge `id`.
pub fn to_challenge(config: &Config, org: &Organization, id: &str) -> Response {
    let cookie = pages::set_cookie(
        config,
        &challenge_cookie_name(config, &org.slug),
        id,
        Some(challenge::TTL_SECS),
        "Lax",
    );
    see_other(&challenge_path(org), vec![cookie])
}

/// Makes the signed-in `session` prove a second factor (or enrol one) before going on to `after`.
pub async fn step_up(
    state: &AppState,
    org: &Organization,
    session: &Session,
    user: &User,
    after: &str,
) -> Response {
    let services = &state.services;
    let factors = match mfa::factors(services, user).await {
        Ok(f) => f,
        Err(e) => return unexpected(org, &e),
    };
    let open = Challenge {
        after: after.to_string(),
        amr: session.amr.clone(),
        step_up_of: Some(hex::encode(&session.id_hash)),
        enrol: !factors.enrolled(),
    };
    match challenge::start(services, org, user, &open).await {
        Ok(id) => to_challenge(&services.config, org, &id),
        Err(e) => unexpected(org, &e),
    }
}

/// The open challenge behind this browser's cookie: (id, challenge, user).
async fn current_challenge(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
) -> Result<(String, Challenge, User), Response> {
    let config = &state.services.config;
    let expired = || {
        let body = html! {
            p { "This sign-in has expired or was already completed." }
            p { a href={ "/o/" (org.slug) "/login" } { "Sign in again" } }
        };
        Page::new(&org.name, "Sign-in expired", body)
            .status(StatusCode::BAD_REQUEST)
            .into_response()
    };
    let Some(id) = pages::cookie_value(headers, &challenge_cookie_name(config, &org.slug)) else {
        return Err(expired());
    };
    match challenge::load(&state.services, org, &id).await {
        Ok(Some((open, user))) => Ok((id, open, user)),
        Ok(None) => Err(expired()),
        Err(e) => Err(unexpected(org, &e)),
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

fn qr(svg: &str) -> Markup {
    // The renderer's XML prolog has no place inside HTML; the <svg> element itself is safe markup made
    // by the QR library from our own otpauth URL.
    let start = svg.find("<svg").unwrap_or(0);
    PreEscaped(svg[start..].to_string())
}

fn enrolment_body(
    enrolment: &totp::Enrolment,
    action: &str,
    csrf: &str,
    error: Option<&str>,
) -> Markup {
    html! {
        (error_banner(error))
        ol.steps {
            li { "Open your authenticator app (for example 1Password, Google Authenticator or Authy)." }
            li { "Scan this code, or type the key below." }
            li { "Enter the 6-digit code the app shows." }
        }
        figure.qr { (qr(&enrolment.qr_svg)) }
        p { "Key: " code.secret { (enrolment.secret_base32) } }
        form method="post" action=(action) {
            (hidden("csrf", csrf))
            (hidden("enrolment", &enrolment.id))
            label for="code" { "6-digit code" }
            input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
                pattern="[0-9]{6}" maxlength="6" required autofocus;
            button type="submit" { "Turn on" }
        }
    }
}

fn recovery_codes_page(org: &Organization, codes: &[String], continue_to: &str) -> Page {
    let text = codes.join("\n");
    let download = format!(
        "data:text/plain;charset=utf-8,{}",
        url::form_urlencoded::byte_serialize(
            format!("{} recovery codes\n\n{text}\n", org.name).as_bytes()
        )
        .collect::<String>()
        .replace('+', "%20")
    );
    let body = html! {
        p { "Two-step verification is on. Keep these recovery codes somewhere safe: each one signs you in "
            "once if you lose your authenticator. They are shown only now." }
        ol.codes {
            @for code in codes { li { code { (code) } } }
        }
        p.links {
            a download="recovery-codes.txt" href=(download) { "Download the codes" }
        }
        label for="codes-text" { "Copy them from here" }
        textarea id="codes-text" readonly rows="10" { (text) }
        p { a.button href=(continue_to) { "I have saved them — continue" } }
    };
    Page::new(&org.name, "Save your recovery codes", body)
}

#[derive(Debug, Default, Deserialize)]
pub struct ChallengeQuery {
    sent: Option<String>,
}

fn method_label(method: Method) -> &'static str {
    match method {
        Method::Totp => "Authenticator app",
        Method::Email => "Email code",
        Method::Recovery => "Recovery code",
        Method::Passkey => "Passkey",
    }
}

fn challenge_body(
    org: &Organization,
    factors: &Factors,
    csrf: &str,
    sent: bool,
    error: Option<&str>,
) -> Markup {
    let action = challenge_path(org);
    html! {
        (error_banner(error))
        @if sent {
            p.notice role="status" { "We emailed you a 6-digit code. It works for 5 minutes." }
        }
        @for method in factors.methods() {
            section.factor {
                h2 { (method_label(method)) }
                @if method == Method::Email {
                    form method="post" action={ (action) "/email" } {
                        (hidden("csrf", csrf))
                        button.secondary type="submit" {
                            @if sent { "Send another code" } @else { "Email me a code" }
                        }
                    }
                }
                @if method == Method::Passkey {
                    form method="post" action=(action) data-webauthn="assert"
                        data-options={ (action) "/passkey/options" } {
                        (hidden("csrf", csrf))
                        (hidden("method", method.as_str()))
                        (hidden("code", ""))
                        p.error role="alert" data-webauthn-error hidden {}
                        button type="submit" { "Use a passkey" }
                    }
                } @else {
                form method="post" action=(action) {
                    (hidden("csrf", csrf))
                    (hidden("method", method.as_str()))
                    @let id = format!("code-{}", method.as_str());
                    @match method {
                        Method::Recovery => {
                            label for=(id) { "One of your recovery codes" }
                            input id=(id) name="code" type="text" autocomplete="off" spellcheck="false"
                                maxlength="20" required;
                        }
                        _ => {
                            label for=(id) { "6-digit code" }
                            input id=(id) name="code" type="text" inputmode="numeric"
                                autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required;
                        }
                    }
                    button type="submit" { "Verify" }
                }
                }
            }
        }
        @if factors.methods().contains(&Method::Passkey) {
            (pages::webauthn_script_tag())
        }
    }
}

async fn render_challenge(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    open: &Challenge,
    user: &User,
    say: Say<'_>,
) -> Response {
    let Say {
        sent,
        error,
        status,
    } = say;
    let services = &state.services;
    let (csrf, csrf_cookie) = pages::csrf_token(&services.config, headers);
    let mut page = if open.enrol {
        let enrolment = match totp::begin(services, org, user).await {
            Ok(e) => e,
            Err(e) => return unexpected(org, &e),
        };
        let body = html! {
            p { "Your account needs two-step verification. Set up an authenticator app to continue." }
            (enrolment_body(&enrolment, &format!("{}/enrol", challenge_path(org)), &csrf, error))
        };
        Page::new(&org.name, "Set up two-step verification", body)
    } else {
        let factors = match mfa::factors(services, user).await {
            Ok(f) => f,
            Err(e) => return unexpected(org, &e),
        };
        let body = challenge_body(org, &factors, &csrf, sent, error);
        Page::new(&org.name, "Two-step verification", body)
    };
    page.form_targets = form_targets(state, org, &open.after).await;
    page.cookies.extend(csrf_cookie);
    page.status(status).into_response()
}

pub async fn challenge_page(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    Query(query): Query<ChallengeQuery>,
) -> Response {
    let (_, open, user) = match current_challenge(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let say = Say {
        sent: query.sent.is_some(),
        error: None,
        status: StatusCode::OK,
    };
    render_challenge(&state, &org, &headers, &open, &user, say).await
}

#[derive(Debug, Deserialize)]
pub struct ProofForm {
    csrf: Option<String>,
    method: Option<String>,
    code: Option<String>,
    enrolment: Option<String>,
}

/// A posted challenge form: from our origin with the CSRF cookie's token, for the open challenge.
async fn checked_challenge(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    form: Result<axum::Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Result<(ProofForm, String, Challenge, User), Response> {
    let config = &state.services.config;
    let Ok(axum::Form(form)) = form else {
        return Err(Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "The form was malformed.",
        )
        .into_response());
    };
    if !pages::same_origin(config, headers)
        || !pages::csrf_ok(config, headers, form.csrf.as_deref().unwrap_or_default())
    {
        return Err(Page::error(
            &org.name,
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        )
        .into_response());
    }
    let (id, open, user) = current_challenge(state, org, headers).await?;
    Ok((form, id, open, user))
}

/// Ends challenge `id` after a proof: sets the session cookie (for a sign-in) and goes on.
async fn finish(
    state: &AppState,
    org: &Organization,
    id: &str,
    open: &Challenge,
    user: &User,
    method: Method,
    client: &crate::sessions::service::ClientInfo,
) -> Result<Vec<String>, Response> {
    let config = &state.services.config;
    let clear = pages::clear_cookie(config, &challenge_cookie_name(config, &org.slug));
    match challenge::finish(&state.services, org, id, open, user, method, client).await {
        Ok(Finished::SignedIn(_, token)) => Ok(vec![
            clear,
            // A new session id at every sign-in: nothing set before login survives it.
            pages::set_cookie(
                config,
                &pages::session_cookie_name(config, &org.slug),
                &token,
                Some(org.settings.session_absolute_lifetime_secs as i64),
                "Lax",
            ),
        ]),
        Ok(Finished::SteppedUp) => Ok(vec![clear]),
        Ok(Finished::Gone) => Err(Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "This sign-in has expired or was already completed.",
        )
        .into_response()),
        Err(e) => Err(unexpected(org, &e)),
    }
}

pub async fn challenge_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, id, open, user) = match checked_challenge(&state, &org, &headers, form).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let client = client_info(&addr, &headers);
    let Some(method) = form.method.as_deref().and_then(Method::parse) else {
        return render_challenge(
            &state,
            &org,
            &headers,
            &open,
            &user,
            Say::error("Choose how to verify.", StatusCode::BAD_REQUEST),
        )
        .await;
    };
    let factors = match mfa::factors(&state.services, &user).await {
        Ok(f) => f,
        Err(e) => return unexpected(&org, &e),
    };
    let code = form.code.unwrap_or_default();
    let proof = mfa::Proof {
        method,
        code: &code,
        binding: &id,
    };
    let outcome = mfa::prove(&state.services, &org, &user, &factors, proof, &client).await;
    let (message, status) = match outcome {
        Ok(()) => {
            return match finish(&state, &org, &id, &open, &user, method, &client).await {
                Ok(cookies) => see_other(&open.after, cookies),
                Err(r) => r,
            };
        }
        Err(ProofError::Wrong | ProofError::Unavailable) => (
            "That code is not right, or has expired. Try again.",
            StatusCode::UNAUTHORIZED,
        ),
        Err(ProofError::Locked(limited)) => {
            let mut response = render_challenge(
                &state,
                &org,
                &headers,
                &open,
                &user,
                Say::error(
                    "Too many wrong codes. Please wait a few minutes and try again.",
                    StatusCode::TOO_MANY_REQUESTS,
                ),
            )
            .await;
            super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            );
            return response;
        }
        Err(ProofError::Busy) => return unexpected(&org, &crate::error::Error::Busy),
        Err(ProofError::Other(e)) => return unexpected(&org, &e),
    };
    render_challenge(
        &state,
        &org,
        &headers,
        &open,
        &user,
        Say::error(message, status),
    )
    .await
}

pub async fn challenge_email(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, id, open, user) = match checked_challenge(&state, &org, &headers, form).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let factors = match mfa::factors(&state.services, &user).await {
        Ok(f) => f,
        Err(e) => return unexpected(&org, &e),
    };
    if factors.email().is_none() {
        return render_challenge(
            &state,
            &org,
            &headers,
            &open,
            &user,
            Say::error(
                "Email codes are not turned on for this account.",
                StatusCode::BAD_REQUEST,
            ),
        )
        .await;
    }
    let client = client_info(&addr, &headers);
    match mfa::email_code::send(&state.services, &org, &user, &id, &client).await {
        Ok(()) => see_other(&format!("{}?sent=1", challenge_path(&org)), vec![]),
        Err(crate::error::Error::RateLimited(limited)) => {
            let mut response = render_challenge(
                &state,
                &org,
                &headers,
                &open,
                &user,
                Say::error(
                    "Too many codes were sent. Please wait and try again, or use another method.",
                    StatusCode::TOO_MANY_REQUESTS,
                ),
            )
            .await;
            super::rate_limit_headers(
                &mut response,
                &limited.decision,
                limited.policy,
                limited.window,
            );
            response
        }
        Err(e) => unexpected(&org, &e),
    }
}

/// Enrolment inside a challenge (the policy or the application requires a factor the user lacks).
pub async fn challenge_enrol(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, id, open, user) = match checked_challenge(&state, &org, &headers, form).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if !open.enrol {
        return see_other(&challenge_path(&org), vec![]);
    }
    let proof = match challenge::enrolment_proof(&state.services, &org, &id, &user).await {
        Ok(Some(proof)) => proof,
        Ok(None) => return see_other(&challenge_path(&org), vec![]),
        Err(e) => return unexpected(&org, &e),
    };
    let client = client_info(&addr, &headers);
    let enrolment_id = form.enrolment.unwrap_or_default();
    let code = form.code.unwrap_or_default();
    let confirmed = totp::confirm(
        &state.services,
        &org,
        &proof,
        &user,
        &enrolment_id,
        &code,
        &client,
    )
    .await;
    match confirmed {
        Ok(codes) => {
            let cookies = match finish(&state, &org, &id, &open, &user, Method::Totp, &client).await
            {
                Ok(cookies) => cookies,
                Err(r) => return r,
            };
            let mut page = recovery_codes_page(&org, &codes.unwrap_or_default(), &open.after);
            page.cookies = cookies;
            page.into_response()
        }
        Err(totp::ConfirmError::Wrong) => {
            let (csrf, csrf_cookie) = pages::csrf_token(&state.services.config, &headers);
            let enrolment = match totp::pending(&state.services, &org, &user, &enrolment_id).await {
                Ok(Some(e)) => e,
                Ok(None) => {
                    return render_challenge(
                        &state,
                        &org,
                        &headers,
                        &open,
                        &user,
                        Say::error(
                            "Too many wrong codes. Scan this new code and try again.",
                            StatusCode::UNAUTHORIZED,
                        ),
                    )
                    .await;
                }
                Err(e) => return unexpected(&org, &e),
            };
            let body = html! {
                p { "Your account needs two-step verification. Set up an authenticator app to continue." }
                (enrolment_body(
                    &enrolment,
                    &format!("{}/enrol", challenge_path(&org)),
                    &csrf,
                    Some("That code is not right. Check the app and try again."),
                ))
            };
            let mut page = Page::new(&org.name, "Set up two-step verification", body)
                .status(StatusCode::UNAUTHORIZED);
            page.cookies.extend(csrf_cookie);
            page.into_response()
        }
        Err(totp::ConfirmError::Expired) => {
            render_challenge(
                &state,
                &org,
                &headers,
                &open,
                &user,
                Say::error(
                    "That setup expired. Scan this new code and try again.",
                    StatusCode::BAD_REQUEST,
                ),
            )
            .await
        }
        Err(totp::ConfirmError::Other(e)) => unexpected(&org, &e),
    }
}

// ---------------------------------------------------------------------------------------------------
// The account page's factor management.

fn account_path(org: &Organization) -> String {
    format!("/o/{}/account", org.slug)
}

/// The step-up proof a sensitive action needs, or, when the session must prove a second factor again,
/// the step-up response (back to the account page afterwards, where the user repeats the action).
async fn stepped_up(
    state: &AppState,
    org: &Organization,
    me: &SignedIn,
    factors: &Factors,
) -> Result<StepUp, Response> {
    match step_ups::prove(org, &me.session, factors, crate::time_now()) {
        Ok(proof) => Ok(proof),
        Err(_) => {
            let after = format!("{}?done=stepped-up", account_path(org));
            Err(step_up(state, org, &me.session, &me.user, &after).await)
        }
    }
}

/// A posted account form for a sensitive action: signed in, CSRF and Origin checked, and a recent
/// second-factor proof when the user has a factor (otherwise the step-up response). Returns the form, the
/// signed-in user, their factors and the step-up proof.
async fn sensitive<T>(
    state: &AppState,
    org: &Organization,
    headers: &HeaderMap,
    form: Result<axum::Form<T>, axum::extract::rejection::FormRejection>,
    csrf: impl Fn(&T) -> Option<&str>,
) -> Result<(T, SignedIn, Factors, StepUp), Response> {
    let (form, me) = checked(state, org, headers, form, csrf).await?;
    let factors = mfa::factors(&state.services, &me.user)
        .await
        .map_err(|e| unexpected(org, &e))?;
    let proof = stepped_up(state, org, &me, &factors).await?;
    Ok((form, me, factors, proof))
}

/// The account page's section on second factors.
/// What the account page shows about second factors.
pub struct FactorsView<'a> {
    pub factors: &'a Factors,
    /// Whether passkeys can be added (the public URL has a domain name).
    pub passkeys_on: bool,
}

pub fn account_section(
    org: &Organization,
    user: &User,
    view: FactorsView<'_>,
    csrf: &str,
) -> Markup {
    let FactorsView {
        factors,
        passkeys_on,
    } = view;
    let slug = &org.slug;
    let codes_left = factors.recovery_codes().len();
    html! {
        section aria-labelledby="mfa-h" {
            h2 id="mfa-h" { "Two-step verification" }
            @if org.settings.mfa.policy != mfa::MfaPolicy::Optional {
                p.muted { (org.name) " requires two-step verification for your account." }
            }
            ul.factors {
                li.factor {
                    div { strong { "Authenticator app" } }
                    div.actions {
                        @if factors.totp().is_some() {
                            span.badge { "On" }
                            form.inline method="post" action={ "/o/" (slug) "/account/mfa/remove" } {
                                (hidden("csrf", csrf))
                                (hidden("factor", "totp"))
                                button.secondary.small type="submit" { "Remove" }
                            }
                        } @else {
                            a.button.small href={ "/o/" (slug) "/account/mfa/totp" } { "Set up" }
                        }
                    }
                }
                li.factor {
                    div {
                        strong { "Email codes" }
                        @if !user.email_verified && factors.email().is_none() {
                            span.muted { "Confirm your email address first." }
                        }
                    }
                    div.actions {
                        @if factors.email().is_some() {
                            span.badge { "On" }
                            form.inline method="post" action={ "/o/" (slug) "/account/mfa/remove" } {
                                (hidden("csrf", csrf))
                                (hidden("factor", "email"))
                                button.secondary.small type="submit" { "Turn off" }
                            }
                        } @else if user.email_verified {
                            form.inline method="post" action={ "/o/" (slug) "/account/mfa/email" } {
                                (hidden("csrf", csrf))
                                button.secondary.small type="submit" { "Turn on" }
                            }
                        }
                    }
                }
                @for passkey in factors.passkeys() {
                    li.factor {
                        div {
                            strong { "Passkey: " (passkey.name.as_deref().unwrap_or("Passkey")) }
                            span.muted {
                                "added " (super::account::format_time(passkey.created_at))
                                " · "
                                @match passkey.last_used_at {
                                    Some(at) => { "last used " (super::account::format_time(at)) }
                                    None => { "never used" }
                                }
                            }
                        }
                        div.actions {
                            form.inline method="post" action={ "/o/" (slug) "/account/mfa/remove" } {
                                (hidden("csrf", csrf))
                                (hidden("factor", "passkey"))
                                (hidden("credential", &passkey.id))
                                button.secondary.small type="submit" { "Remove" }
                            }
                        }
                    }
                }
                @if passkeys_on {
                    li.factor {
                        div {
                            strong { "Passkeys" }
                            span.muted { "Sign in with your device's screen lock or a security key." }
                        }
                        div.actions {
                            a.button.small href={ "/o/" (slug) "/account/passkeys/new" } { "Add a passkey" }
                        }
                    }
                }
                @if factors.enrolled() {
                    li.factor {
                        div {
                            strong { "Recovery codes" }
                            span.muted { (codes_left) " unused" }
                        }
                        div.actions {
                            form.inline method="post" action={ "/o/" (slug) "/account/mfa/recovery-codes" } {
                                (hidden("csrf", csrf))
                                button.secondary.small type="submit" { "Create new codes" }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub async fn totp_setup_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
) -> Response {
    let me = match signed_in(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let factors = match mfa::factors(&state.services, &me.user).await {
        Ok(f) => f,
        Err(e) => return unexpected(&org, &e),
    };
    if step_ups::prove(&org, &me.session, &factors, crate::time_now()).is_err() {
        let after = format!("/o/{}/account/mfa/totp", org.slug);
        return step_up(&state, &org, &me.session, &me.user, &after).await;
    }
    let enrolment = match totp::begin(&state.services, &org, &me.user).await {
        Ok(e) => e,
        Err(e) => return unexpected(&org, &e),
    };
    let csrf = pages::session_csrf(&state.services.secrets, &me.token);
    let action = format!("/o/{}/account/mfa/totp", org.slug);
    let body = enrolment_body(&enrolment, &action, &csrf, None);
    Page::new(&org.name, "Set up an authenticator app", body).into_response()
}

pub async fn totp_setup_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, me, _, proof) =
        match sensitive(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let client = client_info(&addr, &headers);
    let enrolment_id = form.enrolment.unwrap_or_default();
    match totp::confirm(
        &state.services,
        &org,
        &proof,
        &me.user,
        &enrolment_id,
        &form.code.unwrap_or_default(),
        &client,
    )
    .await
    {
        Ok(Some(codes)) => recovery_codes_page(&org, &codes, &account_path(&org)).into_response(),
        Ok(None) => see_other(&format!("{}?done=totp", account_path(&org)), vec![]),
        Err(totp::ConfirmError::Wrong) => {
            match totp::pending(&state.services, &org, &me.user, &enrolment_id).await {
                Ok(Some(enrolment)) => {
                    let csrf = pages::session_csrf(&state.services.secrets, &me.token);
                    let action = format!("/o/{}/account/mfa/totp", org.slug);
                    let body = enrolment_body(
                        &enrolment,
                        &action,
                        &csrf,
                        Some("That code is not right. Check the app and try again."),
                    );
                    Page::new(&org.name, "Set up an authenticator app", body)
                        .status(StatusCode::UNAUTHORIZED)
                        .into_response()
                }
                Ok(None) => see_other(&format!("/o/{}/account/mfa/totp", org.slug), vec![]),
                Err(e) => unexpected(&org, &e),
            }
        }
        Err(totp::ConfirmError::Expired) => {
            see_other(&format!("/o/{}/account/mfa/totp", org.slug), vec![])
        }
        Err(totp::ConfirmError::Other(e)) => unexpected(&org, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct FactorForm {
    csrf: Option<String>,
    factor: Option<String>,
    /// Which passkey (a user may have several).
    credential: Option<String>,
}

pub async fn remove_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<FactorForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let kind = match form.factor.as_deref() {
        Some("totp") => CredentialKind::Totp,
        Some("email") => CredentialKind::EmailOtp,
        Some("passkey") => CredentialKind::Webauthn,
        _ => {
            return Page::error(
                &org.name,
                StatusCode::BAD_REQUEST,
                "Unknown verification method.",
            )
            .into_response();
        }
    };
    let factors = match mfa::factors(&state.services, &me.user).await {
        Ok(f) => f,
        Err(e) => return unexpected(&org, &e),
    };
    let proof = match stepped_up(&state, &org, &me, &factors).await {
        Ok(proof) => proof,
        Err(r) => return r,
    };
    let credential_id = form
        .credential
        .as_deref()
        .filter(|_| kind == CredentialKind::Webauthn);
    let client = client_info(&addr, &headers);
    match mfa::remove_factor(
        &state.services,
        &org,
        &proof,
        &me.user,
        &factors,
        kind,
        credential_id,
        &client,
    )
    .await
    {
        Ok(true) => see_other(
            &format!("{}?done=factor-removed", account_path(&org)),
            vec![],
        ),
        Ok(false) => see_other(&account_path(&org), vec![]),
        Err(mfa::RemoveError::LastRequiredFactor) => {
            let body = html! {
                p { (org.name) " requires two-step verification: set up another method before removing this one." }
                p { a href=(account_path(&org)) { "Back to your account" } }
            };
            Page::new(&org.name, "Cannot remove", body)
                .status(StatusCode::CONFLICT)
                .into_response()
        }
        Err(mfa::RemoveError::Other(e)) => unexpected(&org, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn email_enable_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, me, factors, proof) =
        match sensitive(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let client = client_info(&addr, &headers);
    match mfa::enable_email(&state.services, &org, &proof, &me.user, &factors, &client).await {
        Ok(_) if factors.recovery_codes().is_empty() => {
            // The first factor comes with recovery codes.
            match mfa::recovery::regenerate(&state.services, &org, &proof, &me.user, &client).await
            {
                Ok(codes) => recovery_codes_page(&org, &codes, &account_path(&org)).into_response(),
                Err(e) => unexpected(&org, &e),
            }
        }
        Ok(_) => see_other(&format!("{}?done=email-codes", account_path(&org)), vec![]),
        Err(crate::error::Error::Invalid { .. }) => Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "Confirm your email address before using codes by email.",
        )
        .into_response(),
        Err(e) => unexpected(&org, &e),
    }
}

pub async fn recovery_codes_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, me, factors, proof) =
        match sensitive(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    if !factors.enrolled() {
        return Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "Turn on two-step verification first.",
        )
        .into_response();
    }
    let client = client_info(&addr, &headers);
    match mfa::recovery::regenerate(&state.services, &org, &proof, &me.user, &client).await {
        Ok(codes) => recovery_codes_page(&org, &codes, &account_path(&org)).into_response(),
        Err(e) => unexpected(&org, &e),
    }
}

// ---------------------------------------------------------------------------------------------------
// Passkeys: the browser side is static/webauthn.js, which fetches options from the `…/options`
// endpoints below and then submits the page's form with the browser's answer.

fn json_answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

fn json_refusal(status: StatusCode, description: &str) -> Response {
    json_answer(
        status,
        serde_json::json!({ "error": "passkey_unavailable", "error_description": description }),
    )
}

fn json_failure(e: &crate::error::Error) -> Response {
    match e {
        crate::error::Error::Invalid { message, .. } => {
            json_refusal(StatusCode::BAD_REQUEST, message)
        }
        e if e.retry_later() => {
            let mut response = json_refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is busy; try again shortly.",
            );
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("2"),
            );
            response
        }
        other => {
            tracing::error!(error = %other, "passkey options failed");
            json_refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
    }
}

/// The answer to an options request that opened a ceremony: its id and the options for the browser.
fn ceremony(opened: crate::error::Result<(String, serde_json::Value)>) -> Response {
    match opened {
        Ok((id, options)) => json_answer(
            StatusCode::OK,
            serde_json::json!({ "state": id, "options": options }),
        ),
        Err(e) => json_failure(&e),
    }
}

/// Options for a passkey as the second factor of this browser's challenge.
pub async fn challenge_passkey_options(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    form: Result<axum::Form<ProofForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, id, _, user) = match checked_challenge(&state, &org, &headers, form).await {
        Ok(found) => found,
        Err(_) => {
            return json_refusal(
                StatusCode::FORBIDDEN,
                "This sign-in has expired; sign in again.",
            );
        }
    };
    let factors = match mfa::factors(&state.services, &user).await {
        Ok(f) => f,
        Err(e) => return json_failure(&e),
    };
    match mfa::passkey::begin_second_factor(&state.services, &org, &user, &factors, &id).await {
        Ok(options) => json_answer(StatusCode::OK, serde_json::json!({ "options": options })),
        Err(e) => json_failure(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct PasskeySignInForm {
    csrf: Option<String>,
    req: Option<String>,
    return_to: Option<String>,
    state: Option<String>,
    credential: Option<String>,
}

/// The double-submit CSRF check for forms without a session (the sign-in page's).
fn anonymous_form_ok(state: &AppState, headers: &HeaderMap, csrf: Option<&str>) -> bool {
    let config = &state.services.config;
    pages::same_origin(config, headers) && pages::csrf_ok(config, headers, csrf.unwrap_or_default())
}

/// Options for "Sign in with a passkey" (no user known yet).
pub async fn sign_in_passkey_options(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    form: Result<axum::Form<PasskeySignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(axum::Form(form)) = form else {
        return json_refusal(StatusCode::BAD_REQUEST, "The form was malformed.");
    };
    if !anonymous_form_ok(&state, &headers, form.csrf.as_deref()) {
        return json_refusal(
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        );
    }
    ceremony(mfa::passkey::begin_sign_in(&state.services, &org).await)
}

/// "Sign in with a passkey": a discoverable passkey with user verification is the whole sign-in.
pub async fn sign_in_passkey(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<PasskeySignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let config = &state.services.config;
    let Ok(axum::Form(form)) = form else {
        return Page::error(
            &org.name,
            StatusCode::BAD_REQUEST,
            "The form was malformed.",
        )
        .into_response();
    };
    if !anonymous_form_ok(&state, &headers, form.csrf.as_deref()) {
        return Page::error(
            &org.name,
            StatusCode::FORBIDDEN,
            "This form could not be verified. Reload the page and try again.",
        )
        .into_response();
    }
    let location = match form.req.as_deref().filter(|r| !r.is_empty()) {
        Some(req) => format!(
            "/o/{}/authorize/resume?req={}",
            org.slug,
            url::form_urlencoded::byte_serialize(req.as_bytes()).collect::<String>()
        ),
        None => pages::safe_return_to(&org.slug, form.return_to.as_deref())
            .unwrap_or_else(|| account_path(&org)),
    };
    let client = client_info(&addr, &headers);
    let user = match mfa::passkey::finish_sign_in(
        &state.services,
        &org,
        form.state.as_deref().unwrap_or_default(),
        form.credential.as_deref().unwrap_or_default(),
        &client,
    )
    .await
    {
        Ok(Some(user)) => user,
        Ok(None) => {
            let mut retry = format!("/o/{}/login", org.slug);
            if let Some(req) = form.req.as_deref().filter(|r| !r.is_empty()) {
                retry.push_str("?req=");
                retry.extend(url::form_urlencoded::byte_serialize(req.as_bytes()));
            }
            let body = html! {
                p { "That passkey could not sign you in here." }
                p { a href=(retry) { "Back to sign-in" } }
            };
            return Page::new(&org.name, "Passkey not accepted", body)
                .status(StatusCode::UNAUTHORIZED)
                .into_response();
        }
        Err(e) => return unexpected(&org, &e),
    };
    let amr = vec![
        mfa::AMR_PASSKEY.to_string(),
        "user".to_string(),
        mfa::AMR_MFA.to_string(),
    ];
    match crate::sessions::service::start(
        &state.services,
        &org,
        &user,
        amr,
        crate::oauth::ACR_MFA,
        &client,
    )
    .await
    {
        Ok((_, token)) => {
            let cookie = pages::set_cookie(
                config,
                &pages::session_cookie_name(config, &org.slug),
                &token,
                Some(org.settings.session_absolute_lifetime_secs as i64),
                "Lax",
            );
            see_other(&location, vec![cookie])
        }
        Err(e) => unexpected(&org, &e),
    }
}

/// The sign-in page's "Sign in with a passkey" form (shown when passkeys are on).
pub fn sign_in_form(org: &Organization, csrf: &str, after_field: Markup) -> Markup {
    let action = format!("/o/{}/login/passkey", org.slug);
    html! {
        form.passkey method="post" action=(action) data-webauthn="sign-in"
            data-options={ (action) "/options" } {
            (hidden("csrf", csrf))
            (after_field)
            (hidden("state", ""))
            (hidden("credential", ""))
            p.error role="alert" data-webauthn-error hidden {}
            button.secondary type="submit" { "Sign in with a passkey" }
        }
        (pages::webauthn_script_tag())
    }
}

pub async fn passkey_setup_form(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
) -> Response {
    let me = match signed_in(&state, &org, &headers).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    if state.services.webauthn.is_none() {
        return Page::error(
            &org.name,
            StatusCode::NOT_FOUND,
            "Passkeys are not available on this server.",
        )
        .into_response();
    }
    let factors = match mfa::factors(&state.services, &me.user).await {
        Ok(f) => f,
        Err(e) => return unexpected(&org, &e),
    };
    if step_ups::prove(&org, &me.session, &factors, crate::time_now()).is_err() {
        let after = format!("/o/{}/account/passkeys/new", org.slug);
        return step_up(&state, &org, &me.session, &me.user, &after).await;
    }
    let csrf = pages::session_csrf(&state.services.secrets, &me.token);
    let action = format!("/o/{}/account/passkeys", org.slug);
    let body = html! {
        p { "A passkey signs you in with your device's screen lock or a security key: no password, "
            "and nothing a phishing site can reuse." }
        form method="post" action=(action) data-webauthn="register" data-options={ (action) "/options" } {
            (hidden("csrf", &csrf))
            (hidden("state", ""))
            (hidden("credential", ""))
            label for="passkey-name" { "Name" }
            input id="passkey-name" name="name" type="text" maxlength="60" value="My passkey" required;
            p.error role="alert" data-webauthn-error hidden {}
            button type="submit" { "Add passkey" }
        }
        p.muted { a href=(account_path(&org)) { "Back to your account" } }
        (pages::webauthn_script_tag())
    };
    Page::new(&org.name, "Add a passkey", body).into_response()
}

#[derive(Debug, Deserialize)]
pub struct PasskeySetupForm {
    csrf: Option<String>,
    state: Option<String>,
    credential: Option<String>,
    name: Option<String>,
}

pub async fn passkey_setup_options(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    headers: HeaderMap,
    form: Result<axum::Form<PasskeySetupForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (_, me) = match checked(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
        Ok(found) => found,
        Err(_) => {
            return json_refusal(
                StatusCode::FORBIDDEN,
                "Your session could not be verified. Reload the page.",
            );
        }
    };
    let factors = match mfa::factors(&state.services, &me.user).await {
        Ok(f) => f,
        Err(e) => return json_failure(&e),
    };
    let Ok(proof) = step_ups::prove(&org, &me.session, &factors, crate::time_now()) else {
        return json_refusal(
            StatusCode::FORBIDDEN,
            "Confirm it is you first: reload the page.",
        );
    };
    ceremony(
        mfa::passkey::begin_registration(&state.services, &org, &proof, &me.user, &factors).await,
    )
}

pub async fn passkey_setup_submit(
    State(state): State<AppState>,
    OrgFromPath(org): OrgFromPath,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<axum::Form<PasskeySetupForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let (form, me, factors, proof) =
        match sensitive(&state, &org, &headers, form, |f| f.csrf.as_deref()).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let client = client_info(&addr, &headers);
    match mfa::passkey::finish_registration(
        &state.services,
        &org,
        &proof,
        &me.user,
        &factors,
        mfa::passkey::Registration {
            state_id: form.state.as_deref().unwrap_or_default(),
            response: form.credential.as_deref().unwrap_or_default(),
            name: form.name.as_deref().unwrap_or_default(),
        },
        &client,
    )
    .await
    {
        Ok(Some(codes)) => recovery_codes_page(&org, &codes, &account_path(&org)).into_response(),
        Ok(None) => see_other(&format!("{}?done=passkey", account_path(&org)), vec![]),
        Err(crate::error::Error::Invalid { message, .. }) => {
            let body = html! {
                p { (message) "." }
                p { a href={ "/o/" (org.slug) "/account/passkeys/new" } { "Try again" } }
            };
            Page::new(&org.name, "Passkey not added", body)
                .status(StatusCode::BAD_REQUEST)
                .into_response()
        }
        Err(e) => unexpected(&org, &e),
    }
}
