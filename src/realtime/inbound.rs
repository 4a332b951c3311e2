//! The read side of a socket: client frames decoded from the upgraded request's payload, with
//! every RFC 6455 rule checked as soon as the bytes that break it are readable.
//!
//! Why this is ours and not actix-ws's `MessageStream`: that stream drains the whole request
//! payload into one buffer before it decodes anything (`MessageStream::poll_next` reads until
//! the payload is pending), and actix-http's `ws::Parser::parse` compares a frame's declared
//! length with the size limit only once the whole frame is buffered. Together they let a
//! client declare a 1 GiB frame and stream it into server memory; the limit was checked after
//! the fact. Both causes are in those dependencies (actix-ws 0.4, actix-http 3.20), so the fix
//! lives here:
//!
//! - the header is checked the moment it is readable (at most 14 bytes): a declared length
//!   over [`MAX_CLIENT_FRAME_BYTES`] fails the socket with 1009 before one payload byte is read;
//! - the payload is read only while the buffered bytes fall short of the frame being decoded,
//!   so a socket holds at most one message plus one read from actix-http (which itself stops
//!   reading the TCP stream once its 32 KiB payload queue and 128 KiB read buffer are full);
//! - a fragmented message is capped at [`MAX_CLIENT_MESSAGE_BYTES`] the same way, from the
//!   declared length of each continuation frame;
//! - each violation is told apart, so the close code says what happened (RFC 6455 §7.4.1).
//!
//! Complete frames are unmasked by actix-http's `ws::Parser`.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_http::ws::{CloseCode, CloseReason, OpCode, Parser};
use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use bytestring::ByteString;
use futures_util::Stream;

/// Largest client frame payload accepted, in bytes (a frame of exactly this size is accepted).
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;
/// Largest client message accepted, in bytes, summed over the frames of a fragmented message.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;
/// RFC 6455 §5.5: control frames carry at most 125 payload bytes and are never fragmented.
const MAX_CONTROL_PAYLOAD_BYTES: u64 = 125;
/// RFC 6455 §5.2: 2 bytes, up to 8 of extended length, 4 of masking key.
const MASK_KEY_BYTES: usize = 4;

/// A complete client message: data frames with their continuations joined.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// A text message, valid UTF-8.
    Text(ByteString),
    /// A binary message.
    Binary(Bytes),
    /// A ping's payload (at most 125 bytes); the caller answers with a pong.
    Ping(Bytes),
    /// A pong's payload (at most 125 bytes).
    Pong(Bytes),
    /// A close frame, with its status code and reason if it carried one (both validated).
    Close(Option<CloseReason>),
}

/// Why a socket's input is refused. Each maps to the close code RFC 6455 §7.4.1 names for it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    /// A frame (or a fragmented message) declares more bytes than the limit: 1009.
    #[error("message too big: {declared} bytes declared, the limit is {limit}")]
    TooBig {
        /// The length the header declared, bytes.
        declared: u64,
        /// The most a frame or message may carry, bytes.
        limit: usize,
    },
    /// A frame breaks the framing rules of RFC 6455 §5: 1002.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A text message (or a close reason) is not valid UTF-8 (RFC 6455 §8.1): 1007.
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    /// The connection failed under the payload; no close frame can reach the client.
    #[error("connection error")]
    Transport,
}

impl InboundError {
    /// The close code for this error (RFC 6455 §7.4.1).
    pub fn close_code(&self) -> CloseCode {
        match self {
            InboundError::TooBig { .. } => CloseCode::Size,
            InboundError::Protocol(_) => CloseCode::Protocol,
            InboundError::InvalidUtf8 => CloseCode::Invalid,
            InboundError::Transport => CloseCode::Abnormal,
        }
    }
}

/// The frame header facts needed before the payload is read.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    /// Header plus payload, in bytes.
    frame_len: usize,
}

/// A fragmented data message being joined.
struct Fragments {
    text: bool,
    data: BytesMut,
}

