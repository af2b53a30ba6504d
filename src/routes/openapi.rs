//! The OpenAPI 3.1 document, built from the same `#[utoipa::path]` declarations that register
//! the routes (`utoipa_axum::routes!`), so the two cannot drift; served at
//! `GET /api/v1/openapi.json` without a token. The errors every operation of a kind can answer
//! (a bad token, a body that is not JSON, storage down) are added here once, by what the
//! operation takes, rather than written on each handler, in the error shape of the operation's
//! tag (dualkey's `Error`, or MDE's `MdeError` on the MDE-compatible routes).

use crate::settings::CompatSettings;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::OnceLock;

/// `{"error": {"code", "message", ...}}`: the body of every 4xx and 5xx answer.
#[derive(utoipa::ToSchema)]
#[schema(as = Error)]
#[allow(dead_code, reason = "a description only: `ApiError` writes the body")]
pub(crate) struct ErrorBody {
    error: ErrorObject,
}

/// A stable `code` to act on, a human `message` that may change, and sometimes more fields
/// named by the operation (`open_release_id`, `status`, `rule`, `log_size`, `index`, `max`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, reason = "a description only: `ApiError` writes the body")]
struct ErrorObject {
    /// Stable: programs branch on it.
    code: String,
    /// For people; never internals.
    message: String,
}

/// Operation tags, in the order readers meet them.
const TAGS: &[(&str, &str)] = &[
    ("releases", "Request, read and decide releases of isolated devices"),
    ("release-batches", "Request and decide many releases at once"),
    ("audit", "The audit trail, its signed Merkle log and evidence (auditor role)"),
    ("notifications", "The notification outbox (auditor role)"),
    ("bypasses", "Devices released outside dualkey (auditor role)"),
    ("health", "Liveness, readiness and what clients need to start, without a token"),
    (
        super::compat::TAG,
        "Defender for Endpoint's own unisolate and machine action routes (also under `/api/v1.0/`), for callers \
        written against MDE: a request becomes a release, errors are MDE's `MdeError`. Present only with \
        `[compat] mde_routes = true`.",
    ),
];

/// The document of the routes this instance answers. `[compat] mde_routes` is the one setting
/// that adds operations, so there is one document for each of its values, each built once.
pub(super) fn document(compat: &CompatSettings) -> &'static Value {
    static PLAIN: OnceLock<Value> = OnceLock::new();
    static WITH_MDE: OnceLock<Value> = OnceLock::new();
    let cell = if compat.mde_routes { &WITH_MDE } else { &PLAIN };
    cell.get_or_init(|| {
        let (_, api) = super::api(compat).split_for_parts();
        let mut doc = serde_json::to_value(api).unwrap_or_else(|e| json!({ "error": e.to_string() }));
        finish(&mut doc);
        doc
    })
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "health",
    security(()),
    responses((status = 200, description = "This document", content_type = "application/json", body = serde_json::Value))
)]
pub(super) async fn openapi_json(State(state): State<AppState>) -> Json<&'static Value> {
    Json(document(&state.settings.compat))
}

