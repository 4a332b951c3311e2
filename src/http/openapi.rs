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
    /// What happened.
    pub status: String,
}

/// An error response with `description`, its body an [`ErrorBody`].
fn error_response(
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::response::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// Declares sets of error responses that many operations answer alike, each named once and
/// listed by name in `#[utoipa::path(responses(…))]` beside the operation's own tuples.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: $($status:literal => $description:literal),+;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                [$(($status, $description)),+]
                    .into_iter()
                    .map(|(status, description)| (status.to_string(), error_response(description)))
                    .collect()
            }
        }
    )*};
}

error_responses! {
    /// 400 for a path id that is not a UUID or a field breaking its rule.
    PathRefused: "400" => "Invalid input (a path id that is not a UUID, a field breaking its rule)";
    /// 400 for a field breaking its rule (operations without a path id).
    InputRefused: "400" => "Invalid input; the message names the field and the rule";
    /// 401 for a missing or wrong credential.
    TokenRefused: "401" => "Missing or invalid token";
    /// 404 for an unknown workspace.
    NoWorkspace: "404" => "Workspace not found";
    /// 409 for a change the current state forbids.
    StateConflict: "409" => "Conflict with the current state";
    /// 410 for a removed workspace.
    WorkspaceGone: "410" => "The workspace was removed";
    /// 413 and 415: what `http::body` refuses before a handler runs.
    BodyRefused:
        "413" => "Body over 1 MiB, or a field over its limit",
        "415" => "Body not sent as `Content-Type: application/json`";
    /// 503 while the database cannot answer.
    DbDown: "503" => "Database unavailable";
    /// 503 for a secret write: the database, or secrets disabled.
    SecretsDown: "503" => "Database unavailable, or secrets disabled (no SECRETS_ENCRYPTION_KEY)";
}

/// Security scheme names used by the operations.
pub const ADMIN_TOKEN: &str = "admin_token";
/// The scheme of a workspace's own token.
pub const WORKSPACE_TOKEN: &str = "workspace_token";
/// The scheme of the `X-Workspace-ID` header.
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
            modifiers(&SecuritySchemes, &OperationIds, &IdempotencyKeys),
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

/// Adds the optional `Idempotency-Key` header, and the answers it can give, to every POST,
/// PUT, PATCH and DELETE (`http::idempotency` serves them all, outside the handlers).
struct IdempotencyKeys;

impl Modify for IdempotencyKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        let error = error_response;
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let parameter = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Retry safely: the first response to this key (1-255 visible ASCII \
                         characters other than quote and backslash, bare or quoted) is kept 24 h per caller and returned again for the same \
                         request, which does not run twice (README: Retries that cannot \
                         double-apply).",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(super::idempotency::MAX_KEY_BYTES))
                            .pattern(Some("^([!#-\\[\\]-~]+|\"[!#-\\[\\]-~]+\")$")),
                    ))
                    .build();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter);
                let responses = &mut operation.responses.responses;
                responses.entry("409".into()).or_insert_with(|| {
                    error("A request with this `Idempotency-Key` is still in progress")
                });
                responses.entry("422".into()).or_insert_with(|| {
                    error("This `Idempotency-Key` was used for a different request")
                });
                responses.entry("400".into()).or_insert_with(|| {
                    error("Invalid input (here: a malformed `Idempotency-Key`)")
                });
            }
        }
    }
}

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
            if operation.security.is_none() {
                operation.security = default_security(requirement);
            }
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

/// The security an operation documents when its `#[utoipa::path]` names none, from what the
/// route table requires of its caller: nothing (open mode) or a person's credential, and on
/// agent routes also a workspace's token; public routes document none.
fn default_security(
    requirement: super::principal::Requirement,
) -> Option<Vec<utoipa::openapi::security::SecurityRequirement>> {
    use super::principal::Requirement;
    use utoipa::openapi::security::SecurityRequirement;
    let scheme = |name: &str| SecurityRequirement::new(name, Vec::<String>::new());
    let open_or_person = vec![SecurityRequirement::default(), scheme(ADMIN_TOKEN)];
    match requirement {
        Requirement::Public => None,
        Requirement::Role(_) => Some(open_or_person),
        Requirement::AgentOr(_) => Some([open_or_person, vec![scheme(WORKSPACE_TOKEN)]].concat()),
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
