//! The websocket transport.
//!
//! The upgrade is done here (not with `warp::ws`) so the socket gets small tungstenite
//! buffers: tungstenite allocates (and zero-fills) its whole read buffer per socket,
//! 128 KiB by default, which dominates the memory of idle clients.
//!
//! Per socket, one task owns the socket: it reads frames and processes their messages
//! in order, writes the replies, holds the socket's connect (answered as a heartbeat
//! after the hold time, or when the next connect arrives), and pushes deliveries from
//! the client's mailbox as they come. One task rather than a reader and a writer: an
//! idle client is mostly its task's state, and the second task, the queue between the
//! two and their stop signal cost about 1 KB a client.
//! Frames already read and waiting are processed together, up to
//! [`MAX_FRAMES_PER_TURN`]: their messages in order, a run of publishes handed to the
//! engine as one (a clustered engine then waits for Redis once for a client's burst,
//! not once a publish); each frame still gets its own reply array (PROTOCOL 1.1).
//! Replies are written without a flush while more frames are ready to read, and flushed
//! when the socket has nothing more to read: a client that sends ten publishes at once
//! gets their ten replies in one write, not ten.
//! The mailbox is only drained while the socket can write, so a client that stops
//! reading fills its bounded mailbox and is disconnected (slow consumer); a write
//! that does not complete in time closes the socket.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as TungsteniteError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use warp::http::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, UPGRADE};
use warp::http::{HeaderMap, StatusCode};
use warp::reply::Response;

use super::RequestParts;
use super::http::bad_request;
use crate::bayeux::engine::{ClaimKind, Mailbox};
use crate::bayeux::extension::{MessageContext, Transport};
use crate::bayeux::message::{CONNECT, parse_messages};
use crate::bayeux::receipt::hand_back;
use crate::bayeux::server::{
    Bayeux, HeldReply, OutItem, Outcome, engine_error, to_json_array, to_json_frames,
};
use crate::edge::client::client_addr;

/// A write that takes longer than this means the peer stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

fn header_has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Whether the request asks for a websocket upgrade.
pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, "upgrade", "websocket")
}

/// Answers the upgrade (101) and spawns the socket's tasks.
pub(super) fn upgrade(bayeux: Bayeux, parts: RequestParts) -> Response {
    let headers = &parts.headers;
    if !header_has_token(headers, "connection", "upgrade") {
        return bad_request("websocket: no Connection: upgrade");
    }
    if headers
        .get("sec-websocket-version")
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return bad_request("websocket: unsupported version");
    }
    let Some(key) = headers.get("sec-websocket-key") else {
        return bad_request("websocket: no key");
    };
    let Some(on_upgrade) = parts.upgrade else {
        return bad_request("websocket: connection cannot be upgraded");
    };
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return bad_request("websocket: bad key");
    };
    let client = client_addr(headers, parts.remote, bayeux.config().trust_forwarded_for);
    let ctx = MessageContext::network(Transport::WebSocket, client);
    let c = bayeux.config();
    let config = WebSocketConfig::default()
        .read_buffer_size(c.ws_read_buffer_bytes.max(256))
        .write_buffer_size(c.ws_write_buffer_bytes)
        .max_write_buffer_size(c.max_write_bytes())
        .max_message_size(Some(c.max_frame_bytes))
        .max_frame_size(Some(c.max_frame_bytes));
    // This task only finishes the upgrade and starts the socket's task, so its
    // state (config, upgrade future) is freed once the socket is up.
    let tasks = bayeux.clone();
    tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                start(bayeux, ws, ctx);
            }
            Err(e) => tracing::debug!(error = %e, "bayeux: websocket upgrade failed"),
        }
    });
    let mut res = Response::new(bytes::Bytes::new().into());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    res
}

type Io = TokioIo<hyper::upgrade::Upgraded>;

/// Spawns the socket's one task.
fn start(bayeux: Bayeux, ws: WebSocketStream<Io>, ctx: MessageContext) {
    // The state and the socket live in one box that the task borrows: an `async fn`
    // taking them by value keeps two copies of its arguments in its state (it moves
    // them from one slot to another), some 600 bytes more per client.
    let mut socket = Box::new((Socket::new(bayeux.clone(), ctx), ws));
    bayeux.spawn(async move {
        let (state, ws) = &mut *socket;
        state.run(ws).await;
    });
}

