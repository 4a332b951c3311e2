//! The wire envelope (CONTRACT.md "WebSocket").

use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::LiveEvent;

/// One serialized frame, shared by every session it goes to.
#[derive(Debug)]
pub struct Frame {
    /// The event's position in the stream; `None` for transient frames.
    pub seq: Option<i64>,
    pub text: ByteString,
}

#[derive(Serialize)]
struct Envelope<'a> {
    event: &'a str,
    workspace_id: Option<Uuid>,
    timestamp: DateTime<Utc>,
    payload: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
}

impl Frame {
    pub fn event(event: &LiveEvent) -> Frame {
        let text = serde_json::to_string(&Envelope {
            event: &event.event_type,
            workspace_id: event.workspace_id,
            timestamp: event.created_at,
            payload: &event.payload,
            seq: Some(event.seq),
        })
        .expect("a LiveEvent always serializes");
        Frame {
            seq: Some(event.seq),
            text: text.into(),
        }
    }

    /// A frame that is not part of the stream (CONNECTED, RESYNC_REQUIRED).
    pub fn transient(event: &str, payload: serde_json::Value) -> Frame {
        let text = serde_json::to_string(&Envelope {
            event,
            workspace_id: None,
            timestamp: Utc::now(),
            payload: &payload,
            seq: None,
        })
        .expect("a JSON value always serializes");
        Frame {
            seq: None,
            text: text.into(),
        }
    }

    pub fn connected(seq: i64, instance_id: &str, epoch: &str) -> Frame {
        Frame::transient(
            "CONNECTED",
            json!({ "seq": seq, "instance_id": instance_id, "epoch": epoch }),
        )
    }

    pub fn resync_required(reason: &str) -> Frame {
        Frame::transient("RESYNC_REQUIRED", json!({ "reason": reason }))
    }
}
