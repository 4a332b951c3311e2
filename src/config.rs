//! Typed configuration, read once from the environment: clap's derive parses each variable
//! (`Vars`), this module assembles [`Config`]. An invalid value stops start-up with a one-line
//! message naming the variable.

#![warn(missing_docs)]

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use ipnet::IpNet;

use crate::secrets::{self, CryptoError, KeyText};
use crate::store::DatabaseUrl;

/// How log lines are written (`LOG_FORMAT`); the level follows `RUST_LOG` either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (`text`, the default).
    Text,
    /// One JSON object per line (`json`), for log collectors.
    Json,
}

/// Everything the server reads from its environment, parsed and checked: built once at
/// start-up by [`Config::from_env`] (or [`Config::from_lookup`] in tests) and shared read-only.
/// Each field names its variable in the README's configuration table.
#[derive(Clone, Debug)]
pub struct Config {
    /// Which database to open (`DATABASE_URL`, default `sqlite://canopy.db`): SQLite by path or
    /// PostgreSQL, chosen by the URL's scheme.
    pub database_url: DatabaseUrl,
    /// Connections in this instance's pool (`DATABASE_POOL_SIZE`, default 10, at least 1).
    pub database_pool_size: u32,
    /// How long a statement waits for a database lock before the request answers 503.
    pub database_busy_timeout: Duration,
    /// `redis://` or `rediss://` URL (`REDIS_URL`); set means cluster mode (Redis backplane
    /// and liveness), unset means embedded mode (see [`Config::mode`]).
    pub redis_url: Option<String>,
    /// Prepended to every Redis key and channel, so several deployments (or test runs) can
    /// share one Redis.
    pub redis_key_prefix: String,
    /// Listen address (`HOST`, default `127.0.0.1`); a non-loopback one needs an admin token
    /// or `allow_insecure`.
    pub host: IpAddr,
    /// Listen port (`PORT`, default 8080; `0` picks a free one).
    pub port: u16,
    /// HTTP worker threads (`WORKERS`, default the number of cores, at least 1).
    pub workers: usize,
    /// Frames a WebSocket may have queued before it is closed as a slow consumer.
    pub ws_queue_capacity: usize,
    /// A new connection must send its first request head within this long, or it is answered
    /// 408 (JSON) and closed (`HTTP_HEAD_TIMEOUT_MS`, default 5 s: actix's default).
    pub http_head_timeout: Duration,
    /// The bearer token with full access (`ADMIN_TOKEN`); unset serves the API open, which
    /// start-up allows only on a loopback `host` unless `allow_insecure`.
    pub admin_token: Option<AdminToken>,
    /// Serve without an admin token on a non-loopback address (`CANOPY_ALLOW_INSECURE=1`).
    pub allow_insecure: bool,
    /// Browser origins allowed besides the server's own (`CORS_ORIGINS`, comma-separated),
    /// without a trailing `/`; they may also write through the API.
    pub cors_origins: Vec<String>,
    /// `Host` names served besides the loopback ones (DNS-rebinding defence; see
    /// `http::boundary`). Lower-case, without port; `.example.com` also matches subdomains,
    /// `*` matches any host.
    pub allowed_hosts: Vec<String>,
    /// Master key for secrets (redacted in `Debug`); checked at start-up.
    pub secrets_encryption_key: Option<KeyText>,
    /// The old master key during a rotation (`SECRETS_ENCRYPTION_KEY_PREVIOUS`), still
    /// accepted for reading; needs `secrets_encryption_key` as well.
    pub secrets_encryption_key_previous: Option<KeyText>,
    /// An agent silent this long goes offline (`LIVENESS_TTL_SECONDS`, default 60).
    pub liveness_ttl: Duration,
    /// How often the database sweep looks for silent agents and stuck provisioning
    /// (`LIVENESS_SWEEP_INTERVAL_SECONDS`, default 15).
    pub liveness_sweep_interval: Duration,
    /// A workspace that never registers within this of its creation fails
    /// (`PROVISION_TIMEOUT_SECONDS`, default 600).
    pub provision_timeout: Duration,
    /// Activity rows older than this are deleted (`ACTIVITY_RETENTION_DAYS`, default 7 days).
    pub activity_retention: Duration,
    /// How often the retention job runs, first at start-up
    /// (`ACTIVITY_CLEANUP_INTERVAL_HOURS`, default 6 hours).
    pub activity_cleanup_interval: Duration,
    /// How long the replayable event stream is kept (`LIVE_EVENTS_RETENTION_SECONDS`, default
    /// 900); the newest [`crate::jobs::retention::LIVE_EVENTS_KEEP_NEWEST`] are kept regardless.
    pub live_events_retention: Duration,
    /// This instance's name in logs, `/health` and leases (`INSTANCE_ID`, default `canopy-`
    /// and 8 random hex digits).
    pub instance_id: String,
    /// How log lines are written (`LOG_FORMAT`, default `text`).
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
    /// The shortest time between two DRAG_PREVIEWS frames to one socket
    /// (`DRAG_PREVIEW_TICK_MS`, default 33, at most 1000): each socket gets every preview of a
    /// tick in one frame (see `realtime::volatile`).
    pub drag_preview_tick: Duration,
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
    /// Refill rate, requests per second (`VAR`).
    pub per_second: NonZeroU32,
    /// Bucket size, requests at once (`VAR_BURST`, default twice `per_second`).
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
    /// The token itself, for comparing with a request's bearer token; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for AdminToken {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why the configuration cannot be used; displayed as `invalid VAR: reason`, the one line
/// start-up prints before exiting.
#[derive(Debug, thiserror::Error)]
#[error("invalid {var}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault (`configuration` when clap names none).
    pub var: &'static str,
    /// What is wrong with its value; never contains a secret's value.
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

/// The variables, one field each. clap's derive parses and checks every value and supplies its
/// default; `env` names the variable, and a value parser's error names the value (never a
/// secret's). [`Config::from_lookup`] feeds the values in itself (trimmed; empty means unset),
/// so tests can pass a map instead of changing the process environment.
#[derive(clap::Parser, Debug)]
#[command(name = "canopy", no_binary_name = true)]
struct Vars {
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://canopy.db", value_parser = DatabaseUrl::parse)]
    database_url: DatabaseUrl,
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10, value_parser = positive)]
    database_pool_size: u64,
    #[arg(long, env = "DATABASE_BUSY_TIMEOUT_MS", default_value_t = crate::store::connection::DEFAULT_BUSY_TIMEOUT.as_millis() as u64, value_parser = positive)]
    database_busy_timeout_ms: u64,
    #[arg(long, env = "REDIS_URL", value_parser = redis_url)]
    redis_url: Option<String>,
    #[arg(long, env = "REDIS_KEY_PREFIX")]
    redis_key_prefix: Option<String>,
    #[arg(long, env = "HOST", default_value = "127.0.0.1", value_parser = ip_address)]
    host: IpAddr,
    #[arg(long, env = "PORT", default_value_t = 8080, value_parser = port)]
    port: u16,
    /// Default: the number of cores.
    #[arg(long, env = "WORKERS", value_parser = positive)]
    workers: Option<u64>,
    #[arg(long, env = "WS_QUEUE_CAPACITY", default_value_t = crate::realtime::hub::SESSION_QUEUE_CAP as u64, value_parser = positive)]
    ws_queue_capacity: u64,
    #[arg(long, env = "HTTP_HEAD_TIMEOUT_MS", default_value_t = 5000, value_parser = positive)]
    http_head_timeout_ms: u64,
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[arg(long, env = "CANOPY_ALLOW_INSECURE", default_value = "0", value_parser = flag, action = clap::ArgAction::Set)]
    allow_insecure: bool,
    #[arg(long, env = "CORS_ORIGINS")]
    cors_origins: Option<String>,
    #[arg(long, env = "ALLOWED_HOSTS")]
    allowed_hosts: Option<String>,
    #[arg(long, env = "SECRETS_ENCRYPTION_KEY", hide_env_values = true)]
    secrets_encryption_key: Option<String>,
    #[arg(long, env = "SECRETS_ENCRYPTION_KEY_PREVIOUS", hide_env_values = true)]
    secrets_encryption_key_previous: Option<String>,
    #[arg(long, env = "LIVENESS_TTL_SECONDS", default_value_t = 60, value_parser = positive)]
    liveness_ttl_seconds: u64,
    #[arg(long, env = "LIVENESS_SWEEP_INTERVAL_SECONDS", default_value_t = 15, value_parser = positive)]
    liveness_sweep_interval_seconds: u64,
    #[arg(long, env = "PROVISION_TIMEOUT_SECONDS", default_value_t = 600, value_parser = positive)]
    provision_timeout_seconds: u64,
    #[arg(long, env = "ACTIVITY_RETENTION_DAYS", default_value_t = 7, value_parser = positive)]
    activity_retention_days: u64,
    #[arg(long, env = "ACTIVITY_CLEANUP_INTERVAL_HOURS", default_value_t = 6, value_parser = positive)]
    activity_cleanup_interval_hours: u64,
    #[arg(long, env = "LIVE_EVENTS_RETENTION_SECONDS", default_value_t = 900, value_parser = positive)]
    live_events_retention_seconds: u64,
    /// Default: `canopy-` and 8 random hex digits.
    #[arg(long, env = "INSTANCE_ID")]
    instance_id: Option<String>,
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = log_format)]
    log_format: LogFormat,
    #[arg(long, env = "APPROVAL_TIMEOUT_SECONDS", default_value_t = 600, value_parser = positive)]
    approval_timeout_seconds: u64,
    #[arg(long, env = "APPROVAL_SWEEP_INTERVAL_SECONDS", default_value_t = 15, value_parser = positive)]
    approval_sweep_interval_seconds: u64,
    #[arg(long, env = "A2A_TIMEOUT_SECONDS", default_value_t = 300, value_parser = positive)]
    a2a_timeout_seconds: u64,
    #[arg(long, env = "A2A_MAX_TIMEOUT_SECONDS", default_value_t = 1800, value_parser = positive)]
    a2a_max_timeout_seconds: u64,
    #[arg(long, env = "A2A_MAX_RESPONSE_BYTES", default_value_t = 10 * 1024 * 1024, value_parser = positive)]
    a2a_max_response_bytes: u64,
    #[arg(long, env = "A2A_ALLOW_PRIVATE_ADDRESSES", default_value = "1", value_parser = flag, action = clap::ArgAction::Set)]
    a2a_allow_private_addresses: bool,
    #[arg(long, env = "RATE_LIMIT_PER_ADDRESS", default_value_t = RateLimits::DEFAULT_PER_ADDRESS, value_parser = rate)]
    rate_limit_per_address: u32,
    #[arg(long, env = "RATE_LIMIT_PER_ADDRESS_BURST", value_parser = burst)]
    rate_limit_per_address_burst: Option<NonZeroU32>,
    #[arg(long, env = "RATE_LIMIT_PER_TOKEN", default_value_t = RateLimits::DEFAULT_PER_TOKEN, value_parser = rate)]
    rate_limit_per_token: u32,
    #[arg(long, env = "RATE_LIMIT_PER_TOKEN_BURST", value_parser = burst)]
    rate_limit_per_token_burst: Option<NonZeroU32>,
    #[arg(long, env = "RATE_LIMIT_PER_ADMIN_TOKEN", default_value_t = RateLimits::DEFAULT_PER_ADMIN_TOKEN, value_parser = rate)]
    rate_limit_per_admin_token: u32,
    #[arg(long, env = "RATE_LIMIT_PER_ADMIN_TOKEN_BURST", value_parser = burst)]
    rate_limit_per_admin_token_burst: Option<NonZeroU32>,
    #[arg(long, env = "RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", default_value_t = RateLimits::DEFAULT_WS_UPGRADES_PER_ADDRESS, value_parser = rate)]
    rate_limit_ws_upgrades_per_address: u32,
    #[arg(long, env = "RATE_LIMIT_WS_UPGRADES_PER_ADDRESS_BURST", value_parser = burst)]
    rate_limit_ws_upgrades_per_address_burst: Option<NonZeroU32>,
    #[arg(long, env = "RATE_LIMIT_PER_PERSON", default_value_t = RateLimits::DEFAULT_PER_PERSON, value_parser = rate)]
    rate_limit_per_person: u32,
    #[arg(long, env = "RATE_LIMIT_PER_PERSON_BURST", value_parser = burst)]
    rate_limit_per_person_burst: Option<NonZeroU32>,
    #[arg(long, env = "TRUSTED_PROXIES", value_parser = networks)]
    trusted_proxies: Option<Networks>,
    #[arg(long, env = "SESSION_TTL_SECONDS", default_value_t = 12 * 3600, value_parser = positive)]
    session_ttl_seconds: u64,
    #[arg(long, env = "SESSION_COOKIE_SECURE", default_value = "0", value_parser = flag, action = clap::ArgAction::Set)]
    session_cookie_secure: bool,
    #[arg(long, env = "PRESENCE_TTL_SECONDS", default_value_t = 30, value_parser = positive)]
    presence_ttl_seconds: u64,
    #[arg(long, env = "DRAG_PREVIEW_TICK_MS", default_value_t = crate::realtime::volatile::DEFAULT_PREVIEW_TICK.as_millis() as u64, value_parser = preview_tick)]
    drag_preview_tick_ms: u64,
}

