//! Server-rendered hosted pages (sign-in, consent, sign-out, errors) and the browser-facing helpers they
//! need: cookies, CSRF and Origin checks, and page security headers. Pages are `maud` templates, which
//! escape every interpolated value unless it is explicitly marked pre-escaped; there is no inline script
//! or style.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use maud::{Markup, html};

use crate::config::Config;

pub const CSS_PATH: &str = "/static/latchkey.css";
pub const CSS: &str = include_str!("../../static/latchkey.css");
pub const WEBAUTHN_JS_PATH: &str = "/static/webauthn.js";
pub const WEBAUTHN_JS: &str = include_str!("../../static/webauthn.js");

/// A rendered page. `form_targets` are extra origins a form on it may end up at (the client's redirect
/// URI after a POST-redirect), for the CSP `form-action` directive.
pub struct Page {
    pub status: StatusCode,
    pub org_name: String,
    pub title: String,
    pub body: Markup,
    pub form_targets: Vec<String>,
    pub cookies: Vec<String>,
}

impl Page {
    pub fn new(org_name: &str, title: &str, body: Markup) -> Self {
        Self {
            status: StatusCode::OK,
            org_name: org_name.to_string(),
            title: title.to_string(),
            body,
            form_targets: Vec::new(),
            cookies: Vec::new(),
        }
    }

    pub fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn error(org_name: &str, status: StatusCode, message: &str) -> Self {
        let body = super::views::layout::error(message);
        Self::new(org_name, "Something went wrong", body).status(status)
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html =
            super::views::layout::document(&self.org_name, &self.title, &self.body).into_string();
        let mut csp = String::from(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; \
             base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        );
        for target in &self.form_targets {
            csp.push(' ');
            csp.push_str(target);
        }
        let mut response = (self.status, html).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Ok(v) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        for cookie in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, v);
            }
        }
        response
    }
}

/// A 303 to `location` with optional cookies.
pub fn see_other(location: &str, cookies: Vec<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The CSP source for wherever `uri` points: its origin, or its scheme for custom-scheme (native) URIs.
pub fn csp_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "http" | "https" => Some(url.origin().ascii_serialization()),
        scheme => Some(format!("{scheme}:")),
    }
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Cookie names: `__Host-` over HTTPS, which pins the cookie to this host, path `/` and Secure.
pub fn session_cookie_name(config: &Config, slug: &str) -> String {
    if config.is_https() {
        format!("__Host-latchkey-{slug}")
    } else {
        format!("latchkey-{slug}")
    }
}

pub fn csrf_cookie_name(config: &Config) -> &'static str {
    if config.is_https() {
        "__Host-latchkey-csrf"
    } else {
        "latchkey-csrf"
    }
}

pub fn set_cookie(
    config: &Config,
    name: &str,
    value: &str,
    max_age: Option<i64>,
    same_site: &str,
) -> String {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if config.is_https() {
        cookie.push_str("; Secure");
    }
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    cookie
}

/// The session cookie for a new session `token` of `org`, living as long as the session may.
pub fn session_cookie(
    config: &Config,
    org: &crate::model::orgs::Organization,
    token: &str,
) -> String {
    set_cookie(
        config,
        &session_cookie_name(config, &org.slug),
        token,
        Some(org.settings.session_absolute_lifetime_secs as i64),
        "Lax",
    )
}

pub fn clear_cookie(config: &Config, name: &str) -> String {
    set_cookie(config, name, "", Some(0), "Lax")
}

/// State-changing form posts must come from our own pages: the Origin must be the public URL's origin.
///
/// Hosted pages send `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` (and no
/// Referer) on our own form posts. For those the browser's Fetch Metadata decides: `Sec-Fetch-Site:
/// same-origin` is set by the browser itself and cannot be forged by a page, while a cross-site post (a
/// sandboxed frame's `null` origin included) says `cross-site`. Without either header, a Referer of ours
/// is the last resort (older browsers); anything else is refused. The CSRF token is checked as well.
pub fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    let ours = config.public_url.origin().ascii_serialization();
    let header = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    match header(header::ORIGIN) {
        Some(origin) if origin == ours => return true,
        Some(origin) if origin != "null" => return false,
        _ => {}
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    header(header::REFERER)
        .and_then(|r| url::Url::parse(r).ok())
        .is_some_and(|r| r.origin().ascii_serialization() == ours)
}

/// Double-submit CSRF check: the form field must equal the CSRF cookie (compared in constant time).
pub fn csrf_ok(config: &Config, headers: &HeaderMap, form_token: &str) -> bool {
    match cookie_value(headers, csrf_cookie_name(config)) {
        Some(cookie) if !cookie.is_empty() => {
            crate::crypto::constant_time_eq(cookie.as_bytes(), form_token.as_bytes())
        }
        _ => false,
    }
}

