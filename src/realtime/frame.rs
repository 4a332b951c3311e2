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
    actor: Option<&'a crate::domain::people::Actor>,
    /// Last, so a client can read a frame's position from its end without parsing the
    /// payload (the benchmark's reader does).
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<i64>,
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

    /// DRAG_PREVIEWS `{"previews":[…],"ended":[…]}`: one preview tick's entries (see
    /// `volatile`), each already serialized by [`preview_entry`] or [`ended_entry`]. Volatile:
    /// no seq, no `workspace_id` (an entry names its node), no `actor` (each entry has its own).
    pub fn drag_previews<'a>(
        previews: impl Iterator<Item = &'a str>,
        ended: impl Iterator<Item = &'a str>,
    ) -> Frame {
        let timestamp = serde_json::to_string(&Utc::now()).expect("a timestamp serializes");
        let mut text = String::with_capacity(256);
        text.push_str(r#"{"event":"DRAG_PREVIEWS","workspace_id":null,"timestamp":"#);
        text.push_str(&timestamp);
        text.push_str(r#","payload":{"previews":["#);
        join_into(&mut text, previews);
        text.push_str(r#"],"ended":["#);
        join_into(&mut text, ended);
        text.push_str("]}}");
        Frame::new(None, text)
    }

    pub fn resync_required(reason: &str) -> Frame {
        Frame::transient("RESYNC_REQUIRED", json!({ "reason": reason }))
    }
}

/// One entry of DRAG_PREVIEWS' `previews`: `{"actor"?,"workspace_id","x","y"}`, in this key
/// order (`y` last, so a reader can find the position without a parser).
pub fn preview_entry(preview: &super::volatile::DragPreview) -> String {
    #[derive(Serialize)]
    struct Entry<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        actor: Option<&'a crate::domain::people::Actor>,
        workspace_id: Uuid,
        #[serde(serialize_with = "crate::domain::events::serialize_number")]
        x: f64,
        #[serde(serialize_with = "crate::domain::events::serialize_number")]
        y: f64,
    }
    serde_json::to_string(&Entry {
        actor: preview.actor.as_ref(),
        workspace_id: preview.workspace_id,
        x: preview.x,
        y: preview.y,
    })
    .expect("a preview always serializes")
}

/// One entry of DRAG_PREVIEWS' `ended`: `{"actor"?,"workspace_id"}`, a drag that stopped
/// without a drop (put the node back where the last layout event left it).
pub fn ended_entry(ended: &super::volatile::DragEnded) -> String {
    #[derive(Serialize)]
    struct Entry<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        actor: Option<&'a crate::domain::people::Actor>,
        workspace_id: Uuid,
    }
    serde_json::to_string(&Entry {
        actor: ended.actor.as_ref(),
        workspace_id: ended.workspace_id,
    })
    .expect("an ended drag always serializes")
}

fn join_into<'a>(text: &mut String, items: impl Iterator<Item = &'a str>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(item);
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
