//! One error type for every failure a request can meet, mapped to a status and a JSON body
//! `{"error": …}`. Anything unexpected is logged once, with its cause, and answered with a
//! bland 500: internals never reach the body.

#![warn(missing_docs)]

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::domain::validation::FieldError;
use crate::store::StoreError;

/// A failed request: each variant fixes the HTTP status, and the body is `{"error": <Display>}`
/// unless the variant says otherwise. Handlers and commands return it through [`AppResult`].
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: malformed or invalid input; the message names the field and the rule it broke.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no credentials, or a token/cookie that matches nothing.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: the caller is known but may not do this (e.g. a workspace token acting on another
    /// workspace).
    #[error("{0}")]
    Forbidden(String),
    /// 404: the named resource does not exist; the message says which kind.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state; the message says how.
    #[error("{0}")]
    Conflict(String),
    /// 413: the body exceeds the route's size limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// A body that is not `application/json` (RFC 9110 §15.5.16).
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// A `Host` this server does not answer for (RFC 9110 §15.5.20): DNS rebinding, or a name
    /// missing from ALLOWED_HOSTS.
    #[error("{0}")]
    MisdirectedRequest(String),
    /// 409 with a body saying what the conflict is (a delete that needs `?confirm=true`, an
    /// approval decided first elsewhere): the command layer's form of a conflict with details.
    #[error("conflict")]
    ConflictWith(serde_json::Value),
    /// 410: the workspace was removed; the body says so (an agent call on a removed workspace).
    #[error("gone")]
    GoneWith(serde_json::Value),
    /// A status with a body of its own, for the HTTP layer (the A2A proxy's upstream errors).
    #[error("{status}")]
    WithBody {
        /// The status to answer with.
        status: StatusCode,
        /// The JSON body, sent as is.
        body: serde_json::Value,
    },
    /// 301 to the workspace that replaced a removed one; the value is its path
    /// (`/workspaces/{id}`), sent as `Location` and as `forwarded_to` in the body.
    #[error("moved to {0}")]
    MovedPermanently(String),
    /// 412 (RFC 9110 §15.5.13): an `If-Match` that names no current version. The body carries
    /// the workspace as it is now, and `ETag` its version, so the client can show what changed.
    #[error("precondition failed: the workspace is at version {version}")]
    PreconditionFailed {
        /// The workspace's current version (sent as the `ETag` and as `version`).
        version: i64,
        /// The workspace as it is now, in its API shape (sent as `workspace`).
        current: serde_json::Value,
    },
    /// 503 with `Retry-After: 1` ([`RETRY_AFTER_SECONDS`]): the database is busy or down; the
    /// request may succeed if retried. Logged once as a warning.
    #[error("{0}")]
    Unavailable(String),
    /// 500: anything unexpected. The cause chain is logged once; the body says only
    /// "internal server error".
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// 404 `{"error": "workspace not found"}`: the one wording every workspace route uses.
    pub fn workspace_not_found() -> Self {
        AppError::NotFound("workspace not found".into())
    }

    /// 400 `{"error": "invalid workspace ID"}`: a path or body id that is not a UUID.
    pub fn invalid_workspace_id() -> Self {
        AppError::BadRequest("invalid workspace ID".into())
    }
}

impl From<FieldError> for AppError {
    fn from(e: FieldError) -> Self {
        AppError::BadRequest(e.to_string())
    }
}

/// What a 503 asks the client to wait before trying again, in seconds (`Retry-After`).
pub const RETRY_AFTER_SECONDS: u64 = 1;

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        if e.is_busy() {
            AppError::Unavailable(
                if matches!(e, StoreError::Unavailable(_)) {
                    "database unavailable"
                } else {
                    "database busy"
                }
                .into(),
            )
        } else {
            AppError::Internal(e.into())
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::from(StoreError::Query(e))
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            AppError::ConflictWith(_) => StatusCode::CONFLICT,
            AppError::GoneWith(_) => StatusCode::GONE,
            AppError::WithBody { status, .. } => *status,
            AppError::MovedPermanently(_) => StatusCode::MOVED_PERMANENTLY,
            AppError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        match self {
            AppError::WithBody { body, .. }
            | AppError::ConflictWith(body)
            | AppError::GoneWith(body) => HttpResponse::build(status).json(body),
            AppError::MovedPermanently(location) => HttpResponse::build(status)
                .insert_header(("Location", location.as_str()))
                .json(json!({ "error": "workspace moved", "forwarded_to": location })),
            AppError::PreconditionFailed { version, current } => HttpResponse::build(status)
                .insert_header((
                    actix_web::http::header::ETAG,
                    crate::domain::versions::etag(*version),
                ))
                .json(json!({
                    "error": format!("If-Match: the workspace is at version {version}"),
                    "version": version,
                    "workspace": current,
                })),
            AppError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                HttpResponse::build(status).json(json!({ "error": "internal server error" }))
            }
            AppError::Unavailable(msg) => {
                tracing::warn!(reason = %msg, "answering 503");
                HttpResponse::build(status)
                    .insert_header(("Retry-After", RETRY_AFTER_SECONDS.to_string()))
                    .json(json!({ "error": msg }))
            }
            other => HttpResponse::build(status).json(json!({ "error": other.to_string() })),
        }
    }
}

/// The result of a handler or command: `T`, or an [`AppError`] that becomes the response.
pub type AppResult<T> = Result<T, AppError>;
