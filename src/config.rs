//! Typed configuration, read once from the environment. An invalid value stops start-up with a
//! one-line message naming the variable.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;

use crate::secrets::{self, CryptoError, KeyText};
use crate::store::DatabaseUrl;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub database_pool_size: u32,
    /// How long a statement waits for a database lock before the request answers 503.
    pub database_busy_timeout: Duration,
    pub redis_url: Option<String>,
    /// Prepended to every Redis key and channel, so several deployments (or test runs) can
    /// share one Redis.
    pub redis_key_prefix: String,
    pub host: IpAddr,
    pub port: u16,
    pub workers: usize,
    /// Frames a WebSocket may have queued before it is closed as a slow consumer.
    pub ws_queue_capacity: usize,
    /// A new connection must send its first request head within this long, or it is answered
    /// 408 (JSON) and closed (`HTTP_HEAD_TIMEOUT_MS`, default 5 s: actix's default).
    pub http_head_timeout: Duration,
    pub admin_token: Option<AdminToken>,
    pub allow_insecure: bool,
    pub cors_origins: Vec<String>,
    /// `Host` names served besides the loopback ones (DNS-rebinding defence; see
    /// `http::boundary`). Lower-case, without port; `.example.com` also matches subdomains,
    /// `*` matches any host.
    pub allowed_hosts: Vec<String>,
    /// Master key for secrets (redacted in `Debug`); checked at start-up.
    pub secrets_encryption_key: Option<KeyText>,
    pub secrets_encryption_key_previous: Option<KeyText>,
    pub liveness_ttl: Duration,
    pub liveness_sweep_interval: Duration,
    pub provision_timeout: Duration,
    pub activity_retention: Duration,
    pub activity_cleanup_interval: Duration,
    pub live_events_retention: Duration,
    pub instance_id: String,
    pub log_format: LogFormat,
    /// A pending approval request nobody decided within this is denied as `expired`
    /// (`APPROVAL_TIMEOUT_SECONDS`, default 600).
    pub approval_timeout: Duration,
    /// How often the lease holder looks for expired approval requests
    /// (`APPROVAL_SWEEP_INTERVAL_SECONDS`, default 15).
    pub approval_sweep_interval: Duration,
    /// The A2A proxy's outbound rules (`A2A_*`).
    pub a2a: A2aConfig,
    /// Request rate limits (see `http::rate_limit`); each is off when its variable is `0`.
    pub rate_limits: RateLimits,
    /// Peers whose `X-Forwarded-For` is believed when finding a request's client address.
    pub trusted_proxies: Vec<IpNet>,
    /// How long a browser session lasts after `POST /session` (`SESSION_TTL_SECONDS`, default
    /// 12 hours).
    pub session_ttl: Duration,
    /// Always mark the session cookie `Secure` (`SESSION_COOKIE_SECURE`); it is also marked so
    /// when the request came over TLS (a trusted proxy's `X-Forwarded-Proto: https`).
    pub session_cookie_secure: bool,
    /// A person's presence lasts this long without a refresh (`PRESENCE_TTL_SECONDS`, default
    /// 30): an instance killed without a goodbye drops its people within it.
    pub presence_ttl: Duration,
}

/// The A2A proxy's outbound rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct A2aConfig {
    /// Time an agent gets to answer when the request sends no `X-Timeout`
    /// (`A2A_TIMEOUT_SECONDS`, default 300).
    pub timeout: Duration,
    /// Largest `X-Timeout` honoured, in seconds (`A2A_MAX_TIMEOUT_SECONDS`, default 1800, the
    /// reference's ceiling for agent-to-agent calls).
    pub max_timeout: Duration,
    /// Largest agent answer read, in bytes (`A2A_MAX_RESPONSE_BYTES`, default 10 MiB as in
    /// the reference); a larger one is a 502.
    pub max_response_bytes: usize,
    /// Whether agent URLs may point at loopback and private addresses
    /// (`A2A_ALLOW_PRIVATE_ADDRESSES`, default 1: agents often run beside the server).
    /// Link-local and cloud-metadata addresses are refused regardless.
    pub allow_private: bool,
}

/// A token bucket: up to `burst` requests at once, refilled continuously at `per_second`
/// requests per second (one every `1/per_second` s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

