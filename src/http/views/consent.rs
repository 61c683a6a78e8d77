//! The consent page: what an application asks to do, to allow or deny.

use maud::html;

use crate::http::pages::{Page, hidden};
use crate::model::orgs::Organization;

fn scope_description(scope: &str) -> &'static str {
    match scope {
        "openid" => "Know who you are",
        "profile" => "See your name",
        "email" => "See your email address",
        "offline_access" => "Stay signed in to it when you are away",
        crate::oauth::scopes::SESSIONS => "See where you are signed in and sign you out there",
        _ => "Other access",
    }
}

pub fn consent(
    org: &Organization,
    app_name: &str,
    scopes: &[String],
    email: &str,
    req_id: &str,
    csrf: &str,
) -> Page {
    let body = html! {
        p { strong { (app_name) } " wants to:" }
        ul.scopes {
            @for scope in scopes {
                li { (scope_description(scope)) }
            }
        }
        p.muted { "Signed in as " (email) "." }
        form method="post" action={ "/o/" (org.slug) "/consent" } {
            (hidden("req", req_id))
            (hidden("csrf", csrf))
            button type="submit" name="decision" value="allow" { "Allow" }
            button.secondary type="submit" name="decision" value="deny" { "Deny" }
        }
    };
    Page::new(&org.name, "Allow access?", body)
}
