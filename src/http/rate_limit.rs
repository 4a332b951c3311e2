//! Rate limits, applied in one place (this middleware) before any work: a refused request
//! reads no body, touches no database and changes nothing.
//!
//! Token buckets ([`governor`], GCRA), one family per kind of caller:
//!
//! - **per token**: every request with `Authorization: Bearer <t>` spends from the bucket of
//!   that token, keyed by a hash of it (the token itself is never kept). The admin token has a
//!   bucket of its own with a larger budget, since every canvas of a deployment shares it. One
//!   agent's heartbeat or activity storm empties its own bucket only.
//! - **per person**: a request with an API key (`Bearer cnp_…`) or a browser session cookie
//!   spends from that person's bucket, keyed by a hash of the key or session id: each person
//!   has a budget of their own, instead of every canvas sharing one admin token's.
//! - **per client address**: every request except WebSocket upgrades. The token bucket is
//!   checked first, so a token over its limit does not also drain its address's budget, which
//!   other callers behind the same address share.
//! - **WebSocket upgrades per client address** (`GET /ws`): a bucket of their own, and they spend
//!   from no other, so a canvas reconnect storm cannot starve the API.
//!
//! The client address is the peer's, unless the peer is one of `TRUSTED_PROXIES`: then it is the
//! right-most `X-Forwarded-For` entry that is not itself a trusted proxy (everything to the left
//! of it was written by the client and may be forged). IPv6 clients are grouped by /64, the
//! smallest block a host is usually given.
//!
//! A refusal is `429 Too Many Requests` with `Retry-After` (whole seconds, RFC 9110 §10.2.3)
//! and `{"error":"rate limit exceeded","limit":"token"|"admin_token"|"person"|"address"|
//! "websocket_upgrades","retry_after":<seconds>}`.
//!
//! Memory: a keyed bucket that has refilled is indistinguishable from a new one, so
//! [`Limiter::retain_recent`] drops it; [`prune`] runs that every [`RETAIN_INTERVAL`], which
//! bounds the maps to the keys seen in the last interval plus a refill time.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, NotUntil, Quota};
use ipnet::IpNet;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::app::AppState;
use crate::config::{Config, RateLimit};

/// How often refilled buckets are forgotten.
pub const RETAIN_INTERVAL: Duration = Duration::from_secs(10);

/// The path whose requests are WebSocket upgrades.
const UPGRADE_PATH: &str = "/ws";

/// The first 16 bytes of a bearer token's SHA-256: enough to tell tokens apart, and the token
/// cannot be read back from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TokenKey([u8; 16]);

impl TokenKey {
    fn of(token: &str) -> TokenKey {
        let digest = Sha256::digest(token.as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        TokenKey(key)
    }
}

/// Which limit refused a request (the `limit` field of the 429 body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// A bearer token's own bucket (an agent's).
    Token,
    /// The admin token's bucket (larger: every canvas may share it).
    AdminToken,
    /// A person's bucket (their API key or session).
    Person,
    /// The client address's bucket.
    Address,
    /// WebSocket upgrades per client address.
    WebSocketUpgrades,
}

impl Bucket {
    /// The name used in the 429 body and the `canopy_rate_limited_total` metric.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Token => "token",
            Bucket::AdminToken => "admin_token",
            Bucket::Person => "person",
            Bucket::Address => "address",
            Bucket::WebSocketUpgrades => "websocket_upgrades",
        }
    }
}

/// A refused request: which bucket is empty, and when it will hold a request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The bucket that is empty.
    pub bucket: Bucket,
    /// When it holds a request again.
    pub retry_after: Duration,
}

impl Refusal {
    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// What the limits need to know about a request, read from it once.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    /// The client address (see [`client_address`]).
    pub address: IpAddr,
    /// The bearer token, if any.
    pub token: Option<&'a str>,
    /// Whether `token` is the admin token.
    pub admin: bool,
    /// The browser session cookie's value, if any.
    pub session: Option<&'a str>,
    /// Whether this is a WebSocket upgrade (`GET /ws`).
    pub upgrade: bool,
}