/// The configured limits; `None` is off. Defaults are the `DEFAULT_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Every request except WebSocket upgrades, per client address (`RATE_LIMIT_PER_ADDRESS`).
    pub per_address: Option<RateLimit>,
    /// Requests carrying a bearer token other than the admin token, per token
    /// (`RATE_LIMIT_PER_TOKEN`).
    pub per_token: Option<RateLimit>,
    /// Requests carrying the admin token, which every canvas of a deployment shares
    /// (`RATE_LIMIT_PER_ADMIN_TOKEN`).
    pub per_admin_token: Option<RateLimit>,
    /// `GET /ws` (WebSocket upgrades), per client address: a bucket of its own, so a reconnect
    /// storm cannot use up the address's API budget (`RATE_LIMIT_WS_UPGRADES_PER_ADDRESS`).
    pub ws_upgrades_per_address: Option<RateLimit>,
    /// Requests of one person: per API key (bearer `cnp_…`) or browser session cookie
    /// (`RATE_LIMIT_PER_PERSON`).
    pub per_person: Option<RateLimit>,
}

impl RateLimits {
    // Requests per second of each limit when its variable is unset; the burst defaults to
    // twice the rate (`*_BURST`).
    /// Per client address: a page load is a handful of requests, and an office behind one NAT
    /// address holds many canvases.
    pub const DEFAULT_PER_ADDRESS: u32 = 100;
    /// Per agent token: an agent heartbeats every 30 s and reports activity now and then.
    pub const DEFAULT_PER_TOKEN: u32 = 20;
    /// For the admin token, shared by every canvas and script of a deployment.
    pub const DEFAULT_PER_ADMIN_TOKEN: u32 = 200;
    /// WebSocket upgrades per client address: a reconnect after a deploy is one per canvas.
    pub const DEFAULT_WS_UPGRADES_PER_ADDRESS: u32 = 20;
    /// Per person (API key or session): one person's canvases and scripts, like the admin
    /// token's budget.
    pub const DEFAULT_PER_PERSON: u32 = 200;

    /// Every limit off (benchmarks, tests that open hundreds of sockets at once).
    pub const OFF: RateLimits = RateLimits {
        per_address: None,
        per_token: None,
        per_admin_token: None,
        ws_upgrades_per_address: None,
        per_person: None,
    };
}

/// The admin bearer token. Its `Debug` prints `[redacted]`, so the configuration can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    pub var: &'static str,
    pub reason: String,
}

fn invalid(var: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        reason: reason.into(),
    }
}