/// Client messages from one socket, decoded from the upgraded request's payload.
pub struct Inbound {
    payload: Payload,
    /// Ends when the socket's response body is dropped (the connection is gone): the stream
    /// actix-ws returned for a stand-in payload, kept only for this signal.
    body_closed: Option<actix_ws::MessageStream>,
    buf: BytesMut,
    fragments: Option<Fragments>,
    max_frame: usize,
    max_message: usize,
    ended: bool,
}

impl Inbound {
    /// Reads `payload` (the upgraded request's body). `body_closed` ends when the response
    /// body is dropped; pass `None` when there is no such signal.
    pub fn new(payload: Payload, body_closed: Option<actix_ws::MessageStream>) -> Inbound {
        Inbound::with_limits(
            payload,
            body_closed,
            MAX_CLIENT_FRAME_BYTES,
            MAX_CLIENT_MESSAGE_BYTES,
        )
    }

    /// As [`Inbound::new`], with other limits (bytes per frame, bytes per message).
    pub fn with_limits(
        payload: Payload,
        body_closed: Option<actix_ws::MessageStream>,
        max_frame: usize,
        max_message: usize,
    ) -> Inbound {
        Inbound {
            payload,
            body_closed,
            buf: BytesMut::new(),
            fragments: None,
            max_frame,
            max_message,
            ended: false,
        }
    }

