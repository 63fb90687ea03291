//! The in-process client (faye's `in-process` connection type).
//!
//! A trusted session of the engine with no transport: it may subscribe to meta,
//! service and internal channels. A pump task claims its mailbox once and moves
//! deliveries into a channel the owner reads; the host uses it for its own internal
//! traffic (e.g. verbs forwarded between nodes).

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::engine::ClaimKind;
use super::error::BayeuxError;
use super::extension::MessageContext;
use super::message::{Message, SUBSCRIBE, UNSUBSCRIBE};
use super::server::{Bayeux, OutItem, engine_error};

/// Messages buffered between the engine mailbox and the receiver.
const LOCAL_BUFFER: usize = 1024;

/// An in-process, trusted Bayeux client: subscribes to any pattern (meta, service and
/// internal channels included) and receives deliveries on a bounded channel.
///
/// Deliveries go through outgoing extensions like any client's. Meta messages processed
/// for network clients are delivered to `/meta/...` subscribers with
/// `data: {"clientId", "subscription"}`. A client that does not keep up is disconnected
/// like any slow consumer: [`LocalClient::recv`] then returns `None`.
/// Dropping the client destroys its session.
#[derive(Debug)]
pub struct LocalClient {
    bayeux: Bayeux,
    client_id: String,
    rx: mpsc::Receiver<Message>,
    stop: CancellationToken,
}

impl LocalClient {
    pub(crate) fn start(bayeux: Bayeux, client_id: String) -> Self {
        let (tx, rx) = mpsc::channel(LOCAL_BUFFER);
        let stop = bayeux.shutdown_token().child_token();
        let pump = Pump {
            bayeux: bayeux.clone(),
            client_id: client_id.clone(),
            tx,
            stop: stop.clone(),
        };
        bayeux.spawn(pump.run());
        Self {
            bayeux,
            client_id,
            rx,
            stop,
        }
    }

    /// This client's id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    async fn meta(&self, channel: &str, subscription: &str) -> Result<(), BayeuxError> {
        let msg = Message {
            channel: Some(channel.to_owned()),
            client_id: Some(self.client_id.clone()),
            subscription: Some(Value::String(subscription.to_owned())),
            ..Message::default()
        };
        self.send(msg).await
    }

    async fn send(&self, msg: Message) -> Result<(), BayeuxError> {
        let ctx = MessageContext::in_process(Some(self.client_id.clone()));
        let replies = self.bayeux.process(vec![msg], &ctx).await;
        for item in replies {
            if let OutItem::Msg(reply) = item
                && reply.successful == Some(false)
            {
                return Err(BayeuxError::parse(reply.error.as_deref().unwrap_or("")));
            }
        }
        Ok(())
    }

    /// Subscribes to a channel or pattern.
    ///
    /// # Errors
    /// `405` for an invalid pattern, `401` if the session is gone, or a hook's rejection.
    pub async fn subscribe(&self, pattern: &str) -> Result<(), BayeuxError> {
        self.meta(SUBSCRIBE, pattern).await
    }

    /// Unsubscribes.
    ///
    /// # Errors
    /// As [`LocalClient::subscribe`].
    pub async fn unsubscribe(&self, pattern: &str) -> Result<(), BayeuxError> {
        self.meta(UNSUBSCRIBE, pattern).await
    }

    /// Publishes as this client (through incoming hooks, with a trusted context).
    ///
    /// # Errors
    /// `405` for an invalid channel, or a hook's rejection.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<(), BayeuxError> {
        let mut msg = Message::publish(channel, data);
        msg.client_id = Some(self.client_id.clone());
        self.send(msg).await
    }

    /// The next delivery; `None` once the session has ended.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// The receiving half, for use as a stream (e.g. `tokio_stream::wrappers::ReceiverStream`).
    pub fn receiver(&mut self) -> &mut mpsc::Receiver<Message> {
        &mut self.rx
    }

    /// Ends the session.
    pub async fn disconnect(self) {
        self.stop.cancel();
        self.bayeux.disconnect_client(&self.client_id).await;
    }
}

impl Drop for LocalClient {
    fn drop(&mut self) {
        if !self.stop.is_cancelled() {
            self.stop.cancel();
            let bayeux = self.bayeux.clone();
            let id = self.client_id.clone();
            if tokio::runtime::Handle::try_current().is_ok() {
                tokio::spawn(async move {
                    bayeux.disconnect_client(&id).await;
                });
            }
        }
    }
}

/// Moves deliveries from the engine mailbox to the channel.
struct Pump {
    bayeux: Bayeux,
    client_id: String,
    tx: mpsc::Sender<Message>,
    stop: CancellationToken,
}

impl Pump {
    async fn run(self) {
        let max = self.bayeux.config().max_batch;
        let mailbox = match self
            .bayeux
            .engine()
            .claim(&self.client_id, ClaimKind::Push)
            .await
        {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                engine_error(e);
                return;
            }
        };
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = self.bayeux.shutdown_token().cancelled() => return,
                () = self.tx.closed() => return,
                () = mailbox.clone().wait() => {}
            }
            let envs = mailbox.take(max);
            if envs.is_empty() {
                if mailbox.is_closed() {
                    return; // session ended: the receiver sees None
                }
                continue;
            }
            let mut out = Vec::with_capacity(envs.len());
            self.bayeux
                .outgoing_deliveries(&self.client_id, &envs, &mut out)
                .await;
            for item in out {
                let msg = match item {
                    OutItem::Msg(m) => *m,
                    OutItem::Raw(e) => e.message().clone(),
                };
                if self.tx.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
}
