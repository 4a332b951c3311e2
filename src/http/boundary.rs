//! The first check every request meets, before routing and before any work: is it addressed
//! to this server, and may the page that sent it act here?
//!
//! - **Host allow-list** (DNS rebinding). A page on `rebind.example` whose name later resolves
//!   to 127.0.0.1 is same-origin with itself, so the browser lets it read and write; only the
//!   `Host` header it sends (`rebind.example:PORT`) tells it apart. Loopback names
//!   (`localhost`, `*.localhost`, 127.0.0.0/8, `::1`) are always served; other names only when
//!   listed in `ALLOWED_HOSTS`. Anything else is 421 Misdirected Request (RFC 9110 §15.5.20).
//! - **Cross-site requests** (CSRF). A page on any site can make a browser send a "simple"
//!   POST (`text/plain`, no preflight) and the server would act before CORS hides the answer.
//!   A state-changing request (POST, PUT, PATCH, DELETE), a WebSocket upgrade, or a CORS
//!   preflight whose `Origin` is neither this server's own nor in `CORS_ORIGINS` is refused
//!   with 403; so is `Origin: null` (sandboxed frames, `file:` pages) and, without `Origin`,
//!   `Sec-Fetch-Site: cross-site`. Clients that are not browsers send no `Origin` and pass.
//!
//! Both checks hold in token mode too: a token in a browser is only as safe as the page using it.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use crate::app::AppState;
use crate::config::Config;
use crate::error::AppError;

/// Who may address this server, and from which pages; built once from the configuration.
#[derive(Clone, Debug)]
pub struct Boundary {
    allowed_hosts: Vec<String>,
    cors_origins: Vec<String>,
}

impl Boundary {
    /// The hosts and origins `config` allows, with the listen address added as a host name.
    pub fn from_config(config: &Config) -> Boundary {
        let mut allowed_hosts = config.allowed_hosts.clone();
        // A specific listen address is a name clients use to reach it.
        if !config.host.is_unspecified() {
            allowed_hosts.push(config.host.to_string());
        }
        Boundary {
            allowed_hosts,
            cors_origins: config.cors_origins.clone(),
        }
    }

    /// Whether `host` (a `Host` header value, with or without port) names this server.
    pub fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        is_loopback_name(&name)
            || self.allowed_hosts.iter().any(|allowed| {
                allowed == "*"
                    || *allowed == name
                    || allowed.starts_with('.') && name.ends_with(allowed.as_str())
            })
    }

    /// 421 for a `Host` not served here, 403 for a cross-site request that could act.
    pub fn check(&self, req: &ServiceRequest) -> Result<(), AppError> {
        let headers = req.headers();
        let host_header = headers.get(header::HOST).map(|h| h.to_str().ok());
        // An absolute-form target (`POST http://name/…`) names the host itself, and it wins
        // over `Host` (RFC 9112 §3.2.2): both must be served here.
        let authority = req.uri().authority().map(|a| a.to_string());
        let misdirected =
            || AppError::MisdirectedRequest("host not served here: add it to ALLOWED_HOSTS".into());
        if matches!(host_header, Some(None)) {
            return Err(misdirected());
        }
        let host = host_header
            .flatten()
            .map(str::to_string)
            .or(authority.clone());
        for name in [host.as_deref(), authority.as_deref()]
            .into_iter()
            .flatten()
        {
            if !self.host_allowed(name) {
                return Err(misdirected());
            }
        }
        // U+0000 is refused in every query string, whether or not the route reads it.
        if has_nul_escape(req.query_string()) {
            return Err(AppError::BadRequest(
                "query: must not contain the character U+0000".into(),
            ));
        }
        // What the A2A proxy sends carries its hop header: on any route of a Canopy server it
        // means an agent URL leads back here (to `…/a2a`, or to `…/pause`, `/canvas/arrange`),
        // and the proxy must not act through it with its caller's reach (508, RFC 5842 §7.2).
        if headers.contains_key(crate::a2a::HOP_HEADER) {
            return Err(AppError::WithBody {
                status: actix_web::http::StatusCode::LOOP_DETECTED,
                body: serde_json::json!({
                    "error": "the agent URL leads back to a Canopy route"
                }),
            });
        }
        if !could_act(req) {
            return Ok(());
        }
        match headers.get(header::ORIGIN).map(|o| o.to_str()) {
            Some(Ok(origin)) => {
                let origin = origin.trim_end_matches('/');
                let same_origin = host.as_deref().is_some_and(|h| is_same_origin(origin, h));
                if same_origin || self.cors_origins.iter().any(|o| o == origin) {
                    Ok(())
                } else {
                    Err(cross_site())
                }
            }
            Some(Err(_)) => Err(cross_site()),
            None if headers
                .get("sec-fetch-site")
                .is_some_and(|s| s.as_bytes().eq_ignore_ascii_case(b"cross-site")) =>
            {
                Err(cross_site())
            }
            None => Ok(()),
        }
    }
}

