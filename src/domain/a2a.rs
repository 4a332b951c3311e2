//! A2A requests as the proxy accepts them: JSON-RPC 2.0 (<https://www.jsonrpc.org/specification>)
//! carrying an A2A method such as `message/send`. The reference canvas posts
//! `{"method","params"}` without the envelope; like the reference platform, the proxy wraps
//! such a body in `{"jsonrpc":"2.0","id",…}` and gives `params.message` a `messageId` when it
//! has none (the A2A SDKs require one).

use serde_json::{Map, Value};

use super::validation::FieldError;

/// Longest `method`, in bytes.
pub const METHOD_MAX_BYTES: usize = 255;

/// A request ready to forward.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcRequest {
    /// The JSON-RPC method (`message/send`, `tasks/get`, …).
    pub method: String,
    /// The full envelope sent to the agent.
    pub envelope: Value,
}

fn invalid(reason: impl Into<String>) -> FieldError {
    FieldError::new("request", reason)
}

impl RpcRequest {
    /// Parses a proxy request body. `new_id` makes the ids the proxy adds (request id,
    /// messageId). Errors name what is wrong; they become 400.
    pub fn parse(
        body: Value,
        mut new_id: impl FnMut() -> String,
    ) -> Result<RpcRequest, FieldError> {
        let Value::Object(mut object) = body else {
            return Err(invalid("must be a JSON-RPC 2.0 object"));
        };
        let method = match object.get("method") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            Some(Value::String(_)) | None => return Err(invalid("method is required")),
            Some(_) => return Err(invalid("method must be a string")),
        };
        if method.len() > METHOD_MAX_BYTES {
            return Err(invalid(format!(
                "method must be at most {METHOD_MAX_BYTES} bytes"
            )));
        }
        match object.get("params") {
            None | Some(Value::Object(_)) | Some(Value::Array(_)) => {}
            Some(_) => return Err(invalid("params must be an object or an array")),
        }
        let mut envelope = match object.get("jsonrpc") {
            Some(Value::String(v)) if v == "2.0" => {
                match object.get("id") {
                    None => {
                        object.insert("id".into(), Value::String(new_id()));
                    }
                    Some(Value::String(_) | Value::Number(_) | Value::Null) => {}
                    Some(_) => return Err(invalid("id must be a string, a number or null")),
                }
                object
            }
            Some(_) => return Err(invalid("jsonrpc must be \"2.0\"")),
            None => {
                let mut wrapped = Map::new();
                wrapped.insert("jsonrpc".into(), Value::String("2.0".into()));
                wrapped.insert("id".into(), Value::String(new_id()));
                wrapped.insert("method".into(), Value::String(method.clone()));
                if let Some(params) = object.remove("params") {
                    wrapped.insert("params".into(), params);
                }
                wrapped
            }
        };
        if let Some(Value::Object(params)) = envelope.get_mut("params") {
            if let Some(Value::Object(message)) = params.get_mut("message") {
                if !message.contains_key("messageId") {
                    message.insert("messageId".into(), Value::String(new_id()));
                }
            }
        }
        Ok(RpcRequest {
            method,
            envelope: Value::Object(envelope),
        })
    }
}

/// The `error.message` of a JSON-RPC error answer, if the answer is one.
pub fn rpc_error_message(answer: &Value) -> Option<String> {
    let error = answer.get("error")?;
    Some(match error.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("id-{n}")
        }
    }

    #[test]
    fn the_canvas_body_is_wrapped_and_given_a_message_id() {
        let body = json!({ "method": "message/send", "params": { "message": { "role": "user", "parts": [] } } });
        let rpc = RpcRequest::parse(body, ids()).unwrap();
        assert_eq!(rpc.method, "message/send");
        assert_eq!(
            rpc.envelope,
            json!({ "jsonrpc": "2.0", "id": "id-1", "method": "message/send", "params": { "message": { "role": "user", "parts": [], "messageId": "id-2" } } })
        );
    }

    #[test]
    fn a_full_envelope_is_kept() {
        let body =
            json!({ "jsonrpc": "2.0", "id": 7, "method": "tasks/get", "params": { "id": "t" } });
        let rpc = RpcRequest::parse(body.clone(), ids()).unwrap();
        assert_eq!(rpc.envelope, body);
    }

    #[test]
    fn what_is_not_json_rpc_is_refused() {
        for bad in [
            json!([1]),
            json!("x"),
            json!({}),
            json!({ "method": 3 }),
            json!({ "method": "" }),
            json!({ "jsonrpc": "1.0", "method": "m" }),
            json!({ "method": "m", "params": 3 }),
            json!({ "jsonrpc": "2.0", "method": "m", "id": {} }),
            json!({ "method": "m".repeat(256) }),
        ] {
            assert!(RpcRequest::parse(bad.clone(), ids()).is_err(), "{bad}");
        }
    }

    #[test]
    fn rpc_errors_are_recognised() {
        assert_eq!(
            rpc_error_message(&json!({ "error": { "code": -32601, "message": "no such method" } })),
            Some("no such method".into())
        );
        assert_eq!(rpc_error_message(&json!({ "result": {} })), None);
    }
}
