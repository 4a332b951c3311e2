//! Live collaboration (issue 15): workspace versions with `ETag` / `If-Match`, `Idempotency-Key`,
//! and drag previews on the volatile lane.

mod drag;
mod idempotency;
mod versions;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::helpers::TestApp;

/// Sends a request with extra headers; returns status, headers and the JSON body.
pub async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let mut rb = app.client.request(method, app.url(path));
    if let Some(token) = &app.admin_token {
        rb = rb.bearer_auth(token);
    }
    for (name, value) in headers {
        rb = rb.header(*name, *value);
    }
    if let Some(body) = body {
        rb = rb.json(&body);
    }
    let response = rb.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response to {path} is JSON: {text:?}"));
    (status, headers, value)
}

pub fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