fn cross_site() -> AppError {
    AppError::Forbidden("cross-origin request refused: origin not allowed".into())
}

/// A request that can change state or open the live stream (which carries everything): any
/// request to the stream's path, or naming `websocket` anywhere in `Upgrade`, counts.
fn could_act(req: &ServiceRequest) -> bool {
    let method = req.method();
    let preflight = method == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let upgrade = req.headers().get_all(header::UPGRADE).any(|u| {
        u.to_str().map_or(true, |u| {
            u.split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
        })
    });
    preflight
        || upgrade
        || req.path() == STREAM_PATH
        || !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The live stream's path: its requests are checked like writes, whatever their headers say.
const STREAM_PATH: &str = "/ws";

/// `%00` anywhere in a raw query string (the only way a URI carries U+0000).
fn has_nul_escape(query: &str) -> bool {
    query.as_bytes().windows(3).any(|w| w == b"%00")
}

/// An `Origin` (`scheme://host[:port]`) naming the host the request was sent to.
pub fn is_same_origin(origin: &str, host: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `::1`. Anything after the name that is
/// not `:digits` is kept, so `127.0.0.1:80@evil.test` is a name no list holds.
fn host_name(host: &str) -> &str {
    let is_port = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, "")) => name,
            Some((name, port)) if port.strip_prefix(':').is_some_and(is_port) => name,
            _ => host,
        };
    }
    match host.rsplit_once(':') {
        // More than one colon without brackets: a bare IPv6 address, no port.
        Some((name, port)) if !name.contains(':') && is_port(port) => name,
        _ => host,
    }
}

/// `localhost`, `*.localhost` (RFC 6761 §6.3: always loopback) and loopback addresses.
fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || (name.len() > ".localhost".len() && name.ends_with(".localhost"))
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The middleware: refuses before routing, so a refused request does no work.
pub async fn enforce(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AppState>>() {
        Some(state) => state.boundary.check(&req),
        None => Ok(()),
    };
    match verdict {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => {
            tracing::info!(
                method = %req.method(),
                path = req.path(),
                reason = %refusal,
                "request refused at the boundary"
            );
            let response = refusal.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boundary(hosts: &[&str]) -> Boundary {
        Boundary {
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            cors_origins: vec![],
        }
    }

    #[test]
    fn loopback_names_are_always_served() {
        let b = boundary(&[]);
        for host in [
            "localhost",
            "localhost:8080",
            "127.0.0.1:80",
            "127.1.2.3",
            "[::1]:8080",
            "app.localhost:3000",
            "LOCALHOST",
        ] {
            assert!(b.host_allowed(host), "{host}");
        }
        for host in [
            "rebind.example:8080",
            "10.0.0.1",
            "localhost.evil.test",
            "[::2]:80",
            "127.0.0.1:80@evil.test",
            "127.0.0.1:abc",
            "[::1]:80x",
            ".localhost",
        ] {
            assert!(!b.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn configured_names_and_suffixes() {
        let b = boundary(&["canopy.example.com", ".corp.test"]);
        assert!(b.host_allowed("Canopy.Example.com:443"));
        assert!(b.host_allowed("a.corp.test"));
        assert!(!b.host_allowed("corp.test.evil"));
        assert!(boundary(&["*"]).host_allowed("anything.test"));
    }

    #[test]
    fn same_origin_compares_scheme_less_authority() {
        assert!(is_same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!is_same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!is_same_origin("null", "127.0.0.1:8080"));
    }
}
