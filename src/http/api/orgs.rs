//! `/api/v1/me`, `/api/v1/orgs` and an organization's settings.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    ApiJson, ApiQuery, Caller, OrgAccess, PageQuery, created, named_as_in_body, no_content, ok,
};
use crate::admin::{self, NewOrg, Operator};
use crate::error::Error;
use crate::http::AppState;
use crate::http::problem::ApiResult;
use crate::model::orgs::OrgSettings;
use crate::staff::access::{DeleteOrg, ManageSettings, Principal, ViewOrg, role_name};
use axum::extract::State;

/// Who the caller is; for a staff session also the CSRF token its mutations must carry.
pub async fn me(State(state): State<AppState>, caller: Caller) -> ApiResult {
    match &caller.principal {
        Principal::Staff(staff) => {
            let memberships = state
                .deps
                .db()
                .system()
                .memberships_of(&staff.user.id)
                .await
                .map_err(Error::from)?;
            ok(json!({
                "kind": "staff",
                "id": staff.user.id,
                "email": staff.user.email,
                "name": staff.user.name,
                "operator": staff.operator,
                "csrf_token": caller.csrf,
                "organizations": memberships.iter().map(|m| json!({
                    "slug": m.slug, "name": m.name, "role": role_name(m.role),
                })).collect::<Vec<_>>(),
            }))
        }
        Principal::ApiKey(key) => ok(json!({
            "kind": "api_key",
            "id": key.id,
            "name": key.name,
            "scopes": key.scopes,
            "expires_at": key.expires_at,
        })),
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult {
    let limit = admin::page_size(page.limit)?;
    let found = admin::list_orgs(
        &state.deps,
        &caller.principal,
        page.cursor.as_deref(),
        limit,
    )
    .await?;
    ok(json!({
        "items": found.items.iter().map(|m| json!({"slug": m.slug, "name": m.name, "id": m.org_id})).collect::<Vec<_>>(),
        "next_cursor": found.next_cursor,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    slug: String,
    name: String,
    owner_email: String,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateOrg>,
) -> ApiResult {
    let client = &caller.client;
    let operator = Operator::of(
        &caller.principal,
        client.ip.clone(),
        client.user_agent.clone(),
    )?;
    let input = NewOrg {
        slug: &body.slug,
        name: &body.name,
        owner_email: &body.owner_email,
    };
    created(admin::create_org(&state.deps, &operator, input).await?)
}

pub async fn get(at: OrgAccess) -> ApiResult {
    at.access.grant::<ViewOrg>()?;
    ok(json!({
        "id": at.org.id,
        "slug": at.org.slug,
        "name": at.org.name,
        "created_at": at.org.created_at,
        "your_role": at.access.role().map(role_name),
        "your_scopes": at.access.scopes().iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    }))
}

pub async fn delete(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    let grant = at.access.grant::<DeleteOrg>()?;
    admin::delete_org(&state.deps, &grant, &at.org).await?;
    no_content()
}

pub async fn settings(at: OrgAccess) -> ApiResult {
    at.access.grant::<ViewOrg>()?;
    ok(json!({"name": at.org.name, "settings": at.org.settings}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    name: Option<String>,
    settings: Option<Value>,
}

pub async fn update_settings(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiJson(body): ApiJson<SettingsPatch>,
) -> ApiResult {
    let grant = at.access.grant::<ManageSettings>()?;
    let settings = match body.settings {
        Some(patch) => patched(&at.org.settings, patch)?,
        None => at.org.settings.clone(),
    };
    let org = admin::update_settings(&state.deps, &grant, &at.org, body.name.as_deref(), settings)
        .await
        .map_err(|e| named_as_in_body(e, settings_body_key))?;
    ok(json!({"name": org.name, "settings": org.settings}))
}

/// The settings rules name a setting as the CLI's flags do (`session_idle_timeout`, `login_window`); the
/// API answers with its path in the body instead (`settings.session_idle_timeout_secs`).
fn settings_body_key(field: &str) -> Option<String> {
    Some(match field {
        "session_idle_timeout" | "session_absolute_lifetime" => format!("settings.{field}_secs"),
        "password_min_length" | "password_max_length" => {
            format!("settings.password_policy.{}", &field["password_".len()..])
        }
        "step_up_minutes" => format!("settings.mfa.{field}"),
        "login_window" | "login_lockout_max" | "mfa_window" | "mfa_lockout_max" => {
            format!("settings.rate_limits.{field}_secs")
        }
        "login_attempts"
        | "login_attempts_per_account_per_hour"
        | "mfa_attempts"
        | "reset_per_email_per_hour"
        | "reset_per_ip_per_hour"
        | "code_requests_per_app_per_hour"
        | "signup_per_ip_per_hour"
        | "signup_per_email_per_hour"
        | "token_requests_per_client_per_minute"
        | "introspections_per_client_per_minute" => format!("settings.rate_limits.{field}"),
        _ => return None,
    })
}

/// The settings with `patch` merged in; a key that is not a setting, or a value of the wrong type, is
/// refused naming the setting.
fn patched(current: &OrgSettings, patch: Value) -> Result<OrgSettings, Error> {
    let mut merged = serde_json::to_value(current).map_err(|e| Error::Internal(e.to_string()))?;
    merge(&mut merged, patch, "settings")?;
    serde_path_to_error::deserialize(merged).map_err(|e| {
        let field = match e.path().to_string() {
            top if top == "." => "settings".to_string(),
            path => format!("settings.{path}"),
        };
        Error::invalid(field, e.inner().to_string())
    })
}

fn merge(target: &mut Value, patch: Value, path: &str) -> Result<(), Error> {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                let field = format!("{path}.{key}");
                let slot = target
                    .get_mut(&key)
                    .ok_or_else(|| Error::invalid(&field, "is not a setting"))?;
                merge(slot, value, &field)?;
            }
            Ok(())
        }
        (Value::Object(_), _) => Err(Error::invalid(path, "must be an object")),
        (slot, value) => {
            *slot = value;
            Ok(())
        }
    }
}
