//! The wire envelope (CONTRACT.md "WebSocket").

use actix_web::web::{Bytes, BytesMut};
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
    /// `text` as a complete WebSocket text frame (server to client, unmasked): encoded once
    /// and written as is to every socket the frame goes to.
    pub wire: Bytes,
}

#[derive(Serialize)]
struct Envelope<'a> {
    event: &'a str,
    workspace_id: Option<Uuid>,
    timestamp: DateTime<Utc>,
    payload: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a crate::domain::people::Actor>,
}

impl Frame {
    fn new(seq: Option<i64>, text: String) -> Frame {
        Frame {
            seq,
            wire: encode_text_frame(&text),
            text: text.into(),
        }
    }

    pub fn event(event: &LiveEvent) -> Frame {
        let text = serde_json::to_string(&Envelope {
            event: &event.event_type,
            workspace_id: event.workspace_id,
            timestamp: event.created_at,
            payload: &event.payload,
            seq: Some(event.seq),
            actor: event.actor.as_ref(),
        })
        .expect("a LiveEvent always serializes");
        Frame::new(Some(event.seq), text)
    }

    /// A frame that is not part of the stream (CONNECTED, RESYNC_REQUIRED).
    pub fn transient(event: &str, payload: serde_json::Value) -> Frame {
        let text = serde_json::to_string(&Envelope {
            event,
            workspace_id: None,
            timestamp: Utc::now(),
            payload: &payload,
            seq: None,
            actor: None,
        })
        .expect("a JSON value always serializes");
        Frame::new(None, text)
    }

    pub fn connected(seq: i64, instance_id: &str, epoch: &str) -> Frame {
        Frame::transient(
            "CONNECTED",
            json!({ "seq": seq, "instance_id": instance_id, "epoch": epoch }),
        )
    }

    /// DRAG_PREVIEW `{workspace_id, x, y, actor?}`: volatile, no seq (see `volatile`).
    pub fn drag_preview(preview: &super::volatile::DragPreview) -> Frame {
        let mut payload = json!({
            "workspace_id": preview.workspace_id,
            "x": crate::domain::events::json_number(preview.x),
            "y": crate::domain::events::json_number(preview.y),
        });
        if let Some(actor) = &preview.actor {
            payload["actor"] = json!(actor);
        }
        Frame::about(
            "DRAG_PREVIEW",
            preview.workspace_id,
            payload,
            preview.actor.as_ref(),
        )
    }

    /// DRAG_ENDED `{workspace_id, actor?}`: a drag stopped without a drop; volatile, no seq.
    pub fn drag_ended(ended: &super::volatile::DragEnded) -> Frame {
        let mut payload = json!({ "workspace_id": ended.workspace_id });
        if let Some(actor) = &ended.actor {
            payload["actor"] = json!(actor);
        }
        Frame::about(
            "DRAG_ENDED",
            ended.workspace_id,
            payload,
            ended.actor.as_ref(),
        )
    }

    /// A frame about a workspace that is not part of the stream (no seq).
    fn about(
        event: &str,
        workspace_id: Uuid,
        payload: serde_json::Value,
        actor: Option<&crate::domain::people::Actor>,
    ) -> Frame {
        let text = serde_json::to_string(&Envelope {
            event,
            workspace_id: Some(workspace_id),
            timestamp: Utc::now(),
            payload: &payload,
            seq: None,
            actor,
        })
        .expect("a JSON value always serializes");
        Frame::new(None, text)
    }

    pub fn resync_required(reason: &str) -> Frame {
        Frame::transient("RESYNC_REQUIRED", json!({ "reason": reason }))
    }
}

/// RFC 6455 section 5.2: FIN + text opcode, the payload length in 7, 16 or 64 bits, no mask.
fn encode_text_frame(text: &str) -> Bytes {
    let len = text.len();
    let mut wire = BytesMut::with_capacity(len + 10);
    wire.extend_from_slice(&[0x81]);
    if len < 126 {
        wire.extend_from_slice(&[len as u8]);
    } else if let Ok(len) = u16::try_from(len) {
        wire.extend_from_slice(&[126]);
        wire.extend_from_slice(&len.to_be_bytes());
    } else {
        wire.extend_from_slice(&[127]);
        wire.extend_from_slice(&(len as u64).to_be_bytes());
    }
    wire.extend_from_slice(text.as_bytes());
    wire.freeze()
}

#[cfg(test)]
mod tests {
    use actix_codec::Decoder;
    use actix_http::ws::{Codec, Frame as WsFrame};

    use super::*;

    /// What a client decodes from the pre-encoded bytes is the text, at every length class.
    #[test]
    fn wire_bytes_decode_as_one_text_frame() {
        for len in [0, 1, 125, 126, 65_535, 65_536, 70_000] {
            let text = "x".repeat(len);
            let mut buf = BytesMut::from(&encode_text_frame(&text)[..]);
            let mut client = Codec::new().client_mode().max_size(1 << 20);
            match client.decode(&mut buf).unwrap() {
                Some(WsFrame::Text(payload)) => assert_eq!(payload, text.as_bytes()),
                other => panic!("length {len}: decoded {other:?}"),
            }
            assert!(buf.is_empty(), "length {len}: nothing left over");
        }
    }
}
