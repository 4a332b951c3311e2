//! Integration tests: the real app on port 0, over HTTP and WebSocket. SQLite by default;
//! PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set (each test gets its own database
//! and key prefix, so tests run in parallel).

mod helpers;

mod activity;
mod agents;
mod bench_smoke;
mod browser;
mod foundation;
mod rate_limits;
mod realtime;
mod registry;
mod secrets;
mod shutdown;
mod workspaces;
