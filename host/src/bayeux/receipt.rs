//! What one reply took from client mailboxes, handed back unless the reply is written.
//!
//! A long-poll reply commits its deliveries before it is written (so that a newer
//! connect elsewhere never sends them twice), but the write can still fail: the client
//! stops reading and the write deadline closes the socket. The reply's body carries a
//! [`Receipt`]; once the body's last byte is handed to the connection it is
//! [`Receipt::written`], and a receipt dropped before that (the connection died) gives
//! its deliveries back to their sessions with [`Mailbox::restore`], so the next connect
//! delivers them. Bytes the kernel has accepted count as written: no server can know
//! more without an acknowledgement the protocol does not have.

use std::sync::Arc;

use super::engine::{Envelope, Mailbox};

/// Deliveries taken from one claimed mailbox, in the order taken.
pub(crate) type Taken = (Arc<dyn Mailbox>, Vec<Arc<Envelope>>);

/// Deliveries taken for one reply, per claimed mailbox.
#[derive(Default)]
#[must_use = "a receipt dropped unwritten hands its deliveries back"]
pub(crate) struct Receipt {
    taken: Vec<Taken>,
}

impl Receipt {
    /// Records `envelopes`, taken from `mailbox` for this reply.
    pub(crate) fn add(&mut self, mailbox: Arc<dyn Mailbox>, envelopes: Vec<Arc<Envelope>>) {
        if !envelopes.is_empty() {
            self.taken.push((mailbox, envelopes));
        }
    }

    /// Whether the reply carries no deliveries (nothing to hand back).
    pub(crate) fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }

    /// The reply was written: its deliveries are final.
    pub(crate) fn written(mut self) {
        self.taken.clear();
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        for (mailbox, envelopes) in self.taken.drain(..) {
            hand_back(&*mailbox, envelopes);
        }
    }
}

/// Gives `unsent` back to `mailbox` after a failed write (counted and logged: a failed
/// write is worth knowing about, though nothing is lost).
pub(crate) fn hand_back(mailbox: &dyn Mailbox, unsent: Vec<Arc<Envelope>>) {
    let n = unsent.len();
    if n == 0 {
        return;
    }
    mailbox.restore(unsent);
    crate::metrics::bayeux_deliveries_restored(n);
    tracing::info!(
        deliveries = n,
        "bayeux: a write failed; its deliveries go back to the session"
    );
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: usize = self.taken.iter().map(|(_, e)| e.len()).sum();
        f.debug_struct("Receipt").field("deliveries", &n).finish()
    }
}