/// The parsed `TRUSTED_PROXIES` list (a newtype, so clap takes it as one value).
#[derive(Clone, Debug)]
struct Networks(Vec<IpNet>);

fn whole_number(raw: &str) -> Result<u64, String> {
    raw.parse::<u64>()
        .map_err(|_| format!("{raw:?} is not a whole number"))
}

fn positive(raw: &str) -> Result<u64, String> {
    match whole_number(raw)? {
        0 => Err("must be greater than 0".into()),
        n => Ok(n),
    }
}

/// Milliseconds between preview frames: 1 to 1000 (past a second a preview no longer shows a
/// drag as it happens).
fn preview_tick(raw: &str) -> Result<u64, String> {
    match positive(raw)? {
        n if n > 1000 => Err("must be at most 1000".into()),
        n => Ok(n),
    }
}

/// Requests per second; `0` turns the limit off.
fn rate(raw: &str) -> Result<u32, String> {
    u32::try_from(whole_number(raw)?).map_err(|_| "must be at most 4294967295".into())
}

fn burst(raw: &str) -> Result<NonZeroU32, String> {
    NonZeroU32::new(rate(raw)?).ok_or_else(|| "must be greater than 0".into())
}

fn flag(raw: &str) -> Result<bool, String> {
    match raw {
        "0" | "false" => Ok(false),
        "1" | "true" => Ok(true),
        other => Err(format!("{other:?} is not 0 or 1")),
    }
}