const SECONDS_PER_HOUR: u64 = 3600;
const SECONDS_PER_DAY: u64 = 86_400;

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map instead of
    /// mutating the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let number = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(var) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| invalid(var, format!("{v:?} is not a whole number"))),
            }
        };
        let positive = |var: &'static str, default: u64| -> Result<u64, ConfigError> {
            let n = number(var, default)?;
            if n == 0 {
                return Err(invalid(var, "must be greater than 0"));
            }
            Ok(n)
        };

        let database_url = match get("DATABASE_URL") {
            None => DatabaseUrl::Sqlite("canopy.db".into()),
            Some(raw) => DatabaseUrl::parse(&raw).map_err(|r| invalid("DATABASE_URL", r))?,
        };
        let redis_url = match get("REDIS_URL") {
            None => None,
            Some(raw) if raw.starts_with("redis://") || raw.starts_with("rediss://") => Some(raw),
            Some(_) => {
                return Err(invalid(
                    "REDIS_URL",
                    "must start with redis:// or rediss://",
                ))
            }
        };
        let host = match get("HOST") {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid("HOST", format!("{raw:?} is not an IP address")))?,
        };
        let port = match get("PORT") {
            None => 8080,
            Some(raw) => raw
                .parse::<u16>()
                .map_err(|_| invalid("PORT", format!("{raw:?} is not a port number")))?,
        };
        let log_format = match get("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("{other:?} is not text or json"),
                ))
            }
        };
        let flag = |var: &'static str, default: bool| -> Result<bool, ConfigError> {
            match get(var).as_deref() {
                None => Ok(default),
                Some("0") | Some("false") => Ok(false),
                Some("1") | Some("true") => Ok(true),
                Some(other) => Err(invalid(var, format!("{other:?} is not 0 or 1"))),
            }
        };
        let allow_insecure = match get("CANOPY_ALLOW_INSECURE").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(invalid(
                    "CANOPY_ALLOW_INSECURE",
                    format!("{other:?} is not 0 or 1"),
                ))
            }
        };
        let cors_origins = get("CORS_ORIGINS")
            .map(|raw| {
                raw.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_string())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let allowed_hosts = get("ALLOWED_HOSTS")
            .map(|raw| {
                raw.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        // `VAR` requests per second (0: off) and `VAR_BURST` at once (default: twice the rate).
        let rate_limit = |var: &'static str,
                          burst_var: &'static str,
                          default: u32|
         -> Result<Option<RateLimit>, ConfigError> {
            let per_second = u32::try_from(number(var, u64::from(default))?)
                .map_err(|_| invalid(var, "must be at most 4294967295"))?;
            let Some(per_second) = NonZeroU32::new(per_second) else {
                return Ok(None);
            };
            let burst = match get(burst_var) {
                None => per_second.saturating_mul(NonZeroU32::new(2).expect("2 is not 0")),
                Some(_) => u32::try_from(positive(burst_var, 1)?)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| invalid(burst_var, "must be at most 4294967295"))?,
            };
            Ok(Some(RateLimit { per_second, burst }))
        };
        let rate_limits = RateLimits {
            per_address: rate_limit(
                "RATE_LIMIT_PER_ADDRESS",
                "RATE_LIMIT_PER_ADDRESS_BURST",
                RateLimits::DEFAULT_PER_ADDRESS,
            )?,
            per_token: rate_limit(
                "RATE_LIMIT_PER_TOKEN",
                "RATE_LIMIT_PER_TOKEN_BURST",
                RateLimits::DEFAULT_PER_TOKEN,
            )?,
            per_admin_token: rate_limit(
                "RATE_LIMIT_PER_ADMIN_TOKEN",
                "RATE_LIMIT_PER_ADMIN_TOKEN_BURST",
                RateLimits::DEFAULT_PER_ADMIN_TOKEN,
            )?,
            ws_upgrades_per_address: rate_limit(
                "RATE_LIMIT_WS_UPGRADES_PER_ADDRESS",
                "RATE_LIMIT_WS_UPGRADES_PER_ADDRESS_BURST",
                RateLimits::DEFAULT_WS_UPGRADES_PER_ADDRESS,
            )?,
            per_person: rate_limit(
                "RATE_LIMIT_PER_PERSON",
                "RATE_LIMIT_PER_PERSON_BURST",
                RateLimits::DEFAULT_PER_PERSON,
            )?,
        };
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(raw) => parse_networks(&raw).map_err(|r| invalid("TRUSTED_PROXIES", r))?,
        };
        let default_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);

        let config = Config {
            database_url,
            database_pool_size: positive("DATABASE_POOL_SIZE", 10)? as u32,
            database_busy_timeout: Duration::from_millis(positive(
                "DATABASE_BUSY_TIMEOUT_MS",
                crate::store::connection::DEFAULT_BUSY_TIMEOUT.as_millis() as u64,
            )?),
            redis_url,
            redis_key_prefix: get("REDIS_KEY_PREFIX").unwrap_or_default(),
            host,
            port,
            workers: positive("WORKERS", default_workers as u64)? as usize,
            ws_queue_capacity: positive(
                "WS_QUEUE_CAPACITY",
                crate::realtime::hub::SESSION_QUEUE_CAP as u64,
            )? as usize,
            http_head_timeout: Duration::from_millis(positive("HTTP_HEAD_TIMEOUT_MS", 5000)?),
            admin_token: get("ADMIN_TOKEN").map(AdminToken),
            allow_insecure,
            cors_origins,
            allowed_hosts,
            secrets_encryption_key: get(secrets::KEY_VAR).map(KeyText::new),
            secrets_encryption_key_previous: get(secrets::PREVIOUS_KEY_VAR).map(KeyText::new),
            liveness_ttl: Duration::from_secs(positive("LIVENESS_TTL_SECONDS", 60)?),
            liveness_sweep_interval: Duration::from_secs(positive(
                "LIVENESS_SWEEP_INTERVAL_SECONDS",
                15,
            )?),
            provision_timeout: Duration::from_secs(positive("PROVISION_TIMEOUT_SECONDS", 600)?),
            activity_retention: Duration::from_secs(
                positive("ACTIVITY_RETENTION_DAYS", 7)? * SECONDS_PER_DAY,
            ),
            activity_cleanup_interval: Duration::from_secs(
                positive("ACTIVITY_CLEANUP_INTERVAL_HOURS", 6)? * SECONDS_PER_HOUR,
            ),
            live_events_retention: Duration::from_secs(positive(
                "LIVE_EVENTS_RETENTION_SECONDS",
                900,
            )?),
            instance_id: get("INSTANCE_ID").unwrap_or_else(|| {
                let id = uuid::Uuid::new_v4().simple().to_string();
                format!("canopy-{}", &id[..8])
            }),
            log_format,
            approval_timeout: Duration::from_secs(positive("APPROVAL_TIMEOUT_SECONDS", 600)?),
            approval_sweep_interval: Duration::from_secs(positive(
                "APPROVAL_SWEEP_INTERVAL_SECONDS",
                15,
            )?),
            a2a: A2aConfig {
                timeout: Duration::from_secs(positive("A2A_TIMEOUT_SECONDS", 300)?),
                max_timeout: Duration::from_secs(positive("A2A_MAX_TIMEOUT_SECONDS", 1800)?),
                max_response_bytes: positive("A2A_MAX_RESPONSE_BYTES", 10 * 1024 * 1024)? as usize,
                allow_private: flag("A2A_ALLOW_PRIVATE_ADDRESSES", true)?,
            },
            rate_limits,
            trusted_proxies,
            session_ttl: Duration::from_secs(positive("SESSION_TTL_SECONDS", 12 * 3600)?),
            session_cookie_secure: flag("SESSION_COOKIE_SECURE", false)?,
            presence_ttl: Duration::from_secs(positive("PRESENCE_TTL_SECONDS", 30)?),
        };
        config.check_exposure()?;
        config.check_secrets_keys()?;
        Ok(config)
    }

    /// An open server (no admin token) is allowed only on loopback, unless explicitly told.
    fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.admin_token.is_none() && !self.host.is_loopback() && !self.allow_insecure {
            return Err(invalid(
                "ADMIN_TOKEN",
                format!(
                    "must be set to listen on {} (or set CANOPY_ALLOW_INSECURE=1 to serve it open)",
                    self.host
                ),
            ));
        }
        Ok(())
    }

    /// A master key that is set must be usable: a typo must not silently disable secrets.
    fn check_secrets_keys(&self) -> Result<(), ConfigError> {
        secrets::Secrets::from_config(self)
            .map(|_| ())
            .map_err(|e| match e {
                CryptoError::InvalidMasterKey { name } if name == secrets::PREVIOUS_KEY_VAR => {
                    invalid(secrets::PREVIOUS_KEY_VAR, "must be base64 of 32 bytes")
                }
                _ if self.secrets_encryption_key.is_none() => invalid(
                    secrets::KEY_VAR,
                    "must be set when SECRETS_ENCRYPTION_KEY_PREVIOUS is set",
                ),
                _ => invalid(
                    secrets::KEY_VAR,
                    "must be base64 of 32 bytes (generate one with `openssl rand -base64 32`)",
                ),
            })
    }

    pub fn mode(&self) -> &'static str {
        if self.redis_url.is_some() {
            "cluster"
        } else {
            "embedded"
        }
    }
}

