//! The A2A proxy's record of a call: written after the call returns, in one transaction with
//! its ACTIVITY_LOGGED events, so an open canvas sees the conversation live.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use super::activity::append_activity;
use crate::domain::validation::ActivityType;
use crate::error::AppResult;
use crate::store::activity::NewActivity;
use crate::store::workspaces as ws;
use crate::store::Tx;

/// How a proxied call ended, as `activity_logs.status` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered.
    Ok,
    /// The call failed: unreachable, refused, or an answer that is not JSON-RPC.
    Error,
    /// No answer within the caller's timeout.
    Timeout,
}

impl Outcome {
    /// The stored status: `ok`, `error` or `timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }
}

/// One proxied call.
pub struct Exchange {
    /// The calling workspace; `None` for the canvas (a person).
    pub caller: Option<Uuid>,
    /// The workspace called.
    pub target: Uuid,
    /// The JSON-RPC method.
    pub method: String,
    /// The envelope sent (already bounded for storage).
    pub request_body: Value,
    /// The agent's answer (already bounded for storage), when there was one.
    pub response_body: Option<Value>,
    /// How the call ended.
    pub outcome: Outcome,
    /// Why it failed, when it did (bounded for storage).
    pub error_detail: Option<String>,
    /// How long the call took, in milliseconds.
    pub duration_ms: i32,
}

/// Writes `a2a_receive` on the target (its `source_id` is the caller, `NULL` for the canvas —
/// so the canvas chat's history loader finds it) and, for a workspace calling another,
/// `a2a_send` on the caller; each with its ACTIVITY_LOGGED event.
pub fn record(tx: &mut Tx<'_>, exchange: Exchange) -> AppResult<()> {
    tx.lock_stream()?;
    let target_name = ws::find_row(tx.conn(), exchange.target)?
        .map(|w| w.name)
        .unwrap_or_else(|| exchange.target.to_string());
    let summary = format!("{} → {}", exchange.method, target_name);
    let now = Utc::now();
    let row = |workspace_id: Uuid, activity_type: ActivityType| NewActivity {
        id: Uuid::new_v4(),
        workspace_id,
        activity_type: activity_type.as_str().to_string(),
        source_id: exchange.caller,
        target_id: Some(exchange.target),
        method: Some(exchange.method.clone()),
        summary: Some(summary.clone()),
        request_body: Some(exchange.request_body.clone()),
        response_body: exchange.response_body.clone(),
        metadata: None,
        duration_ms: Some(exchange.duration_ms),
        status: exchange.outcome.as_str().to_string(),
        error_detail: exchange.error_detail.clone(),
        created_at: now,
    };
    if let Some(caller) = exchange.caller.filter(|c| *c != exchange.target) {
        append_activity(tx, &row(caller, ActivityType::A2aSend))?;
    }
    append_activity(tx, &row(exchange.target, ActivityType::A2aReceive))?;
    Ok(())
}
