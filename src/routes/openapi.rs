//! The OpenAPI 3.1 document, built from the same `#[utoipa::path]` declarations that register
//! the routes (`utoipa_axum::routes!`), so the two cannot drift; served at
//! `GET /api/v1/openapi.json` without a token. The errors every operation of a kind can answer
//! (a bad token, a body that is not JSON, storage down) are added here once, by what the
//! operation takes, rather than written on each handler.

use axum::Json;
use serde_json::{Map, Value, json};
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
];

/// The document, built once.
pub(super) fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, api) = super::api().split_for_parts();
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
pub(super) async fn openapi_json() -> Json<&'static Value> {
    Json(document())
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
            is not part of this document: see docs/api.md.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    });
    doc["security"] = json!([{ "bearer": [] }]);
    doc["tags"] = TAGS.iter().map(|(name, description)| json!({"name": name, "description": description})).collect();
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

/// Adds the answers an operation can give because of what it takes, whatever it does.
fn add_common_responses(path: &str, op: &mut Value) {
    optional_body(op);
    let public = op["security"] == json!([{}]);
    let has_body = op.get("requestBody").is_some();
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let has_query = params.iter().any(|p| p["in"] == "query");
    let mut add = |status: &str, codes: &str| add_response(op, status, codes);
    if !public {
        add("401", "`missing_token` (no `Authorization: Bearer`), `invalid_token`, `invalid_principal`");
        add("503", "`identity_provider_unavailable` (the token's signing keys cannot be fetched)");
    }
    if path.contains('{') {
        add("400", "`invalid_path` (a path segment that is not UTF-8)");
    }
    if has_query {
        add("400", "`invalid_query` (an unknown or malformed parameter)");
    }
    if has_body {
        add("400", "`malformed_json`, `unreadable_body`");
        add("408", "`body_timeout` (the body did not arrive within `server.body_timeout`)");
        add("413", "`body_too_large` (over 64 KiB)");
        add("415", "`unsupported_media_type` (a non-empty body not sent as `application/json`)");
        add("422", "`invalid_body` (not a JSON object, or a wrong, missing or unknown field)");
    }
    if !matches!(path, "/healthz" | "/readyz" | "/api/v1/openapi.json" | "/api/v1/client-config") {
        add("503", "`storage_unavailable`, `database_busy` (nothing was stored; try again)");
        add("500", "`internal_error` (the cause is in the daemon's log, never in the answer)");
    }
}

/// Documents `codes` under `status`: a new response with the error body, or more codes on the
/// description of the one the operation declares.
fn add_response(op: &mut Value, status: &str, codes: &str) {
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
                existing["content"] = error_content();
            }
        }
        None => {
            let mut response = Map::new();
            response.insert("description".into(), Value::String(codes.to_string()));
            response.insert("content".into(), error_content());
            responses.insert(status.to_string(), Value::Object(response));
        }
    }
}

fn error_content() -> Value {
    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
}
