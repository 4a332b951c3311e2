//! `GET /openapi.json`: an OpenAPI 3.1 document that describes every API route the server
//! registers, with JSON error bodies and the security schemes.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

/// The document, fetched over HTTP as a client would.
async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.expect("the document is JSON")
}

/// A concrete URL for a templated path: ids become a fresh UUID, a secret name a valid one.
fn concrete(path: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    path.replace("{id}", &id)
        .replace("{workspace_id}", &id)
        .replace("{key}", "SOME_KEY")
}

#[tokio::test]
async fn openapi_document_is_3_1_and_describes_every_registered_route() {
    let (app, _db) = spawn_app().await;
    let doc = document(&app).await;

    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "OpenAPI version {version}");

    // Every (method, path) the route table registers is documented, and nothing else is.
    let registered: BTreeSet<(String, String)> = canopy::http::API_ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                documented.insert((method.to_string(), path.clone()));
            }
        }
    }
    assert_eq!(
        registered, documented,
        "registered routes and documented operations differ"
    );
    assert!(registered.contains(&("get".into(), "/ws".into())));
    assert!(registered.contains(&("get".into(), "/openapi.json".into())));

    // Each registered route reaches its handler: the default service's bare "not found" would
    // mean the table and `configure` disagree.
    for (method, path) in &registered {
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url(&concrete(path)))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        assert!(
            !(status == 404 && body.contains("\"not found\"")),
            "{method} {path} is documented but not routed: {status} {body}"
        );
    }

    // Error responses are `{"error": string}`; operation ids are unique.
    let mut operation_ids = BTreeSet::new();
    for (method, path) in &documented {
        let operation = &paths[path][method];
        let id = operation["operationId"].as_str().expect("operationId");
        assert!(operation_ids.insert(id.to_string()), "duplicate {id}");
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2') || s == "101"),
            "{method} {path} documents no success"
        );
        for (status, response) in responses {
            if status.starts_with('4') || (status.starts_with('5') && path != "/health") {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_body["properties"]["error"]["type"], "string");
    assert_eq!(error_body["required"], serde_json::json!(["error"]));

    // /ws is listed with its upgrade and refusals.
    let ws = &paths["/ws"]["get"]["responses"];
    for status in ["101", "401", "403"] {
        assert!(ws.get(status).is_some(), "/ws documents {status}");
    }

    // Security schemes: the admin bearer token, the workspace token and X-Workspace-ID.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["admin_token"]["scheme"], "bearer");
    assert_eq!(schemes["workspace_token"]["scheme"], "bearer");
    assert_eq!(schemes["workspace_id"]["in"], "header");
    assert_eq!(schemes["workspace_id"]["name"], "X-Workspace-ID");
    assert!(paths["/workspaces"]["post"]["security"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s.get("admin_token").is_some()));

    // JSON request bodies are declared as application/json.
    let create = &paths["/workspaces"]["post"]["requestBody"]["content"];
    assert!(create.get("application/json").is_some());
}

/// `configure` registers API routes only through the route table (`with_api_routes!`), so the
/// check above covers every route: any other `.route(` in `http/mod.rs` must be a static file,
/// and no resource or scope may bypass the table.
#[test]
fn configure_registers_api_routes_only_through_the_table() {
    let source = include_str!("../../src/http/mod.rs");
    for (i, piece) in source.split(".route(\"").enumerate().skip(1) {
        let path = piece.split('"').next().unwrap_or_default();
        assert!(
            canopy::http::STATIC_PATHS.contains(&path),
            "route #{i} `{path}` is registered outside the route table: add it to \
             with_api_routes! (and document it), or to STATIC_PATHS if it is a static file"
        );
    }
    for bypass in ["web::resource(", "web::scope(", ".service("] {
        assert!(
            !source.contains(bypass),
            "`{bypass}` in http/mod.rs bypasses the route table"
        );
    }
}