/// Info, security schemes, tags, and the errors common to each kind of operation.
fn finish(doc: &mut Value) {
    doc["info"] = json!({
        "title": "dualkey",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "A two-person rule in front of releasing devices from isolation in Microsoft Defender for \
            Endpoint. Every error is `{\"error\": {\"code\", \"message\"}}` with a stable `code` (docs/api.md lists \
            them all); a method a path does not take is 405 `method_not_allowed` with `Allow`, an unknown path \
            404 `not_found`, and a connection over `server.max_connections` 503 `too_many_connections` before any \
            request is read. The web console under `/ui/` (HTML pages for people, signed in with a session cookie) \
            is not part of this document: see docs/api.md. The `mde-compatible` operations, when present, answer \
            errors in Defender for Endpoint's shape instead (`MdeError`).",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    doc["security"] = json!([{ "bearer": [] }]);
    // Only the tags some operation has: the MDE-compatible one is absent with its routes.
    let used = operation_tags(doc);
    doc["tags"] = TAGS
        .iter()
        .filter(|(name, _)| used.contains(*name))
        .map(|(name, description)| json!({"name": name, "description": description}))
        .collect();
    let components = doc["components"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut components = Value::Object(components);
    components["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A JWT the `[auth]` section accepts (HS256 or RS256 from a JWKS), whose roles claim \
                holds the role the operation names."
        }
    });
    for (name, schema) in [
        ("Error", <ErrorBody as utoipa::PartialSchema>::schema()),
        ("ErrorObject", <ErrorObject as utoipa::PartialSchema>::schema()),
    ] {
        components["schemas"][name] = serde_json::to_value(schema).unwrap_or_default();
    }
    doc["components"] = components;
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            add_common_responses(path, op);
        }
    }
}

/// Every tag an operation of `doc` has.
fn operation_tags(doc: &Value) -> BTreeSet<String> {
    let items = doc["paths"].as_object().into_iter().flat_map(Map::values).filter_map(Value::as_object);
    let tags = items.flat_map(Map::values).filter_map(|op| op["tags"].as_array()).flatten();
    tags.filter_map(Value::as_str).map(str::to_owned).collect()
}

/// A body that may be left out (`Option<T>` in the declaration) is `T`, not required: an
/// explicit JSON `null` is refused like any other non-object.
fn optional_body(op: &mut Value) {
    let Some(content) = op.pointer_mut("/requestBody/content/application~1json") else { return };
    let Some(branches) = content["schema"]["oneOf"].as_array() else { return };
    let not_null: Vec<&Value> = branches.iter().filter(|b| b["type"] != "null").collect();
    if let [only] = not_null[..] {
        content["schema"] = only.clone();
        op["requestBody"]["required"] = Value::Bool(false);
    }
}

/// The error body an operation answers with: dualkey's own, or MDE's on the MDE-compatible
/// routes, whose every refusal is translated (`compat::fault`).
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Dualkey,
    Mde,
}

impl Shape {
    fn of(op: &Value) -> Self {
        let tags = op["tags"].as_array().map(Vec::as_slice).unwrap_or_default();
        if tags.iter().any(|t| t == super::compat::TAG) { Shape::Mde } else { Shape::Dualkey }
    }

    fn schema(self) -> &'static str {
        match self {
            Shape::Dualkey => "#/components/schemas/Error",
            Shape::Mde => "#/components/schemas/MdeError",
        }
    }
}

/// What makes an operation answer an error whatever it does.
#[derive(Clone, Copy)]
enum Takes {
    Token,
    PathParam,
    Query,
    Body,
    Storage,
}

