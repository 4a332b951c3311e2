//! Integration tests: the real app on port 0, over HTTP and WebSocket. SQLite by default;
//! PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set (each test gets its own database
//! and key prefix, so tests run in parallel).

mod helpers;

mod a2a;
mod activity;
mod agents;
mod approvals;
mod arrange;
mod backup;
mod bench_smoke;
mod boundary_ws;
mod browser;
mod collab;
mod deploy;
mod foundation;
mod hardening;
mod openapi;
mod people;
mod process;
mod rate_limits;
mod realtime;
mod registry;
mod request_ids;
mod seams;
mod secrets;
mod shutdown;
mod wire_gaps;
mod workspaces;