/// The configured buckets of one instance (limits are per instance, not cluster-wide).
pub struct Limiter {
    per_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_token: Option<DefaultKeyedRateLimiter<TokenKey>>,
    per_admin_token: Option<DefaultDirectRateLimiter>,
    per_person: Option<DefaultKeyedRateLimiter<TokenKey>>,
    ws_upgrades: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
    clock: DefaultClock,
}

fn quota(limit: RateLimit) -> Quota {
    Quota::per_second(limit.per_second).allow_burst(limit.burst)
}

impl Limiter {
    /// The buckets `config.rate_limits` turns on, and its `trusted_proxies`.
    pub fn new(config: &Config) -> Limiter {
        let limits = config.rate_limits;
        Limiter {
            per_address: limits
                .per_address
                .map(|l| DefaultKeyedRateLimiter::keyed(quota(l))),
            per_token: limits
                .per_token
                .map(|l| DefaultKeyedRateLimiter::keyed(quota(l))),
            per_admin_token: limits
                .per_admin_token
                .map(|l| DefaultDirectRateLimiter::direct(quota(l))),
            per_person: limits
                .per_person
                .map(|l| DefaultKeyedRateLimiter::keyed(quota(l))),
            ws_upgrades: limits
                .ws_upgrades_per_address
                .map(|l| DefaultKeyedRateLimiter::keyed(quota(l))),
            trusted_proxies: config.trusted_proxies.clone(),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one request from each bucket the caller draws on, narrowest first; the first
    /// empty one refuses it.
    pub fn check(&self, caller: &Caller<'_>) -> Result<(), Refusal> {
        let address = address_key(caller.address);
        if caller.upgrade {
            return self.spend(
                self.ws_upgrades.as_ref(),
                &address,
                Bucket::WebSocketUpgrades,
            );
        }
        match caller.token {
            Some(_) if caller.admin => {
                if let Some(limiter) = &self.per_admin_token {
                    limiter
                        .check()
                        .map_err(|until| self.refusal(Bucket::AdminToken, until))?;
                }
            }
            Some(key) if key.starts_with(super::principal::KEY_PREFIX) => {
                self.spend(self.per_person.as_ref(), &TokenKey::of(key), Bucket::Person)?
            }
            Some(token) => {
                self.spend(self.per_token.as_ref(), &TokenKey::of(token), Bucket::Token)?
            }
            None => {
                if let Some(session) = caller.session {
                    self.spend(
                        self.per_person.as_ref(),
                        &TokenKey::of(session),
                        Bucket::Person,
                    )?
                }
            }
        }
        self.spend(self.per_address.as_ref(), &address, Bucket::Address)
    }

    fn spend<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
        bucket: Bucket,
    ) -> Result<(), Refusal> {
        match limiter {
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|until| self.refusal(bucket, until)),
            None => Ok(()),
        }
    }

    fn refusal(
        &self,
        bucket: Bucket,
        until: NotUntil<<DefaultClock as Clock>::Instant>,
    ) -> Refusal {
        Refusal {
            bucket,
            retry_after: until.wait_time_from(self.clock.now()),
        }
    }

