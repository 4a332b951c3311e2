//! `GET /openapi.json`: the API described as OpenAPI 3.1, generated from the code.
//!
//! Every handler in the route table (`with_api_routes!` in `http/mod.rs`) carries
//! `#[utoipa::path]`, and its request and response bodies derive `ToSchema`; the document is
//! assembled here from that same table, so a route cannot be registered without being listed
//! (a handler without `#[utoipa::path]` does not compile), and `tests/api/openapi.rs` checks that
//! each registered method and path is the one documented. Static files are not described.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{
    a2a, activity, agents, approvals, canvas, events, health, keys, openapi, registry, secrets,
    session, workspaces, ws,
};

/// The body of every error response: `{"error": "<what is wrong, naming the field>"}`. Some
/// statuses add fields (409 `confirmation_required` adds the children, 410 the last event,
/// 301 `forwarded_to`).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, in the API's words (names the field and the rule for a 400).
    pub error: String,
}

/// A short acknowledgement, `{"status": "<what happened>"}` (`updated`, `saved`, `sent`,
/// `deleted`, …).
#[derive(Serialize, ToSchema)]
pub struct StatusBody {
    pub status: String,
}

/// Security scheme names used by the operations.
pub const ADMIN_TOKEN: &str = "admin_token";
pub const WORKSPACE_TOKEN: &str = "workspace_token";
pub const WORKSPACE_ID_HEADER: &str = "workspace_id";

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <credential>`: a person's API key (`cnp_…`, \
                         `POST /keys`) or the bootstrap `$ADMIN_TOKEN`; browsers may use the \
                         `canopy_session` cookie from `POST /session` instead. Each operation's \
                         `x-canopy-requires` names the role it needs. With ADMIN_TOKEN unset \
                         (loopback only) the server is open.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            WORKSPACE_TOKEN,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`: the workspace token returned once by \
                         `POST /registry/register`. Needed to act for a workspace once it holds one.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            WORKSPACE_ID_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Workspace-ID",
                "The calling workspace's id, sent with its workspace token (discovery, agent \
                 WebSocket).",
            ))),
        );
    }
}

macro_rules! api_doc {
    ($(([$($method:ident),+], $path:literal, $module:ident :: $handler:ident, $requirement:ident)),* $(,)?) => {
        /// The OpenAPI document: every handler of the route table, the body schemas they
        /// reference, and the security schemes.
        #[derive(OpenApi)]
        #[openapi(
            info(
                title = "Canopy",
                description = "The backend of a live org-chart canvas for AI agent workspaces. \
                    Every body is JSON (`Content-Type: application/json`); errors are \
                    `{\"error\": \"…\"}`; ids are UUIDs. The event stream is `GET /ws` \
                    (WebSocket; see the README).",
            ),
            paths($($module::$handler),*),
            components(schemas(ErrorBody, StatusBody)),
            modifiers(&SecuritySchemes, &OperationIds),
        )]
        pub struct ApiDoc;

        /// Unique operation ids, `module.handler` (`.method` appended for a handler serving
        /// several methods): handler names alone repeat across modules (`list`, `delete`).
        struct OperationIds;

        impl Modify for OperationIds {
            fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
                $(name_operations(
                    openapi,
                    $path,
                    &[$(stringify!($method)),+],
                    concat!(stringify!($module), ".", stringify!($handler)),
                    super::$requirement,
                );)*
            }
        }
    };
}
super::with_api_routes!(api_doc);

/// Names each operation and records who may call it (`x-canopy-requires`: `public`,
/// `viewer`, `editor`, `admin`, `agent or <role>`), from the route table.
fn name_operations(
    openapi: &mut utoipa::openapi::OpenApi,
    path: &str,
    methods: &[&str],
    name: &str,
    requirement: super::principal::Requirement,
) {
    let Some(item) = openapi.paths.paths.get_mut(path) else {
        return;
    };
    for method in methods {
        let operation = match *method {
            "get" => item.get.as_mut(),
            "post" => item.post.as_mut(),
            "put" => item.put.as_mut(),
            "patch" => item.patch.as_mut(),
            "delete" => item.delete.as_mut(),
            _ => None,
        };
        if let Some(operation) = operation {
            operation
                .extensions
                .get_or_insert_with(Default::default)
                .insert(
                    "x-canopy-requires".into(),
                    serde_json::Value::String(requirement.describe()),
                );
            operation.operation_id = Some(if methods.len() > 1 {
                format!("{name}.{method}")
            } else {
                name.to_string()
            });
        }
    }
}

/// The document serialized once (it is the same for the life of the process).
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes")
    })
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
    ),
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