/// The statuses and codes `takes` adds, in `shape`, and the shape each is written in: the
/// body deadline is the connection's, answered before any route, so always dualkey's.
fn common(takes: Takes, shape: Shape) -> &'static [(&'static str, &'static str, Shape)] {
    use Shape::{Dualkey, Mde};
    match (takes, shape) {
        (Takes::Token, Dualkey) => &[
            ("401", "`missing_token` (no `Authorization: Bearer`), `invalid_token`, `invalid_principal`", Dualkey),
            ("503", "`identity_provider_unavailable` (the token's signing keys cannot be fetched)", Dualkey),
        ],
        (Takes::Token, Mde) => &[
            (
                "401",
                "`Unauthorized` (`missing_token`, `invalid_token`, `invalid_principal`; with `WWW-Authenticate`)",
                Mde,
            ),
            ("503", "`ServiceUnavailable` (`identity_provider_unavailable`)", Mde),
        ],
        (Takes::PathParam, Dualkey) => &[("400", "`invalid_path` (a path segment that is not UTF-8)", Dualkey)],
        (Takes::PathParam, Mde) => &[("400", "`BadRequest` (`invalid_path`: a path segment that is not UTF-8)", Mde)],
        (Takes::Query, Dualkey) => &[("400", "`invalid_query` (an unknown or malformed parameter)", Dualkey)],
        (Takes::Query, Mde) => &[("400", "`ODataError` (an unknown or malformed parameter)", Mde)],
        (Takes::Body, Dualkey) => &[
            ("400", "`malformed_json`, `unreadable_body`", Dualkey),
            ("408", "`body_timeout` (the body did not arrive within `server.body_timeout`)", Dualkey),
            ("413", "`body_too_large` (over 64 KiB)", Dualkey),
            ("415", "`unsupported_media_type` (a non-empty body not sent as `application/json`)", Dualkey),
            ("422", "`invalid_body` (not a JSON object, or a wrong, missing or unknown field)", Dualkey),
        ],
        (Takes::Body, Mde) => &[
            ("400", "`InvalidRequestBody` (`malformed_json`, `unreadable_body`)", Mde),
            ("408", "`body_timeout` in dualkey's `Error` shape (the connection's deadline, before any route)", Dualkey),
            ("413", "`InvalidRequestBody` (over 64 KiB)", Mde),
            ("415", "`InvalidRequestBody` (not sent as `application/json`)", Mde),
        ],
        (Takes::Storage, Dualkey) => &[
            ("503", "`storage_unavailable`, `database_busy` (nothing was stored; try again)", Dualkey),
            ("500", "`internal_error` (the cause is in the daemon's log, never in the answer)", Dualkey),
        ],
        (Takes::Storage, Mde) => &[
            (
                "503",
                "`ServiceUnavailable` (`storage_unavailable`, `database_busy`: nothing was stored; try again)",
                Mde,
            ),
            ("500", "`InternalServerError` (the cause is in the daemon's log, never in the answer)", Mde),
        ],
    }
}

/// Adds the answers an operation can give because of what it takes, whatever it does.
fn add_common_responses(path: &str, op: &mut Value) {
    optional_body(op);
    let shape = Shape::of(op);
    let public = op["security"] == json!([{}]);
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let mut takes = Vec::new();
    if !public {
        takes.push(Takes::Token);
    }
    if path.contains('{') {
        takes.push(Takes::PathParam);
    }
    if params.iter().any(|p| p["in"] == "query") {
        takes.push(Takes::Query);
    }
    if op.get("requestBody").is_some() {
        takes.push(Takes::Body);
    }
    if !matches!(path, "/healthz" | "/readyz" | "/api/v1/openapi.json" | "/api/v1/client-config") {
        takes.push(Takes::Storage);
    }
    for (status, codes, shape) in takes.into_iter().flat_map(|t| common(t, shape)) {
        add_response(op, status, codes, *shape);
    }
}

/// Documents `codes` under `status`: a new response with the error body, or more codes on the
/// description of the one the operation declares.
fn add_response(op: &mut Value, status: &str, codes: &str, shape: Shape) {
    let Some(responses) = op.as_object_mut().and_then(|o| o.entry("responses").or_insert(json!({})).as_object_mut())
    else {
        return;
    };
    match responses.get_mut(status) {
        Some(existing) => {
            let description = existing["description"].as_str().unwrap_or_default();
            let merged = if description.is_empty() { codes.to_string() } else { format!("{description}; {codes}") };
            existing["description"] = Value::String(merged);
            if existing.get("content").is_none() {
                existing["content"] = error_content(shape);
            }
        }
        None => {
            let mut response = Map::new();
            response.insert("description".into(), Value::String(codes.to_string()));
            response.insert("content".into(), error_content(shape));
            responses.insert(status.to_string(), Value::Object(response));
        }
    }
}

fn error_content(shape: Shape) -> Value {
    json!({"application/json": {"schema": {"$ref": shape.schema()}}})
}
