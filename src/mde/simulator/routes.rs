//! The MDE API routes: machine actions and machines, behind bearer auth, roles and limits.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;

use super::config::{DuplicateBehavior, NotIsolatedBehavior};
use super::filter::{ActionFilter, MachineFilter, Paging};
use super::state::{ActionRecord, Cancellation, Shared};
use super::wire::{Reject, WireList, machine_body, mde_error, reject};
use crate::mde::rate::Api;
use crate::mde::types::ActionType;

type Answer = Result<Response, Reject>;

/// The API routes, to be nested under `/api` and `/api/v1.0`.
pub(crate) fn api_router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/machines/{id}/unisolate", post(unisolate))
        .route("/machines/{id}/isolate", post(isolate))
        .route("/machines", get(list_machines))
        .route("/machines/{id}", get(get_machine))
        .route("/machineactions", get(list_actions))
        .route("/machineactions/{id}", get(get_action))
        .route("/machineactions/{id}/cancel", post(cancel_action))
}

const ISOLATE_ROLES: &[&str] = &["Machine.Isolate"];
const READ_ROLES: &[&str] = &["Machine.Read.All", "Machine.ReadWrite.All"];

/// Checks the bearer token, its audience and roles, then spends one call of `api`'s budget.
fn admit(sh: &Shared, headers: &HeaderMap, api: Api, roles: &[&str]) -> Result<(), Reject> {
    let unauthorized =
        || reject(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized (invalid or expired authorization header).");
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let mut state = sh.lock();
    let now = sh.monotonic();
    let token = state.tokens.get(bearer).filter(|t| now < t.expires_at).ok_or_else(unauthorized)?;
    if !sh.config.accepted_audiences.contains(&token.audience) {
        return Err(forbidden("The token audience is not accepted by this API."));
    }
    if !roles.iter().any(|r| token.roles.iter().any(|t| t == r)) {
        let message = format!(
            "Missing application roles. API required roles: {}, application roles: {}.",
            roles.join(","),
            token.roles.join(",")
        );
        return Err(forbidden(&message));
    }
    let window = state.windows.get_mut(&api).expect("one window per API");
    if let Err(at) = window.try_acquire(now) {
        let seconds = (at - now).as_secs_f64().ceil().max(1.0) as u64;
        let mut answer = mde_error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            &format!("Rate limit is exceeded. Try again in {seconds} seconds."),
        );
        answer.headers_mut().insert(header::RETRY_AFTER, seconds.into());
        return Err(answer.into());
    }
    Ok(())
}

fn forbidden(message: &str) -> Reject {
    reject(StatusCode::FORBIDDEN, "Forbidden", message)
}

pub(super) fn not_found(what: &str, id: &str, tenant: &str) -> Reject {
    let message = format!("{what} {id} was not found. OrgId: {tenant}.");
    reject(StatusCode::NOT_FOUND, "ResourceNotFound", &message)
}

/// Parses `{"Comment": "...", ...}` case-sensitively, as MDE does.
fn comment_body(body: &[u8], allow_isolation_type: bool) -> Result<(String, Option<String>), Reject> {
    let invalid = || reject(StatusCode::BAD_REQUEST, "InvalidRequestBody", "Request body is incorrect");
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(invalid());
    };
    let known = |k: &str| k == "Comment" || (allow_isolation_type && k == "IsolationType");
    if fields.keys().any(|k| !known(k)) {
        return Err(invalid());
    }
    let comment = match fields.get("Comment") {
        None => {
            let message = "Parameter Comment is missing.";
            return Err(reject(StatusCode::BAD_REQUEST, "MissingRequiredParameter", message));
        }
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err(invalid()),
    };
    let scope = match fields.get("IsolationType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if ["Full", "Selective", "UnManagedDevice"].contains(&s.as_str()) => Some(s.clone()),
        Some(_) => return Err(invalid()),
    };
    Ok((comment, scope))
}

