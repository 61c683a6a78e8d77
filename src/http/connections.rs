//! Accepting connections: HTTP/1.1 through hyper, with limits that keep idle or half-open sockets from
//! starving real clients.
//!
//! `axum::serve` holds a connection for as long as the client keeps it open, so a few hundred sockets that
//! send half a request (or nothing) can take every file descriptor and make `/healthz` time out. Here:
//! - a request head must arrive within `header_read_timeout_secs` of its first byte (or of the connection
//!   opening);
//! - a kept-alive connection may sit idle between requests for `keep_alive_idle_secs` (longer than the
//!   header timeout, so that a load balancer's pooled connections are not closed under it);
//! - at most `max_connections` are open; one more is answered at once with a 503 and closed, rather than
//!   left waiting in the kernel's backlog.
//!
//! - a write that makes no progress for `request_timeout_secs` closes the connection: a client that stops
//!   reading (say, after pipelining many requests) would otherwise hold its slot for good, since hyper
//!   polls the next request's handler only once the previous answer is written.
//!
//! Reading a body and running the handler are bounded by `request_timeout_secs` in the edge middleware.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// The connection limits from configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keep_alive_idle: Duration,
    /// A write that makes no progress this long (the client stopped reading) closes the connection.
    pub write_stall: Duration,
    pub max_connections: usize,
}

/// File descriptors kept free of client connections: database files, Redis, SMTP, PostgreSQL.
const RESERVED_FILES: u64 = 256;

/// The connection cap: the configured one, or what the open-files limit allows. The soft limit is raised to
/// the hard one first (systemd's soft default of 1024 would otherwise cap a server at a few hundred
/// clients); running out of descriptors would fail database opens as well as accepts.
pub fn max_connections(configured: Option<usize>) -> usize {
    let files = raise_open_files_limit();
    let room = files.saturating_sub(RESERVED_FILES).max(64) as usize;
    match configured {
        Some(max) => {
            if max > room {
                tracing::warn!(
                    max_connections = max,
                    open_files_limit = files,
                    "max_connections is above what the open-files limit leaves room for"
                );
            }
            max
        }
        None => room.min(10_000),
    }
}

fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Refusals being written at once; past this a connection over the cap is simply closed.
const MAX_PENDING_REFUSALS: usize = 64;

const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/problem+json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 82\r\n\r\n\
{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"detail\":\"too many connections\"}";

/// Serves `router` on `listener` until `stop` turns true, then lets open connections finish their current
/// request (they are told to close after it) and returns when all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors or a connection reset before accept: not fatal, but do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let router = router.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    serve_connection(stream, peer, router, limits, stop).await;
                    drop(slot);
                });
            }
            Err(_) => refuse_over_capacity(stream, &refusals, limits.max_connections),
        }
    }
    drop(listener);
    // Every connection holds a slot until it ends; having them all back means every connection is done.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

/// Every slot is taken: answers 503 in the background, unless too many refusals are in flight already
/// (then the socket is simply closed).
fn refuse_over_capacity(stream: TcpStream, refusals: &Arc<Semaphore>, max_connections: usize) {
    if let Ok(permit) = refusals.clone().try_acquire_owned() {
        tokio::spawn(async move {
            refuse(stream).await;
            drop(permit);
        });
    }
    tracing::warn!(
        max_connections,
        "connection refused: too many open connections"
    );
}

/// Answers 503 and closes, within a second. The request head is read first (an HTTP client does not
/// expect an answer before it has asked), and whatever follows is drained after: closing a socket with
/// unread data makes the kernel send a reset, and the client would see that instead of the answer.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut head = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
        }
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let phase = Arc::new(Mutex::new(Shared {
        phase: Phase::AwaitingHead {
            since: Instant::now(),
            idle: false,
        },
        reader: None,
    }));
    let io = TokioIo::new(TimedStream {
        inner: stream,
        phase: phase.clone(),
        limits,
        sleep: Box::pin(tokio::time::sleep(limits.header_read_timeout)),
        write_stalled_since: None,
        write_sleep: Box::pin(tokio::time::sleep(limits.write_stall)),
    });
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        set_phase(&phase, Phase::Handling);
        let router = router.clone();
        let phase = phase.clone();
        async move {
            let response = router.oneshot(request).await;
            set_phase(
                &phase,
                Phase::AwaitingHead {
                    since: Instant::now(),
                    idle: true,
                },
            );
            response.map_err(|never: Infallible| match never {})
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        // Timeouts, resets and malformed requests from clients: worth a debug line, never an error.
        tracing::debug!(error = %e, "connection ended");
    }
}

/// Completes when the server is told to stop (holding no borrow of the channel afterwards).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head: since the connection opened or the last response (`idle`), or since the
    /// first byte of this head arrived.
    AwaitingHead { since: Instant, idle: bool },
    /// A request is being handled; the edge middleware's request timeout applies.
    Handling,
}

/// What the service and the socket share: the phase, and the waker of the last read that found nothing.
struct Shared {
    phase: Phase,
    reader: Option<Waker>,
}

/// Moves to `value`; entering a head wait wakes the connection so that its next read arms the deadline
/// (hyper would otherwise not read again until the client sends something).
fn set_phase(shared: &Mutex<Shared>, value: Phase) {
    let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
    shared.phase = value;
    if matches!(value, Phase::AwaitingHead { .. })
        && let Some(waker) = shared.reader.take()
    {
        waker.wake();
    }
}

/// The socket, failing reads with `TimedOut` once the current head deadline passes.
struct TimedStream {
    inner: TcpStream,
    phase: Arc<Mutex<Shared>>,
    limits: ConnectionLimits,
    sleep: Pin<Box<Sleep>>,
    /// When the current run of writes that could not proceed began.
    write_stalled_since: Option<Instant>,
    write_sleep: Pin<Box<Sleep>>,
}

impl TimedStream {
    /// Passes a write's outcome through, failing it once writes have made no progress for too long.
    fn watch_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.write_stalled_since = None;
            return result;
        }
        let since = *self.write_stalled_since.get_or_insert_with(Instant::now);
        let deadline = since + self.limits.write_stall;
        if self.write_sleep.deadline() != deadline {
            self.write_sleep.as_mut().reset(deadline);
        }
        ready!(self.write_sleep.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading",
        )))
    }
}

impl AsyncRead for TimedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        let mut shared = this.phase.lock().unwrap_or_else(|e| e.into_inner());
        if result.is_pending() {
            shared.reader = Some(cx.waker().clone());
        }
        let Phase::AwaitingHead { since, idle } = shared.phase else {
            return result;
        };
        match result {
            Poll::Ready(Ok(())) => {
                if idle && buf.filled().len() > before {
                    // The next request has begun: from now on its head has the header timeout.
                    shared.phase = Phase::AwaitingHead {
                        since: Instant::now(),
                        idle: false,
                    };
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let limit = if idle {
                    this.limits.keep_alive_idle
                } else {
                    this.limits.header_read_timeout
                };
                let deadline = since + limit;
                drop(shared);
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                ready!(this.sleep.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    if idle {
                        "idle connection closed"
                    } else {
                        "request head not received in time"
                    },
                )))
            }
        }
    }
}

impl AsyncWrite for TimedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch_write(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch_write(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch_write(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