/// Parses a comma-separated list of CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses
/// (`127.0.0.1`, `::1`, taken as /32 and /128).
fn parse_networks(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{item:?} is not an address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url, DatabaseUrl::Sqlite("canopy.db".into()));
        assert_eq!(c.port, 8080);
        assert_eq!(c.liveness_ttl, Duration::from_secs(60));
        assert_eq!(c.live_events_retention, Duration::from_secs(900));
        assert_eq!(c.http_head_timeout, Duration::from_secs(5));
        assert!(c.redis_url.is_none());
        assert_eq!(c.mode(), "embedded");
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let err = config(&[("PORT", "eighty")]).unwrap_err();
        assert_eq!(err.var, "PORT");
        assert_eq!(
            config(&[("LIVENESS_TTL_SECONDS", "0")]).unwrap_err().var,
            "LIVENESS_TTL_SECONDS"
        );
        assert_eq!(
            config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().var,
            "DATABASE_URL"
        );
        assert_eq!(
            config(&[("LOG_FORMAT", "xml")]).unwrap_err().var,
            "LOG_FORMAT"
        );
        assert!(err.to_string().starts_with("invalid PORT"));
    }

    #[test]
    fn public_bind_needs_a_token_or_explicit_insecure() {
        assert_eq!(
            config(&[("HOST", "0.0.0.0")]).unwrap_err().var,
            "ADMIN_TOKEN"
        );
        assert!(config(&[("HOST", "0.0.0.0"), ("ADMIN_TOKEN", "t")]).is_ok());
        assert!(config(&[("HOST", "0.0.0.0"), ("CANOPY_ALLOW_INSECURE", "1")]).is_ok());
    }

    #[test]
    fn debug_output_does_not_show_the_admin_token() {
        let c = config(&[("ADMIN_TOKEN", "hunter2-admin")]).unwrap();
        assert_eq!(
            c.admin_token.as_ref().map(AdminToken::expose),
            Some("hunter2-admin")
        );
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn allowed_hosts_are_lower_cased() {
        let c = config(&[("ALLOWED_HOSTS", " Canopy.Example.com, .corp.test ,")]).unwrap();
        assert_eq!(c.allowed_hosts, vec!["canopy.example.com", ".corp.test"]);
    }

    #[test]
    fn approval_and_a2a_settings() {
        let c = config(&[]).unwrap();
        assert_eq!(c.approval_timeout, Duration::from_secs(600));
        assert_eq!(c.a2a.timeout, Duration::from_secs(300));
        assert_eq!(c.a2a.max_response_bytes, 10 * 1024 * 1024);
        assert!(c.a2a.allow_private);
        let c = config(&[("A2A_ALLOW_PRIVATE_ADDRESSES", "0")]).unwrap();
        assert!(!c.a2a.allow_private);
        for var in [
            "A2A_ALLOW_PRIVATE_ADDRESSES",
            "A2A_TIMEOUT_SECONDS",
            "APPROVAL_TIMEOUT_SECONDS",
        ] {
            assert_eq!(config(&[(var, "maybe")]).unwrap_err().var, var);
        }
        assert_eq!(
            config(&[("A2A_MAX_RESPONSE_BYTES", "0")]).unwrap_err().var,
            "A2A_MAX_RESPONSE_BYTES"
        );
    }

    #[test]
    fn rate_limits_default_on_and_zero_turns_one_off() {
        let c = config(&[]).unwrap();
        let per_token = c.rate_limits.per_token.unwrap();
        assert_eq!(per_token.per_second.get(), RateLimits::DEFAULT_PER_TOKEN);
        assert_eq!(per_token.burst.get(), 2 * RateLimits::DEFAULT_PER_TOKEN);
        assert!(c.rate_limits.per_address.is_some());
        assert!(c.rate_limits.per_admin_token.is_some());
        assert!(c.rate_limits.ws_upgrades_per_address.is_some());
        assert!(c.trusted_proxies.is_empty());

        let c = config(&[
            ("RATE_LIMIT_PER_ADDRESS", "0"),
            ("RATE_LIMIT_PER_TOKEN", "5"),
            ("RATE_LIMIT_PER_TOKEN_BURST", "7"),
        ])
        .unwrap();
        assert_eq!(c.rate_limits.per_address, None);
        let per_token = c.rate_limits.per_token.unwrap();
        assert_eq!((per_token.per_second.get(), per_token.burst.get()), (5, 7));
        assert!(c.rate_limits.ws_upgrades_per_address.is_some());
    }

    #[test]
    fn invalid_rate_limits_name_the_variable() {
        assert_eq!(
            config(&[("RATE_LIMIT_PER_TOKEN", "-1")]).unwrap_err().var,
            "RATE_LIMIT_PER_TOKEN"
        );
        assert_eq!(
            config(&[("RATE_LIMIT_PER_TOKEN_BURST", "0")])
                .unwrap_err()
                .var,
            "RATE_LIMIT_PER_TOKEN_BURST"
        );
        assert_eq!(
            config(&[("RATE_LIMIT_PER_ADDRESS", "99999999999")])
                .unwrap_err()
                .var,
            "RATE_LIMIT_PER_ADDRESS"
        );
    }

    #[test]
    fn trusted_proxies_take_cidrs_and_addresses() {
        let c = config(&[("TRUSTED_PROXIES", " 10.1.2.3/8, 127.0.0.1 ,::1,fd00::/8")]).unwrap();
        let nets: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"]);
        let err = config(&[("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")]).unwrap_err();
        assert_eq!(err.var, "TRUSTED_PROXIES");
        assert!(err.to_string().contains("proxy.internal"), "{err}");
    }

    #[test]
    fn cors_origins_are_trimmed() {
        let c = config(&[("CORS_ORIGINS", " http://a.test/ , http://b.test ,")]).unwrap();
        assert_eq!(c.cors_origins, vec!["http://a.test", "http://b.test"]);
    }
}
