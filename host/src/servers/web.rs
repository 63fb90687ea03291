//! The warp server: every route, one rejection handler, graceful shutdown.
//!
//! Routes in order: `/api` (dispatched before warp's filters: the hot path), the Bayeux
//! mount, the embedded assets, then `/public` (which claims every other GET). Every
//! rejection becomes one status and plain-text body here; shutdown stops accepting,
//! then gives in-flight requests the grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use http::StatusCode;
use http::header::{self, HeaderValue};
use tokio::net::TcpListener;
use warp::reply::Response;
use warp::{Filter, Rejection};

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::servers::deadline::WriteDeadline;
use crate::servers::limits::{Limits, Refusal};
use crate::servers::public::NOT_FOUND;
use crate::servers::{api, assets, metrics, public};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every route of the host.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    // Routes before `public`: it claims every remaining GET/HEAD path. `/api` comes
    // before all of them, in `serve`.
    let bayeux = crate::bayeux::routes(app.bayeux.clone());
    let metrics = metrics::routes(Arc::clone(&app));
    let public = public::routes(Arc::clone(&app));
    bayeux
        .or(metrics)
        .unify()
        .or(assets::asset_routes())
        .unify()
        .or(public)
        .unify()
        .recover(recover)
        .unify()
}

/// Maps every rejection to a status and a plain-text body.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, body) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, NOT_FOUND.to_owned())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large".to_owned(),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed".to_owned(),
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "Length required".to_owned())
    } else if rejection
        .find::<warp::reject::UnsupportedMediaType>()
        .is_some()
    {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported media type".to_owned(),
        )
    } else {
        tracing::debug!(?rejection, "request rejected");
        (StatusCode::BAD_REQUEST, "Bad request".to_owned())
    };
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

/// Where the host accepts connections: a bound TCP listener, with TLS when configured.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl Listener {
    /// Serves TLS on `tcp` when `tls` is given, plain HTTP otherwise.
    pub fn new(tcp: TcpListener, tls: Option<TlsAcceptor>) -> Self {
        Self { tcp, tls }
    }

    /// `https` or `http`, for the start-up log line.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl From<TcpListener> for Listener {
    fn from(tcp: TcpListener) -> Self {
        Self::new(tcp, None)
    }
}

/// The peer's socket address, put on every request by [`serve`] (warp's own
/// `addr::remote` is filled only by warp's server, which cannot serve TLS).
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The peer's address: the one [`serve`] recorded, else warp's (in `warp::test`).
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>()
        .and(warp::addr::remote())
        .map(|peer: Option<Peer>, warp: Option<SocketAddr>| peer.map(|p| p.0).or(warp))
}

/// How long a TLS handshake may take before the socket is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause after an accept error (e.g. out of file descriptors).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for at most the configured shutdown timeout.
///
/// The accept loop is ours rather than warp's so that TLS can sit between the socket
/// and hyper, and so that accept errors back off instead of spinning.
pub async fn serve(
    app: Arc<App>,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let grace = Duration::from_millis(app.config.shutdown_timeout_ms);
    // Accepted sockets inherit TCP_NODELAY: without it, a small push (a Bayeux delivery)
    // written while the previous one is unacknowledged waits for the peer's delayed ACK.
    let _ = rustix::net::sockopt::set_tcp_nodelay(&listener.tcp, true);
    let limits = Limits::new(
        app.config.max_connections,
        (!app.config.trust_proxy).then_some(app.config.max_connections_per_ip),
    );
    let builder = connection_builder(Duration::from_millis(app.config.header_timeout_ms));
    let write_timeout = Duration::from_millis(app.config.write_timeout_ms);
    let service = warp::service(routes(Arc::clone(&app)));
    let connections = GracefulShutdown::new();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    backoff = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
                    tracing::warn!(error = %err, retry_ms = backoff.as_millis() as u64, "accept failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = Duration::ZERO;
        let admitted = match limits.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                refuse(stream, refusal, listener.tls.is_some());
                continue;
            }
        };
        let service = service.clone();
        let watcher = connections.watcher();
        let tls = listener.tls.clone();
        let builder = builder.clone();
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let _admitted = admitted;
            let stream = WriteDeadline::new(stream, write_timeout);
            // `/api` first, straight to its handler; every other request goes through
            // warp's routes carrying its peer (warp's service is cheap to clone: `Arc`s).
            let service =
                hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
                    if api::claims(request.uri().path()) {
                        let app = Arc::clone(&app);
                        Either::Left(async move {
                            Ok::<_, Infallible>(api::serve(app, request, peer).await)
                        })
                    } else {
                        request.extensions_mut().insert(Peer(peer));
                        Either::Right(tower_service::Service::call(&mut service.clone(), request))
                    }
                });
            let served = match tls {
                None => serve_connection(&builder, TokioIo::new(stream), service, watcher).await,
                Some(tls) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&builder, TokioIo::new(stream), service, watcher).await
                        }
                        Ok(Err(err)) => Err(format!("TLS handshake failed: {err}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(err) = served {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: finishing in-flight requests"
    );
    if tokio::time::timeout(grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining requests");
    }
}

/// Serves HTTP/1.1 (with upgrades: websockets) on one accepted connection, until it
/// ends or graceful shutdown closes it.
async fn serve_connection<I, S>(
    builder: &Builder,
    io: I,
    service: S,
    watcher: Watcher,
) -> Result<(), BoxError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    watcher
        .watch(builder.serve_connection_with_upgrades(io, service))
        .await
}

type Builder = hyper_util::server::conn::auto::Builder<TokioExecutor>;

/// HTTP/1.1 only (websocket upgrades need it; HTTP/2 is for the balancer in front), with
/// `header_timeout` from the moment a request's headers are awaited: a socket that
/// sends a partial request, or nothing after its last response, is closed then.
fn connection_builder(header_timeout: Duration) -> Builder {
    let mut builder = Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
}

/// Answers a socket over a connection cap with a `503` naming the cap, and closes it
/// (a TLS socket is closed at once: it could not read a plain answer). Bounded and
/// best effort: the point is to free the socket. What the client sent is read and
/// dropped before the close, or the kernel would reset the connection and the client
/// might lose the answer.
fn refuse(stream: tokio::net::TcpStream, refusal: Refusal, tls: bool) {
    crate::metrics::connection_refused(refusal.label());
    tracing::debug!(%refusal, "connection refused");
    if tls {
        return;
    }
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = stream;
        let answer = async {
            stream.write_all(refusal.response().as_bytes()).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut drained = 0;
            while drained < 64 * 1024 {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => drained += n,
                }
            }
            Ok::<(), std::io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
    });
}
