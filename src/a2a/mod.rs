//! The only place Canopy calls out: the A2A proxy's HTTP client, with its timeouts, size limit
//! and address rules (DESIGN.md "Outbound calls").
//!
//! - Only the workspace's registered URL is called: the caller chooses the workspace, never the
//!   address.
//! - Redirects are never followed (a 3xx answer is an error), so a redirect cannot send the
//!   request to another host.
//! - Every address the URL's host resolves to is checked before connecting, by the client's own
//!   resolver (so a name that re-resolves between check and connect cannot slip through), and
//!   IP literals are checked directly: link-local and cloud-metadata addresses are always
//!   refused; loopback and private ranges only when configured so
//!   (`A2A_ALLOW_PRIVATE_ADDRESSES=0`).
//! - The answer is read up to `A2A_MAX_RESPONSE_BYTES`; the call is bounded by its timeout.
//! - No proxy from the environment is used: the checked address is the one connected to.

#![warn(missing_docs)]

pub mod address;

/// Sent on every proxied call. A registered URL that points back at a Canopy proxy route
/// (this instance or another) would otherwise turn one call into a chain of calls; the proxy
/// refuses a request that carries it with 508 Loop Detected (RFC 5842 §7.2).
pub const HOP_HEADER: &str = "x-canopy-a2a-hop";

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;

pub use address::{AddressPolicy, Refusal};

/// How long connecting to an agent may take, within the call's timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an agent answered.
#[derive(Debug)]
pub struct AgentAnswer {
    /// The agent's HTTP status.
    pub status: u16,
    /// The agent's body as received, at most the client's `max_response_bytes` long.
    pub body: Bytes,
}

/// Why a call produced no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The URL cannot be called by this client (not http, no host).
    #[error("agent URL is not callable: {0}")]
    BadUrl(String),
    /// The address rules refuse where the URL points.
    #[error("agent address refused: {0}")]
    Refused(#[from] Refusal),
    /// Connection refused, reset, DNS failure, …
    #[error("agent unreachable: {0}")]
    Unreachable(String),
    /// No complete answer within the timeout.
    #[error("agent did not answer within {0:?}")]
    Timeout(Duration),
    /// The answer is larger than the configured bound.
    #[error("agent answer exceeds {0} bytes")]
    TooLarge(usize),
    /// The agent answered with a redirect, which is never followed.
    #[error("agent answered with a redirect (HTTP {0}); redirects are not followed")]
    Redirect(u16),
}

/// The outbound client: one per application, shared by every request.
#[derive(Clone)]
pub struct A2aClient {
    http: reqwest::Client,
    policy: AddressPolicy,
    max_response_bytes: usize,
}

impl A2aClient {
    /// `max_response_bytes`: the largest answer read; `policy`: which addresses may be called.
    pub fn new(policy: AddressPolicy, max_response_bytes: usize) -> anyhow::Result<A2aClient> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .dns_resolver(Arc::new(CheckedResolver { policy }))
            .user_agent(concat!("canopy/", env!("CARGO_PKG_VERSION"), " a2a-proxy"))
            .build()?;
        Ok(A2aClient {
            http,
            policy,
            max_response_bytes,
        })
    }

    /// POSTs `body` (a JSON-RPC request) to `url` and reads the answer, within `timeout`.
    pub async fn call(
        &self,
        url: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<AgentAnswer, CallError> {
        let parsed = url::Url::parse(url).map_err(|e| CallError::BadUrl(e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(CallError::BadUrl(format!(
                "scheme {:?} is not supported (http only in this build)",
                parsed.scheme()
            )));
        }
        match parsed.host() {
            None => return Err(CallError::BadUrl("no host".into())),
            // IP literals never reach the resolver: check them here.
            Some(url::Host::Ipv4(ip)) => self.policy.check(ip.into())?,
            Some(url::Host::Ipv6(ip)) => self.policy.check(ip.into())?,
            Some(url::Host::Domain(_)) => {}
        }
        let deadline = Instant::now() + timeout;
        let exchange = async {
            let response = self
                .http
                .post(parsed)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, "application/json")
                .header(HOP_HEADER, "1")
                .body(body)
                .send()
                .await
                .map_err(classify)?;
            let status = response.status().as_u16();
            if response.status().is_redirection() {
                return Err(CallError::Redirect(status));
            }
            if response
                .content_length()
                .is_some_and(|n| n > self.max_response_bytes as u64)
            {
                return Err(CallError::TooLarge(self.max_response_bytes));
            }
            let mut response = response;
            let mut read = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(classify)? {
                if read.len() + chunk.len() > self.max_response_bytes {
                    return Err(CallError::TooLarge(self.max_response_bytes));
                }
                read.extend_from_slice(&chunk);
            }
            Ok(AgentAnswer {
                status,
                body: Bytes::from(read),
            })
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(timeout)),
        }
    }
}

/// Maps reqwest's errors to ours; the address refusal raised by the resolver is found in the
/// error's source chain.
fn classify(err: reqwest::Error) -> CallError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return CallError::Refused(refusal.clone());
        }
        source = e.source();
    }
    if err.is_timeout() {
        // The only timeout reqwest enforces here is the connect timeout: nobody answered the
        // connection, which is unreachable, not slow.
        return CallError::Unreachable(format!(
            "no connection within {}s",
            CONNECT_TIMEOUT.as_secs()
        ));
    }
    // The chain names the cause (connection refused, dns error, …) without internals.
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        message = format!("{message}: {e}");
        source = e.source();
    }
    CallError::Unreachable(message)
}

/// Resolves with the system resolver, then keeps only addresses the policy allows; a name
/// that resolves to nothing allowed is refused (the first refusal is the error).
struct CheckedResolver {
    policy: AddressPolicy,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut allowed = Vec::new();
            let mut first_refusal = None;
            for addr in resolved {
                match policy.check(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(refusal) => {
                        first_refusal.get_or_insert(refusal);
                    }
                }
            }
            // Any refused address refuses the name: a host that also resolves to a metadata
            // address is not one to trust with the others.
            if let Some(refusal) = first_refusal {
                return Err(Box::new(refusal) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}
