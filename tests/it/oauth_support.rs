//! Shared fixtures for the OAuth 2.0 / OpenID Connect tests: organizations, users and applications made
//! through the domain API, a cookie-managing "browser" over plain HTTP (redirects not followed), the
//! sign-in/consent walk, token-endpoint helpers and JWT helpers (decoding, minting with the org's real key).

#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey::apps::{ClientType, GrantType, NewApplication};
use latchkey::audit::Actor;
use latchkey::orgs::{NewOrganization, Organization};
use latchkey::users::{NewUser, User};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::TestApp;

pub const PASSWORD: &str = "correct horse battery staple";
pub const REDIRECT_URI: &str = "https://rp.example.com/callback";
pub const LOGOUT_URI: &str = "https://rp.example.com/signed-out";
pub const SPA_ORIGIN: &str = "https://spa.example.com";

/// A registered client as a test sees it.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

/// An organization with one user.
pub struct Fixture {
    pub org: Organization,
    pub user: User,
    pub email: String,
}

impl Fixture {
    pub fn issuer(&self, app: &TestApp) -> String {
        format!("{}/o/{}", app.base, self.org.slug)
    }

    pub fn path(&self, rest: &str) -> String {
        format!("/o/{}{rest}", self.org.slug)
    }
}

/// A fresh organization (random slug) with one verified user whose password is [`PASSWORD`].
pub async fn fixture(app: &TestApp) -> Fixture {
    fixture_with(&app.services).await
}

/// [`fixture`] made through `services` (for instance opened with another configuration than the server's).
pub async fn fixture_with(services: &latchkey::app::App) -> Fixture {
    let slug = format!("org-{}", crate::helpers::random_hex(4));
    let org = latchkey::orgs::create(
        services,
        &Actor::operator(),
        NewOrganization {
            slug: &slug,
            name: "Acme Test",
        },
    )
    .await
    .expect("create org");
    let email = format!("alice-{}@example.com", crate::helpers::random_hex(3));
    let user = latchkey::users::create(
        services,
        &Actor::operator(),
        &org,
        NewUser {
            email: &email,
            password: Some(PASSWORD),
            name: Some("Alice Example"),
            verified: true,
            role: None,
        },
    )
    .await
    .expect("create user");
    Fixture { org, user, email }
}

/// A default application registration: code + refresh, redirect [`REDIRECT_URI`], logout [`LOGOUT_URI`].
pub fn new_app(client_type: ClientType) -> NewApplication {
    NewApplication {
        name: "Relying Party".into(),
        client_type,
        redirect_uris: vec![REDIRECT_URI.into()],
        post_logout_redirect_uris: vec![LOGOUT_URI.into()],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        cors_origins: vec![],
        first_party: false,
        signing_alg: None,
        require_offline_access: false,
        insecure_allow_no_pkce: false,
    }
}

pub async fn register(app: &TestApp, fx: &Fixture, input: NewApplication) -> Client {
    let created = latchkey::apps::create(&app.services, &Actor::operator(), &fx.org, input)
        .await
        .expect("create application");
    Client {
        client_id: created.app.client_id.to_string(),
        secret: created.client_secret.clone(),
        redirect_uri: created
            .app
            .redirect_uris
            .first()
            .cloned()
            .unwrap_or_default(),
    }
}

pub async fn confidential_client(app: &TestApp, fx: &Fixture) -> Client {
    register(app, fx, new_app(ClientType::Confidential)).await
}

/// A confidential application of the organization itself: no consent screen, and it may obtain
/// first-party scopes such as [`SESSIONS_SCOPE`]'s.
pub async fn first_party_client(app: &TestApp, fx: &Fixture) -> Client {
    let mut input = new_app(ClientType::Confidential);
    input.first_party = true;
    register(app, fx, input).await
}

/// What a token for the sessions API (`{issuer}/api/me/sessions`) asks for.
pub const SESSIONS_SCOPE: &str = "openid latchkey:sessions";

// ---------------------------------------------------------------------------------------------------------
// PKCE

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = URL_SAFE_NO_PAD.encode(latchkey::crypto::random_bytes(32));
    let challenge = latchkey::oauth::s256(&verifier);
    Pkce {
        verifier,
        challenge,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The browser

/// One answer, fully read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Absolute (relative locations are resolved against the server base).
    pub location: Option<String>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.body))
    }
}

