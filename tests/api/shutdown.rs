//! Graceful shutdown (issue 11, item 13): stop accepting first, then close every socket with
//! 1001, and end as soon as in-flight work is done — a canvas reconnecting at once must never
//! land on the stopping instance.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tokio_tungstenite::tungstenite;

use crate::helpers::*;
use crate::process::CanopyProcess;

/// Open canvases in the stop tests (bounded: each is a socket on both ends).
const SOCKETS: usize = 200;
/// The issue's bound on a graceful stop with nothing else in flight.
const STOP_WITHIN: Duration = Duration::from_secs(2);

/// How a connection attempt made after a stop began was turned away (it must not be served).
fn refusal(attempt: Result<WsClient, tungstenite::Error>) -> &'static str {
    match attempt {
        Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused"
        }
        // It reached the kernel's queue in the instant between the pause and the listener's
        // close, and was reset unanswered: never accepted either.
        Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            "reset before it was accepted"
        }
        Err(tungstenite::Error::Http(response)) if response.status() == 503 => {
            assert!(
                response.headers().contains_key("retry-after"),
                "a 503 says when to retry"
            );
            "503"
        }
        Ok(_) => panic!("a socket was accepted after the stop began"),
        Err(other) => panic!("expected a refusal, got {other:?}"),
    }
}

async fn open_canvases(port: u16, n: usize) -> Vec<WsClient> {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let mut socket = WsClient::connect(&url, &[]).await;
        assert_eq!(socket.next_json().await["event"], "CONNECTED");
        sockets.push(socket);
    }
    sockets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_refuses_new_sockets_closes_open_ones_with_1001_and_ends_within_2_s() {
    let db = TestDb::new();
    let app = spawn_on(&db, rate_limits_off()).await;
    let mut sockets = open_canvases(app.port, SOCKETS).await;
    assert_eq!(app.state.hub.session_count(), SOCKETS);

    let started = Instant::now();
    let url = format!("ws://127.0.0.1:{}/ws", app.port);
    let (_, (codes, late), stopped_in_time) = tokio::join!(
        app.stop(),
        async {
            let mut codes = Vec::with_capacity(SOCKETS);
            // A canvas told 1001 reconnects at once: it must be turned away.
            codes.push(sockets[0].closed_with().await);
            let late = refusal(WsClient::try_connect(&url, &[]).await);
            let rest = sockets[1..].iter_mut().map(|s| s.closed_with());
            codes.extend(futures_util::future::join_all(rest).await);
            (codes, late)
        },
        async {
            let done = app.server_stopped_within(STOP_WITHIN).await;
            eprintln!("server stopped: {done} after {:?}", started.elapsed());
            done
        }
    );
    assert!(
        codes.iter().all(|code| *code == Some(1001)),
        "every socket is closed with 1001: {:?}",
        codes
            .iter()
            .filter(|c| **c != Some(1001))
            .collect::<Vec<_>>()
    );
    eprintln!("reconnect after the first 1001: {late}");
    assert!(
        stopped_in_time,
        "the server ends within {STOP_WITHIN:?} of the stop"
    );
    // Nothing was accepted after the stop began.
    assert_eq!(app.state.hub.session_count(), 0);
}

/// Reads one HTTP/1.1 response with a `Content-Length` body from a raw connection.
fn read_response(stream: &mut std::net::TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return text;
            }
        }
        let n = stream.read(&mut buf).expect("read within the timeout");
        assert!(n > 0, "connection closed mid-response: {text:?}");
        raw.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn an_upgrade_on_a_kept_alive_connection_after_the_stop_began_gets_503() {
    let (app, _db) = spawn_app().await;
    let port = app.port;
    let (before, after) = tokio::task::spawn_blocking({
        let state = app.state.clone();
        move || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
            stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            let before = read_response(&mut stream);
            // The stop begins while this connection is open and idle.
            state.drain.begin();
            stream
                .write_all(
                    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n\
                      Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                      Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                )
                .unwrap();
            (before, read_response(&mut stream))
        }
    })
    .await
    .unwrap();
    assert!(before.starts_with("HTTP/1.1 200"), "{before}");
    assert!(after.starts_with("HTTP/1.1 503"), "{after}");
    let lower = after.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 1\r\n"), "{after}");
    assert!(lower.contains("\r\nconnection: close\r\n"), "{after}");
    assert!(lower.contains("content-type: application/json"), "{after}");
    assert!(
        after.ends_with(r#"{"error":"server shutting down"}"#),
        "{after}"
    );
    assert_eq!(app.state.hub.session_count(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_sockets_refuses_reconnects_and_exits_0_within_2_s() {
    let db = TestDb::new();
    let mut process = CanopyProcess::start(&db, &[("RATE_LIMIT_WS_UPGRADES_PER_ADDRESS", "0")]);
    let mut sockets = open_canvases(process.port, SOCKETS).await;

    let started = Instant::now();
    process.terminate();
    let url = format!("ws://127.0.0.1:{}/ws", process.port);
    let first = sockets[0].closed_with().await;
    let late = refusal(WsClient::try_connect(&url, &[]).await);
    let rest = sockets[1..].iter_mut().map(|s| s.closed_with());
    let codes: Vec<_> = std::iter::once(first)
        .chain(futures_util::future::join_all(rest).await)
        .collect();
    assert!(
        codes.iter().all(|code| *code == Some(1001)),
        "every socket is closed with 1001"
    );
    eprintln!("reconnect after the first 1001: {late}");
    let status = process
        .exited_within(STOP_WITHIN.saturating_sub(started.elapsed()))
        .await;
    eprintln!("exited after {:?}: {status:?}", started.elapsed());
    assert!(
        status.is_some_and(|s| s.success()),
        "canopy exits 0 within {STOP_WITHIN:?} of SIGTERM: {status:?}"
    );
}