/// The CSRF token for a form: the existing cookie's, or a new one to set.
pub fn csrf_token(config: &Config, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie_value(headers, csrf_cookie_name(config)).filter(|v| v.len() >= 32) {
        Some(existing) => (existing, None),
        None => {
            let token = crate::crypto::random_token();
            let cookie = set_cookie(config, csrf_cookie_name(config), &token, None, "Strict");
            (token, Some(cookie))
        }
    }
}

/// A page whose forms carry this browser's CSRF token: `build` gets the token, and the page sets the
/// cookie when the token is new.
pub fn with_csrf(config: &Config, headers: &HeaderMap, build: impl FnOnce(&str) -> Page) -> Page {
    let (csrf, cookie) = csrf_token(config, headers);
    let mut page = build(&csrf);
    page.cookies.extend(cookie);
    page
}

/// The CSRF token for forms of a signed-in page: derived from the session secret with the token key, so
/// it is per session, needs no storage, and dies with the session.
pub fn session_csrf(secrets: &crate::crypto::SecretBox, session_token: &str) -> String {
    hex::encode(&secrets.token_hash(&format!("csrf:{session_token}"))[..16])
}

pub fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// The error banner at the top of a form, announced to screen readers.
pub fn error_banner(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            p.error role="alert" { (message) }
        }
    }
}

/// A `return_to` target is followed only if it is a path on our own hosted pages of this organization:
/// never another site (`//evil`, `https://…`, `/\evil`) nor another organization's pages, so these pages
/// cannot be used as open redirects. The path is percent-decoded until stable (`%2e%2e`, `..%2f`,
/// `%252e` …) and refused on any doubt (dot segments, backslashes, `//`, control characters, malformed
/// escapes) rather than resolved, since browsers resolve dot segments after decoding; the prefix must hold
/// both as written and decoded.
pub fn safe_return_to(slug: &str, raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\' || c == '#')
    {
        return None;
    }
    let path = raw.split('?').next().unwrap_or_default();
    let decoded = crate::uri::fully_decoded(path)?;
    let prefix = format!("/o/{slug}/");
    let ok = path.starts_with(&prefix)
        && decoded.starts_with(&prefix)
        && !decoded.contains("//")
        && !decoded
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '\\' | '?' | '#'))
        && !crate::uri::has_dot_segment(&decoded);
    ok.then(|| raw.to_string())
}

pub async fn stylesheet() -> Response {
    static_file(CSS, "text/css; charset=utf-8")
}

pub async fn webauthn_script() -> Response {
    static_file(WEBAUTHN_JS, "text/javascript; charset=utf-8")
}

/// The `<script>` element for pages with passkey forms (a file: no inline script under the CSP).
pub fn webauthn_script_tag() -> Markup {
    html! { script src=(WEBAUTHN_JS_PATH) defer {} }
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_escaped() {
        let page = Page::new(
            "<Org & Co>",
            "\"Title\"",
            html! { p { "<script>alert('x')</script>" } },
        );
        let response = page.into_response();
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            response.into_body(),
            usize::MAX,
        ))
        .expect("ready")
        .expect("body");
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("&lt;Org &amp; Co&gt;"));
        assert!(text.contains("&quot;Title&quot;"));
        assert!(text.contains("&lt;script&gt;"));
        assert!(!text.contains("<script>"));
    }

    #[test]
    fn return_to_stays_on_our_pages() {
        assert_eq!(
            safe_return_to("acme", Some("/o/acme/account")).as_deref(),
            Some("/o/acme/account")
        );
        for bad in [
            "https://evil.example/o/acme/account",
            "//evil.example/o/acme/",
            "/o/acme//evil.example",
            "/o/acme/\\evil.example",
            "/o/other/account",
            "/o/acme/../other/account",
            "/o/acme/account\nSet-Cookie:x",
            "javascript:alert(1)",
            "/o/acme/%2e%2e/beta/account",
            "/o/acme/%2E%2e/beta/account",
            "/o/acme/..%2fbeta/account",
            "/o/acme/%252e%252e/beta/account",
            "/o/acme/..",
            "/o/acme/./account",
            "/o/acme/%2f%2fevil.example",
            "/o/acme/%5c%5cevil.example",
            "/o/acme/%zz",
            "/o/acme/account#x",
        ] {
            assert_eq!(safe_return_to("acme", Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_return_to("acme", None), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; latchkey-acme=tok; latchkey-acme2=x"),
        );
        assert_eq!(
            cookie_value(&headers, "latchkey-acme").as_deref(),
            Some("tok")
        );
        assert_eq!(cookie_value(&headers, "missing"), None);
    }
}