    /// The next message; `None` once the connection has ended. After an error the stream
    /// ends: the caller closes the socket with [`InboundError::close_code`].
    pub async fn recv(&mut self) -> Option<Result<ClientMessage, InboundError>> {
        poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Bytes held for frames not yet complete (for tests and metrics).
    pub fn held_bytes(&self) -> usize {
        self.buf.len() + self.fragments.as_ref().map_or(0, |f| f.data.len())
    }

    fn fail(&mut self, error: InboundError) -> Poll<Option<Result<ClientMessage, InboundError>>> {
        self.ended = true;
        self.buf = BytesMut::new();
        self.fragments = None;
        Poll::Ready(Some(Err(error)))
    }

    /// Checks the header at the start of the buffer as far as it is readable.
    fn header(&self) -> Result<Option<Header>, InboundError> {
        use InboundError::Protocol;
        let buf = &self.buf[..];
        let [first, second, ..] = *buf else {
            return Ok(None);
        };
        let fin = first & 0x80 != 0;
        if first & 0x70 != 0 {
            return Err(Protocol("reserved bits set"));
        }
        let opcode = first & 0x0F;
        let control = match opcode {
            0x0..=0x2 => false,
            0x8..=0xA => true,
            _ => return Err(Protocol("unknown opcode")),
        };
        if second & 0x80 == 0 {
            return Err(Protocol("client frames must be masked"));
        }
        let fragmenting = self.fragments.is_some();
        if control {
            if !fin {
                return Err(Protocol("fragmented control frame"));
            }
            if u64::from(second & 0x7F) > MAX_CONTROL_PAYLOAD_BYTES {
                return Err(Protocol("control frame over 125 bytes"));
            }
        } else if opcode == 0x0 && !fragmenting {
            return Err(Protocol("continuation frame without a message to continue"));
        } else if opcode != 0x0 && fragmenting {
            return Err(Protocol("new data frame inside a fragmented message"));
        }
        let (length_end, declared) = match second & 0x7F {
            126 => match buf.get(2..4) {
                None => return Ok(None),
                Some(b) => (4, u64::from(u16::from_be_bytes([b[0], b[1]]))),
            },
            127 => match buf.get(2..10) {
                None => return Ok(None),
                Some(b) => {
                    let len = u64::from_be_bytes(b.try_into().expect("8 bytes"));
                    if len >> 63 != 0 {
                        return Err(Protocol("payload length has its top bit set"));
                    }
                    (10, len)
                }
            },
            n => (2, u64::from(n)),
        };
        if declared > self.max_frame as u64 {
            return Err(InboundError::TooBig {
                declared,
                limit: self.max_frame,
            });
        }
        if !control {
            let so_far = self.fragments.as_ref().map_or(0, |f| f.data.len()) as u64;
            if so_far + declared > self.max_message as u64 {
                return Err(InboundError::TooBig {
                    declared: so_far + declared,
                    limit: self.max_message,
                });
            }
        }
        // `declared` is at most `max_frame`, a usize.
        Ok(Some(Header {
            frame_len: length_end + MASK_KEY_BYTES + declared as usize,
        }))
    }

    /// Turns a complete, already checked frame into a message, or joins it to the message
    /// being fragmented.
    fn frame(
        &mut self,
        fin: bool,
        opcode: OpCode,
        payload: Bytes,
    ) -> Result<Option<ClientMessage>, InboundError> {
        match opcode {
            OpCode::Text | OpCode::Binary if fin => {
                Ok(Some(data_message(opcode == OpCode::Text, payload)?))
            }
            OpCode::Text | OpCode::Binary => {
                self.fragments = Some(Fragments {
                    text: opcode == OpCode::Text,
                    data: BytesMut::from(&payload[..]),
                });
                Ok(None)
            }
            OpCode::Continue => {
                let fragments = self.fragments.as_mut().ok_or(InboundError::Protocol(
                    "continuation frame without a message",
                ))?;
                fragments.data.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                let Fragments { text, data } = self.fragments.take().expect("checked above");
                Ok(Some(data_message(text, data.freeze())?))
            }
            OpCode::Ping => Ok(Some(ClientMessage::Ping(payload))),
            OpCode::Pong => Ok(Some(ClientMessage::Pong(payload))),
            OpCode::Close => Ok(Some(ClientMessage::Close(close_payload(&payload)?))),
            OpCode::Bad => Err(InboundError::Protocol("unknown opcode")),
        }
    }
}

fn data_message(text: bool, payload: Bytes) -> Result<ClientMessage, InboundError> {
    if text {
        ByteString::try_from(payload)
            .map(ClientMessage::Text)
            .map_err(|_| InboundError::InvalidUtf8)
    } else {
        Ok(ClientMessage::Binary(payload))
    }
}

/// RFC 6455 §5.5.1: empty, or a 2-byte status code and a UTF-8 reason; §7.4: the codes an
/// endpoint may send (1000–1003, 1007–1014, 3000–4999).
fn close_payload(payload: &[u8]) -> Result<Option<CloseReason>, InboundError> {
    let (code, reason) = match payload {
        [] => return Ok(None),
        [_] => return Err(InboundError::Protocol("close payload of one byte")),
        [high, low, reason @ ..] => (u16::from_be_bytes([*high, *low]), reason),
    };
    if !matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999) {
        return Err(InboundError::Protocol("invalid close code"));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| InboundError::InvalidUtf8)?;
    Ok(Some(CloseReason {
        code: CloseCode::from(code),
        description: (!reason.is_empty()).then(|| reason.to_string()),
    }))
}

