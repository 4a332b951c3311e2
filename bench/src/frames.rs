//! Reading server frames cheaply, and checking a socket's seq sequence.
//!
//! A socket task only needs a frame's `seq` and, for the generator's own drags and activity
//! posts, the counter it encoded. The envelope is serialized with `seq` as its last key
//! (`…,"payload":{…},"actor":{…},"seq":N}`), so a scan from the end finds it without parsing
//! the payload; anything that does not have that exact shape falls back to serde_json. (A
//! server from before `seq` moved behind `actor` gets the full parse for every event with an
//! actor.) DRAG_PREVIEWS frames are recognised by their first bytes and their entries' `x`/`y`
//! read by a scan as well. On this machine the
//! scan costs well under a microsecond per frame, several times less than a full
//! `serde_json::Value` parse (see `scan_is_cheaper_than_parsing`).

/// `y` of every drag the generator sends: marks a WORKSPACE_LAYOUT_CHANGED (a PATCH) or a
/// DRAG_PREVIEW (a drag frame) as its own, and `x` carries the counter.
pub const DRAG_MARKER_Y: i64 = -424_242;
/// Prefix of the `summary` of every activity post the generator sends; the counter follows.
pub const ACTIVITY_SUMMARY_PREFIX: &str = "bench#";

const LAYOUT_PREFIX: &str = r#"{"event":"WORKSPACE_LAYOUT_CHANGED","#;
const ACTIVITY_PREFIX: &str = r#"{"event":"ACTIVITY_LOGGED","#;
const RESYNC_PREFIX: &str = r#"{"event":"RESYNC_REQUIRED","#;
/// One frame per server tick with every drag preview of the tick (the current server).
const PREVIEWS_PREFIX: &str = r#"{"event":"DRAG_PREVIEWS","#;
/// One frame per preview (servers before DRAG_PREVIEWS), still read so one generator can
/// measure both.
const PREVIEW_PREFIX: &str = r#"{"event":"DRAG_PREVIEW","#;
const DRAG_ENDED_PREFIX: &str = r#"{"event":"DRAG_ENDED","#;
const ERROR_PREFIX: &str = r#"{"type":"error","#;

/// What a socket needs to know about one text frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A stream event; `counter` is set for the generator's own drags and activity posts.
    Stream { seq: i64, counter: Option<u64> },
    /// The server could not give this socket a contiguous stream.
    Resync,
    /// A DRAG_PREVIEW of an older server (volatile, no seq); `counter` is set for the
    /// generator's own drag frames.
    Preview { counter: Option<u64> },
    /// A DRAG_PREVIEWS frame (one tick's previews): read its counters with [`preview_counters`].
    Previews,
    /// Anything else without a seq (CONNECTED, pong, error frames).
    Other,
}

pub fn classify(text: &str) -> Frame {
    match envelope_seq(text) {
        Some(seq) => Frame::Stream {
            seq,
            counter: counter(text),
        },
        None if text.starts_with(RESYNC_PREFIX) => Frame::Resync,
        // Previews come at tens of thousands of frames a second in a drag run: no full parse.
        None if text.starts_with(PREVIEWS_PREFIX) => Frame::Previews,
        None if text.starts_with(PREVIEW_PREFIX) => Frame::Preview {
            counter: preview_counter(text),
        },
        None if text.starts_with(DRAG_ENDED_PREFIX) => Frame::Other,
        None => slow_classify(text),
    }
}

