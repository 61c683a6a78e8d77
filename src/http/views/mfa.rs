//! Second-factor pages: the challenge, authenticator-app enrolment, recovery codes, passkeys, and the
//! account page's section on factors.

use maud::{Markup, PreEscaped, html};

use crate::http::pages::{self, Page, error_banner, hidden};
use crate::mfa::{self, Factors, Method, totp};
use crate::model::orgs::Organization;
use crate::model::users::User;

fn qr(svg: &str) -> Markup {
    // The renderer's XML prolog has no place inside HTML; the <svg> element itself is safe markup made
    // by the QR library from our own otpauth URL.
    let start = svg.find("<svg").unwrap_or(0);
    PreEscaped(svg[start..].to_string())
}

pub fn enrolment_body(
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

pub fn recovery_codes(org: &Organization, codes: &[String], continue_to: &str) -> Page {
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

fn method_label(method: Method) -> &'static str {
    match method {
        Method::Totp => "Authenticator app",
        Method::Email => "Email code",
        Method::Recovery => "Recovery code",
        Method::Passkey => "Passkey",
    }
}

pub fn challenge_body(
    org: &Organization,
    factors: &Factors,
    csrf: &str,
    sent: bool,
    error: Option<&str>,
) -> Markup {
    let action = format!("/o/{}/login/mfa", org.slug);
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

/// The challenge page after the password, or for step-up.
pub fn challenge(
    org: &Organization,
    factors: &Factors,
    csrf: &str,
    sent: bool,
    error: Option<&str>,
) -> Page {
    Page::new(
        &org.name,
        "Two-step verification",
        challenge_body(org, factors, csrf, sent, error),
    )
}

/// Enrolment inside a challenge: the organization requires a factor the user lacks.
pub fn challenge_enrolment(
    org: &Organization,
    enrolment: &totp::Enrolment,
    csrf: &str,
    error: Option<&str>,
) -> Page {
    let action = format!("/o/{}/login/mfa/enrol", org.slug);
    let body = html! {
        p { "Your account needs two-step verification. Set up an authenticator app to continue." }
        (enrolment_body(enrolment, &action, csrf, error))
    };
    Page::new(&org.name, "Set up two-step verification", body)
}

/// Enrolment from the account page.
pub fn totp_setup(
    org: &Organization,
    enrolment: &totp::Enrolment,
    csrf: &str,
    error: Option<&str>,
) -> Page {
    let action = format!("/o/{}/account/mfa/totp", org.slug);
    let body = enrolment_body(enrolment, &action, csrf, error);
    Page::new(&org.name, "Set up an authenticator app", body)
}

pub fn challenge_expired(org: &Organization) -> Page {
    let body = html! {
        p { "This sign-in has expired or was already completed." }
        p { a href={ "/o/" (org.slug) "/login" } { "Sign in again" } }
    };
    Page::new(&org.name, "Sign-in expired", body)
}

pub fn cannot_remove(org: &Organization) -> Page {
    let body = html! {
        p { (org.name) " requires two-step verification: set up another method before removing this one." }
        p { a href={ "/o/" (org.slug) "/account" } { "Back to your account" } }
    };
    Page::new(&org.name, "Cannot remove", body)
}

pub fn passkey_not_accepted(org: &Organization, retry: &str) -> Page {
    let body = html! {
        p { "That passkey could not sign you in here." }
        p { a href=(retry) { "Back to sign-in" } }
    };
    Page::new(&org.name, "Passkey not accepted", body)
}

pub fn passkey_setup(org: &Organization, csrf: &str) -> Page {
    let action = format!("/o/{}/account/passkeys", org.slug);
    let body = html! {
        p { "A passkey signs you in with your device's screen lock or a security key: no password, "
            "and nothing a phishing site can reuse." }
        form method="post" action=(action) data-webauthn="register" data-options={ (action) "/options" } {
            (hidden("csrf", csrf))
            (hidden("state", ""))
            (hidden("credential", ""))
            label for="passkey-name" { "Name" }
            input id="passkey-name" name="name" type="text" maxlength="60" value="My passkey" required;
            p.error role="alert" data-webauthn-error hidden {}
            button type="submit" { "Add passkey" }
        }
        p.muted { a href={ "/o/" (org.slug) "/account" } { "Back to your account" } }
        (pages::webauthn_script_tag())
    };
    Page::new(&org.name, "Add a passkey", body)
}

pub fn passkey_not_added(org: &Organization, message: &str) -> Page {
    let body = html! {
        p { (message) "." }
        p { a href={ "/o/" (org.slug) "/account/passkeys/new" } { "Try again" } }
    };
    Page::new(&org.name, "Passkey not added", body)
}