/// A cookie jar over the test server's redirect-less client.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookies: BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            cookies: BTreeMap::new(),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            self.app.url(url)
        } else {
            url.to_string()
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Answer {
        for value in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let text = value.to_str().expect("ASCII Set-Cookie");
            let first = text.split(';').next().unwrap_or_default();
            let (name, val) = first.split_once('=').expect("cookie name=value");
            let deleted = val.is_empty()
                || text
                    .split(';')
                    .any(|attr| attr.trim().eq_ignore_ascii_case("Max-Age=0"));
            if deleted {
                self.cookies.remove(name.trim());
            } else {
                self.cookies
                    .insert(name.trim().to_string(), val.trim().to_string());
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let location = headers
            .get(reqwest::header::LOCATION)
            .map(|v| self.absolute(v.to_str().expect("ASCII Location")));
        let body = resp.text().await.expect("body");
        Answer {
            status,
            headers,
            location,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let mut req = self.app.http.get(self.absolute(url));
        if !self.cookies.is_empty() {
            req = req.header(reqwest::header::COOKIE, self.cookie_header());
        }
        let resp = req.send().await.expect("GET");
        self.finish(resp).await
    }

    /// A same-origin form post, as the hosted pages' forms make.
    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Answer {
        let mut req = self
            .app
            .http
            .post(self.absolute(url))
            .header(reqwest::header::ORIGIN, self.app.base.clone())
            .form(form);
        if !self.cookies.is_empty() {
            req = req.header(reqwest::header::COOKIE, self.cookie_header());
        }
        let resp = req.send().await.expect("POST");
        self.finish(resp).await
    }
}

/// A browser signed in as `fx.user` through the sign-in form (no authorization request).
pub async fn signed_in<'a>(app: &'a TestApp, fx: &Fixture) -> Browser<'a> {
    let mut b = Browser::new(app);
    let page = b.get(&fx.path("/login")).await;
    let csrf = hidden_field(&page.body, "csrf");
    let answer = b
        .post_form(
            &fx.path("/login"),
            &[
                ("csrf", &csrf),
                ("email", &fx.email),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        answer.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        answer.body
    );
    b
}

/// The value of `<input ... name="NAME" value="...">` in a hosted page.
pub fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page: {html}"))
        + marker.len();
    let end = html[start..].find('"').expect("closing quote") + start;
    html[start..end].to_string()
}

/// What happened on the way back to the client.
#[derive(Debug)]
pub struct Walk {
    /// The redirect to the client (absolute URL, not on the server).
    pub redirect: String,
    pub saw_login: bool,
    pub saw_consent: bool,
}

impl Walk {
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(&self.redirect, name)
    }

    pub fn code(&self) -> String {
        self.param("code")
            .unwrap_or_else(|| panic!("no code in redirect {}", self.redirect))
    }
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url).expect("absolute URL");
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Follows the server's redirects from `start` like a browser, signing in with `login` when the login
/// page shows and answering the consent page with `decision`, until a redirect leaves the server.
pub async fn walk(
    browser: &mut Browser<'_>,
    start: &str,
    login: Option<(&str, &str)>,
    decision: &str,
) -> Walk {
    let base = browser.app.base.clone();
    let mut answer = browser.get(start).await;
    let mut saw_login = false;
    let mut saw_consent = false;
    for _ in 0..12 {
        let Some(location) = answer.location.clone() else {
            panic!(
                "expected a redirect, got {} with body {}",
                answer.status, answer.body
            );
        };
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "redirects are 303");
        if !location.starts_with(&base) {
            return Walk {
                redirect: location,
                saw_login,
                saw_consent,
            };
        }
        let action = location.split('?').next().unwrap().to_string();
        if action.ends_with("/login") {
            saw_login = true;
            let page = browser.get(&location).await;
            assert_eq!(page.status, StatusCode::OK, "login page: {}", page.body);
            let csrf = hidden_field(&page.body, "csrf");
            let req = hidden_field(&page.body, "req");
            let (email, password) =
                login.expect("the login page showed but no credentials were given");
            answer = browser
                .post_form(
                    &action,
                    &[
                        ("req", &req),
                        ("csrf", &csrf),
                        ("email", email),
                        ("password", password),
                    ],
                )
                .await;
        } else if action.ends_with("/consent") {
            saw_consent = true;
            let page = browser.get(&location).await;
            assert_eq!(page.status, StatusCode::OK, "consent page: {}", page.body);
            let csrf = hidden_field(&page.body, "csrf");
            let req = hidden_field(&page.body, "req");
            answer = browser
                .post_form(
                    &action,
                    &[("req", &req), ("csrf", &csrf), ("decision", decision)],
                )
                .await;
        } else {
            answer = browser.get(&location).await;
        }
    }
    panic!("too many redirects");
}