/// Fast path: `…"seq":<digits>}` at the very end, read backwards without searching.
fn envelope_seq(text: &str) -> Option<i64> {
    let body = text.strip_suffix('}')?;
    let (value, rest) = integer_before(body)?;
    rest.strip_suffix(r#""seq":"#)?;
    (value >= 0).then_some(value)
}

/// The integer at the very end of `text` (`-?[0-9]+`), and what precedes it.
fn integer_before(text: &str) -> Option<(i64, &str)> {
    let bytes = text.as_bytes();
    let mut start = bytes.len();
    while start > 0 && bytes[start - 1].is_ascii_digit() {
        start -= 1;
    }
    if start == bytes.len() || bytes.len() - start > 18 {
        return None;
    }
    let negative = start > 0 && bytes[start - 1] == b'-';
    let magnitude: i64 = text[start..].parse().ok()?;
    let before = if negative { start - 1 } else { start };
    Some((
        if negative { -magnitude } else { magnitude },
        &text[..before],
    ))
}

/// The text of a drag frame for `workspace_id` carrying `counter` (see [`DRAG_MARKER_Y`]).
pub fn drag_frame(workspace_id: &uuid::Uuid, counter: u64) -> String {
    format!(
        r#"{{"type":"drag","workspace_id":"{workspace_id}","x":{counter},"y":{DRAG_MARKER_Y}}}"#
    )
}

/// Whether a frame is the server's answer to a frame it refused (`{"type":"error",…}`).
pub fn is_error(text: &str) -> bool {
    text.starts_with(ERROR_PREFIX)
}

/// The counter of one of the generator's own previews. The payload's keys are sorted
/// (`actor`, `workspace_id`, `x`, `y`), and the first `,"x":` in the frame is the payload's:
/// inside a JSON string a quote is escaped. Any other shape takes the full parse.
fn preview_counter(text: &str) -> Option<u64> {
    let scanned = (|| {
        let key = r#","x":"#;
        let rest = &text[text.find(key)? + key.len()..];
        let (x, rest) = integer_after(rest)?;
        let (y, rest) = integer_after(rest.strip_prefix(r#","y":"#)?)?;
        rest.starts_with('}').then_some(())?;
        Some(
            (y == DRAG_MARKER_Y)
                .then(|| u64::try_from(x).ok())
                .flatten(),
        )
    })();
    scanned.unwrap_or_else(|| {
        let value: serde_json::Value = serde_json::from_str(text).ok()?;
        let payload = value.get("payload")?;
        (payload.get("y")?.as_i64()? == DRAG_MARKER_Y).then_some(())?;
        payload.get("x")?.as_u64()
    })
}

/// The counters of the generator's own drags in a DRAG_PREVIEWS frame, each entry
/// `{…,"x":<counter>,"y":<DRAG_MARKER_Y>}` (`y` is an entry's last key; inside a JSON string a
/// quote is escaped, so `,"x":` is always a key). Entries of another shape are not ours. If no
/// entry has the scanned shape but the marker occurs, the server changed the shape: the full
/// parse reads it.
pub fn preview_counters(text: &str, mut each: impl FnMut(u64)) {
    let key = r#","x":"#;
    let mut rest = text;
    let mut shaped = 0;
    while let Some(at) = rest.find(key) {
        rest = &rest[at + key.len()..];
        let Some((x, after_x)) = integer_after(rest) else {
            continue;
        };
        let Some(after_key) = after_x.strip_prefix(r#","y":"#) else {
            continue;
        };
        let Some((y, after_y)) = integer_after(after_key) else {
            continue;
        };
        if !after_y.starts_with('}') {
            continue;
        }
        shaped += 1;
        if y == DRAG_MARKER_Y {
            if let Ok(counter) = u64::try_from(x) {
                each(counter);
            }
        }
        rest = after_y;
    }
    if shaped == 0 && text.contains(&format!(r#""y":{DRAG_MARKER_Y}"#)) {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let entries = value["payload"]["previews"]
            .as_array()
            .into_iter()
            .flatten();
        for entry in entries {
            if entry.get("y").and_then(|y| y.as_i64()) == Some(DRAG_MARKER_Y) {
                if let Some(counter) = entry.get("x").and_then(|x| x.as_u64()) {
                    each(counter);
                }
            }
        }
    }
}

/// The integer at the very start of `text` (`-?[0-9]+`), and what follows it.
fn integer_after(text: &str) -> Option<(i64, &str)> {
    let digits_from = usize::from(text.starts_with('-'));
    let end = digits_from
        + text.as_bytes()[digits_from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    if end == digits_from || end - digits_from > 18 {
        return None;
    }
    Some((text[..end].parse().ok()?, &text[end..]))
}

/// Slow path for frames the scan cannot read: a full parse, top-level keys only.
fn slow_classify(text: &str) -> Frame {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Frame::Other;
    };
    if value.get("event").and_then(|e| e.as_str()) == Some("RESYNC_REQUIRED") {
        return Frame::Resync;
    }
    match value.get("seq").and_then(|s| s.as_i64()) {
        Some(seq) => Frame::Stream {
            seq,
            counter: counter_from_value(&value),
        },
        None => Frame::Other,
    }
}

fn counter_from_value(value: &serde_json::Value) -> Option<u64> {
    let payload = value.get("payload")?;
    match value.get("event")?.as_str()? {
        "WORKSPACE_LAYOUT_CHANGED" => {
            (payload.get("y")?.as_i64()? == DRAG_MARKER_Y).then_some(())?;
            payload.get("x")?.as_u64()
        }
        "ACTIVITY_LOGGED" => payload
            .get("summary")?
            .as_str()?
            .strip_prefix(ACTIVITY_SUMMARY_PREFIX)?
            .parse()
            .ok(),
        _ => None,
    }
}

/// The counter of one of the generator's own events, read without parsing the frame.
fn counter(text: &str) -> Option<u64> {
    if text.starts_with(LAYOUT_PREFIX) {
        // `…"payload":{"collapsed":…,"x":<x>,"y":<y>},"seq":N}`: the payload's keys are
        // sorted, so y is its last key and x the one before; read both backwards. A payload
        // of any other shape (not ours, or a server change) takes the full parse.
        drag_counter_backwards(text).unwrap_or_else(|| match slow_classify(text) {
            Frame::Stream { counter, .. } => counter,
            _ => None,
        })
    } else if text.starts_with(ACTIVITY_PREFIX) {
        let key = r#""summary":"bench#"#;
        let at = text.find(key)? + key.len();
        let rest = &text[at..];
        let end = rest.find('"')?;
        rest[..end].parse().ok()
    } else {
        None
    }
}

/// `Some(None)`: a well-formed drag that is not ours; `None`: not the expected shape.
fn drag_counter_backwards(text: &str) -> Option<Option<u64>> {
    let body = text.strip_suffix('}')?;
    let (_, rest) = integer_before(body)?;
    let before_seq = rest.strip_suffix(r#","seq":"#)?;
    // `…"y":Y}` or `…"y":Y},"actor":{…}`: a quote inside a string is escaped, so the actor's
    // key cannot occur inside it.
    let payload = match before_seq.rfind(r#"},"actor":{"#) {
        Some(at) => &before_seq[..at],
        None => before_seq.strip_suffix('}')?,
    };
    let (y, rest) = integer_before(payload)?;
    let rest = rest.strip_suffix(r#","y":"#)?;
    let (x, rest) = integer_before(rest)?;
    rest.strip_suffix(r#""x":"#)?;
    Some(
        (y == DRAG_MARKER_Y)
            .then(|| u64::try_from(x).ok())
            .flatten(),
    )
}

/// A CONNECTED frame's `payload.seq` (where a socket's stream starts, or on a resume how far
/// the server has delivered) and the stream's `epoch` (what a resume names in `?epoch=`).
pub fn connected(text: &str) -> Option<(i64, String)> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    (value.get("event")?.as_str()? == "CONNECTED").then_some(())?;
    let payload = value.get("payload")?;
    let epoch = payload
        .get("epoch")
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    Some((payload.get("seq")?.as_i64()?, epoch.to_string()))
}

/// One socket's view of the stream. The server sends a canvas socket every event after the
/// seq in its CONNECTED frame, in order, each once: the next seq is always exactly `last + 1`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqCheck {
    pub last: i64,
    pub received: u64,
    /// Seqs skipped over (each counted once).
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl SeqCheck {
    pub fn starting_after(seq: i64) -> SeqCheck {
        SeqCheck {
            last: seq,
            ..SeqCheck::default()
        }
    }

    pub fn observe(&mut self, seq: i64) {
        self.received += 1;
        if seq == self.last + 1 {
            self.last = seq;
        } else if seq > self.last {
            self.lost += (seq - self.last - 1) as u64;
            self.last = seq;
        } else if seq == self.last {
            self.duplicated += 1;
        } else {
            self.out_of_order += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(event: &str, payload: serde_json::Value, seq: Option<i64>) -> String {
        let mut v = json!({
            "event": event,
            "workspace_id": "5b0f3f2e-8a47-4c83-9d0c-0d6b0c2a6f11",
            "timestamp": "2026-01-01T00:00:00.123456Z",
            "payload": payload,
        });
        if let Some(seq) = seq {
            v["seq"] = json!(seq);
        }
        // serde_json (no preserve_order) sorts keys; the server writes seq last. Rebuild in the
        // server's order.
        let mut text = format!(
            r#"{{"event":{},"workspace_id":{},"timestamp":{},"payload":{}"#,
            v["event"], v["workspace_id"], v["timestamp"], v["payload"]
        );
        if let Some(seq) = seq {
            text.push_str(&format!(r#","seq":{seq}"#));
        }
        text.push('}');
        text
    }

    #[test]
    fn own_drags_carry_their_counter() {
        let text = envelope(
            "WORKSPACE_LAYOUT_CHANGED",
            json!({"x": 1234, "y": DRAG_MARKER_Y, "collapsed": false}),
            Some(99),
        );
        assert_eq!(
            classify(&text),
            Frame::Stream {
                seq: 99,
                counter: Some(1234)
            }
        );
    }

    #[test]
    fn events_with_an_actor_take_the_scan_too() {
        let actor = r#"{"id":"admin","name":"a \"},\"actor\":{ b","type":"admin"}"#;
        let text = format!(
            r#"{{"event":"WORKSPACE_LAYOUT_CHANGED","workspace_id":"w","timestamp":"t","payload":{{"collapsed":false,"version":4,"x":77,"y":{DRAG_MARKER_Y}}},"actor":{actor},"seq":12}}"#
        );
        assert_eq!(envelope_seq(&text), Some(12));
        assert_eq!(drag_counter_backwards(&text), Some(Some(77)));
        assert_eq!(
            classify(&text),
            Frame::Stream {
                seq: 12,
                counter: Some(77)
            }
        );
    }

    #[test]
    fn foreign_drags_have_no_counter() {
        for payload in [
            json!({"x": 5, "y": 7, "collapsed": false}),
            json!({"x": 5.5, "y": DRAG_MARKER_Y, "collapsed": false}),
            json!({"x": 5, "y": -424242.5, "collapsed": false}),
        ] {
            let text = envelope("WORKSPACE_LAYOUT_CHANGED", payload, Some(3));
            assert_eq!(
                classify(&text),
                Frame::Stream {
                    seq: 3,
                    counter: None
                }
            );
        }
    }

    #[test]
    fn own_activity_carries_its_counter() {
        let payload = json!({"id": "x", "activity_type": "agent_log", "summary": "bench#77",
            "method": null, "status": "ok", "source_id": null, "target_id": null, "duration_ms": null});
        let text = envelope("ACTIVITY_LOGGED", payload, Some(12));
        assert_eq!(
            classify(&text),
            Frame::Stream {
                seq: 12,
                counter: Some(77)
            }
        );
    }

    #[test]
    fn seq_inside_a_payload_is_not_the_envelope_seq() {
        let connected = r#"{"event":"CONNECTED","workspace_id":null,"timestamp":"t","payload":{"epoch":"e","instance_id":"i","seq":41}}"#;
        assert_eq!(classify(connected), Frame::Other);
        assert_eq!(super::connected(connected), Some((41, "e".to_string())));
        let tricky = envelope(
            "AGENT_CARD_UPDATED",
            json!({"agent_card": {"seq": 5}}),
            None,
        );
        assert_eq!(classify(&tricky), Frame::Other);
    }

    #[test]
    fn unusual_layout_falls_back_to_a_full_parse() {
        let text =
            r#"{"seq": 8, "event":"WORKSPACE_LAYOUT_CHANGED","payload":{"x":3,"y":-424242}}"#;
        assert_eq!(
            classify(text),
            Frame::Stream {
                seq: 8,
                counter: Some(3)
            }
        );
    }

    /// As the server writes it: envelope keys in declaration order, payload keys sorted.
    fn preview(x: &str, y: &str) -> String {
        let actor = r#"{"id":"admin","name":"a \",\"x\":1 b","type":"admin"}"#;
        format!(
            r#"{{"event":"DRAG_PREVIEW","workspace_id":"w","timestamp":"t","payload":{{"actor":{actor},"workspace_id":"w","x":{x},"y":{y}}},"actor":{actor}}}"#
        )
    }

    #[test]
    fn own_previews_carry_their_counter() {
        let text = preview("1234", &DRAG_MARKER_Y.to_string());
        assert_eq!(
            classify(&text),
            Frame::Preview {
                counter: Some(1234)
            }
        );
        for (x, y) in [("5", "7"), ("5.5", "-424242"), ("-5", "-424242")] {
            assert_eq!(
                classify(&preview(x, y)),
                Frame::Preview { counter: None },
                "{x} {y}"
            );
        }
        // Another key order still parses (the full parse).
        let reordered =
            r#"{"event":"DRAG_PREVIEW","workspace_id":"w","payload":{"y":-424242,"x":9}}"#;
        assert_eq!(classify(reordered), Frame::Preview { counter: Some(9) });
        let ended = r#"{"event":"DRAG_ENDED","workspace_id":"w","timestamp":"t","payload":{"workspace_id":"w"}}"#;
        assert_eq!(classify(ended), Frame::Other);
    }

    /// As the server writes it: every entry `{"actor"?,"workspace_id","x","y"}`.
    fn previews_frame(entries: &[(&str, &str)]) -> String {
        let actor = r#"{"id":"admin","name":"a \",\"x\":1 b","type":"admin"}"#;
        let entries: Vec<String> = entries
            .iter()
            .map(|(x, y)| format!(r#"{{"actor":{actor},"workspace_id":"w","x":{x},"y":{y}}}"#))
            .collect();
        format!(
            r#"{{"event":"DRAG_PREVIEWS","workspace_id":null,"timestamp":"t","payload":{{"previews":[{}],"ended":[{{"workspace_id":"v"}}]}}}}"#,
            entries.join(",")
        )
    }

    fn counters_of(text: &str) -> Vec<u64> {
        let mut all = Vec::new();
        preview_counters(text, |c| all.push(c));
        all
    }

    #[test]
    fn every_own_preview_of_a_tick_carries_its_counter() {
        let marker = DRAG_MARKER_Y.to_string();
        let text = previews_frame(&[
            ("12", &marker),
            ("5", "7"),
            ("5.5", &marker),
            ("-5", &marker),
            ("13", &marker),
        ]);
        assert_eq!(classify(&text), Frame::Previews);
        assert_eq!(counters_of(&text), [12, 13]);
        assert_eq!(counters_of(&previews_frame(&[])), Vec::<u64>::new());
        // Another key order takes the full parse.
        let reordered = format!(
            r#"{{"event":"DRAG_PREVIEWS","payload":{{"previews":[{{"y":{marker},"x":9}}]}}}}"#
        );
        assert_eq!(counters_of(&reordered), [9]);
    }

    #[test]
    fn drag_frames_are_what_the_server_reads() {
        let id = uuid::Uuid::nil();
        let value: serde_json::Value = serde_json::from_str(&drag_frame(&id, 42)).unwrap();
        assert_eq!(
            value,
            json!({"type": "drag", "workspace_id": id, "x": 42, "y": DRAG_MARKER_Y})
        );
        assert!(is_error(r#"{"type":"error","error":"drag: no"}"#));
        assert!(!is_error(r#"{"type":"pong"}"#));
    }

    #[test]
    fn resync_is_recognized() {
        let text = r#"{"event":"RESYNC_REQUIRED","workspace_id":null,"timestamp":"t","payload":{"reason":"r"}}"#;
        assert_eq!(classify(text), Frame::Resync);
        assert_eq!(classify(r#"{"type":"pong"}"#), Frame::Other);
        assert_eq!(classify("not json"), Frame::Other);
    }

    #[test]
    fn seq_check_counts_gaps_duplicates_and_disorder() {
        let mut check = SeqCheck::starting_after(10);
        for seq in [11, 12, 15, 15, 13, 16] {
            check.observe(seq);
        }
        assert_eq!(check.last, 16);
        assert_eq!(check.received, 6);
        assert_eq!(check.lost, 2);
        assert_eq!(check.duplicated, 1);
        assert_eq!(check.out_of_order, 1);
        let mut clean = SeqCheck::starting_after(0);
        (1..=100).for_each(|s| clean.observe(s));
        assert_eq!(
            (clean.lost, clean.duplicated, clean.out_of_order),
            (0, 0, 0)
        );
    }
}
