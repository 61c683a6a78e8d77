//! The staff pages outside any organization: finishing setup from a setup link, accepting a team
//! invitation.

use maud::{Markup, html};

use crate::http::pages::{Page, error_banner, hidden};

const TITLE: &str = "Latchkey";

/// What the setup and invitation forms show again after a refusal.
pub struct AccountForm<'a> {
    pub token: &'a str,
    /// The address, and whether it is fixed by the link.
    pub email: &'a str,
    pub email_fixed: bool,
    pub name: &'a str,
    pub error: Option<&'a str>,
}

fn account_fields(form: &AccountForm<'_>) -> Markup {
    html! {
        (hidden("token", form.token))
        label for="email" { "Email" }
        @if form.email_fixed {
            input id="email" name="email" type="email" value=(form.email) readonly;
        } @else {
            input id="email" name="email" type="email" value=(form.email) autocomplete="email" required autofocus;
        }
        label for="name" { "Your name (optional)" }
        input id="name" name="name" type="text" value=(form.name) autocomplete="name";
        label for="password" { "Password" }
        input id="password" name="password" type="password" autocomplete="new-password" required
            aria-describedby="password-rules";
        p.muted id="password-rules" {
            "At least 10 characters. After this you sign in and set up a second factor (an authenticator app or a passkey): staff accounts always use one."
        }
    }
}

pub fn setup(csrf: &str, form: AccountForm<'_>, operator: bool) -> Page {
    let body = html! {
        (error_banner(form.error))
        p {
            @if operator { "Create the first platform operator account of this Latchkey instance." }
            @else { "Create your Latchkey staff account." }
        }
        form method="post" action="/setup" {
            (hidden("csrf", csrf))
            (account_fields(&form))
            button type="submit" { "Create account" }
        }
    };
    Page::new(TITLE, "Finish setup", body)
}

pub fn link_closed(what: &str) -> Page {
    let body = html! {
        p { "This " (what) " link is invalid, was already used, or has expired." }
        p.muted { "Ask for a new one (an operator can print a setup link with " code { "latchkey staff create" } ")." }
    };
    Page::new(TITLE, "Link expired", body).status(axum::http::StatusCode::BAD_REQUEST)
}

/// The instance's front page: where to sign in as staff and where the API is, or, before the first
/// operator exists, how to finish setup. Organizations are not listed (their names are not public).
pub fn home(sign_in: &str, set_up: bool) -> Page {
    let body = html! {
        @if set_up {
            p { "This is a Latchkey identity server. Its organizations' users sign in on pages their own applications link to." }
            h2 { "Staff" }
            p { "Administer organizations, applications, users, team and keys after signing in with your staff account and its second factor." }
            p { a.button href=(sign_in) { "Staff sign-in" } }
            h2 { "Developers" }
            ul {
                li { "An organization's issuer is " code { "/o/{organization}" } "; its OpenID Connect discovery document is " code { "/o/{organization}/.well-known/openid-configuration" } "." }
                li { "The admin API is described by its " a href="/api/v1/openapi.json" { "OpenAPI document" } " (authenticate with an API key)." }
                li { "Health: " a href="/healthz" { "/healthz" } ", readiness: " a href="/readyz" { "/readyz" } "." }
            }
        } @else {
            p { "Latchkey is running, but no platform operator exists yet." }
            ol {
                li { "Find the line " code { "no platform operator yet" } " in the server's log: it carries a one-time " code { "setup_link" } " (valid one hour, printed once at each start)." }
                li { "Open that link here, choose your email and password, then sign in and set up a second factor (an authenticator app or a passkey)." }
            }
            p.muted { "Lost the link? Run " code { "latchkey staff create --email you@example.com --operator" } " on the server to print a new one." }
        }
    };
    Page::new(TITLE, if set_up { "Welcome" } else { "Finish setup" }, body)
}

pub fn account_created(sign_in: &str) -> Page {
    let body = html! {
        p { "Your staff account is ready. Sign in now; you will be asked to set up a second factor first." }
        p { a.button href=(sign_in) { "Sign in" } }
    };
    Page::new(TITLE, "Account created", body)
}

pub struct InvitationView<'a> {
    pub org_name: &'a str,
    pub role: &'a str,
    /// True when a staff account with the invited address exists (it accepts from its own session).
    pub existing: bool,
    pub signed_in_as: Option<&'a str>,
    pub sign_in: &'a str,
}

pub fn invitation(csrf: &str, view: InvitationView<'_>, form: AccountForm<'_>) -> Page {
    let body = html! {
        (error_banner(form.error))
        p { "You are invited to help administer " strong { (view.org_name) } " as " strong { (view.role) } "." }
        @if view.existing {
            @if let Some(me) = view.signed_in_as {
                p.muted { "Signed in as " (me) "." }
                form method="post" action="/invitations/accept" {
                    (hidden("csrf", csrf))
                    (hidden("token", form.token))
                    button type="submit" { "Accept invitation" }
                }
            } @else {
                p { "You already have a staff account with " strong { (form.email) } ". Sign in first, then open this link again." }
                p { a.button href=(view.sign_in) { "Sign in" } }
            }
        } @else {
            form method="post" action="/invitations/accept" {
                (hidden("csrf", csrf))
                (account_fields(&form))
                button type="submit" { "Create account and accept" }
            }
        }
    };
    Page::new(TITLE, "Team invitation", body)
}

pub fn invitation_accepted(org_name: &str, sign_in: &str) -> Page {
    let body = html! {
        p { "You are now on the team of " strong { (org_name) } "." }
        p { a.button href=(sign_in) { "Continue" } }
    };
    Page::new(TITLE, "Invitation accepted", body)
}