/// `/o/{slug}/authorize?...` with the usual parameters plus `extra` (which override by being appended).
pub fn authorize_path(
    fx: &Fixture,
    client: &Client,
    scope: &str,
    pkce: Option<&Pkce>,
    extra: &[(&str, &str)],
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("response_type", "code");
    query.append_pair("client_id", &client.client_id);
    query.append_pair("redirect_uri", &client.redirect_uri);
    query.append_pair("scope", scope);
    query.append_pair("state", "st-123");
    query.append_pair("nonce", "n-456");
    if let Some(p) = pkce {
        query.append_pair("code_challenge", &p.challenge);
        query.append_pair("code_challenge_method", "S256");
    }
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    format!("/o/{}/authorize?{}", fx.org.slug, query.finish())
}

pub const SCOPE: &str = "openid email profile offline_access";

/// Signs `fx.user` in through the hosted pages (allowing consent if asked) and returns the code.
pub async fn sign_in_and_get_code(
    app: &TestApp,
    fx: &Fixture,
    client: &Client,
    pkce: &Pkce,
) -> String {
    let mut browser = Browser::new(app);
    let walk = walk(
        &mut browser,
        &authorize_path(fx, client, SCOPE, Some(pkce), &[]),
        Some((&fx.email, PASSWORD)),
        "allow",
    )
    .await;
    assert_eq!(walk.param("state").as_deref(), Some("st-123"));
    walk.code()
}

// ---------------------------------------------------------------------------------------------------------
// Endpoints

pub fn basic(client_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")))
}

/// POSTs a form to `path`, authenticating as `client` (Basic for confidential, client_id for public).
pub async fn post_as(
    app: &TestApp,
    path: &str,
    client: &Client,
    form: &[(&str, &str)],
    extra_headers: &[(&str, &str)],
) -> Answer {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut req = app.http.post(app.url(path));
    match &client.secret {
        Some(secret) => req = req.header("authorization", basic(&client.client_id, secret)),
        None => fields.push(("client_id", &client.client_id)),
    }
    for (k, v) in extra_headers {
        req = req.header(*k, *v);
    }
    let resp = req.form(&fields).send().await.expect("POST");
    Browser::new(app).finish(resp).await
}

pub async fn token(app: &TestApp, fx: &Fixture, client: &Client, form: &[(&str, &str)]) -> Answer {
    post_as(app, &fx.path("/token"), client, form, &[]).await
}

