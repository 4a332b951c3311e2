//! Canopy: the backend of a live org-chart canvas for AI agent workspaces.
//! See DESIGN.md for the event pipeline this crate is organized around.

pub mod a2a;
pub mod app;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod jobs;
pub mod liveness;
pub mod queries;
pub mod realtime;
pub mod secrets;
pub mod store;
pub mod telemetry;
