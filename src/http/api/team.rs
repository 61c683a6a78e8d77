//! The team (members and invitations) and the organization's API keys.

use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, OrgAccess, created, no_content, ok};
use crate::error::Error;
use crate::http::AppState;
use crate::http::problem::ApiResult;
use crate::kernel::{ApiKeyId, InvitationId, UserId};
use crate::model::orgs::Role;
use crate::staff::access::{
    ChangeRoles, CreateApiKeys, ManageApiKeys, ManageMembers, ViewOrg, parse_role, role_name,
};
use crate::staff::{api_keys, team};

fn role(name: &str) -> Result<Role, Error> {
    parse_role(name).ok_or_else(|| Error::invalid("role", "must be owner, team_admin or member"))
}

fn member_json(m: &crate::model::staff::StaffMember) -> serde_json::Value {
    json!({"staff_id": m.staff_id, "email": m.email, "name": m.name, "role": role_name(m.role),
           "created_at": m.created_at})
}

pub async fn members(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    at.access.grant::<ViewOrg>()?;
    let team = state
        .deps
        .db()
        .tenant(&at.org.id)
        .list_staff()
        .await
        .map_err(Error::from)?;
    ok(json!({"items": team.iter().map(member_json).collect::<Vec<_>>(), "next_cursor": null}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    role: String,
}

pub async fn change_role(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, staff_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleChange>,
) -> ApiResult {
    let new_role = role(&body.role)?;
    let grant = at.access.grant::<ChangeRoles>()?;
    let owners = at.access.owner_grant()?;
    let id = UserId::from(staff_id);
    let changed =
        team::change_role(&state.deps, &grant, owners.as_ref(), &at.org, &id, new_role).await?;
    ok(member_json(&changed))
}

pub async fn remove(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, staff_id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ManageMembers>()?;
    let owners = at.access.owner_grant()?;
    let id = UserId::from(staff_id);
    team::remove(&state.deps, &grant, owners.as_ref(), &at.org, &id).await?;
    no_content()
}

pub async fn invitations(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    at.access.grant::<ViewOrg>()?;
    let list = state
        .deps
        .db()
        .tenant(&at.org.id)
        .list_invitations()
        .await
        .map_err(Error::from)?;
    let now = state.deps.now();
    let items: Vec<_> = list
        .iter()
        .map(|i| {
            json!({"id": i.id, "email": i.email, "role": role_name(i.role), "invited_by": i.invited_by,
                   "created_at": i.created_at, "expires_at": i.expires_at, "expired": !i.open(now)})
        })
        .collect();
    ok(json!({"items": items, "next_cursor": null}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    email: String,
    role: String,
}

pub async fn invite(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiJson(body): ApiJson<Invite>,
) -> ApiResult {
    let invited_role = role(&body.role)?;
    let grant = at.access.grant::<ManageMembers>()?;
    let owners = at.access.owner_grant()?;
    let sent = team::invite(
        &state.deps,
        &grant,
        owners.as_ref(),
        &at.org,
        &body.email,
        invited_role,
    )
    .await?;
    let i = &sent.invitation;
    created(
        json!({"id": i.id, "email": i.email, "role": role_name(i.role), "expires_at": i.expires_at}),
    )
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ManageMembers>()?;
    team::revoke_invitation(&state.deps, &grant, &at.org, &InvitationId::from(id)).await?;
    no_content()
}

/// Refuses key management by an API key before anything else: keys never create or change keys.
fn staff_only(at: &OrgAccess) -> Result<(), Error> {
    if at.caller.principal.api_key_id().is_some() {
        return Err(Error::Forbidden(
            "API keys cannot create or change API keys; use a staff session".into(),
        ));
    }
    Ok(())
}

pub async fn api_keys(State(state): State<AppState>, at: OrgAccess) -> ApiResult {
    at.access.grant::<ViewOrg>()?;
    let keys = state
        .deps
        .db()
        .tenant(&at.org.id)
        .list_api_keys()
        .await
        .map_err(Error::from)?;
    ok(json!({"items": keys, "next_cursor": null}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    scopes: Vec<String>,
    expires_in_days: Option<u64>,
}

pub async fn create_api_key(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult {
    staff_only(&at)?;
    let grant = at.access.grant::<CreateApiKeys>()?;
    let input = api_keys::NewApiKey {
        name: &body.name,
        scopes: &body.scopes,
        expires_in_days: body.expires_in_days,
    };
    let held = at.access.scopes();
    created(api_keys::create(&state.deps, &grant, &held, &at.org, input).await?)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    #[serde(default)]
    grace_period_secs: u64,
}

pub async fn rotate_api_key(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RotateKey>,
) -> ApiResult {
    staff_only(&at)?;
    let grant = at.access.grant::<ManageApiKeys>()?;
    let id = ApiKeyId::from(id);
    let grace = body.grace_period_secs;
    let held = at.access.scopes();
    ok(api_keys::rotate(&state.deps, &grant, &held, &at.org, &id, grace).await?)
}

pub async fn revoke_api_key(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    staff_only(&at)?;
    let grant = at.access.grant::<ManageApiKeys>()?;
    api_keys::revoke(&state.deps, &grant, &at.org, &ApiKeyId::from(id)).await?;
    no_content()
}
