//! A JSON body extractor whose errors are the app's: 413 past the size cap, 400 naming the
//! field for anything malformed (path-aware, so `canvas.x: invalid type` instead of a column
//! number).

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::{dev::Payload, web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::AppError;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::PayloadTooLarge
                } else {
                    AppError::BadRequest(format!("could not read request body: {e}"))
                }
            })?;
            parse(&bytes).map(Json)
        })
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(AppError::BadRequest(
            "request body must be a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde's messages name types, never internals; strip the position suffix.
        let message = inner.to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_string();
        if path == "." || path == "?" || path.is_empty() {
            AppError::BadRequest(format!("invalid JSON body: {message}"))
        } else {
            AppError::BadRequest(format!("{path}: {message}"))
        }
    })
}

/// For PATCH bodies: distinguishes a field that is absent (`None`) from one set to null
/// (`Some(None)`).
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(de).map(Some)
}