fn redis_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("redis://") || raw.starts_with("rediss://") {
        Ok(raw.to_string())
    } else {
        Err("must start with redis:// or rediss://".into())
    }
}

fn ip_address(raw: &str) -> Result<IpAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an IP address"))
}

fn port(raw: &str) -> Result<u16, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not a port number"))
}

fn log_format(raw: &str) -> Result<LogFormat, String> {
    match raw {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?} is not text or json")),
    }
}

fn networks(raw: &str) -> Result<Networks, String> {
    parse_networks(raw).map(Networks)
}

/// A comma-separated list, each item trimmed and passed through `clean`, empty items dropped.
fn list(raw: Option<String>, clean: impl Fn(&str) -> String) -> Vec<String> {
    raw.map(|raw| {
        raw.split(',')
            .map(|item| clean(item.trim()))
            .filter(|item| !item.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// The variables' parser, built once. `parser` reads values only from the arguments
/// [`Config::from_lookup`] builds: its `env` settings are removed, so clap never reads the
/// process environment behind the lookup's back (a test's map is the whole environment).
struct VarsParser {
    /// `(long option, variable)` for every variable.
    variables: Vec<(&'static str, &'static str)>,
    parser: clap::Command,
}

fn vars_parser() -> &'static VarsParser {
    static PARSER: std::sync::OnceLock<VarsParser> = std::sync::OnceLock::new();
    static COMMAND: std::sync::OnceLock<clap::Command> = std::sync::OnceLock::new();
    PARSER.get_or_init(|| {
        let command = COMMAND.get_or_init(<Vars as clap::CommandFactory>::command);
        let variables = command
            .get_arguments()
            .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_str()?)))
            .collect();
        let parser = command.clone().mut_args(|arg| arg.env(None::<&str>));
        VarsParser { variables, parser }
    })
}