    /// Forgets buckets that have refilled (they behave exactly like new ones).
    pub fn retain_recent(&self) {
        fn retain<K: std::hash::Hash + Eq + Clone>(limiter: &Option<DefaultKeyedRateLimiter<K>>) {
            if let Some(limiter) = limiter {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        retain(&self.per_address);
        retain(&self.per_token);
        retain(&self.per_person);
        retain(&self.ws_upgrades);
    }

    /// Keyed buckets currently held (addresses, tokens and upgrade addresses together).
    pub fn tracked_keys(&self) -> usize {
        self.per_address.as_ref().map_or(0, |l| l.len())
            + self.per_token.as_ref().map_or(0, |l| l.len())
            + self.per_person.as_ref().map_or(0, |l| l.len())
            + self.ws_upgrades.as_ref().map_or(0, |l| l.len())
    }

    /// The client address of a request whose TCP peer is `peer` (see [`client_address`]).
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        client_address(peer, forwarded_for, &self.trusted_proxies)
    }
}

/// Runs [`Limiter::retain_recent`] every [`RETAIN_INTERVAL`] until shutdown.
pub async fn prune(limiter: Arc<Limiter>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(RETAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                limiter.retain_recent();
                metrics::gauge!("canopy_rate_limit_tracked_keys").set(limiter.tracked_keys() as f64);
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// The client address: `peer` itself unless it is in `trusted`; then the right-most address in
/// the `X-Forwarded-For` values (header lines in order, each a comma-separated list) that is not
/// in `trusted`. If every entry is trusted, the left-most one; an entry that is not an address
/// ends the walk at the trusted hop to its right (a trusted proxy writes only addresses).
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    for entry in forwarded_for.rev().flat_map(|line| line.rsplit(',')) {
        let Some(ip) = parse_forwarded(entry) else {
            break;
        };
        client = ip;
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim().trim_matches('"');
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .ok()
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
        .map(|ip: IpAddr| ip.to_canonical())
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let mask: u128 = !0 << 64;
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// The middleware (wrapped around every route): a refused request is answered here with
/// [`too_many_requests`] and never reaches a handler.
pub async fn limit(
    state: web::Data<AppState>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let refusal = {
        let peer = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let forwarded_for: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .collect();
        let address = state
            .limiter
            .client_address(peer, forwarded_for.into_iter());
        let token = super::auth::bearer(req.request());
        let session = req
            .cookie(super::principal::SESSION_COOKIE)
            .map(|c| c.value().to_string());
        let caller = Caller {
            address,
            token,
            session: session.as_deref(),
            admin: token.is_some() && super::auth::is_admin_token(&state, token),
            upgrade: req.path() == UPGRADE_PATH,
        };
        state.limiter.check(&caller).err().inspect(|refusal| {
            metrics::counter!("canopy_rate_limited_total", "limit" => refusal.bucket.as_str())
                .increment(1);
            tracing::debug!(limit = refusal.bucket.as_str(), client = %address, path = req.path(), "rate limited");
        })
    };
    match refusal {
        Some(refusal) => Ok(req
            .into_response(too_many_requests(&refusal))
            .map_into_right_body()),
        None => Ok(next.call(req).await?.map_into_left_body()),
    }
}

/// `429` with `Retry-After` and the JSON body described in the module docs.
pub fn too_many_requests(refusal: &Refusal) -> HttpResponse {
    let seconds = refusal.retry_after_seconds();
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, seconds.to_string()))
        .json(json!({
            "error": "rate limit exceeded",
            "limit": refusal.bucket.as_str(),
            "retry_after": seconds,
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = nets(&["10.0.0.0/8"]);
        let got = client_address(ip("203.0.113.9"), ["1.2.3.4"].into_iter(), &trusted);
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_proxy_names_the_right_most_untrusted_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client forged "6.6.6.6"; the first proxy appended the real client, the second
        // proxy appended the first.
        let got = client_address(
            ip("10.0.0.2"),
            ["6.6.6.6, 198.51.100.7", "10.0.0.1"].into_iter(),
            &trusted,
        );
        assert_eq!(got, ip("198.51.100.7"));
    }

    #[test]
    fn forwarded_entries_with_ports_and_mapped_addresses_are_understood() {
        let trusted = nets(&["127.0.0.1/32"]);
        let peer = ip("::ffff:127.0.0.1");
        assert_eq!(
            client_address(peer, ["198.51.100.7:5678"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(peer, ["[2001:db8::1]:443"].into_iter(), &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(peer, ["::ffff:198.51.100.7"].into_iter(), &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn without_a_usable_header_the_proxy_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(client_address(peer, std::iter::empty(), &trusted), peer);
        assert_eq!(
            client_address(peer, ["not-an-address"].into_iter(), &trusted),
            peer
        );
        // Garbage left of a trusted hop: that hop is the nearest address we can name.
        assert_eq!(
            client_address(peer, ["junk, 10.0.0.1"].into_iter(), &trusted),
            ip("10.0.0.1")
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            client_address(peer, ["10.9.9.9, 10.0.0.1"].into_iter(), &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            address_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    fn limiter(vars: &[(&str, &str)]) -> Limiter {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Limiter::new(&Config::from_lookup(|k| map.get(k).cloned()).unwrap())
    }

    fn caller<'a>(address: &str, token: Option<&'a str>, upgrade: bool) -> Caller<'a> {
        Caller {
            address: ip(address),
            token,
            admin: false,
            session: None,
            upgrade,
        }
    }

    #[test]
    fn tokens_have_separate_buckets_and_spend_before_the_address() {
        let l = limiter(&[
            ("RATE_LIMIT_PER_TOKEN", "1"),
            ("RATE_LIMIT_PER_TOKEN_BURST", "2"),
            ("RATE_LIMIT_PER_ADDRESS", "1"),
            ("RATE_LIMIT_PER_ADDRESS_BURST", "4"),
        ]);
        let a = caller("192.0.2.1", Some("agent-a"), false);
        assert!(l.check(&a).is_ok());
        assert!(l.check(&a).is_ok());
        let refusal = l.check(&a).unwrap_err();
        assert_eq!(refusal.bucket, Bucket::Token);
        assert!(refusal.retry_after_seconds() >= 1);
        // Another token has a full bucket of its own.
        let b = caller("192.0.2.1", Some("agent-b"), false);
        assert!(l.check(&b).is_ok());
        // The refused request spent nothing from the address (burst 4): one more fits.
        let anonymous = caller("192.0.2.1", None, false);
        assert!(l.check(&anonymous).is_ok());
        assert_eq!(l.check(&anonymous).unwrap_err().bucket, Bucket::Address);
    }

    #[test]
    fn people_have_buckets_of_their_own_by_key_or_session() {
        let l = limiter(&[
            ("RATE_LIMIT_PER_PERSON", "1"),
            ("RATE_LIMIT_PER_PERSON_BURST", "1"),
            ("RATE_LIMIT_PER_ADDRESS", "0"),
        ]);
        let ada = caller("192.0.2.1", Some("cnp_ada"), false);
        assert!(l.check(&ada).is_ok());
        assert_eq!(l.check(&ada).unwrap_err().bucket, Bucket::Person);
        assert!(l
            .check(&caller("192.0.2.1", Some("cnp_bob"), false))
            .is_ok());
        let session = Caller {
            session: Some("s1"),
            ..caller("192.0.2.1", None, false)
        };
        assert!(l.check(&session).is_ok());
        assert_eq!(l.check(&session).unwrap_err().bucket, Bucket::Person);
    }

    #[test]
    fn upgrades_spend_only_their_own_bucket() {
        let l = limiter(&[
            ("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", "1"),
            ("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS_BURST", "1"),
            ("RATE_LIMIT_PER_ADDRESS", "1"),
            ("RATE_LIMIT_PER_ADDRESS_BURST", "1"),
        ]);
        let upgrade = caller("192.0.2.1", None, true);
        assert!(l.check(&upgrade).is_ok());
        assert_eq!(
            l.check(&upgrade).unwrap_err().bucket,
            Bucket::WebSocketUpgrades
        );
        assert!(l.check(&caller("192.0.2.1", None, false)).is_ok());
        // Another address has its own upgrade bucket.
        assert!(l.check(&caller("192.0.2.2", None, true)).is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let l = limiter(&[("RATE_LIMIT_PER_ADDRESS", "0")]);
        for _ in 0..1000 {
            assert!(l.check(&caller("192.0.2.1", None, false)).is_ok());
        }
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let l = limiter(&[
            ("RATE_LIMIT_PER_TOKEN", "1000"),
            ("RATE_LIMIT_PER_TOKEN_BURST", "1"),
            ("RATE_LIMIT_PER_ADDRESS", "0"),
        ]);
        for i in 0..100 {
            let token = format!("t{i}");
            let _ = l.check(&caller("192.0.2.1", Some(&token), false));
        }
        assert_eq!(l.tracked_keys(), 100);
        // Each bucket refills 1 ms after its request; within a second all are forgotten.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while l.tracked_keys() > 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
            l.retain_recent();
        }
        assert_eq!(l.tracked_keys(), 0);
    }
}