pub async fn redeem(
    app: &TestApp,
    fx: &Fixture,
    client: &Client,
    code: &str,
    verifier: &str,
) -> Answer {
    token(
        app,
        fx,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

pub async fn refresh(app: &TestApp, fx: &Fixture, client: &Client, refresh_token: &str) -> Answer {
    token(
        app,
        fx,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A full code flow; returns the token response JSON (asserted 200).
pub async fn tokens(app: &TestApp, fx: &Fixture, client: &Client) -> Value {
    let p = pkce();
    let code = sign_in_and_get_code(app, fx, client, &p).await;
    let answer = redeem(app, fx, client, &code, &p.verifier).await;
    assert_eq!(answer.status, StatusCode::OK, "token: {}", answer.body);
    answer.json()
}

/// Introspects `token` as `client` (which must be confidential); returns the JSON (asserted 200).
pub async fn introspect(app: &TestApp, fx: &Fixture, client: &Client, token: &str) -> Value {
    let answer = post_as(
        app,
        &fx.path("/introspect"),
        client,
        &[("token", token)],
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "introspect: {}", answer.body);
    answer.json()
}

pub async fn userinfo(app: &TestApp, fx: &Fixture, access_token: &str) -> Answer {
    let resp = app
        .http
        .get(app.url(&fx.path("/userinfo")))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("GET userinfo");
    Browser::new(app).finish(resp).await
}

pub async fn jwks(app: &TestApp, fx: &Fixture) -> Value {
    let answer = Browser::new(app).get(&fx.path("/jwks")).await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.json()
}

pub fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .expect("keys array")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

/// Audit actions recorded for the organization, oldest first.
pub async fn audit_actions(app: &TestApp, fx: &Fixture) -> Vec<String> {
    app.services
        .db
        .tenant(&fx.org.id)
        .audit_events(0, 100_000)
        .await
        .expect("audit events")
        .into_iter()
        .map(|e| e.action)
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// JWTs

/// (header, payload) of a compact JWS, without checking anything.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut decode = |what: &str| -> Value {
        let part = parts.next().unwrap_or_else(|| panic!("JWT without {what}"));
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON")
    };
    let header = decode("header");
    let payload = decode("payload");
    (header, payload)
}

pub fn b64json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs `payload` with the organization's real active key for `alg` (read from the database and opened
/// with the master key), under header `typ` and `kid` (the real kid unless overridden).
pub async fn mint(
    app: &TestApp,
    fx: &Fixture,
    alg: &str,
    typ: &str,
    kid: Option<&str>,
    payload: &Value,
) -> String {
    let records = app
        .services
        .db
        .tenant(&fx.org.id)
        .signing_keys()
        .await
        .expect("signing keys");
    let record = records
        .iter()
        .find(|k| k.alg == alg && k.state == latchkey::keys::KeyState::Active)
        .expect("an active key");
    let der = app
        .services
        .secrets
        .open(&record.kid, &record.private_key_sealed)
        .expect("open the private key");
    let signer = match alg {
        "RS256" => josekit::jws::RS256.signer_from_der(&der).expect("signer"),
        other => panic!("mint: {other} not supported here"),
    };
    let mut header = josekit::jws::JwsHeader::new();
    header.set_token_type(typ);
    header.set_key_id(kid.unwrap_or(&record.kid));
    let claims = payload.as_object().expect("object").clone();
    let payload = josekit::jwt::JwtPayload::from_map(claims).expect("payload");
    josekit::jwt::encode_with_signer(&payload, &header, &signer).expect("sign")
}

/// DER length.
fn der_len(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(der_len(content.len()));
    out.extend_from_slice(content);
    out
}

fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut content = Vec::new();
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(trimmed);
    der(0x02, &content)
}

/// The PEM (SubjectPublicKeyInfo) of an RSA JWK: what a key-confusion attacker would use as HMAC key.
pub fn rsa_public_pem(jwk: &Value) -> String {
    let n = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("n base64url");
    let e = URL_SAFE_NO_PAD
        .decode(jwk["e"].as_str().expect("e"))
        .expect("e base64url");
    let rsa_public_key = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    // rsaEncryption OID 1.2.840.113549.1.1.1, NULL parameters.
    let algorithm = der(
        0x30,
        &[
            vec![
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
            ],
            vec![0x05, 0x00],
        ]
        .concat(),
    );
    let mut bit_string = vec![0u8];
    bit_string.extend(rsa_public_key);
    let spki = der(0x30, &[algorithm, der(0x03, &bit_string)].concat());
    let b64 = STANDARD.encode(spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// A compact JWS with `header` and `payload`, HMAC-SHA256-signed with `key`.
pub fn hs256(header: &Value, payload: &Value, key: &[u8]) -> String {
    use hmac::Mac;
    let signing_input = format!("{}.{}", b64json(header), b64json(payload));
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Rewrites an organization's settings in the database. Call it before the first request for the
/// organization: the server caches organizations for a few seconds.
pub async fn set_org_settings(
    app: &TestApp,
    org: &Organization,
    change: impl FnOnce(&mut latchkey::orgs::OrgSettings),
) {
    let mut settings = org.settings.clone();
    change(&mut settings);
    let json = serde_json::to_string(&settings)
        .unwrap()
        .replace('\'', "''");
    let done = app
        .db
        .exec(&format!(
            "UPDATE organizations SET settings = '{json}' WHERE id = '{}'",
            org.id
        ))
        .await
        .expect("update settings");
    assert_eq!(done, 1);
}