/// clap's error as ours: the variable of the argument it names, and the value parser's reason.
fn config_error(error: clap::Error) -> ConfigError {
    use clap::error::{ContextKind, ContextValue};
    let argument = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(argument)) => argument.clone(),
        _ => String::new(),
    };
    let long = argument
        .trim_start_matches("--")
        .split([' ', '='])
        .next()
        .unwrap_or_default()
        .to_string();
    let var = vars_parser()
        .variables
        .iter()
        .find(|(option, _)| *option == long)
        .map_or("configuration", |(_, var)| var);
    let reason = match std::error::Error::source(&error) {
        Some(source) => source.to_string(),
        None => error.kind().to_string(),
    };
    invalid(var, reason)
}

impl Config {
    /// Reads the process environment. Errors: a [`ConfigError`] naming the first variable
    /// whose value does not parse, a non-loopback `HOST` without `ADMIN_TOKEN` (unless
    /// `CANOPY_ALLOW_INSECURE=1`), or a master key that is not base64 of 32 bytes.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable source (tests pass a map instead of
    /// mutating the process environment). Values are trimmed; an empty one counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let VarsParser { variables, parser } = vars_parser();
        let arguments = variables.iter().filter_map(|(option, var)| {
            let value = lookup(var)?;
            let value = value.trim();
            (!value.is_empty()).then(|| format!("--{option}={value}"))
        });
        let matches = parser
            .clone()
            .try_get_matches_from(arguments)
            .map_err(config_error)?;
        let vars =
            <Vars as clap::FromArgMatches>::from_arg_matches(&matches).map_err(config_error)?;

