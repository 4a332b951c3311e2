//! The HTTP server under the app: actix-web's `HttpServer`, rebuilt from its parts so each
//! accepted TCP stream can be wrapped in [`JsonErrorBodies`].
//!
//! Why: requests that actix-http's HTTP/1 parser refuses never reach the app. Its dispatcher
//! (`actix-http` 3.20, `h1/dispatcher.rs`) answers them itself with fixed, empty responses —
//! 400 for a malformed head (a duplicate or invalid `Content-Length`, bytes a header may not
//! hold), 431 for too many or too large headers, 408 when the head does not arrive within the
//! request timeout — and offers no hook to change them. The API promises that every error
//! body is JSON, so the wrapper recognises those fixed responses on the way out and gives them
//! a JSON body; everything else passes through untouched.
//!
//! The server is otherwise what `HttpServer::listen` builds (actix-web 4.18): the same
//! `HttpService` settings and defaults, the graceful-shutdown signal that drains idle
//! keep-alive connections, `TCP_NODELAY`, and the listener as given.

use std::io;
use std::net::TcpListener;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_http::{HttpService, Request, Response};
use actix_service::{map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server, Service};
use actix_web::web::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// How the server runs; the rest are actix-web's defaults.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker threads (each runs its own single-threaded runtime).
    pub workers: usize,
    /// How long in-flight requests get to finish after a graceful stop.
    pub shutdown_timeout: Duration,
    /// A connection must deliver its first request head within this long, or it is answered
    /// 408 and closed (actix's `client_request_timeout`).
    pub head_timeout: Duration,
    /// How long a connection gets to finish its close after the response (actix's
    /// `client_disconnect_timeout`; see `app.rs` for why it is below the 1 s default).
    pub client_disconnect_timeout: Duration,
}

/// Serves the app factory on `listener` as `HttpServer::listen(…).run()` would, with every
/// accepted stream wrapped in [`JsonErrorBodies`]. Must be called inside a Tokio runtime.
pub fn serve<F, I, S, B>(
    factory: F,
    listener: TcpListener,
    options: &ServerOptions,
) -> io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let head_timeout = options.head_timeout;
    let client_disconnect_timeout = options.client_disconnect_timeout;
    let builder = Server::build()
        .workers(options.workers)
        .disable_signals()
        .shutdown_timeout(options.shutdown_timeout.as_secs());
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder.listen(format!("canopy-http-{addr}"), listener, move || {
        let shutdown = shutdown.clone();
        let app = factory()
            .into_factory()
            .map_err(|err| err.into().error_response());
        // The configuration `HttpServer::listen` gives the app: plain HTTP, the listener's
        // address as the host name of last resort (a request without `Host`). actix-web has no
        // public constructor for it besides this one, which actix-web's own test server uses.
        let app = map_config(app, move |_| {
            AppConfig::__priv_test_new(false, addr.to_string(), addr)
        });
        let http = HttpService::<JsonErrorBodies<TcpStream>, _, _>::build()
            // Idle keep-alive connections close as soon as a graceful stop begins (this is how
            // `HttpServer` wires it; the builder method is hidden from actix-http's docs).
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .client_request_timeout(head_timeout)
            // The bare builder's default is zero; keep-alive, half-closed and buffer settings
            // are the builder's, which match `HttpServer`'s.
            .client_disconnect_timeout(client_disconnect_timeout)
            .local_addr(addr)
            .h1(app);
        actix_service::fn_service(|io: TcpStream| async move {
            // Small frames must leave at once: with Nagle on, each waits for the previous ACK.
            let _ = io.set_nodelay(true);
            let peer = io.peer_addr().ok();
            Ok::<_, actix_http::error::DispatchError>((JsonErrorBodies::new(io), peer))
        })
        .and_then(http)
    })?;
    Ok(builder.run())
}

/// The fixed responses actix-http's HTTP/1 dispatcher writes for requests it refuses before
/// the app sees them, and the error text each gets. Each is written as the status line, then
/// exactly `content-length: 0`, `connection: close` and `date`, and nothing after.
const DISPATCHER_ERRORS: [(&[u8], &str); 4] = [
    (b"HTTP/1.1 400 Bad Request\r\n", "malformed HTTP request"),
    (
        b"HTTP/1.1 408 Request Timeout\r\n",
        "request head not received in time",
    ),
    (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
        "request head too large or with too many headers",
    ),
    (
        b"HTTP/1.1 500 Internal Server Error\r\n",
        "internal server error",
    ),
];

/// A connection's byte stream, with the dispatcher's fixed error responses given JSON bodies.
///
/// Only the first response on a connection is examined: it starts at the first byte written,
/// so it can be recognised without parsing what came before. That covers every request the
/// parser refuses before a request was dispatched on the connection (a bad first request, a
/// slow first head). An error on a later request of a keep-alive connection keeps actix's
/// empty body: finding where it starts would mean parsing every response (and knowing which
/// answered a HEAD), which costs on every request. Once the first response is seen the wrapper
/// is a plain pass-through: one branch per read or write, no copy.
pub struct JsonErrorBodies<T> {
    io: T,
    state: WriteState,
}

