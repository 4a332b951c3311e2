//! The WebSocket and transport boundary in raw bytes: hand-made client frames (masked, as a
//! client must) against the close codes of RFC 6455 §7.4.1, and requests the HTTP/1 parser
//! refuses against the API's promise that every error body is JSON.

use std::time::{Duration, Instant};

use canopy::realtime::inbound::MAX_CLIENT_FRAME_BYTES;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// A frame as a client sends it (RFC 6455 §5.2): `first` is FIN, RSV and opcode; the payload
/// is masked with a fixed key.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client_header(first, payload.len() as u64);
    let key = [
        out[out.len() - 4],
        out[out.len() - 3],
        out[out.len() - 2],
        out[out.len() - 1],
    ];
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// A client frame's header only: FIN/opcode, the declared length, the masking key.
fn client_header(first: u8, len: u64) -> Vec<u8> {
    let mut out = vec![first];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&[0x37, 0xFA, 0x21, 0x3D]);
    out
}

/// A WebSocket client in raw bytes over one TCP connection.
struct RawSocket {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl RawSocket {
    /// Connects to `/ws`, completes the handshake and reads CONNECTED.
    async fn open(app: &TestApp) -> RawSocket {
        let tcp = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let auth = app
            .admin_token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let mut socket = RawSocket {
            tcp,
            buf: Vec::new(),
        };
        socket
            .send(
                format!(
                    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                     Sec-WebSocket-Version: 13\r\n{auth}\r\n",
                    app.port
                )
                .as_bytes(),
            )
            .await;
        let head_end = loop {
            if let Some(i) = find(&socket.buf, b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                socket.fill().await,
                "connection closed during the handshake"
            );
        };
        let head = String::from_utf8_lossy(&socket.buf[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        socket.buf.drain(..head_end);
        let connected = socket.text().await;
        assert_eq!(connected["event"], "CONNECTED");
        socket
    }

    /// Reads more bytes; false once the server has closed the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(READ_TIMEOUT, self.tcp.read(&mut chunk))
            .await
            .expect("timed out waiting for the server")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The next server frame as (opcode, payload); `None` if the connection ends first.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((opcode, start, end)) = server_frame(&self.buf) {
                let payload = self.buf[start..end].to_vec();
                self.buf.drain(..end);
                return Some((opcode, payload));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next text frame, as JSON (pings skipped).
    async fn text(&mut self) -> Value {
        loop {
            match self.frame().await.expect("a frame") {
                (0x1, payload) => return serde_json::from_slice(&payload).unwrap(),
                (0x9, _) => continue,
                (opcode, payload) => panic!("unexpected frame {opcode:#x}: {payload:?}"),
            }
        }
    }

    /// Waits for the server's close frame; returns its status code.
    async fn close_code(&mut self) -> u16 {
        loop {
            match self
                .frame()
                .await
                .expect("a close frame before the connection ends")
            {
                (0x8, payload) => {
                    assert!(payload.len() >= 2, "the close frame carries a code");
                    return u16::from_be_bytes([payload[0], payload[1]]);
                }
                (0x1 | 0x9, _) => continue,
                (opcode, payload) => panic!("unexpected frame {opcode:#x}: {payload:?}"),
            }
        }
    }

    /// Waits for the server to end the TCP connection (bounded by the read timeout).
    async fn ended(&mut self) -> bool {
        for _ in 0..1000 {
            if !self.fill().await {
                return true;
            }
            self.buf.clear();
        }
        false
    }
}

/// A complete server frame at the start of `buf` (unmasked): opcode and payload range.
fn server_frame(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let [first, second, ..] = *buf else {
        return None;
    };
    assert_eq!(second & 0x80, 0, "server frames are not masked");
    let (start, len) = match second & 0x7F {
        126 => (
            4,
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
        ),
        n => (2, n as usize),
    };
    (buf.len() >= start + len).then_some((first & 0x0F, start, start + len))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A `{"type":"ping"}` client message padded to exactly `len` bytes.
fn ping_of_len(len: usize) -> Vec<u8> {
    let bare = r#"{"type":"ping","pad":""}"#.len();
    let text = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(len - bare));
    assert_eq!(text.len(), len);
    text.into_bytes()
}

#[tokio::test]
async fn a_declared_1_gib_frame_is_closed_with_1009_before_any_payload() {
    let (app, _db) = spawn_app().await;
    let mut socket = RawSocket::open(&app).await;

    // The header alone: 1 GiB declared, not one payload byte sent. A server that waited for
    // the payload before checking the size would never answer (the read timeout fails it).
    let started = Instant::now();
    socket.send(&client_header(0x81, 1 << 30)).await;
    assert_eq!(socket.close_code().await, 1009);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the close is prompt: {:?}",
        started.elapsed()
    );
    assert!(
        socket.ended().await,
        "the server ends the connection instead of reading on"
    );
    let hub = app.state.hub.clone();
    assert!(
        eventually(Duration::from_secs(5), || {
            let hub = hub.clone();
            async move { hub.session_count() == 0 }
        })
        .await,
        "the session is gone"
    );
}

#[tokio::test]
async fn a_frame_of_exactly_the_limit_is_accepted_and_one_byte_more_is_1009() {
    let (app, _db) = spawn_app().await;
    let mut socket = RawSocket::open(&app).await;
    socket
        .send(&client_frame(0x81, &ping_of_len(MAX_CLIENT_FRAME_BYTES)))
        .await;
    assert_eq!(socket.text().await, json!({ "type": "pong" }));

    // One byte over: refused on the header, before the payload is sent.
    socket
        .send(&client_header(0x81, MAX_CLIENT_FRAME_BYTES as u64 + 1))
        .await;
    assert_eq!(socket.close_code().await, 1009);
}

#[tokio::test]
async fn fragments_are_joined_and_capped_at_the_limit() {
    let (app, _db) = spawn_app().await;
    let mut socket = RawSocket::open(&app).await;

    // A ping message in three fragments, with a ping control frame in between, and a
    // two-byte character split across fragments.
    let text = r#"{"type":"ping","note":"é"}"#.as_bytes();
    let split = text.iter().position(|&b| b == 0xC3).unwrap() + 1;
    socket.send(&client_frame(0x01, &text[..5])).await;
    socket.send(&client_frame(0x89, b"hi")).await;
    socket.send(&client_frame(0x00, &text[5..split])).await;
    socket.send(&client_frame(0x80, &text[split..])).await;
    assert_eq!(socket.frame().await, Some((0xA, b"hi".to_vec())), "pong");
    assert_eq!(socket.text().await, json!({ "type": "pong" }));

    // 40 KiB, then a continuation declaring 30 KiB more: over 64 KiB in all.
    socket.send(&client_frame(0x01, &[b' '; 40 * 1024])).await;
    socket.send(&client_header(0x00, 30 * 1024)).await;
    assert_eq!(socket.close_code().await, 1009);
}

#[tokio::test]
async fn each_protocol_violation_closes_with_1002() {
    let (app, _db) = spawn_app().await;
    let mut unmasked = vec![0x81, 2];
    unmasked.extend_from_slice(b"hi");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a reserved bit set", client_frame(0x81 | 0x40, b"{}")),
        ("an unmasked client frame", unmasked),
        ("an unknown data opcode", client_frame(0x83, b"")),
        ("an unknown control opcode", client_frame(0x8B, b"")),
        // The control-frame cases are refused on their first two bytes.
        ("a ping over 125 bytes", client_frame(0x89, &[0; 126])),
        ("a fragmented ping", client_frame(0x09, b"")),
        ("a stray continuation", client_frame(0x80, b"{}")),
        (
            "a new data frame inside a fragmented message",
            [client_frame(0x01, b"{"), client_frame(0x81, b"{}")].concat(),
        ),
        (
            "a close frame with code 1005",
            client_frame(0x88, &[0x03, 0xED]),
        ),
        ("a close payload of one byte", client_frame(0x88, &[0x03])),
    ];
    for (name, bytes) in cases {
        let mut socket = RawSocket::open(&app).await;
        socket.send(&bytes).await;
        assert_eq!(socket.close_code().await, 1002, "{name}");
    }
}

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let (app, _db) = spawn_app().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "in a text frame",
            client_frame(0x81, b"{\"type\":\"\xC3\x28\"}"),
        ),
        (
            "across the fragments of a text message",
            [
                client_frame(0x01, b"{\"a\":\"\xE2"),
                client_frame(0x80, b"\x28\xA1\"}"),
            ]
            .concat(),
        ),
        ("in a close reason", client_frame(0x88, b"\x03\xE8\xFF")),
    ];
    for (name, bytes) in cases {
        let mut socket = RawSocket::open(&app).await;
        socket.send(&bytes).await;
        assert_eq!(socket.close_code().await, 1007, "{name}");
    }
}