impl Stream for Inbound {
    type Item = Result<ClientMessage, InboundError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if let Some(closed) = this.body_closed.as_mut() {
                if let Poll::Ready(None) = Pin::new(closed).poll_next(cx) {
                    this.ended = true;
                    continue;
                }
            }
            match this.header() {
                Err(error) => return this.fail(error),
                Ok(Some(header)) if this.buf.len() >= header.frame_len => {
                    let parsed = Parser::parse(&mut this.buf, true, this.max_frame);
                    if this.buf.is_empty() {
                        // Give the read buffer's memory back between frames.
                        this.buf = BytesMut::new();
                    }
                    let (fin, opcode, payload) = match parsed {
                        Ok(Some(frame)) => frame,
                        // The header was checked and the frame is complete: actix-http agrees
                        // with every rule above, so this is a bug, reported as a protocol error.
                        Ok(None) | Err(_) => {
                            return this.fail(InboundError::Protocol("undecodable frame"))
                        }
                    };
                    let payload = payload.map(BytesMut::freeze).unwrap_or_default();
                    match this.frame(fin, opcode, payload) {
                        Ok(Some(message)) => return Poll::Ready(Some(Ok(message))),
                        Ok(None) => continue,
                        Err(error) => return this.fail(error),
                    }
                }
                // The frame is not complete (or its header not readable yet): read once more.
                Ok(_) => {}
            }
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if this.buf.is_empty() {
                        this.buf = BytesMut::from(chunk);
                    } else {
                        this.buf.extend_from_slice(&chunk);
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    tracing::debug!(%error, "websocket payload failed");
                    return this.fail(InboundError::Transport);
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use actix_web::error::PayloadError;
    use futures_util::StreamExt;

    use super::*;

    /// A client frame as RFC 6455 §5.2 lays it out, masked with a fixed key.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// A payload that yields `chunks` and then stays open; counts the chunks taken.
    fn payload(chunks: Vec<Vec<u8>>, taken: Rc<Cell<usize>>) -> Payload {
        let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
            taken.set(taken.get() + 1);
            Ok::<_, PayloadError>(Bytes::from(c))
        }))
        .chain(futures_util::stream::pending());
        Payload::Stream {
            payload: Box::pin(stream),
        }
    }

    fn inbound(chunks: Vec<Vec<u8>>) -> Inbound {
        Inbound::new(payload(chunks, Rc::default()), None)
    }

    async fn first(chunks: Vec<Vec<u8>>) -> Result<ClientMessage, InboundError> {
        let mut inbound = inbound(chunks);
        tokio::time::timeout(std::time::Duration::from_secs(1), inbound.recv())
            .await
            .expect("a message or an error")
            .expect("the stream has not ended")
    }

    #[tokio::test]
    async fn text_binary_and_control_frames_decode() {
        let mut inbound = inbound(vec![
            [frame(0x81, b"hi"), frame(0x82, &[1, 2]), frame(0x89, b"p")].concat(),
            [frame(0x8A, b""), frame(0x88, &[0x03, 0xE8, b'o', b'k'])].concat(),
        ]);
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Text("hi".into()))
        );
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Binary(Bytes::from_static(&[1, 2])))
        );
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Ping(Bytes::from_static(b"p")))
        );
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Pong(Bytes::new()))
        );
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Close(Some(CloseReason {
                code: CloseCode::Normal,
                description: Some("ok".into())
            })))
        );
    }

    #[tokio::test]
    async fn a_frame_split_across_reads_decodes_once_complete() {
        let whole = frame(0x81, &[b'a'; 300]);
        let chunks = whole.chunks(7).map(<[u8]>::to_vec).collect();
        assert_eq!(
            first(chunks).await,
            Ok(ClientMessage::Text("a".repeat(300).into()))
        );
    }

    #[tokio::test]
    async fn fragments_are_joined_with_control_frames_in_between() {
        let mut inbound = inbound(vec![[
            frame(0x01, b"he"),
            frame(0x89, b""),
            frame(0x00, b"ll"),
            frame(0x80, b"o"),
        ]
        .concat()]);
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Ping(Bytes::new()))
        );
        assert_eq!(
            inbound.recv().await.unwrap(),
            Ok(ClientMessage::Text("hello".into()))
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_fails_on_the_header_alone() {
        // 10 bytes: no masking key, no payload. The declared 1 GiB is refused from these.
        let mut header = vec![0x81, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 30).to_be_bytes());
        let error = first(vec![header]).await.unwrap_err();
        assert_eq!(
            error,
            InboundError::TooBig {
                declared: 1 << 30,
                limit: MAX_CLIENT_FRAME_BYTES
            }
        );
        assert_eq!(error.close_code(), CloseCode::Size);

        let over = frame(0x82, &vec![0; MAX_CLIENT_FRAME_BYTES + 1]);
        assert_eq!(
            first(vec![over[..10].to_vec()])
                .await
                .unwrap_err()
                .close_code(),
            CloseCode::Size
        );
    }

    #[tokio::test]
    async fn a_frame_of_exactly_the_limit_is_accepted() {
        let at_limit = frame(0x82, &vec![7; MAX_CLIENT_FRAME_BYTES]);
        match first(vec![at_limit]).await {
            Ok(ClientMessage::Binary(b)) => assert_eq!(b.len(), MAX_CLIENT_FRAME_BYTES),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_fragmented_message_over_the_limit_fails_on_the_last_header() {
        let half = MAX_CLIENT_MESSAGE_BYTES / 2;
        let second = frame(0x00, &vec![b'x'; half + 1]);
        let error = first(vec![frame(0x01, &vec![b'x'; half]), second[..4].to_vec()])
            .await
            .unwrap_err();
        assert_eq!(error.close_code(), CloseCode::Size);
    }

    #[tokio::test]
    async fn protocol_violations_are_1002_and_bad_utf8_is_1007() {
        let mut unmasked = frame(0x81, b"hi");
        unmasked[1] &= 0x7F;
        let cases: Vec<(&str, Vec<Vec<u8>>, CloseCode)> = vec![
            (
                "reserved bits",
                vec![frame(0xC1, b"hi")],
                CloseCode::Protocol,
            ),
            ("unmasked", vec![unmasked], CloseCode::Protocol),
            (
                "unknown opcode",
                vec![frame(0x83, b"")],
                CloseCode::Protocol,
            ),
            (
                "long ping",
                vec![frame(0x89, &[0; 126])],
                CloseCode::Protocol,
            ),
            (
                "fragmented ping",
                vec![frame(0x09, b"")],
                CloseCode::Protocol,
            ),
            (
                "stray continuation",
                vec![frame(0x80, b"x")],
                CloseCode::Protocol,
            ),
            (
                "data inside a fragmented message",
                vec![frame(0x01, b"a"), frame(0x81, b"b")],
                CloseCode::Protocol,
            ),
            (
                "close code 1005",
                vec![frame(0x88, &[0x03, 0xED])],
                CloseCode::Protocol,
            ),
            (
                "one-byte close",
                vec![frame(0x88, &[0x03])],
                CloseCode::Protocol,
            ),
            (
                "bad UTF-8",
                vec![frame(0x81, &[0xC3, 0x28])],
                CloseCode::Invalid,
            ),
            (
                "bad UTF-8 across fragments",
                vec![frame(0x01, &[b'a', 0xE2]), frame(0x80, &[0x28, 0xA1])],
                CloseCode::Invalid,
            ),
            (
                "bad UTF-8 close reason",
                vec![frame(0x88, &[0x03, 0xE8, 0xFF])],
                CloseCode::Invalid,
            ),
        ];
        for (name, chunks, code) in cases {
            let error = first(chunks).await.unwrap_err();
            assert_eq!(error.close_code(), code, "{name}: {error}");
        }
    }

    #[tokio::test]
    async fn bytes_are_read_only_while_a_frame_is_short_of_them() {
        // A frame of the full size, arriving in 1 KiB reads, followed by an endless flood.
        let whole = frame(0x82, &vec![1; MAX_CLIENT_FRAME_BYTES]);
        let mut chunks: Vec<Vec<u8>> = whole.chunks(1024).map(<[u8]>::to_vec).collect();
        let frame_reads = chunks.len();
        chunks.extend(std::iter::repeat_n(vec![0x82], 10_000));
        let taken = Rc::new(Cell::new(0));
        let mut inbound = Inbound::new(payload(chunks, Rc::clone(&taken)), None);
        assert!(matches!(
            inbound.recv().await,
            Some(Ok(ClientMessage::Binary(_)))
        ));
        assert_eq!(taken.get(), frame_reads, "not one read past the frame");
        assert_eq!(inbound.held_bytes(), 0);
    }

    #[tokio::test]
    async fn an_ended_payload_ends_the_stream() {
        let mut inbound = Inbound::new(
            Payload::Stream {
                payload: Box::pin(futures_util::stream::empty()),
            },
            None,
        );
        assert_eq!(inbound.recv().await, None);
    }
}
