//! The sign-in page.

use maud::{Markup, html};

use crate::http::pages::{Page, error_banner, hidden};
use crate::model::orgs::Organization;

/// Where a sign-in continues: a pending authorization request, or a page of ours (the account page).
pub enum After {
    Request(String),
    Page(Option<String>),
}

impl After {
    pub fn hidden_field(&self) -> Markup {
        match self {
            After::Request(id) => hidden("req", id),
            After::Page(Some(to)) => hidden("return_to", to),
            After::Page(None) => html! {},
        }
    }

    pub fn req(&self) -> Option<&str> {
        match self {
            After::Request(id) => Some(id),
            After::Page(_) => None,
        }
    }
}

pub fn login(
    org: &Organization,
    after: &After,
    csrf: &str,
    email: &str,
    error: Option<&str>,
    targets: Vec<String>,
    passkeys: bool,
) -> Page {
    let req_query = after
        .req()
        .map(|r| {
            format!(
                "?req={}",
                url::form_urlencoded::byte_serialize(r.as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    let body = html! {
        (error_banner(error))
        form method="post" action={ "/o/" (org.slug) "/login" } {
            (after.hidden_field())
            (hidden("csrf", csrf))
            label for="email" { "Email" }
            input id="email" name="email" type="email" autocomplete="username" required autofocus value=(email);
            label for="password" { "Password" }
            input id="password" name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        @if passkeys {
            (super::mfa::sign_in_form(org, csrf, after.hidden_field()))
        }
        p.muted.links {
            a href={ "/o/" (org.slug) "/forgot-password" (req_query) } { "Forgot your password?" }
            @if org.settings.self_registration {
                " · "
                a href={ "/o/" (org.slug) "/signup" (req_query) } { "Create an account" }
            }
        }
    };
    let mut page = Page::new(&org.name, "Sign in", body);
    page.form_targets = targets;
    page
}

/// The sign-in page's note for an address not confirmed yet, with the link to send it again.
pub fn with_resend_link(mut page: Page, resend: &str) -> Page {
    page.body = html! {
        (page.body)
        p.muted { a href=(resend) { "Send the link again" } }
    };
    page
}