/// What a frame read from the socket asks for.
fn incoming(frame: Option<Result<WsMessage, TungsteniteError>>) -> Event {
    match frame {
        Some(Ok(WsMessage::Text(text))) => Event::Text(text),
        Some(Ok(WsMessage::Close(_))) | None => Event::Ended,
        // Ping and pong are answered by tungstenite; binary frames are ignored.
        Some(Ok(_)) => Event::Ignored,
        Some(Err(TungsteniteError::Capacity(e))) => {
            tracing::debug!(error = %e, "bayeux: websocket frame too large");
            Event::TooLarge
        }
        Some(Err(e)) => {
            tracing::debug!(error = %e, "bayeux: websocket read error");
            Event::Ended
        }
    }
}

/// A future the socket's task selects on, kept across loop turns (re-created only when what
/// it waits for changes, not on every wake-up).
type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

fn never() -> Pending {
    Box::pin(std::future::pending())
}

/// Turns in a row the task may look at its mailbox before its other wake-up sources.
const MAILBOX_FIRST_TURNS: u32 = 8;

/// Frames processed together at most (see the module docs).
const MAX_FRAMES_PER_TURN: usize = 32;

/// Adds to `texts` the text frames already read and waiting (without waiting for
/// more), up to [`MAX_FRAMES_PER_TURN`] in all; returns the first other event met, to
/// handle after them.
///
/// Polled with a no-op waker: the task's loop polls the socket again with its own
/// before it sleeps.
fn gather(ws: &mut WebSocketStream<Io>, texts: &mut Vec<Utf8Bytes>) -> Option<Event> {
    let mut cx = Context::from_waker(Waker::noop());
    while texts.len() < MAX_FRAMES_PER_TURN {
        let Poll::Ready(frame) = ws.poll_next_unpin(&mut cx) else {
            return None;
        };
        match incoming(frame) {
            Event::Text(text) => texts.push(text),
            Event::Ignored => {}
            other => return Some(other),
        }
    }
    None
}

/// The waker the task's rare sources (stop, detach) are polled with: notes that one of
/// them fired, then wakes the task.
struct RareWake {
    fired: AtomicBool,
    task: Waker,
}

impl Wake for RareWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// Whether the rare sources need polling now (and resets the mark); re-targets `rare` if
/// the task's own waker changed, which also means polling them.
fn rare_due(rare: &mut Arc<RareWake>, task: &Waker) -> bool {
    if !rare.task.will_wake(task) {
        *rare = Arc::new(RareWake {
            fired: AtomicBool::new(false),
            task: task.clone(),
        });
        return true;
    }
    rare.fired.swap(false, Ordering::AcqRel)
}

/// What woke the socket's task.
enum Event {
    /// The host is shutting down.
    Stop,
    /// A text frame: Bayeux messages.
    Text(Utf8Bytes),
    /// A frame with nothing to do (ping, pong, binary).
    Ignored,
    /// A frame over `max_frame_bytes`: the socket closes with 1009.
    TooLarge,
    /// The peer closed the socket, or it failed.
    Ended,
    HoldDue,
    Detached,
    Mailbox,
    /// Nothing else is ready and replies are written but not flushed.
    Flush,
}

/// One websocket client's state: its task owns the socket, reads and processes frames
/// in order, holds its connect, and pushes its deliveries.
struct Socket {
    bayeux: Bayeux,
    ctx: MessageContext,
    /// The client whose deliveries this socket pushes: (id, attach token, detach signal).
    attached: Option<(Arc<str>, u64, CancellationToken)>,
    /// The held connect reply and when to send it.
    held: Option<(HeldReply, Instant)>,
    /// The attached client's mailbox, when the engine hands one out.
    mailbox: Option<Arc<dyn Mailbox>>,
    /// Replies were written to the socket's buffer since the last flush.
    unflushed: bool,
}

impl Socket {
    fn new(bayeux: Bayeux, ctx: MessageContext) -> Self {
        Self {
            bayeux,
            ctx,
            attached: None,
            held: None,
            mailbox: None,
            unflushed: false,
        }
    }

