//! The admin API over real HTTP, on both backends: the capability matrix of `docs/rbac.md` cell by cell
//! (Owner, Team Admin, Member, each through a real staff session cookie with CSRF), API keys (scopes,
//! never managing keys, another organization's key, revocation, expiry, rotation grace, query-string
//! refusal, attribution in the audit log), step-up, the last Owner, client-secret rotation with
//! overlap, invitations, setup links, and bad input answered with 4xx problems.

use latchkey::audit::Actor;
use latchkey::model::orgs::{Organization, Role};
use latchkey::model::sessions::{AMR_MFA, ClientInfo};
use latchkey::staff::{self, SetupInput, team};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::oauth_support::{PASSWORD, fixture};

const STAFF_PASSWORD: &str = "staff passphrase 4242";

/// A signed-in staff member: the session cookie of the staff organization and its CSRF token.
struct Staff {
    cookie: String,
    csrf: String,
    id: String,
}

/// A staff account with `role` in `org` (none when `role` is `None`), signed in with a second factor.
async fn staff(app: &TestApp, org: Option<(&Organization, Role)>, operator: bool) -> Staff {
    let email = format!("staff-{}@example.com", crate::helpers::random_hex(4));
    let input = SetupInput {
        email: &email,
        name: None,
        password: STAFF_PASSWORD,
    };
    let user = staff::create_account(&app.services, &Actor::system(), input, operator)
        .await
        .expect("staff account");
    if let Some((org, role)) = org {
        team::add(&app.services, &Actor::operator(), org, &user, role)
            .await
            .expect("membership");
    }
    let staff_org = staff::staff_org(&app.services).await.expect("staff org");
    let client = ClientInfo {
        ip: Some("127.0.0.1".into()),
        user_agent: Some("admin-api-test".into()),
    };
    let amr = vec!["pwd".to_string(), AMR_MFA.to_string()];
    let (_, token) = latchkey::sessions::service::start(
        &app.services,
        &staff_org,
        &user,
        amr,
        "urn:latchkey:acr:mfa",
        &client,
    )
    .await
    .expect("session");
    let cookie = format!("latchkey-{}={token}", staff_org.slug);
    let me: Value = app
        .http
        .get(app.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Staff {
        cookie,
        csrf: me["csrf_token"].as_str().expect("csrf token").to_string(),
        id: user.id.to_string(),
    }
}

/// What a caller presents.
enum As<'a> {
    Staff(&'a Staff),
    Key(&'a str),
}

async fn call(
    app: &TestApp,
    who: &As<'_>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, app.url(path));
    match who {
        As::Staff(s) => {
            request = request
                .header("cookie", &s.cookie)
                .header("x-csrf-token", &s.csrf)
                .header("origin", &app.base);
        }
        As::Key(key) => request = request.bearer_auth(key),
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("request");
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An API key of `org` with `scopes`, made by an Owner through the API.
async fn api_key(
    app: &TestApp,
    org: &Organization,
    owner: &Staff,
    scopes: &[&str],
) -> (String, String) {
    let (status, body) = call(
        app,
        &As::Staff(owner),
        Method::POST,
        &format!("/api/v1/orgs/{}/api-keys", org.slug),
        Some(json!({"name": "ci", "scopes": scopes})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("lk_admin_") && secret.len() == 9 + 43,
        "{secret}"
    );
    (body["id"].as_str().unwrap().to_string(), secret)
}

async fn new_user(app: &TestApp, org: &Organization) -> String {
    let email = format!("u-{}@example.com", crate::helpers::random_hex(4));
    latchkey::users::create(
        &app.services,
        &Actor::operator(),
        org,
        latchkey::users::NewUser {
            email: &email,
            password: Some(PASSWORD),
            name: None,
            verified: true,
            role: None,
        },
    )
    .await
    .unwrap()
    .id
    .to_string()
}

async fn new_app(app: &TestApp, org: &Organization) -> (String, String) {
    let input = crate::oauth_support::new_app(latchkey::model::apps::ClientType::Confidential);
    let created = latchkey::apps::create(&app.services, &Actor::operator(), org, input)
        .await
        .unwrap();
    (
        created.app.client_id.to_string(),
        created.client_secret.unwrap(),
    )
}

/// Every cell of the matrix: each role tries each capability, through HTTP with its staff session.
async fn capability_matrix(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let org = &fx.org;
    let o = &org.slug;
    let owner = staff(&app, Some((org, Role::Owner)), false).await;
    let admin = staff(&app, Some((org, Role::Admin)), false).await;
    let member = staff(&app, Some((org, Role::Member)), false).await;
    let roles = [
        ("owner", &owner),
        ("team_admin", &admin),
        ("member", &member),
    ];
    let allowed = |role: &str, who: &[&str]| who.contains(&role);
    let both = ["owner", "team_admin"];

    for (role, s) in roles {
        let who = As::Staff(s);
        let expect =
            |ok: bool, ok_status: StatusCode| if ok { ok_status } else { StatusCode::FORBIDDEN };
        let cell = |what: &str| format!("{role}: {what}");

        // View organization, applications (never secrets), users, sessions, settings.
        for path in [
            "",
            "/apps",
            "/users",
            "/settings",
            "/members",
            "/signing-keys",
            "/api-keys",
        ] {
            let (status, body) = call(
                &app,
                &who,
                Method::GET,
                &format!("/api/v1/orgs/{o}{path}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{} {body}", cell(path));
            assert!(
                !body.to_string().contains("secret_hash"),
                "{}",
                cell("no secrets")
            );
        }
        let user = new_user(&app, org).await;
        let (status, _) = call(
            &app,
            &who,
            Method::GET,
            &format!("/api/v1/orgs/{o}/users/{user}/sessions"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", cell("user sessions"));

        // Applications: create, rotate the secret, delete.
        let body = json!({"name": "App", "client_type": "confidential", "redirect_uris": ["https://rp.example.com/cb"]});
        let (status, created) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/apps"),
            Some(body),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::CREATED),
            "{} {created}",
            cell("create app")
        );
        let (client_id, _) = new_app(&app, org).await;
        let (status, _) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/apps/{client_id}/rotate-secret"),
            Some(json!({})),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("rotate secret")
        );
        let (status, _) = call(
            &app,
            &who,
            Method::DELETE,
            &format!("/api/v1/orgs/{o}/apps/{client_id}"),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::NO_CONTENT),
            "{}",
            cell("delete app")
        );

        // Users: create, disable, sign out, reset factors, delete.
        let email = format!("n-{}@example.com", crate::helpers::random_hex(4));
        let (status, _) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/users"),
            Some(json!({"email": email})),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::CREATED),
            "{}",
            cell("create user")
        );
        let path = format!("/api/v1/orgs/{o}/users/{user}");
        let (status, _) = call(
            &app,
            &who,
            Method::PATCH,
            &path,
            Some(json!({"disabled": true})),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("disable user")
        );
        let (status, _) = call(
            &app,
            &who,
            Method::DELETE,
            &format!("{path}/sessions"),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::NO_CONTENT),
            "{}",
            cell("sign user out")
        );
        let (status, _) = call(
            &app,
            &who,
            Method::POST,
            &format!("{path}/reset-factors"),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("reset factors")
        );
        let (status, _) = call(&app, &who, Method::DELETE, &path, None).await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::NO_CONTENT),
            "{}",
            cell("delete user")
        );

        // Settings and signing keys.
        let patch = json!({"settings": {"session_idle_timeout_secs": 900}});
        let (status, _) = call(
            &app,
            &who,
            Method::PATCH,
            &format!("/api/v1/orgs/{o}/settings"),
            Some(patch),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("settings")
        );
        let (status, _) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/signing-keys/rotate"),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("rotate signing keys")
        );

        // Team: Members (invite, promote to Team Admin, remove), then Owners and Team Admins.
        let invite = json!({"email": format!("m-{}@example.com", crate::helpers::random_hex(4)), "role": "member"});
        let (status, _) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/invitations"),
            Some(invite),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::CREATED),
            "{}",
            cell("invite member")
        );
        let target = staff(&app, Some((org, Role::Member)), false).await;
        let member_path = format!("/api/v1/orgs/{o}/members/{}", target.id);
        let (status, _) = call(
            &app,
            &who,
            Method::PATCH,
            &member_path,
            Some(json!({"role": "team_admin"})),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("member to team admin")
        );
        let (status, _) = call(
            &app,
            &who,
            Method::PATCH,
            &member_path,
            Some(json!({"role": "member"})),
        )
        .await;
        assert_eq!(
            status,
            expect(role == "owner", StatusCode::OK),
            "{}",
            cell("demote team admin (owners only)")
        );
        let invite = json!({"email": format!("o-{}@example.com", crate::helpers::random_hex(4)), "role": "owner"});
        let (status, _) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/invitations"),
            Some(invite),
        )
        .await;
        assert_eq!(
            status,
            expect(role == "owner", StatusCode::CREATED),
            "{}",
            cell("invite owner")
        );
        let removable = staff(&app, Some((org, Role::Member)), false).await;
        let (status, _) = call(
            &app,
            &who,
            Method::DELETE,
            &format!("/api/v1/orgs/{o}/members/{}", removable.id),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::NO_CONTENT),
            "{}",
            cell("remove member")
        );

        // API keys.
        let (status, body) = call(
            &app,
            &who,
            Method::POST,
            &format!("/api/v1/orgs/{o}/api-keys"),
            Some(json!({"name": "k", "scopes": ["org:read"]})),
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::CREATED),
            "{} {body}",
            cell("create API key")
        );
        if status == StatusCode::CREATED {
            let id = body["id"].as_str().unwrap();
            let (status, _) = call(
                &app,
                &who,
                Method::POST,
                &format!("/api/v1/orgs/{o}/api-keys/{id}/rotate"),
                Some(json!({})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{}", cell("rotate API key"));
            let (status, _) = call(
                &app,
                &who,
                Method::DELETE,
                &format!("/api/v1/orgs/{o}/api-keys/{id}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{}", cell("revoke API key"));
        }

        // Audit log.
        let (status, _) = call(
            &app,
            &who,
            Method::GET,
            &format!("/api/v1/orgs/{o}/audit-events"),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("read audit")
        );
        let (status, _) = call(
            &app,
            &who,
            Method::GET,
            &format!("/api/v1/orgs/{o}/audit-events/export"),
            None,
        )
        .await;
        assert_eq!(
            status,
            expect(allowed(role, &both), StatusCode::OK),
            "{}",
            cell("export audit")
        );
    }

    // A Team Admin cannot touch an Owner.
    let (status, _) = call(
        &app,
        &As::Staff(&admin),
        Method::PATCH,
        &format!("/api/v1/orgs/{o}/members/{}", owner.id),
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "team admin demoting an owner"
    );
    // Delete the organization: not a Member, not a Team Admin; the Owner can.
    for (role, s, expected) in [
        ("member", &member, StatusCode::FORBIDDEN),
        ("team_admin", &admin, StatusCode::FORBIDDEN),
        ("owner", &owner, StatusCode::NO_CONTENT),
    ] {
        let (status, body) = call(
            &app,
            &As::Staff(s),
            Method::DELETE,
            &format!("/api/v1/orgs/{o}"),
            None,
        )
        .await;
        assert_eq!(status, expected, "{role}: delete organization {body}");
    }
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::GET,
        &format!("/api/v1/orgs/{o}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted");
}

async fn last_owner_and_outsiders(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let path = format!("/api/v1/orgs/{o}/members/{}", owner.id);
    let (status, body) = call(
        &app,
        &As::Staff(&owner),
        Method::PATCH,
        &path,
        Some(json!({"role": "member"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "last owner demoted: {body}");
    let (status, _) = call(&app, &As::Staff(&owner), Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "last owner removed");
    // With a second Owner, the first may step down (ownership transfer).
    let second = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (status, _) = call(
        &app,
        &As::Staff(&second),
        Method::PATCH,
        &path,
        Some(json!({"role": "team_admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "transfer");

    // Someone with no role in the organization finds nothing, as if it did not exist.
    let outsider = staff(&app, None, false).await;
    for path in [
        format!("/api/v1/orgs/{o}"),
        format!("/api/v1/orgs/{o}/users"),
        "/api/v1/orgs/no-such-org".into(),
    ] {
        let (status, _) = call(&app, &As::Staff(&outsider), Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Only operators create organizations.
    let body = json!({"slug": "made-by-staff", "name": "X", "owner_email": "x@example.com"});
    let (status, _) = call(
        &app,
        &As::Staff(&second),
        Method::POST,
        "/api/v1/orgs",
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "non-operator creates org");
    let operator = staff(&app, None, true).await;
    let (status, created) = call(
        &app,
        &As::Staff(&operator),
        Method::POST,
        "/api/v1/orgs",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["owner_added"], false, "unknown owner is invited");
    let invitations = app
        .db
        .scalar_i64(
            "SELECT COUNT(*) FROM invitations WHERE role = 'owner' AND email = 'x@example.com'",
        )
        .await;
    assert_eq!(invitations, 1);
}

async fn sessions_need_csrf_and_step_up(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let body = json!({"email": "csrf@example.com"});
    let url = app.url(&format!("/api/v1/orgs/{o}/users"));
    let no_token = app
        .http
        .post(&url)
        .header("cookie", &owner.cookie)
        .header("origin", &app.base)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let foreign = app
        .http
        .post(&url)
        .header("cookie", &owner.cookie)
        .header("x-csrf-token", &owner.csrf)
        .header("origin", "https://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN, "foreign origin");
    let users = app
        .db
        .scalar_i64("SELECT COUNT(*) FROM users WHERE email = 'csrf@example.com'")
        .await;
    assert_eq!(users, 0, "nothing changed");

    // Step-up: after the organization's window, a sensitive action needs a fresh second factor.
    let user = new_user(&app, &fx.org).await;
    app.clock.advance(11 * 60);
    let (status, body) = call(
        &app,
        &As::Staff(&owner),
        Method::DELETE,
        &format!("/api/v1/orgs/{o}/users/{user}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "urn:latchkey:problem:step-up-required");
    let invite = json!({"email": "o2@example.com", "role": "owner"});
    let (status, body) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{o}/invitations"),
        Some(invite),
    )
    .await;
    assert_eq!(
        (status, body["type"].clone()),
        (
            StatusCode::FORBIDDEN,
            json!("urn:latchkey:problem:step-up-required")
        ),
        "inviting an owner"
    );
    // A non-sensitive change still works.
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::PATCH,
        &format!("/api/v1/orgs/{o}/users/{user}"),
        Some(json!({"name": "Renamed"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Unauthenticated.
    let anonymous = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{o}/users")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn api_keys_are_scoped_and_attributed(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (read_id, reader) = api_key(&app, &fx.org, &owner, &["org:read"]).await;
    let (_, writer) = api_key(&app, &fx.org, &owner, &["org:read", "users:write"]).await;

    let (status, _) = call(
        &app,
        &As::Key(&reader),
        Method::GET,
        &format!("/api/v1/orgs/{o}/users"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        &app,
        &As::Key(&reader),
        Method::POST,
        &format!("/api/v1/orgs/{o}/users"),
        Some(json!({"email": "r@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read-only key writes");
    let (status, created) = call(
        &app,
        &As::Key(&writer),
        Method::POST,
        &format!("/api/v1/orgs/{o}/users"),
        Some(json!({"email": "w@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    // No step-up for keys: they are non-interactive and carry scopes instead.
    app.clock.advance(3600);
    let id = created["id"].as_str().unwrap();
    let (status, _) = call(
        &app,
        &As::Key(&writer),
        Method::DELETE,
        &format!("/api/v1/orgs/{o}/users/{id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let by_key = app.db.scalar_i64(&format!("SELECT COUNT(*) FROM audit_events WHERE action = 'user.deleted' AND target_id = '{id}' AND actor_type = 'api_key' AND actor_role = 'api_key'")).await;
    assert_eq!(by_key, 1, "attributed to the key");
    // A read is attributed too, with the request line, before it is answered.
    let (status, _) = call(
        &app,
        &As::Key(&writer),
        Method::GET,
        &format!("/api/v1/orgs/{o}/users?email_prefix=read-by-key"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let reads = app.db.scalar_i64(&format!("SELECT COUNT(*) FROM audit_events WHERE action = 'api_key.read' AND actor_type = 'api_key' AND target_type = 'request' AND target_id = 'GET /api/v1/orgs/{o}/users?email_prefix=read-by-key'")).await;
    assert_eq!(reads, 1, "the read is attributed to the key");
    // A secret sent in the query under another name never reaches the append-only log.
    let (status, _) = call(
        &app,
        &As::Key(&writer),
        Method::GET,
        &format!("/api/v1/orgs/{o}/users?email_prefix=lk_admin_leaked"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let leaked = app
        .db
        .scalar_i64("SELECT COUNT(*) FROM audit_events WHERE target_id LIKE '%lk_admin_leaked%'")
        .await;
    assert_eq!(leaked, 0);
    let redacted = app.db.scalar_i64(&format!("SELECT COUNT(*) FROM audit_events WHERE action = 'api_key.read' AND target_id = 'GET /api/v1/orgs/{o}/users?email_prefix=[redacted]'")).await;
    assert_eq!(redacted, 1);
    // The staff session idled out meanwhile (30 minutes); sign in again.
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;

    // A key never creates keys, even with every scope.
    let (_, all) = api_key(&app, &fx.org, &owner, &["all"]).await;
    let (status, _) = call(
        &app,
        &As::Key(&all),
        Method::POST,
        &format!("/api/v1/orgs/{o}/api-keys"),
        Some(json!({"name": "x", "scopes": ["org:read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{o}/api-keys"),
        Some(json!({"name": "x", "scopes": ["api_keys:write"]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "api_keys:write is not grantable"
    );
    // A Team Admin cannot give a key an Owner-only scope.
    let admin = staff(&app, Some((&fx.org, Role::Admin)), false).await;
    let (status, _) = call(
        &app,
        &As::Staff(&admin),
        Method::POST,
        &format!("/api/v1/orgs/{o}/api-keys"),
        Some(json!({"name": "x", "scopes": ["org:delete"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Another organization's key finds nothing here.
    let other = fixture(&app).await;
    let other_owner = staff(&app, Some((&other.org, Role::Owner)), false).await;
    let (_, foreign) = api_key(&app, &other.org, &other_owner, &["org:read"]).await;
    let (status, _) = call(
        &app,
        &As::Key(&foreign),
        Method::GET,
        &format!("/api/v1/orgs/{o}/users"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Never from the query string.
    let answer = app
        .http
        .get(app.url(&format!("/api/v1/orgs/{o}/users?api_key={reader}")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);

    // Rotation: the old secret works for the grace period, then not; the new one works.
    let (status, rotated) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{o}/api-keys/{read_id}/rotate"),
        Some(json!({"grace_period_secs": 600})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let fresh = rotated["secret"].as_str().unwrap().to_string();
    for key in [&reader, &fresh] {
        let (status, _) = call(
            &app,
            &As::Key(key),
            Method::GET,
            &format!("/api/v1/orgs/{o}"),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "within the grace period");
    }
    app.clock.advance(601);
    let (status, _) = call(
        &app,
        &As::Key(&reader),
        Method::GET,
        &format!("/api/v1/orgs/{o}"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "old secret after the grace period"
    );
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{o}/api-keys/{read_id}/rotate"),
        Some(json!({"grace_period_secs": 604801})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "grace over 7 days");
    // Last use is recorded.
    let used = app.db.scalar_i64(&format!("SELECT COUNT(*) FROM api_keys WHERE id = '{read_id}' AND last_used_at IS NOT NULL AND last_used_ip IS NOT NULL")).await;
    assert_eq!(used, 1);
    // Revoked: refused at once.
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::DELETE,
        &format!("/api/v1/orgs/{o}/api-keys/{read_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &app,
        &As::Key(&fresh),
        Method::GET,
        &format!("/api/v1/orgs/{o}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    // Expiry (a new session: the key's creation needs a second factor within the step-up window).
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (status, body) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{o}/api-keys"),
        Some(json!({"name": "short", "scopes": ["org:read"], "expires_in_days": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let short = body["secret"].as_str().unwrap().to_string();
    app.clock.advance(86_401);
    let (status, _) = call(
        &app,
        &As::Key(&short),
        Method::GET,
        &format!("/api/v1/orgs/{o}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "expired");
    // The stored row holds no secret.
    let plain = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE name = 'short' AND secret_hash = '{short}'"
        ))
        .await;
    assert_eq!(plain, 0);
}

async fn client_secret_rotation_overlaps(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let input = crate::oauth_support::new_app(latchkey::model::apps::ClientType::Confidential);
    let mut input = input;
    input
        .grant_types
        .push(latchkey::model::apps::GrantType::ClientCredentials);
    let created = latchkey::apps::create(&app.services, &Actor::operator(), &fx.org, input)
        .await
        .unwrap();
    let client_id = created.app.client_id.to_string();
    let old = created.client_secret.unwrap();
    let (status, body) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{o}/apps/{client_id}/rotate-secret"),
        Some(json!({"grace_period_secs": 3600})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["client_secret"].as_str().unwrap().to_string();
    let token = |secret: String| {
        let (app, client_id, o) = (&app, client_id.clone(), o.clone());
        async move {
            app.http
                .post(app.url(&format!("/o/{o}/token")))
                .basic_auth(&client_id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        token(old.clone()).await,
        StatusCode::OK,
        "old secret during the overlap"
    );
    assert_eq!(token(new.clone()).await, StatusCode::OK, "new secret");
    app.clock.advance(3601);
    assert_eq!(
        token(old).await,
        StatusCode::UNAUTHORIZED,
        "old secret after the overlap"
    );
    assert_eq!(token(new).await, StatusCode::OK);
}

async fn bad_input_is_a_4xx_problem(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (_, key) = api_key(&app, &fx.org, &owner, &["all"]).await;
    let url = app.url(&format!("/api/v1/orgs/{o}/users"));
    for (body, what) in [
        ("{", "malformed"),
        ("{\"email\": 5}", "wrong type"),
        (
            "{\"email\": \"a@example.com\", \"admin\": true}",
            "unknown field",
        ),
        ("{\"email\": \"not an address\"}", "invalid email"),
    ] {
        let answer = app
            .http
            .post(&url)
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_client_error(),
            "{what}: {}",
            answer.status()
        );
        assert_eq!(
            answer.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
    }
    for query in ["limit=0", "limit=1000", "limit=x", "unknown=1"] {
        let answer = app
            .http
            .get(format!("{url}?{query}"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let (status, body) = call(
        &app,
        &As::Key(&key),
        Method::PATCH,
        &format!("/api/v1/orgs/{o}/settings"),
        Some(json!({"settings": {"no_such_setting": 1}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "settings.no_such_setting");
    let (status, _) = call(
        &app,
        &As::Key(&key),
        Method::GET,
        &format!("/api/v1/orgs/{o}/audit-events?action=no.such"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        &As::Key(&key),
        Method::GET,
        &format!("/api/v1/orgs/{o}/users/usr_nope"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Paging: a stable order, every user once, and a prefix search.
    for i in 0..7 {
        let email = format!("page{i}@example.com");
        let (status, _) = call(
            &app,
            &As::Key(&key),
            Method::POST,
            &format!("/api/v1/orgs/{o}/users"),
            Some(json!({"email": email})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/orgs/{o}/users?limit=3&email_prefix=page{cursor}");
        let (status, page) = call(&app, &As::Key(&key), Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7)
            .map(|i| format!("page{i}@example.com"))
            .collect::<Vec<_>>()
    );

    // Reading the audit log is itself audited, with the reader as actor.
    let (status, page) = call(
        &app,
        &As::Key(&key),
        Method::GET,
        &format!("/api/v1/orgs/{o}/audit-events?action=user.created&limit=2"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "user.created")
    );
    let reads = app.db.scalar_i64("SELECT COUNT(*) FROM audit_events WHERE action = 'audit.read' AND actor_type = 'api_key'").await;
    assert_eq!(reads, 1);
}

async fn setup_link_and_invitation(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let grant = staff::SetupGrant {
        email: Some("op@example.com".into()),
        operator: true,
    };
    let link = staff::issue_setup_link(&app.services, &Actor::operator(), &grant)
        .await
        .unwrap();
    let path = link.trim_start_matches(&app.base).to_string();
    let token = path.split("token=").nth(1).unwrap().to_string();
    assert_eq!(token.len(), 43, "256-bit token");
    let stored = app.db.scalar_i64("SELECT COUNT(*) FROM one_time_tokens WHERE purpose = 'staff_setup' AND data LIKE '%op@example.com%'").await;
    assert_eq!(stored, 1);
    let page = app.get(&path).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.contains("csrf"))
        .unwrap();
    let csrf = csrf_cookie.split('=').nth(1).unwrap().to_string();
    let post = |password: &'static str| {
        let (app, token, csrf, cookie) = (&app, token.clone(), csrf.clone(), csrf_cookie.clone());
        async move {
            app.http
                .post(app.url("/setup"))
                .header("cookie", cookie)
                .header("origin", &app.base)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("token", token.as_str()),
                    ("email", "op@example.com"),
                    ("name", ""),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let weak = post("short").await;
    assert_eq!(
        weak.status(),
        StatusCode::BAD_REQUEST,
        "weak password refused, link kept"
    );
    let done = post(STAFF_PASSWORD).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert!(staff::has_operator(&app.services).await.unwrap());
    let again = post(STAFF_PASSWORD).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST, "single use");
    app.clock.advance(3601);
    let late = staff::issue_setup_link(&app.services, &Actor::operator(), &grant)
        .await
        .unwrap();
    app.clock.advance(3601);
    let expired = app.get(late.trim_start_matches(&app.base)).await;
    assert_eq!(
        expired.status(),
        StatusCode::BAD_REQUEST,
        "expired after an hour"
    );

    // An invitation: emailed through the outbox, accepted once by a new staff account.
    let fx = fixture(&app).await;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::POST,
        &format!("/api/v1/orgs/{}/invitations", fx.org.slug),
        Some(json!({"email": "new@example.com", "role": "team_admin"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let queued = app
        .db
        .scalar_i64("SELECT COUNT(*) FROM email_outbox WHERE recipient = 'new@example.com'")
        .await;
    assert_eq!(queued, 1, "sent through the outbox");
}

async fn creates_are_idempotent(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (key_id, key) = api_key(&app, &fx.org, &owner, &["all"]).await;
    let url = app.url(&format!("/api/v1/orgs/{o}/apps"));
    let body = json!({"name": "Once", "client_type": "confidential", "redirect_uris": ["https://rp.example.com/cb"]});
    let send = |body: Value, idem: &'static str| {
        let (app, url, key) = (&app, url.clone(), key.clone());
        async move {
            let answer = app
                .http
                .post(&url)
                .bearer_auth(&key)
                .header("idempotency-key", idem)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = answer.status();
            let replayed = answer.headers().contains_key("idempotent-replayed");
            (status, replayed, answer.json::<Value>().await.unwrap())
        }
    };
    let (first, replayed, created) = send(body.clone(), "create-1").await;
    assert_eq!((first, replayed), (StatusCode::CREATED, false), "{created}");
    let (again, replayed, replay) = send(body.clone(), "create-1").await;
    assert_eq!((again, replayed), (StatusCode::CREATED, true));
    assert_eq!(
        replay["client_id"], created["client_id"],
        "same answer, secret included"
    );
    assert_eq!(replay["client_secret"], created["client_secret"]);
    let apps = app
        .db
        .scalar_i64(&format!(
            "SELECT COUNT(*) FROM applications WHERE name = 'Once' AND org_id = '{}'",
            fx.org.id
        ))
        .await;
    assert_eq!(apps, 1, "created once");
    let (other, _, _) = send(
        json!({"name": "Other", "client_type": "public"}),
        "create-1",
    )
    .await;
    assert_eq!(
        other,
        StatusCode::UNPROCESSABLE_ENTITY,
        "same key, different request"
    );
    let stored = app.db.scalar_i64("SELECT COUNT(*) FROM idempotency_keys WHERE idem_key = 'create-1' AND response IS NOT NULL").await;
    assert_eq!(stored, 1);
    // A failed request gives the key back, so the corrected retry runs.
    let (bad, _, _) = send(
        json!({"name": "", "client_type": "confidential"}),
        "create-2",
    )
    .await;
    assert_eq!(bad, StatusCode::BAD_REQUEST);
    let (fixed, replayed, _) = send(json!({"name": "Fixed", "client_type": "public", "redirect_uris": ["https://rp.example.com/cb"]}), "create-2").await;
    assert_eq!((fixed, replayed), (StatusCode::CREATED, false));
    // A stored answer (with its secret) is never replayed to a caller who is no longer authorised.
    let (status, _) = call(
        &app,
        &As::Staff(&owner),
        Method::DELETE,
        &format!("/api/v1/orgs/{o}/api-keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (after_revoke, _, _) = send(body, "create-1").await;
    assert_eq!(
        after_revoke,
        StatusCode::UNAUTHORIZED,
        "revoked key gets no replay"
    );
}

/// Bodies must be JSON objects, whole-number floats are integers, an application is editable in full
/// with the rules of creation, a refused edit changes nothing, and the audit filters' edge cases.
async fn bodies_edits_and_filters(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let fx = fixture(&app).await;
    let o = &fx.org.slug;
    let owner = staff(&app, Some((&fx.org, Role::Owner)), false).await;
    let (_, key) = api_key(&app, &fx.org, &owner, &["all"]).await;
    let key = As::Key(&key);

    let users_before = app.db.scalar_i64("SELECT COUNT(*) FROM users").await;
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        &format!("/api/v1/orgs/{o}/users"),
        Some(json!([{"email": "in-an-array@example.com"}])),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["detail"], "the request body must be a JSON object");
    assert_eq!(
        app.db.scalar_i64("SELECT COUNT(*) FROM users").await,
        users_before
    );

    let (client_id, _) = new_app(&app, &fx.org).await;
    let rotate = format!("/api/v1/orgs/{o}/apps/{client_id}/rotate-secret");
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        &rotate,
        Some(json!({"grace_period_secs": 3600.5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "grace_period_secs");
    let (status, body) = call(
        &app,
        &key,
        Method::POST,
        &rotate,
        Some(json!({"grace_period_secs": 3600.0})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["previous_secret_valid_until"].is_i64(), "{body}");

    // A full edit: new redirect URIs and grant types, checked together as at creation.
    let path = format!("/api/v1/orgs/{o}/apps/{client_id}");
    let (status, body) = call(
        &app,
        &key,
        Method::PATCH,
        &path,
        Some(json!({
            "redirect_uris": ["https://rp.example.com/new-callback"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "cors_origins": ["https://rp.example.com"],
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, edited) = call(&app, &key, Method::GET, &path, None).await;
    assert_eq!(
        edited["redirect_uris"],
        json!(["https://rp.example.com/new-callback"])
    );
    assert_eq!(
        edited["grant_types"],
        json!(["authorization_code", "refresh_token", "client_credentials"])
    );
    for (refused, field) in [
        (json!({"grant_types": ["refresh_token"]}), "grant_types"),
        (json!({"redirect_uris": []}), "redirect_uris"),
        (
            json!({"name": "renamed", "redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
        ),
        (
            json!({"cors_origins": ["https://rp.example.com/path"]}),
            "cors_origins",
        ),
        (json!({"signing_alg": "HS256"}), "signing_alg"),
    ] {
        let (status, body) = call(&app, &key, Method::PATCH, &path, Some(refused.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}: {body}");
        assert_eq!(body["field"], field, "{refused}: {body}");
        let (_, now) = call(&app, &key, Method::GET, &path, None).await;
        assert_eq!(
            now, edited,
            "a refused edit ({refused}) changed the application"
        );
    }

    // A settings value of the wrong type, or out of range, names its path in the body.
    for (patch, field) in [
        (
            json!({"settings": {"rate_limits": {"login_attempts": "x"}}}),
            "settings.rate_limits.login_attempts",
        ),
        (
            json!({"settings": {"rate_limits": {"login_window_secs": 0}}}),
            "settings.rate_limits.login_window_secs",
        ),
        (
            json!({"settings": {"session_idle_timeout_secs": 5}}),
            "settings.session_idle_timeout_secs",
        ),
    ] {
        let (status, body) = call(
            &app,
            &key,
            Method::PATCH,
            &format!("/api/v1/orgs/{o}/settings"),
            Some(patch.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}: {body}");
        assert_eq!(body["field"], field, "{patch}: {body}");
    }

    // since after until is an empty page, not an error; the export has no pages.
    let (status, page) = call(
        &app,
        &key,
        Method::GET,
        &format!("/api/v1/orgs/{o}/audit-events?since=2000&until=1000"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]));
    let (status, body) = call(
        &app,
        &key,
        Method::GET,
        &format!("/api/v1/orgs/{o}/audit-events/export?limit=5"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "limit");
}

/// `/` is a page: how to finish setup before the first operator exists, then where staff sign in.
async fn front_page(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let page = |app: &TestApp| {
        let request = app.http.get(app.url("/"));
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            assert!(
                answer.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            assert!(answer.headers().contains_key("content-security-policy"));
            answer.text().await.unwrap()
        }
    };
    let before = page(&app).await;
    assert!(before.contains("Finish setup"), "{before}");
    assert!(before.contains("latchkey staff create"), "{before}");
    assert!(!before.contains("Staff sign-in"), "{before}");
    staff(&app, None, true).await;
    let after = page(&app).await;
    assert!(!after.contains("Finish setup"), "{after}");
    let staff_org = staff::staff_org(&app.services).await.unwrap();
    assert!(
        after.contains(&format!("href=\"/o/{}/login\"", staff_org.slug)),
        "{after}"
    );
    assert!(after.contains("href=\"/api/v1/openapi.json\""), "{after}");
}

backend_tests! {
    front_page => sqlite_front_page, postgres_front_page;
    bodies_edits_and_filters => sqlite_bodies_edits_and_filters, postgres_bodies_edits_and_filters;
    creates_are_idempotent => sqlite_creates_are_idempotent, postgres_creates_are_idempotent;
    capability_matrix => sqlite_capability_matrix, postgres_capability_matrix;
    last_owner_and_outsiders => sqlite_last_owner_and_outsiders, postgres_last_owner_and_outsiders;
    sessions_need_csrf_and_step_up => sqlite_sessions_need_csrf_and_step_up, postgres_sessions_need_csrf_and_step_up;
    api_keys_are_scoped_and_attributed => sqlite_api_keys_are_scoped_and_attributed, postgres_api_keys_are_scoped_and_attributed;
    client_secret_rotation_overlaps => sqlite_client_secret_rotation_overlaps, postgres_client_secret_rotation_overlaps;
    bad_input_is_a_4xx_problem => sqlite_bad_input_is_a_4xx_problem, postgres_bad_input_is_a_4xx_problem;
    setup_link_and_invitation => sqlite_setup_link_and_invitation, postgres_setup_link_and_invitation;
}

/// The served document is what `scripts/openapi-gen.py` writes: nobody edited the JSON by hand or
/// changed the generator without regenerating.
#[test]
fn the_openapi_document_is_the_generators_output() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::env::temp_dir().join(format!("openapi-{}.json", crate::helpers::random_hex(6)));
    let status = std::process::Command::new("python3")
        .arg(format!("{root}/scripts/openapi-gen.py"))
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs the generator");
    assert!(status.success(), "the generator failed");
    let generated = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let committed = std::fs::read_to_string(format!("{root}/src/http/api/openapi.json")).unwrap();
    assert!(
        generated == committed,
        "src/http/api/openapi.json is stale: run python3 scripts/openapi-gen.py src/http/api/openapi.json"
    );
}
