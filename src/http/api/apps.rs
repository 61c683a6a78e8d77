//! Applications (with client-secret rotation) and signing keys.

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, OrgAccess, created, named_as_in_body, no_content, ok};
use crate::admin;
use crate::apps::{AppChanges, NewApplication};
use crate::error::Error;
use crate::http::AppState;
use crate::http::problem::ApiResult;
use crate::model::apps::{ClientType, GrantType};
use crate::staff::access::{ManageApps, RotateClientSecret, RotateSigningKeys, ViewOrg};

pub async fn list(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    let grant = at.access.grant::<ViewOrg>()?;
    let apps = admin::list_apps(&state.deps, &grant, &at.org).await?;
    ok(json!({"items": apps, "next_cursor": null}))
}

pub async fn get(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, client_id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ViewOrg>()?;
    ok(admin::app(&state.deps, &grant, &at.org, &client_id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    name: String,
    client_type: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    #[serde(default)]
    cors_origins: Vec<String>,
    #[serde(default)]
    first_party: bool,
    signing_alg: Option<String>,
    #[serde(default)]
    require_offline_access: bool,
}

impl CreateApp {
    fn into_input(self) -> Result<NewApplication, Error> {
        let client_type = ClientType::parse(&self.client_type)
            .ok_or_else(|| Error::invalid("client_type", "must be confidential or public"))?;
        let grant_types = if self.grant_types.is_empty() {
            vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
        } else {
            grant_types(&self.grant_types)?
        };
        Ok(NewApplication {
            name: self.name,
            client_type,
            redirect_uris: self.redirect_uris,
            post_logout_redirect_uris: self.post_logout_redirect_uris,
            grant_types,
            cors_origins: self.cors_origins,
            first_party: self.first_party,
            signing_alg: self.signing_alg,
            require_offline_access: self.require_offline_access,
            insecure_allow_no_pkce: false,
        })
    }
}

pub async fn create(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiJson(body): ApiJson<CreateApp>,
) -> ApiResult {
    let grant = at.access.grant::<ManageApps>()?;
    let input = body.into_input()?;
    let app = admin::create_app(&state.deps, &grant, &at.org, input).await;
    created(app.map_err(|e| named_as_in_body(e, app_body_key))?)
}

/// The body key of a field the registration rules name as the CLI's flags do.
fn app_body_key(field: &str) -> Option<String> {
    let key = match field {
        "grant" => "grant_types",
        "redirect_uri" => "redirect_uris",
        "post_logout_redirect_uri" => "post_logout_redirect_uris",
        "cors_origin" => "cors_origins",
        _ => return None,
    };
    Some(key.to_string())
}

/// Fields left out keep their value; lists given replace the whole list.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    cors_origins: Option<Vec<String>>,
    first_party: Option<bool>,
    signing_alg: Option<String>,
    require_offline_access: Option<bool>,
}

fn grant_types(names: &[String]) -> Result<Vec<GrantType>, Error> {
    names
        .iter()
        .map(|g| {
            GrantType::parse(g)
                .ok_or_else(|| Error::invalid("grant_types", format!("unknown grant type {g:?}")))
        })
        .collect()
}

pub async fn update(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, client_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateApp>,
) -> ApiResult {
    let grant = at.access.grant::<ManageApps>()?;
    let changes = AppChanges {
        name: body.name,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        grant_types: body.grant_types.as_deref().map(grant_types).transpose()?,
        cors_origins: body.cors_origins,
        first_party: body.first_party,
        signing_alg: body.signing_alg,
        require_offline_access: body.require_offline_access,
    };
    let app = admin::update_app(&state.deps, &grant, &at.org, &client_id, changes).await;
    ok(app.map_err(|e| named_as_in_body(e, app_body_key))?)
}

pub async fn delete(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, client_id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ManageApps>()?;
    admin::delete_app(&state.deps, &grant, &at.org, &client_id).await?;
    no_content()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Rotate {
    #[serde(default)]
    grace_period_secs: u64,
}

pub async fn rotate_secret(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, client_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<Rotate>,
) -> ApiResult {
    let grant = at.access.grant::<RotateClientSecret>()?;
    let grace = body.grace_period_secs;
    let (app, secret) =
        admin::rotate_client_secret(&state.deps, &grant, &at.org, &client_id, grace).await?;
    ok(json!({
        "client_id": app.client_id,
        "client_secret": secret,
        "previous_secret_valid_until": app.previous_secret_valid_until,
    }))
}

pub async fn signing_keys(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    let grant = at.access.grant::<ViewOrg>()?;
    let keys = admin::signing_keys(&state.deps, &grant, &at.org).await?;
    ok(json!({"items": keys}))
}

pub async fn rotate_signing_keys(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    let grant = at.access.grant::<RotateSigningKeys>()?;
    ok(json!({"rotations": admin::rotate_signing_keys(&state.deps, &grant, &at.org).await?}))
}
