//! The warp server: every route, one rejection handler, graceful shutdown.
//!
//! Routes in order: `/api`, the Bayeux mount, the embedded assets, then `/public`
//! (which claims every other GET). Every rejection becomes one status and plain-text
//! body here; shutdown stops accepting, then gives in-flight requests the grace period.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use http::header::{self, HeaderValue};
use tokio::net::TcpListener;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::app::App;
use crate::servers::public::NOT_FOUND;
use crate::servers::{api, assets, public};

/// Every route of the host.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let api = api::routes(Arc::clone(&app));
    // Routes before `public`: it claims every remaining GET/HEAD path.
    let bayeux = crate::bayeux::routes(app.bayeux.clone());
    let public = public::routes(Arc::clone(&app));
    api.or(bayeux)
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

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish for at most the configured shutdown timeout.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let grace = Duration::from_millis(app.config.shutdown_timeout_ms);
    // Accepted sockets inherit TCP_NODELAY: without it, a small push (a Bayeux delivery)
    // written while the previous one is unacknowledged waits for the peer's delayed ACK.
    let _ = rustix::net::sockopt::set_tcp_nodelay(&listener, true);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let server = warp::serve(routes(app))
        .incoming(listener)
        .graceful(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        })
        .run();
    tokio::pin!(server);
    tokio::select! {
        () = &mut server => {}
        Ok(()) = stopping_rx => {
            tracing::info!(grace_ms = grace.as_millis() as u64, "shutting down: finishing in-flight requests");
            if tokio::time::timeout(grace, server).await.is_err() {
                tracing::warn!("shutdown grace period over; dropping remaining requests");
            }
        }
    }
}
