//! The EventSource transport: `GET <mount>/<clientId>` with `Accept: text/event-stream`.
//!
//! The stream carries deliveries only; connects still arrive over HTTP (answered at
//! once with `advice {interval: timeout, timeout: 0}`).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;
use warp::http::HeaderMap;
use warp::http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_TYPE,
    HeaderValue,
};
use warp::reply::{Reply, Response};

use super::RequestParts;
use super::http::bad_request;
use crate::bayeux::engine::ClaimKind;
use crate::bayeux::extension::{MessageContext, Transport};
use crate::bayeux::receipt::hand_back;
use crate::bayeux::server::{Bayeux, engine_error, to_json_array};

/// Whether the request is an EventSource request.
pub(super) fn is_eventsource(headers: &HeaderMap) -> bool {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
}

/// Chunks from the pump task to the response body.
struct Chunks(mpsc::Receiver<Bytes>);

impl Stream for Chunks {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|c| c.map(Ok))
    }
}

/// Opens the stream for `client_id` (400 if unknown or bound to another peer).
pub(super) async fn open(bayeux: Bayeux, client_id: &str, parts: RequestParts) -> Response {
    let client = crate::edge::client::client_addr(
        &parts.headers,
        parts.remote,
        bayeux.config().trust_forwarded_for,
    );
    let ctx = MessageContext::network(Transport::EventSource, client);
    match bayeux.verified_session(client_id, &ctx).await {
        Ok(Some(_)) => {}
        _ => return bad_request("eventsource: unknown client"),
    }
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let client_id = client_id.to_owned();
    bayeux.clone().spawn(pump(bayeux, client_id, tx));
    let mut res = warp::reply::stream(Chunks(rx)).into_response();
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    if let Some(origin) = parts.headers.get("origin") {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    res
}

async fn pump(bayeux: Bayeux, client_id: String, tx: mpsc::Sender<Bytes>) {
    if tx
        .send(Bytes::from_static(b"retry: 5000\r\n\r\n"))
        .await
        .is_err()
    {
        return;
    }
    let (token, detached) = bayeux.attach(&client_id);
    let mailbox = match bayeux.engine().claim(&client_id, ClaimKind::Push).await {
        Ok(Some(m)) => m,
        Ok(None) => return bayeux.detach(&client_id, token),
        Err(e) => {
            engine_error(e);
            return bayeux.detach(&client_id, token);
        }
    };
    let period = Duration::from_millis(bayeux.config().ping_ms.max(100));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            () = detached.cancelled() => break,
            () = tx.closed() => break,
            _ = ping.tick() => {
                if tx.send(Bytes::from_static(b":\r\n\r\n")).await.is_err() {
                    break;
                }
            }
            () = mailbox.clone().wait() => {
                tokio::task::yield_now().await;
                let envs = mailbox.take(bayeux.config().max_batch);
                if envs.is_empty() {
                    if mailbox.is_closed() {
                        break;
                    }
                    continue;
                }
                let mut out = Vec::with_capacity(envs.len());
                bayeux.outgoing_deliveries(&client_id, &envs, &mut out).await;
                if out.is_empty() {
                    continue;
                }
                let chunk = format!("data: {}\r\n\r\n", to_json_array(&out));
                if tx.send(Bytes::from(chunk)).await.is_err() {
                    // The response is gone: the next connect delivers these.
                    hand_back(&*mailbox, envs);
                    break;
                }
            }
        }
    }
    bayeux.detach(&client_id, token);
}