enum WriteState {
    /// Nothing written yet: the next write starts the first response.
    First,
    /// A recognised error response, being written in its JSON form.
    Replacing {
        bytes: Bytes,
        written: usize,
    },
    Passthrough,
}

impl<T> JsonErrorBodies<T> {
    /// Wraps a freshly accepted connection (nothing written on it yet).
    pub fn new(io: T) -> JsonErrorBodies<T> {
        JsonErrorBodies {
            io,
            state: WriteState::First,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonErrorBodies<T> {
    /// Writes what is left of a replacement response.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let WriteState::Replacing { bytes, written } = &mut self.state {
            while *written < bytes.len() {
                match ready!(Pin::new(&mut self.io).poll_write(cx, &bytes[*written..]))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => *written += n,
                }
            }
            self.state = WriteState::Passthrough;
        }
        Poll::Ready(Ok(()))
    }
}

/// If `buf` starts with one of the dispatcher's fixed error responses, its length and the
/// same response with a JSON body.
fn replacement(buf: &[u8]) -> Option<(usize, Bytes)> {
    let (status_line, message) = DISPATCHER_ERRORS
        .iter()
        .find(|(line, _)| buf.starts_with(line))?;
    let head_len = find(buf, b"\r\n\r\n")? + 4;
    let fields = &buf[status_line.len()..head_len - 2];
    let mut date = None;
    let (mut length, mut close) = (false, false);
    for field in fields.split(|&b| b == b'\n').filter(|f| !f.is_empty()) {
        match field.strip_suffix(b"\r")? {
            b"content-length: 0" => length = true,
            b"connection: close" => close = true,
            f if f.starts_with(b"date: ") && date.is_none() => date = Some(f),
            _ => return None,
        }
    }
    let (true, true, Some(date)) = (length, close, date) else {
        return None;
    };
    let body = serde_json::json!({ "error": message }).to_string();
    let mut out = Vec::with_capacity(head_len + body.len() + 48);
    out.extend_from_slice(status_line);
    out.extend_from_slice(b"content-type: application/json\r\n");
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n");
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    Some((head_len, Bytes::from(out)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonErrorBodies<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonErrorBodies<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            match this.state {
                WriteState::Passthrough => return Pin::new(&mut this.io).poll_write(cx, buf),
                WriteState::First if buf.is_empty() => {
                    return Pin::new(&mut this.io).poll_write(cx, buf)
                }
                WriteState::First => match replacement(buf) {
                    // The original head counts as written; the replacement goes out before
                    // anything else, at the latest on flush or shutdown.
                    Some((original_len, bytes)) => {
                        this.state = WriteState::Replacing { bytes, written: 0 };
                        return Poll::Ready(Ok(original_len));
                    }
                    None => this.state = WriteState::Passthrough,
                },
                WriteState::Replacing { .. } => ready!(this.poll_replacement(cx))?,
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let WriteState::Passthrough = this.state {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
        Pin::new(this).poll_write(cx, first)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const DATE: &str = "date: Sun, 29 Nov 2026 21:52:07 GMT";

    async fn through_wrapper(writes: &[&[u8]]) -> Vec<u8> {
        let (client, server) = tokio::io::duplex(64);
        let mut wrapped = JsonErrorBodies::new(server);
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            out
        });
        for write in writes {
            wrapped.write_all(write).await.unwrap();
        }
        wrapped.shutdown().await.unwrap();
        drop(wrapped);
        reader.await.unwrap()
    }

    #[tokio::test]
    async fn the_dispatchers_fixed_errors_get_json_bodies() {
        for (status, message) in [
            ("400 Bad Request", "malformed HTTP request"),
            ("408 Request Timeout", "request head not received in time"),
            (
                "431 Request Header Fields Too Large",
                "request head too large or with too many headers",
            ),
        ] {
            let fixed = format!(
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n{DATE}\r\n\r\n"
            );
            let out = String::from_utf8(through_wrapper(&[fixed.as_bytes()]).await).unwrap();
            let body = format!(r#"{{"error":"{message}"}}"#);
            assert_eq!(
                out,
                format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{DATE}\r\n\r\n{body}",
                    body.len()
                )
            );
        }
    }

    #[tokio::test]
    async fn anything_else_passes_through_untouched() {
        let ok = format!("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{DATE}\r\n\r\n{{}}");
        let empty_400_later = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n{DATE}\r\n\r\n"
        );
        // The second response on a connection is never rewritten.
        let out = through_wrapper(&[ok.as_bytes(), empty_400_later.as_bytes()]).await;
        assert_eq!(out, [ok.as_bytes(), empty_400_later.as_bytes()].concat());

        // An app's own 400 (a body, a content type) is not the dispatcher's.
        let app_400 = format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 13\r\ncontent-type: application/json\r\n{DATE}\r\n\r\n{{\"error\":\"x\"}}"
        );
        assert_eq!(
            through_wrapper(&[app_400.as_bytes()]).await,
            app_400.as_bytes()
        );
        // A head that is not all in the first write is left alone.
        let split = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n";
        assert_eq!(through_wrapper(&[split]).await, split);
    }
}