    /// A future resolving when the attached client's mailbox may have something.
    fn mailbox_wait(&self) -> Pending {
        match (&self.attached, &self.mailbox) {
            (Some(_), Some(mailbox)) => mailbox.clone().wait(),
            _ => never(),
        }
    }

    fn detach_wait(&self) -> Pending {
        match &self.attached {
            Some((_, _, detached)) => Box::pin(detached.clone().cancelled_owned()),
            None => never(),
        }
    }

    /// The socket's task: until the peer leaves, the socket fails or the host stops.
    ///
    /// Frames are processed one at a time and their replies written in order; no frame
    /// is read while a write waits for the peer.
    async fn run(&mut self, ws: &mut WebSocketStream<Io>) {
        // Every wake-up of a pushing socket goes through this loop, so the futures it
        // waits on are built once and kept, not rebuilt per turn.
        let stop = self.bayeux.shutdown_token().clone().cancelled_owned();
        tokio::pin!(stop);
        let hold_timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(hold_timer);
        let mut armed_for: Option<u64> = None;
        let mut rare = Arc::new(RareWake {
            fired: AtomicBool::new(true),
            task: Waker::noop().clone(),
        });
        let mut detached = never();
        let mut mailbox = never();
        // Consecutive turns that only pushed deliveries.
        let mut pushes = 0u32;
        // An event met while gathering frames, handled next.
        let mut next: Option<Event> = None;
        loop {
            let token = self.attached.as_ref().map(|(_, t, _)| *t);
            if token != armed_for {
                armed_for = token;
                detached = self.detach_wait();
                mailbox = self.mailbox_wait();
                rare.fired.store(true, Ordering::Release);
            }
            // Deliveries are by far the most frequent wake-up: look at the mailbox first
            // and leave the other sources (whose wakers stay registered from their last
            // poll) alone, except every few turns so a busy mailbox cannot starve them.
            let mailbox_first = pushes < MAILBOX_FIRST_TURNS;
            let held = self.held.is_some();
            let unflushed = self.unflushed;
            let event = if let Some(event) = next.take() {
                event
            } else {
                std::future::poll_fn(|cx| {
                    if mailbox_first && mailbox.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Mailbox);
                    }
                    // Stop and detach almost never fire, and checking a cancellation token
                    // takes a lock: poll them only when their own waker fired (or they are new).
                    if rare_due(&mut rare, cx.waker()) {
                        let waker = Waker::from(rare.clone());
                        let mut rcx = Context::from_waker(&waker);
                        if stop.as_mut().poll(&mut rcx).is_ready() {
                            return Poll::Ready(Event::Stop);
                        }
                        if detached.as_mut().poll(&mut rcx).is_ready() {
                            return Poll::Ready(Event::Detached);
                        }
                    }
                    if let Poll::Ready(frame) = ws.poll_next_unpin(cx) {
                        return Poll::Ready(incoming(frame));
                    }
                    if held && hold_timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::HoldDue);
                    }
                    if !mailbox_first && mailbox.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Event::Mailbox);
                    }
                    // Every source is pending (and will wake the task): a good time to flush.
                    if unflushed {
                        return Poll::Ready(Event::Flush);
                    }
                    Poll::Pending
                })
                .await
            };
            pushes = match event {
                Event::Mailbox => pushes.saturating_add(1),
                _ => 0,
            };
            let ok = match event {
                Event::Stop => {
                    Box::pin(self.finish(ws)).await;
                    break;
                }
                Event::Text(text) => {
                    let mut texts = vec![text];
                    next = gather(ws, &mut texts);
                    Box::pin(self.process_frames(ws, &texts, hold_timer.as_mut())).await
                }
                Event::Ignored => true,
                Event::TooLarge => {
                    let close = CloseFrame {
                        code: CloseCode::Size,
                        reason: "Message too big".into(),
                    };
                    let _ = Box::pin(ws.send(WsMessage::Close(Some(close)))).await;
                    false
                }
                Event::Ended => false,
                Event::HoldDue => Box::pin(self.release_held(ws)).await,
                Event::Detached => {
                    detached = never();
                    if let Some((id, token, _)) = self.take_attached() {
                        self.bayeux.detach(&id, token);
                    }
                    true
                }
                Event::Mailbox => {
                    mailbox = self.mailbox_wait();
                    Box::pin(self.push(ws)).await
                }
                Event::Flush => {
                    self.unflushed = false;
                    matches!(
                        tokio::time::timeout(SEND_TIMEOUT, ws.flush()).await,
                        Ok(Ok(()))
                    )
                }
            };
            if !ok {
                break;
            }
        }
        if let Some((id, token, _)) = self.take_attached() {
            self.bayeux.detach(&id, token);
        }
        let _ = ws.close(None).await;
    }

    /// Processes frames (their messages in order) and writes a reply array for each;
    /// `false` once the socket is done.
    ///
    /// A function of its own, boxed by the caller, so that `run`, which lives as long
    /// as the socket, does not keep room for a frame's work in its state.
    async fn process_frames<S>(
        &mut self,
        sink: &mut S,
        texts: &[Utf8Bytes],
        mut hold_timer: Pin<&mut Sleep>,
    ) -> bool
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        let mut messages = Vec::new();
        // Messages per frame parsed: each such frame gets its own reply array.
        let mut frames = Vec::with_capacity(texts.len());
        for text in texts {
            match parse_messages(text.as_bytes()) {
                Ok(m) => {
                    frames.push(m.len());
                    messages.extend(m);
                }
                // As faye: a malformed frame is logged and ignored.
                Err(e) => tracing::debug!(error = %e, "bayeux: malformed websocket frame"),
            }
        }
        let connects: Vec<bool> = messages
            .iter()
            .map(|m| m.channel.as_deref() == Some(CONNECT))
            .collect();
        let outcomes = self.bayeux.handle_many(messages, &self.ctx).await;
        let mut outcomes = outcomes.into_iter().zip(connects);
        let mut held = Vec::new();
        for size in frames {
            let mut replies = Vec::with_capacity(size);
            for (outcome, is_connect) in outcomes.by_ref().take(size) {
                match outcome {
                    Outcome::Reply(r) => {
                        if let Some(r) = self.bayeux.outgoing_reply(r).await {
                            replies.push(OutItem::Msg(Box::new(r)));
                        }
                    }
                    Outcome::Hold { reply, hold } if is_connect => held.push((reply, hold)),
                    Outcome::Hold { reply, .. } => {
                        replies.push(OutItem::Msg(Box::new(self.bayeux.held_reply(reply))));
                    }
                }
            }
            // Written without a flush: the task flushes once nothing more is ready to read.
            if (!replies.is_empty() || size == 0) && !self.feed(sink, to_json_array(&replies)).await
            {
                return false;
            }
        }
        for (reply, hold) in held {
            if !self.hold(sink, reply, hold, hold_timer.as_mut()).await {
                return false;
            }
        }
        true
    }

    /// Holds a valid connect for `hold`, releasing the one held before,
    /// and makes this socket the one that pushes the client's deliveries.
    async fn hold<S>(
        &mut self,
        sink: &mut S,
        reply: HeldReply,
        hold: Duration,
        hold_timer: Pin<&mut Sleep>,
    ) -> bool
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        self.attach(reply.client_id()).await;
        // A second connect releases the first.
        if !self.release_held(sink).await {
            return false;
        }
        if hold.is_zero() {
            return self.send_reply(sink, reply).await;
        }
        let deadline = Instant::now() + hold;
        hold_timer.reset(deadline);
        self.held = Some((reply, deadline));
        true
    }

    /// At shutdown: writes the deliveries waiting in the mailbox, then the held
    /// connect's reply (each write within [`SEND_TIMEOUT`]).
    async fn finish<S>(&mut self, sink: &mut S)
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        if self.push(sink).await {
            let _ = self.release_held(sink).await;
        }
    }

    /// Forgets the attached client (and its mailbox handle).
    fn take_attached(&mut self) -> Option<(Arc<str>, u64, CancellationToken)> {
        self.mailbox = None;
        self.attached.take()
    }

    /// Makes this socket the one that pushes `client_id`'s deliveries (claiming its
    /// mailbox), unless it already is.
    async fn attach(&mut self, client_id: &str) {
        if self
            .attached
            .as_ref()
            .is_some_and(|(id, _, t)| &**id == client_id && !t.is_cancelled())
            && self.mailbox.as_ref().is_some_and(|m| !m.is_closed())
        {
            return;
        }
        if let Some((old, token, _)) = self.take_attached() {
            self.bayeux.detach(&old, token);
        }
        let (token, detached) = self.bayeux.attach(client_id);
        self.attached = Some((Arc::from(client_id), token, detached));
        self.mailbox = match self.bayeux.engine().claim(client_id, ClaimKind::Push).await {
            Ok(m) => m,
            Err(e) => {
                // Pushed on the next connect, which claims again.
                engine_error(e);
                None
            }
        };
    }

    /// Writes one text frame to the socket's buffer, for the next flush (which a later
    /// [`send`] or the task's [`Event::Flush`] does); `false` if the socket is gone or
    /// the peer is too slow.
    async fn feed<S>(&mut self, sink: &mut S, text: String) -> bool
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        self.unflushed = true;
        matches!(
            tokio::time::timeout(SEND_TIMEOUT, sink.feed(WsMessage::text(text))).await,
            Ok(Ok(()))
        )
    }

    async fn send_reply<S>(&mut self, sink: &mut S, reply: HeldReply) -> bool
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        let reply = self.bayeux.held_reply(reply);
        if let Some(id) = reply.client_id.as_deref() {
            let _ = self.bayeux.engine().ping(id).await;
        }
        match self.bayeux.outgoing_reply(reply).await {
            Some(r) => send(sink, to_json_array(&[OutItem::Msg(Box::new(r))])).await,
            None => true,
        }
    }

    async fn release_held<S>(&mut self, sink: &mut S) -> bool
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        match self.held.take() {
            Some((reply, _)) => self.send_reply(sink, reply).await,
            None => true,
        }
    }

    /// Sends what is in the mailbox. Without yielding first: by the time a woken socket
    /// runs, a busy publisher has usually queued more, and a yield per wake-up cost more
    /// than it batched (pairs 255k -> 279k msgs/s without it; fan-out unchanged).
    async fn push<S>(&mut self, sink: &mut S) -> bool
    where
        S: futures_util::Sink<WsMessage> + Unpin,
    {
        let Some(id) = self.attached.as_ref().map(|(id, _, _)| id.clone()) else {
            return true;
        };
        let Some(mailbox) = self.mailbox.clone() else {
            return true;
        };
        let envs = mailbox.take(self.bayeux.config().max_batch);
        if envs.is_empty() {
            if mailbox.is_closed() {
                // Stop pushing. If the session is gone, let the client find out now;
                // if another connect took it over, that one delivers from here on.
                if let Some((id, token, _)) = self.take_attached() {
                    self.bayeux.detach(&id, token);
                }
                if !matches!(self.bayeux.engine().session(&id).await, Ok(Some(_))) {
                    return self.release_held(sink).await;
                }
            }
            return true;
        }
        let mut out = Vec::with_capacity(envs.len());
        self.bayeux.outgoing_deliveries(&id, &envs, &mut out).await;
        let every_item_kept = out.len() == envs.len();
        let mut sent = 0;
        for (frame, items) in to_json_frames(&out, self.bayeux.config().max_frame_bytes) {
            if !send(sink, frame).await {
                // Taken is not delivered: hand back what did not go out, so the client's
                // next connect (on any transport, any node) gets it. Items map to
                // envelopes one to one unless a hook dropped some; then the whole batch
                // goes back, as a repeat is better than a loss.
                let unsent = if every_item_kept {
                    envs.get(sent..).unwrap_or_default().to_vec()
                } else {
                    envs
                };
                hand_back(&*mailbox, unsent);
                return false;
            }
            sent += items;
        }
        true
    }
}

/// Sends one text frame, flushing it with whatever was written before; `false` if the
/// socket is gone or the peer is too slow.
async fn send<S>(sink: &mut S, text: String) -> bool
where
    S: futures_util::Sink<WsMessage> + Unpin,
{
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::text(text))).await,
        Ok(Ok(()))
    )
}