async fn unisolate(State(sh): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Answer {
    create_action(&sh, &headers, &id, &body, ActionType::Unisolate)
}

async fn isolate(State(sh): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Answer {
    create_action(&sh, &headers, &id, &body, ActionType::Isolate)
}

fn create_action(sh: &Shared, headers: &HeaderMap, id: &str, body: &[u8], kind: ActionType) -> Answer {
    let api = if kind == ActionType::Isolate { Api::Isolate } else { Api::Unisolate };
    admit(sh, headers, api, ISOLATE_ROLES)?;
    let (comment, scope) = comment_body(body, kind == ActionType::Isolate)?;
    let now = sh.now();
    let mut state = sh.lock();
    let machine = state.machine(id).cloned().ok_or_else(|| not_found("Machine", id, &sh.config.tenant_id))?;
    if let Some(active) = state.active_action(&machine.id, now) {
        if sh.config.duplicate == DuplicateBehavior::ReturnExisting {
            let existing = sh.render(active, now, true);
            return Ok((StatusCode::CREATED, Json(existing)).into_response());
        }
        let message = "Action is already in progress";
        return Err(reject(StatusCode::BAD_REQUEST, "ActiveRequestAlreadyExists", message));
    }
    if kind == ActionType::Unisolate
        && sh.config.not_isolated == NotIsolatedBehavior::Reject
        && !state.is_isolated(&machine.id, now)
    {
        return Err(reject(StatusCode::BAD_REQUEST, "BadRequest", "Machine is not isolated."));
    }
    let isolate = kind == ActionType::Isolate;
    let mut action = ActionRecord::new(&sh.config, &machine, kind, sh.config.app_display_name.clone(), comment, now);
    action.scope = if isolate { scope } else { None };
    let wire = sh.render(&action, now, true);
    state.actions.push(action);
    Ok((StatusCode::CREATED, Json(wire)).into_response())
}

async fn get_action(State(sh): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    admit(&sh, &headers, Api::GetAction, READ_ROLES)?;
    let state = sh.lock();
    let action = state
        .actions
        .iter()
        .find(|a| a.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| not_found("MachineAction", &id, &sh.config.tenant_id))?;
    Ok(Json(sh.render(action, sh.now(), true)).into_response())
}

async fn list_actions(
    State(sh): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    admit(&sh, &headers, Api::ListActions, READ_ROLES)?;
    let paging = Paging::from_query(&query)?;
    let filter = ActionFilter::parse(paging.filter.as_deref())?;
    let now = sh.now();
    let state = sh.lock();
    // Newest first, as the documentation's examples come back. Rendering is the costly part,
    // so the filter looks at the records and only the page is rendered.
    let (page, more) = paging.page(state.actions.iter().rev().filter(|a| filter.matches(a, now)));
    let value = page.into_iter().map(|a| sh.render(a, now, false)).collect();
    Ok(Json(list(&sh, "MachineActions", value, more.then(|| paging.next_link(&sh.base_url, uri.path()))))
        .into_response())
}

async fn list_machines(
    State(sh): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    admit(&sh, &headers, Api::ListMachines, READ_ROLES)?;
    let paging = Paging::from_query(&query)?;
    let filter = MachineFilter::parse(paging.filter.as_deref())?;
    let now = sh.now();
    let state = sh.lock();
    let (page, more) = paging.page(state.machines.iter().filter(|m| filter.matches(m)));
    let value = page.into_iter().map(|m| machine_body(m, None, now)).collect();
    Ok(Json(list(&sh, "Machines", value, more.then(|| paging.next_link(&sh.base_url, uri.path())))).into_response())
}

fn list<T>(sh: &Shared, entity_set: &str, value: Vec<T>, next_link: Option<String>) -> WireList<T> {
    WireList { odata_context: format!("{}/api/$metadata#{entity_set}", sh.base_url), value, next_link }
}

async fn cancel_action(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    admit(&sh, &headers, Api::CancelAction, ISOLATE_ROLES)?;
    let (comment, _) = comment_body(&body, false)?;
    let now = sh.now();
    let mut state = sh.lock();
    let action = state
        .actions
        .iter_mut()
        .find(|a| a.id.eq_ignore_ascii_case(&id))
        .ok_or_else(|| not_found("MachineAction", &id, &sh.config.tenant_id))?;
    if action.status_at(now).0.is_final() {
        // UNCONFIRMED: MDE documents only that final actions cannot be cancelled.
        let message = "Action is already in a final state.";
        return Err(reject(StatusCode::BAD_REQUEST, "BadRequest", message));
    }
    action.cancelled = Some(Cancellation { requestor: sh.config.app_display_name.clone(), comment, at: now });
    Ok(Json(sh.render(action, now, true)).into_response())
}

async fn get_machine(State(sh): State<Arc<Shared>>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    admit(&sh, &headers, Api::GetMachine, READ_ROLES)?;
    let state = sh.lock();
    let m = state.machine(&id).ok_or_else(|| not_found("Machine", &id, &sh.config.tenant_id))?;
    let body = machine_body(m, Some(format!("{}/api/$metadata#Machines/$entity", sh.base_url)), sh.now());
    Ok(Json(body).into_response())
}
