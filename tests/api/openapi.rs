//! The OpenAPI document: served without a token, and in step with the router and with
//! docs/api.md (the drift test), the MDE-compatible routes included when they are on.
//! Schemathesis checks the answers against it in CI (`.ci/run`).

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::collections::BTreeSet;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &TestApp) -> Value {
    let r = app.http.get(app.url("/api/v1/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// Every (method, path) the document names.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// An app with the MDE-compatible routes on, so the drift tests cover them too.
async fn spawn_compat_app() -> TestApp {
    spawn_app_with(|s| s.compat.mde_routes = true).await
}

/// The operations (method, path) tagged `tag`.
fn tagged(doc: &Value, tag: &str) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item[method]["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == tag)) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Every MDE-compatible operation, under both of MDE's prefixes.
fn mde_operations() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for prefix in ["/api", "/api/v1.0"] {
        ops.insert(("POST".to_string(), format!("{prefix}/machines/{{id}}/unisolate")));
        ops.insert(("GET".to_string(), format!("{prefix}/machineactions")));
        ops.insert(("GET".to_string(), format!("{prefix}/machineactions/{{id}}")));
    }
    ops
}

/// `path` with each `{param}` replaced by a well-formed value.
fn concrete(path: &str) -> String {
    path.replace("{id}", "01a22259-a09a-77eb-8f71-af6f0069a6e4")
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token_as_openapi_3_1_with_the_bearer_scheme() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "dualkey");
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");
    // A protected operation documents the token refusals and the error body; a public one does not.
    let create = &doc["paths"]["/api/v1/releases"]["post"];
    assert!(create["responses"]["401"]["description"].as_str().unwrap().contains("missing_token"));
    assert_eq!(
        create["responses"]["409"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    let health = &doc["paths"]["/healthz"]["get"];
    assert_eq!(health["security"], serde_json::json!([{}]));
    assert!(health["responses"].get("401").is_none());
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_its_path_takes_no_undocumented_method() {
    let app = spawn_compat_app().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() >= 25, "{ops:?}");
    for (method, path) in &ops {
        let url = app.url(&concrete(path));
        let r = app.http.request(Method::from_bytes(method.as_bytes()).unwrap(), &url).send().await.unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(
            !matches!(code, "not_found" | "method_not_allowed"),
            "{method} {path} is documented but the router answers {status} {code}"
        );
        for other in METHODS.map(str::to_uppercase) {
            if ops.contains(&(other.clone(), path.clone())) {
                continue;
            }
            let r = app.http.request(Method::from_bytes(other.as_bytes()).unwrap(), &url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{other} {path} is routed but not documented");
        }
    }
}

/// Each `METHOD /path` that a `###` or `####` heading of docs/api.md names (`/reject` after a path: its
/// sibling), without the console's.
fn endpoints_in_api_md() -> BTreeSet<(String, String)> {
    let text = include_str!("../../docs/api.md");
    let mut found = BTreeSet::new();
    for heading in text.lines().filter(|l| l.starts_with("### ") || l.starts_with("#### ")) {
        let mut last: Option<(String, String)> = None;
        for span in heading.split('`').skip(1).step_by(2) {
            let span = span.split(['[', '?']).next().unwrap_or_default();
            let endpoint = match span.split_once(' ') {
                Some((method, path)) if METHODS.contains(&method.to_lowercase().as_str()) => {
                    Some((method.to_string(), path.to_string()))
                }
                _ if span.starts_with('/') && !span.contains("/api/") && !span.starts_with("/ui") => last
                    .as_ref()
                    .and_then(|(m, p)| p.rsplit_once('/').map(|(base, _)| (m.clone(), format!("{base}{span}")))),
                _ => None,
            };
            if let Some(e) = endpoint {
                found.insert(e.clone());
                last = Some(e);
            }
        }
    }
    found.retain(|(_, path)| !path.starts_with("/ui"));
    found
}

#[tokio::test]
async fn the_openapi_document_and_docs_api_md_name_the_same_endpoints() {
    let app = spawn_compat_app().await;
    let documented = operations(&document(&app).await);
    let described = endpoints_in_api_md();
    let missing_from_doc: Vec<_> = described.difference(&documented).collect();
    let missing_from_md: Vec<_> = documented.difference(&described).collect();
    assert!(missing_from_doc.is_empty(), "in docs/api.md, not in the OpenAPI document: {missing_from_doc:?}");
    assert!(missing_from_md.is_empty(), "in the OpenAPI document, not in docs/api.md: {missing_from_md:?}");
}

#[tokio::test]
async fn the_mde_compatible_operations_are_documented_exactly_when_the_routes_are_on() {
    let off = document(&spawn_app().await).await;
    assert!(tagged(&off, "mde-compatible").is_empty(), "{:?}", tagged(&off, "mde-compatible"));
    assert!(off["tags"].as_array().unwrap().iter().all(|t| t["name"] != "mde-compatible"));
    assert!(off["components"]["schemas"].get("MdeError").is_none());

    let on = document(&spawn_compat_app().await).await;
    assert_eq!(tagged(&on, "mde-compatible"), mde_operations());
    assert!(on["tags"].as_array().unwrap().iter().any(|t| t["name"] == "mde-compatible"));
    // Nothing else changes: the rest of the document is the one without the routes.
    let mut rest = operations(&on);
    rest.retain(|op| !mde_operations().contains(op));
    assert_eq!(rest, operations(&off));
}

#[tokio::test]
async fn every_error_of_an_mde_compatible_operation_is_in_mdes_shape_but_the_body_deadline() {
    let doc = document(&spawn_compat_app().await).await;
    let error = &doc["components"]["schemas"]["MdeError"];
    assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");
    let object = doc["components"]["schemas"]["MdeErrorObject"].clone();
    assert_eq!(object["required"], serde_json::json!(["code", "message", "target"]), "{object}");
    let mut ids = BTreeSet::new();
    for (method, path) in mde_operations() {
        let op = &doc["paths"][&path][method.to_lowercase()];
        assert!(ids.insert(op["operationId"].as_str().unwrap().to_string()), "{method} {path}: a repeated operationId");
        let responses = op["responses"].as_object().unwrap();
        for status in ["400", "401", "403", "500", "503"] {
            assert!(responses.contains_key(status), "{method} {path} documents no {status}");
        }
        for (status, response) in responses {
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            match status.as_str() {
                s if s.starts_with('2') => assert!(schema.as_str().unwrap().contains("MachineAction"), "{path} {s}"),
                // Answered by the connection, before any route.
                "408" => assert_eq!(schema, "#/components/schemas/Error"),
                s => assert_eq!(schema, "#/components/schemas/MdeError", "{method} {path} {s}"),
            }
        }
    }
    let unisolate = &doc["paths"]["/api/machines/{id}/unisolate"]["post"];
    let body = &unisolate["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(body, "#/components/schemas/MdeUnisolateBody");
    for status in ["201", "404", "413", "415", "429"] {
        assert!(unisolate["responses"].get(status).is_some(), "unisolate documents no {status}");
    }
    assert!(unisolate["responses"].get("422").is_none(), "MDE's shape answers 400, never 422");
    let list = &doc["paths"]["/api/machineactions"]["get"];
    let params: BTreeSet<&str> =
        list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, BTreeSet::from(["$filter", "$top", "$skip"]));
    let page = &doc["components"]["schemas"]["MachineActionList"]["properties"];
    assert!(
        page.get("@odata.context").is_some() && page.get("value").is_some() && page.get("@odata.nextLink").is_some()
    );
}
