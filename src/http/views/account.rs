//! The signed-in account page: profile, password, second factors, active sessions, sign-out.

use maud::html;

use crate::accounts;
use crate::http::pages::{Page, error_banner, hidden};
use crate::model::orgs::Organization;
use crate::model::sessions::Session;
use crate::model::users::User;

pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| {
            format!(
                "{}-{:02}-{:02} {:02}:{:02} UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_else(|_| unix.to_string())
}

#[derive(Default)]
pub struct Notes<'a> {
    pub notice: Option<&'a str>,
    pub profile_error: Option<&'a str>,
    pub password_error: Option<&'a str>,
    pub name_value: Option<&'a str>,
}

pub fn account(
    org: &Organization,
    user: &User,
    current: &Session,
    list: &[Session],
    factors: super::mfa::FactorsView<'_>,
    csrf: &str,
    notes: Notes<'_>,
) -> Page {
    let slug = &org.slug;
    let name_value = notes
        .name_value
        .unwrap_or(user.name.as_deref().unwrap_or_default());
    let body = html! {
        @if let Some(notice) = notes.notice {
            p.notice role="status" { (notice) }
        }
        section aria-labelledby="profile-h" {
            h2 id="profile-h" { "Profile" }
            (error_banner(notes.profile_error))
            p.muted {
                (user.email) " · "
                @if user.email_verified { "confirmed" } @else { "not confirmed" }
            }
            form method="post" action={ "/o/" (slug) "/account/profile" } {
                (hidden("csrf", csrf))
                label for="name" { "Name" }
                input id="name" name="name" type="text" value=(name_value) autocomplete="name" maxlength="100";
                button type="submit" { "Save profile" }
            }
        }
        section aria-labelledby="password-h" {
            h2 id="password-h" { "Password" }
            (error_banner(notes.password_error))
            form method="post" action={ "/o/" (slug) "/account/password" } {
                (hidden("csrf", csrf))
                label for="current_password" { "Current password" }
                input id="current_password" name="current_password" type="password"
                    autocomplete="current-password" required;
                label for="new_password" { "New password" }
                input id="new_password" name="new_password" type="password" autocomplete="new-password"
                    required aria-describedby="password-rules";
                p.muted id="password-rules" {
                    (accounts::describe_password_rules(org)) " Other devices will be signed out."
                }
                button type="submit" { "Change password" }
            }
        }
        (super::mfa::account_section(org, user, factors, csrf))
        section aria-labelledby="sessions-h" {
            h2 id="sessions-h" { "Active sessions" }
            ul.sessions {
                @for s in list {
                    li.session {
                        div {
                            strong { (s.user_agent.as_deref().unwrap_or("Unknown browser")) }
                            br;
                            span.muted {
                                (s.ip.as_deref().unwrap_or("unknown address"))
                                " · signed in " (format_time(s.created_at))
                                " · last seen " (format_time(s.last_seen_at))
                            }
                        }
                        @if s.public_id == current.public_id {
                            span.badge { "This device" }
                        } @else {
                            form.inline method="post" action={ "/o/" (slug) "/account/sessions/revoke" } {
                                (hidden("csrf", csrf))
                                (hidden("session", &s.public_id))
                                button.secondary.small type="submit" { "Sign out" }
                            }
                        }
                    }
                }
            }
            @if list.len() > 1 {
                form method="post" action={ "/o/" (slug) "/account/sessions/revoke-others" } {
                    (hidden("csrf", csrf))
                    button.secondary type="submit" { "Sign out all other sessions" }
                }
            }
        }
        form method="post" action={ "/o/" (slug) "/account/signout" } {
            (hidden("csrf", csrf))
            button.secondary type="submit" { "Sign out" }
        }
    };
    Page::new(&org.name, "Your account", body)
}

pub fn signed_out(org: &Organization) -> Page {
    let body = html! {
        p { "You are signed out." }
        p { a href={ "/o/" (org.slug) "/account" } { "Sign in again" } }
    };
    Page::new(&org.name, "Signed out", body)
}