/// Sends raw bytes as one HTTP/1.1 request and reads until the server closes the connection;
/// returns the status, the head's lines and the body.
async fn raw_http(app: &TestApp, request: &[u8]) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(READ_TIMEOUT, tcp.read_to_end(&mut out))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn assert_json_error(status: u16, head: &str, body: &str, expected: u16, case: &str) {
    assert_eq!(status, expected, "{case}: {head}");
    assert!(
        head.contains("\r\ncontent-type: application/json\r\n"),
        "{case}: {head}"
    );
    assert!(
        head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
        "{case}: {head}"
    );
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{case}: {body:?}"));
    assert!(value["error"].is_string(), "{case}: {body}");
}

#[tokio::test]
async fn requests_the_http_parser_refuses_get_json_errors() {
    let (app, _db) = spawn_app().await;
    let many_headers: String = (0..200).map(|i| format!("X-Filler-{i}: x\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a duplicate Content-Length",
            b"POST /workspaces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 12\r\nContent-Length: 13\r\n\r\n{\"name\":\"x\"}"
                .to_vec(),
            400,
        ),
        (
            "an invalid Content-Length",
            b"POST /workspaces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: twelve\r\n\r\n{\"name\":\"x\"}"
                .to_vec(),
            400,
        ),
        (
            "a header with byte 0x01",
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            400,
        ),
        (
            "200 headers",
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n{many_headers}\r\n").into_bytes(),
            431,
        ),
    ];
    for (case, request, expected) in cases {
        let (status, head, body) = raw_http(&app, &request).await;
        assert_json_error(status, &head, &body, expected, case);
    }
    let (status, workspaces) = app.get("/workspaces").await;
    assert_eq!(status, 200);
    assert_eq!(workspaces, json!([]), "no refused request did any work");
}

#[tokio::test]
async fn a_request_head_that_stalls_gets_408_in_json() {
    let db = TestDb::new();
    let app = spawn_on(
        &db,
        TestOptions::default().var("HTTP_HEAD_TIMEOUT_MS", "300"),
    )
    .await;
    let started = Instant::now();
    let (status, head, body) = raw_http(&app, b"GET /health HTTP/1.1\r\nHo").await;
    assert_json_error(status, &head, &body, 408, "half a head");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the head timeout applies: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn well_formed_requests_pass_the_transport_untouched() {
    let (app, _db) = spawn_app().await;
    // Two pipelined requests on one keep-alive connection, the second asking to close.
    let (status, head, body) = raw_http(
        &app,
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n\
          GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    let (first, second) = body
        .split_once("HTTP/1.1 200 OK\r\n")
        .expect("two responses");
    let first: Value = serde_json::from_str(first).unwrap();
    assert_eq!(first["status"], "ok");
    let second_body = second.split_once("\r\n\r\n").unwrap().1;
    let second: Value = serde_json::from_str(second_body).unwrap();
    assert_eq!(second["status"], "ok");
}
