//! The wire envelope (CONTRACT.md "WebSocket").

use std::sync::Arc;

use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::LiveEvent;

/// One serialized frame, shared by every session it goes to; or, from [`Frame::batch`], a run
/// of consecutive event frames that takes one place in a session's queue.
#[derive(Debug)]
pub struct Frame {
    /// The event's position in the stream (for a batch: its last event's); `None` for
    /// transient frames.
    pub seq: Option<i64>,
    /// The JSON text of a single frame; empty for a batch (read `wire`).
    pub text: ByteString,
    /// `text` as a complete WebSocket text frame (server to client, unmasked): encoded once
    /// and written as is to every socket the frame goes to. A batch's is its events' frames
    /// back to back.
    pub wire: Bytes,
    /// A batch's events: each one's seq and the byte offset of its frame in `wire`, in seq
    /// order. Empty for a single frame.
    parts: Box<[(i64, usize)]>,
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
            parts: Box::default(),
        }
    }

    /// The event frames of one delivery (consecutive seqs, in order) as one queue entry, so a
    /// commit of many events (an Arrange of a large canvas) costs a session one place in its
    /// bounded queue, not one per event, and leaves in one write. One frame is returned as is.
    ///
    /// # Panics
    /// If `frames` is empty or holds a frame without a seq (only events are batched).
    pub fn batch(frames: &[Arc<Frame>]) -> Arc<Frame> {
        if let [one] = frames {
            return Arc::clone(one);
        }
        let mut wire = BytesMut::with_capacity(frames.iter().map(|f| f.wire.len()).sum());
        let mut parts = Vec::with_capacity(frames.len());
        for frame in frames {
            let seq = frame.seq.expect("only event frames are batched");
            parts.push((seq, wire.len()));
            wire.extend_from_slice(&frame.wire);
        }
        Arc::new(Frame {
            seq: Some(parts.last().expect("a batch has frames").0),
            text: ByteString::new(),
            wire: wire.freeze(),
            parts: parts.into_boxed_slice(),
        })
    }

    /// How many stream events the frame carries: 0 for a transient frame, more than 1 for a
    /// batch.
    pub fn events(&self) -> usize {
        match (self.seq, self.parts.len()) {
            (None, _) => 0,
            (Some(_), 0) => 1,
            (Some(_), n) => n,
        }
    }

    /// The seqs of the events the frame carries, in order (none for a transient frame).
    pub fn seqs(&self) -> impl Iterator<Item = i64> + '_ {
        let single = match (self.seq, self.parts.is_empty()) {
            (Some(seq), true) => Some(seq),
            _ => None,
        };
        single
            .into_iter()
            .chain(self.parts.iter().map(|(seq, _)| *seq))
    }

    /// The bytes to write to a socket that already has every event up to `after` (the resume
    /// replay sent them): all of `wire`, the tail of a batch whose first events are at or below
    /// `after`, or `None` when nothing in the frame is newer. Transient frames always go.
    pub fn wire_after(&self, after: i64) -> Option<Bytes> {
        match self.seq {
            None => Some(self.wire.clone()),
            Some(last) if last <= after => None,
            Some(_) => match self.parts.iter().position(|(seq, _)| *seq > after) {
                None | Some(0) => Some(self.wire.clone()),
                Some(i) => Some(self.wire.slice(self.parts[i].1..)),
            },
        }
    }

    /// A stream event's frame: the CONTRACT.md envelope `{event, workspace_id, timestamp, payload,
    /// actor?, seq}` with `seq` last.
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

    /// CONNECTED `{seq, instance_id, epoch}`: the first frame of every socket; `seq` is the newest
    /// event the socket is current to, `epoch` names the stream a later `since` belongs to.
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

    /// RESYNC_REQUIRED `{reason}`: the missed events cannot be replayed; reload over HTTP.
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

    fn event_frame(seq: i64) -> Arc<Frame> {
        Arc::new(Frame::new(Some(seq), format!(r#"{{"seq":{seq}}}"#)))
    }

    /// The texts a client decodes from some bytes, in order.
    fn decode_all(wire: &Bytes) -> Vec<String> {
        let mut buf = BytesMut::from(&wire[..]);
        let mut client = Codec::new().client_mode();
        let mut texts = Vec::new();
        while let Some(frame) = client.decode(&mut buf).unwrap() {
            match frame {
                WsFrame::Text(payload) => texts.push(String::from_utf8(payload.to_vec()).unwrap()),
                other => panic!("decoded {other:?}"),
            }
        }
        assert!(buf.is_empty(), "nothing left over");
        texts
    }

    #[test]
    fn a_batch_decodes_as_its_events_and_skips_what_the_replay_sent() {
        let frames: Vec<_> = (5..=8).map(event_frame).collect();
        let batch = Frame::batch(&frames);
        assert_eq!((batch.seq, batch.events()), (Some(8), 4));
        assert_eq!(batch.seqs().collect::<Vec<_>>(), vec![5, 6, 7, 8]);
        let texts = |after| batch.wire_after(after).map(|w| decode_all(&w));
        let all: Vec<String> = (5..=8).map(|s| format!(r#"{{"seq":{s}}}"#)).collect();
        assert_eq!(texts(0).unwrap(), all);
        assert_eq!(texts(4).unwrap(), all);
        assert_eq!(texts(6).unwrap(), all[2..].to_vec());
        assert_eq!(texts(7).unwrap(), all[3..].to_vec());
        assert_eq!(texts(8), None);
        assert_eq!(texts(100), None);
    }

    #[test]
    fn a_batch_of_one_is_that_frame_and_transient_frames_always_go() {
        let one = event_frame(3);
        assert!(Arc::ptr_eq(&Frame::batch(std::slice::from_ref(&one)), &one));
        assert_eq!((one.events(), one.seqs().collect::<Vec<_>>()), (1, vec![3]));
        assert_eq!(one.wire_after(3), None);
        assert_eq!(one.wire_after(2), Some(one.wire.clone()));
        let connected = Frame::connected(9, "i", "e");
        assert_eq!((connected.events(), connected.seqs().count()), (0, 0));
        assert_eq!(connected.wire_after(100), Some(connected.wire.clone()));
    }
}
