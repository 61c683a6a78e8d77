//! An organization's users, and its audit log.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::{ApiJson, ApiQuery, OrgAccess, created, no_content, ok};
use crate::admin::{self, audit_log, users};
use crate::error::Error;
use crate::http::AppState;
use crate::http::problem::ApiResult;
use crate::kernel::UserId;
use crate::model::audit::AuditFilter;
use crate::staff::access::{DeleteUsers, ExportAudit, ManageUsers, ReadAudit, ViewOrg};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    cursor: Option<String>,
    limit: Option<i64>,
    email_prefix: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> ApiResult {
    let grant = at.access.grant::<ViewOrg>()?;
    let limit = admin::page_size(query.limit)?;
    let (cursor, prefix) = (query.cursor.as_deref(), query.email_prefix.as_deref());
    ok(users::list(&state.deps, &grant, &at.org, cursor, prefix, limit).await?)
}

pub async fn get(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ViewOrg>()?;
    ok(users::get(&state.deps, &grant, &at.org, &UserId::from(id)).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    email: String,
    password: Option<String>,
    name: Option<String>,
    #[serde(default)]
    email_verified: bool,
}

pub async fn create(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult {
    let grant = at.access.grant::<ManageUsers>()?;
    let input = crate::users::NewUser {
        email: &body.email,
        password: body.password.as_deref(),
        name: body.name.as_deref(),
        verified: body.email_verified,
        role: None,
    };
    created(users::create(&state.deps, &grant, &at.org, input).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    name: Option<String>,
    disabled: Option<bool>,
}

pub async fn update(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult {
    let grant = at.access.grant::<ManageUsers>()?;
    let changes = users::UserChanges {
        name: body.name.as_deref(),
        disabled: body.disabled,
    };
    ok(users::update(&state.deps, &grant, &at.org, &UserId::from(id), changes).await?)
}

pub async fn delete(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<DeleteUsers>()?;
    users::delete(&state.deps, &grant, &at.org, &UserId::from(id)).await?;
    no_content()
}

pub async fn sessions(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ViewOrg>()?;
    let list = users::sessions(&state.deps, &grant, &at.org, &UserId::from(id)).await?;
    ok(json!({"items": list}))
}

/// Signs the user out everywhere (every session and token ends).
pub async fn sign_out(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ManageUsers>()?;
    users::bump_session_version(&state.deps, &grant, &at.org, &UserId::from(id)).await?;
    no_content()
}

pub async fn bump_session_version(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ManageUsers>()?;
    let version =
        users::bump_session_version(&state.deps, &grant, &at.org, &UserId::from(id)).await?;
    ok(json!({"session_version": version}))
}

pub async fn reset_factors(
    State(state): State<AppState>,
    at: OrgAccess,
    Path((_, id)): Path<(String, String)>,
) -> ApiResult {
    let grant = at.access.grant::<ManageUsers>()?;
    ok(users::reset_factors(&state.deps, &grant, &at.org, &UserId::from(id)).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    cursor: Option<i64>,
    limit: Option<i64>,
    action: Option<String>,
    actor: Option<String>,
    user: Option<String>,
    since: Option<i64>,
    until: Option<i64>,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            action: self.action.clone(),
            actor: self.actor.clone(),
            user: self.user.clone().map(UserId::from),
            since: self.since,
            until: self.until,
        }
    }
}

pub async fn audit_events(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult {
    let grant = at.access.grant::<ReadAudit>()?;
    let limit = admin::page_size(query.limit)?;
    let filter = query.filter();
    ok(audit_log::list(&state.deps, &grant, &at.org, &filter, query.cursor, limit).await?)
}

/// The matching events as NDJSON, oldest first, streamed in chunks up to the head at the start.
pub async fn audit_export(
    State(state): State<AppState>,
    at: OrgAccess,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult {
    let grant = at.access.grant::<ExportAudit>()?;
    if query.limit.is_some() {
        return Err(Error::invalid(
            "limit",
            "is not accepted by the export, which returns every matching event",
        )
        .into());
    }
    let filter = query.filter();
    let last = audit_log::start_export(&state.deps, &grant, &at.org, &filter).await?;
    let chunks = export_stream(
        state,
        at.org.clone(),
        grant,
        filter,
        query.cursor.unwrap_or(0),
        last,
    );
    let mut response = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// The export's chunks as NDJSON text, fetched one after the other as the client reads.
fn export_stream(
    state: AppState,
    org: std::sync::Arc<crate::model::orgs::Organization>,
    grant: crate::staff::access::Granted<ExportAudit>,
    filter: AuditFilter,
    start: i64,
    last: i64,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> + Send + 'static {
    let grant = std::sync::Arc::new(grant);
    futures_util::stream::unfold(Some(start), move |after| {
        let (state, org, filter) = (state.clone(), org.clone(), filter.clone());
        let grant = grant.clone();
        async move {
            let after = after?;
            let events =
                audit_log::export_chunk(&state.deps, &grant, &org, &filter, after, last).await;
            match events {
                Ok(events) if events.is_empty() => None,
                Ok(events) => {
                    let next = events.last().map(|e| e.seq);
                    let mut text = String::new();
                    for event in &events {
                        text.push_str(&serde_json::to_string(event).unwrap_or_default());
                        text.push('\n');
                    }
                    Some((Ok(text), next.filter(|n| *n < last)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed midway");
                    Some((Err(std::io::Error::other("export failed")), None))
                }
            }
        }
    })
}
