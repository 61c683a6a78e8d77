//! The self-service pages for people who are not signed in: sign-up, email verification, resending the
//! link, forgot and reset password.

use maud::{Markup, html};

use crate::http::pages::{Page, error_banner, hidden};
use crate::model::orgs::Organization;

/// A labelled text-like input; maud escapes the value.
fn input(label: &str, name: &str, kind: &str, value: &str, autocomplete: &str) -> Markup {
    html! {
        label for=(name) { (label) }
        input id=(name) name=(name) type=(kind) value=(value) autocomplete=(autocomplete) required autofocus;
    }
}

fn password_rules(org: &Organization) -> Markup {
    html! { p.muted id="password-rules" { (crate::accounts::describe_password_rules(org)) } }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// `?req=…` for a pending authorization request, or nothing.
pub fn req_suffix(req: Option<&str>) -> String {
    match req.filter(|r| !r.is_empty()) {
        Some(r) => format!("?req={}", urlencode(r)),
        None => String::new(),
    }
}

/// Where "sign in" leads: the application's pending request, or the account page.
pub fn sign_in_href(org: &Organization, req: Option<&str>) -> String {
    match req.filter(|r| !r.is_empty()) {
        Some(r) => format!("/o/{}/login?req={}", org.slug, urlencode(r)),
        None => format!("/o/{}/account", org.slug),
    }
}

pub struct SignUpView<'a> {
    pub name: &'a str,
    pub email: &'a str,
    pub req: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn signup(org: &Organization, csrf: &str, view: SignUpView<'_>) -> Page {
    let body = html! {
        (error_banner(view.error))
        form method="post" action={ "/o/" (org.slug) "/signup" } {
            (hidden("csrf", csrf))
            @if let Some(req) = view.req { (hidden("req", req)) }
            label for="name" { "Name (optional)" }
            input id="name" name="name" type="text" value=(view.name) autocomplete="name" maxlength="100";
            label for="email" { "Email" }
            input id="email" name="email" type="email" value=(view.email) autocomplete="email" required autofocus;
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="new-password" required
                aria-describedby="password-rules";
            (password_rules(org))
            button type="submit" { "Create account" }
        }
        p.muted.links { "Already have an account? " a href=(sign_in_href(org, view.req)) { "Sign in" } }
    };
    Page::new(&org.name, "Create your account", body)
}

pub fn signup_sent(org: &Organization, email: &str) -> Page {
    let body = html! {
        p {
            "We sent a message to " strong { (email) }
            ". Open the link in it within 30 minutes to finish creating your account."
        }
        p.muted {
            "No message? Check your spam folder, or "
            a href={ "/o/" (org.slug) "/verify-email/resend" } { "send the link again" } "."
        }
    };
    Page::new(&org.name, "Check your email", body)
}

pub fn link_expired(org: &Organization) -> Page {
    let body = html! {
        p { "This link has expired or was already used." }
        p {
            a href={ "/o/" (org.slug) "/verify-email/resend" } { "Send a new link" }
            " or "
            a href={ "/o/" (org.slug) "/account" } { "sign in" }
            " if you already confirmed your address."
        }
    };
    Page::new(&org.name, "Link expired", body)
}

pub fn confirm_email(org: &Organization, csrf: &str, token: &str, email: &str) -> Page {
    let body = html! {
        p { "Confirm that " strong { (email) } " is your email address." }
        form method="post" action={ "/o/" (org.slug) "/verify-email" } {
            (hidden("csrf", csrf))
            (hidden("token", token))
            button type="submit" { "Confirm my email address" }
        }
        p.muted { "If you did not create an account, do not confirm: close this page and nothing happens." }
    };
    Page::new(&org.name, "Confirm your email", body)
}

pub fn email_confirmed(email: &str, org: &Organization, next: &str) -> Page {
    let body = html! {
        p { "Thank you. " strong { (email) } " is confirmed." }
        p { a.button href=(next) { "Continue to sign in" } }
    };
    Page::new(&org.name, "Email confirmed", body)
}

/// A form asking for an email address: resending the link, or forgetting the password.
pub struct EmailView<'a> {
    pub email: &'a str,
    pub req: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn resend(org: &Organization, csrf: &str, view: EmailView<'_>) -> Page {
    let body = html! {
        (error_banner(view.error))
        p { "Enter your email address and we will send you a new link to confirm it." }
        form method="post" action={ "/o/" (org.slug) "/verify-email/resend" } {
            (hidden("csrf", csrf))
            @if let Some(req) = view.req { (hidden("req", req)) }
            (input("Email", "email", "email", view.email, "email"))
            button type="submit" { "Send link" }
        }
    };
    Page::new(&org.name, "Confirm your email", body)
}

pub fn resend_sent(org: &Organization, email: &str) -> Page {
    let body = html! {
        p {
            "If " strong { (email) }
            " belongs to an account waiting for confirmation, we sent it a new link. It works for 30 minutes."
        }
    };
    Page::new(&org.name, "Check your email", body)
}

pub fn forgot(org: &Organization, csrf: &str, view: EmailView<'_>) -> Page {
    let body = html! {
        (error_banner(view.error))
        p { "Enter the email address of your account. We will send you a code and a link to choose a new password." }
        form method="post" action={ "/o/" (org.slug) "/forgot-password" } {
            (hidden("csrf", csrf))
            @if let Some(req) = view.req { (hidden("req", req)) }
            (input("Email", "email", "email", view.email, "email"))
            button type="submit" { "Send code" }
        }
        p.muted.links { a href=(sign_in_href(org, view.req)) { "Back to sign in" } }
    };
    Page::new(&org.name, "Reset your password", body)
}

pub struct ResetView<'a> {
    pub session: &'a str,
    pub code: &'a str,
    pub req: Option<&'a str>,
    pub error: Option<&'a str>,
}

pub fn reset(org: &Organization, csrf: &str, view: ResetView<'_>) -> Page {
    let body = html! {
        (error_banner(view.error))
        p { "Enter the 6-digit code from the email we sent you and choose a new password." }
        form method="post" action={ "/o/" (org.slug) "/reset-password" } {
            (hidden("csrf", csrf))
            (hidden("session", view.session))
            @if let Some(req) = view.req { (hidden("req", req)) }
            label for="code" { "Code" }
            input id="code" name="code" type="text" value=(view.code) inputmode="numeric"
                autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus;
            label for="password" { "New password" }
            input id="password" name="password" type="password" autocomplete="new-password" required
                aria-describedby="password-rules";
            (password_rules(org))
            button type="submit" { "Set new password" }
        }
    };
    Page::new(&org.name, "Choose a new password", body)
}

/// A reset that cannot go on (expired, used or locked), with the way to start again.
pub fn reset_closed(org: &Organization, message: &str) -> Page {
    let body = html! {
        p { (message) }
        p { a href={ "/o/" (org.slug) "/forgot-password" } { "Request a new code" } }
    };
    Page::new(&org.name, "Reset your password", body)
}

pub fn password_changed(org: &Organization, req: Option<&str>) -> Page {
    let body = html! {
        p { "Your password is changed, and every device that was signed in has been signed out." }
        p { a.button href=(sign_in_href(org, req)) { "Sign in" } }
    };
    Page::new(&org.name, "Password changed", body)
}