        // `VAR` requests per second (0: off) and `VAR_BURST` at once (default: twice the rate).
        let rate_limit = |per_second: u32, burst: Option<NonZeroU32>| {
            let per_second = NonZeroU32::new(per_second)?;
            let burst = burst.unwrap_or_else(|| {
                per_second.saturating_mul(NonZeroU32::new(2).expect("2 is not 0"))
            });
            Some(RateLimit { per_second, burst })
        };
        let default_workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);

        let config = Config {
            database_url: vars.database_url,
            database_pool_size: vars.database_pool_size as u32,
            database_busy_timeout: Duration::from_millis(vars.database_busy_timeout_ms),
            redis_url: vars.redis_url,
            redis_key_prefix: vars.redis_key_prefix.unwrap_or_default(),
            host: vars.host,
            port: vars.port,
            workers: vars.workers.map_or(default_workers, |n| n as usize),
            ws_queue_capacity: vars.ws_queue_capacity as usize,
            http_head_timeout: Duration::from_millis(vars.http_head_timeout_ms),
            admin_token: vars.admin_token.map(AdminToken),
            allow_insecure: vars.allow_insecure,
            cors_origins: list(vars.cors_origins, |o| o.trim_end_matches('/').to_string()),
            allowed_hosts: list(vars.allowed_hosts, str::to_ascii_lowercase),
            secrets_encryption_key: vars.secrets_encryption_key.map(KeyText::new),
            secrets_encryption_key_previous: vars.secrets_encryption_key_previous.map(KeyText::new),
            liveness_ttl: Duration::from_secs(vars.liveness_ttl_seconds),
            liveness_sweep_interval: Duration::from_secs(vars.liveness_sweep_interval_seconds),
            provision_timeout: Duration::from_secs(vars.provision_timeout_seconds),
            activity_retention: Duration::from_secs(vars.activity_retention_days * SECONDS_PER_DAY),
            activity_cleanup_interval: Duration::from_secs(
                vars.activity_cleanup_interval_hours * SECONDS_PER_HOUR,
            ),
            live_events_retention: Duration::from_secs(vars.live_events_retention_seconds),
            instance_id: vars.instance_id.unwrap_or_else(|| {
                let id = uuid::Uuid::new_v4().simple().to_string();
                format!("canopy-{}", &id[..8])
            }),
            log_format: vars.log_format,
            approval_timeout: Duration::from_secs(vars.approval_timeout_seconds),
            approval_sweep_interval: Duration::from_secs(vars.approval_sweep_interval_seconds),
            a2a: A2aConfig {
                timeout: Duration::from_secs(vars.a2a_timeout_seconds),
                max_timeout: Duration::from_secs(vars.a2a_max_timeout_seconds),
                max_response_bytes: vars.a2a_max_response_bytes as usize,
                allow_private: vars.a2a_allow_private_addresses,
            },
            rate_limits: RateLimits {
                per_address: rate_limit(
                    vars.rate_limit_per_address,
                    vars.rate_limit_per_address_burst,
                ),
                per_token: rate_limit(vars.rate_limit_per_token, vars.rate_limit_per_token_burst),
                per_admin_token: rate_limit(
                    vars.rate_limit_per_admin_token,
                    vars.rate_limit_per_admin_token_burst,
                ),
                ws_upgrades_per_address: rate_limit(
                    vars.rate_limit_ws_upgrades_per_address,
                    vars.rate_limit_ws_upgrades_per_address_burst,
                ),
                per_person: rate_limit(
                    vars.rate_limit_per_person,
                    vars.rate_limit_per_person_burst,
                ),
            },
            trusted_proxies: vars.trusted_proxies.map(|n| n.0).unwrap_or_default(),
            session_ttl: Duration::from_secs(vars.session_ttl_seconds),
            session_cookie_secure: vars.session_cookie_secure,
            presence_ttl: Duration::from_secs(vars.presence_ttl_seconds),
            drag_preview_tick: Duration::from_millis(vars.drag_preview_tick_ms),
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

    /// `"cluster"` when Redis is configured (instances share the backplane and liveness),
    /// `"embedded"` otherwise; shown in the start-up log.
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
    fn every_variable_is_declared_once_and_documented() {
        let vars: Vec<&str> = vars_parser().variables.iter().map(|(_, v)| *v).collect();
        assert!(vars.contains(&secrets::KEY_VAR) && vars.contains(&secrets::PREVIOUS_KEY_VAR));
        let unique: std::collections::HashSet<&&str> = vars.iter().collect();
        assert_eq!(unique.len(), vars.len(), "{vars:?}");
        let readme = include_str!("../README.md");
        for var in vars {
            // The burst variables share one row: `RATE_LIMIT_…_BURST`.
            let documented = readme.contains(&format!("| `{var}` |"))
                || (var.ends_with("_BURST") && readme.contains("| `RATE_LIMIT_…_BURST` |"));
            assert!(documented, "{var} is in the README's configuration table");
        }
    }

    #[test]
    fn cors_origins_are_trimmed() {
        let c = config(&[("CORS_ORIGINS", " http://a.test/ , http://b.test ,")]).unwrap();
        assert_eq!(c.cors_origins, vec!["http://a.test", "http://b.test"]);
    }
}
