//! Admission of accepted sockets: a cap on open connections, global and per client IP.
//!
//! Checked once per accepted socket, before any byte is read; a socket over a cap is
//! answered `503` with a plain-text reason and closed, so a client sees why, and the
//! host keeps the file descriptors it needs for its own files, plugins and Redis. The
//! per-IP cap counts the socket's peer: behind a proxy (`trust_proxy`) every socket
//! comes from the proxy, so the per-IP cap is not applied there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::sync::lock;

/// File descriptors kept for the host itself when the cap is derived from the limit.
const RESERVED_FDS: u64 = 128;

/// Why a socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The node holds `max_connections` open connections.
    #[error("too many open connections on this server (max_connections = {0})")]
    Full(usize),
    /// This client address holds `max_connections_per_ip` open connections.
    #[error("too many open connections from your address (max_connections_per_ip = {0})")]
    PerIp(usize),
}

impl Refusal {
    /// The label of `hero_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Full(_) => "max_connections",
            Refusal::PerIp(_) => "max_connections_per_ip",
        }
    }

    /// The whole HTTP response the refused socket gets.
    pub fn response(self) -> String {
        let body = format!("{self}\n");
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
    }
}

/// The open-connection counts, shared by the accept loop and every connection's guard.
#[derive(Debug)]
pub struct Limits {
    max: usize,
    max_per_ip: Option<usize>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    limits: Arc<Limits>,
    ip: Option<IpAddr>,
}

impl Limits {
    /// Caps of `max` connections (`0`: the process's file descriptor limit less a
    /// reserve) and `per_ip` per peer address (`0` or `None`: no per-address cap).
    pub fn new(max: usize, per_ip: Option<usize>) -> Arc<Self> {
        let max = if max == 0 { from_fd_limit() } else { max };
        Arc::new(Self {
            max,
            max_per_ip: per_ip.filter(|&n| n > 0),
            state: Mutex::default(),
        })
    }

    /// The global cap in force.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a place for a socket from `ip`, or says which cap it hits.
    ///
    /// # Errors
    ///
    /// [`Refusal`] when the node or the address is at its cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let mut state = lock(&self.state);
        if state.open >= self.max {
            return Err(Refusal::Full(self.max));
        }
        let counted = match self.max_per_ip {
            None => None,
            Some(cap) => {
                let n = state.by_ip.entry(ip).or_default();
                if *n >= cap {
                    return Err(Refusal::PerIp(cap));
                }
                *n += 1;
                Some(ip)
            }
        };
        state.open += 1;
        Ok(Admitted {
            limits: Arc::clone(self),
            ip: counted,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.state).open
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut state = lock(&self.limits.state);
        state.open = state.open.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(n) = state.by_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                state.by_ip.remove(&ip);
            }
        }
    }
}

/// The soft file descriptor limit less [`RESERVED_FDS`] (at least 16).
fn from_fd_limit() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    let usable = limit.saturating_sub(RESERVED_FDS).max(16);
    usize::try_from(usable).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back_on_drop() {
        let limits = Limits::new(3, Some(2));
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limits.admit(a).expect("room");
        let _second = limits.admit(a).expect("room");
        assert_eq!(limits.admit(a).err(), Some(Refusal::PerIp(2)));
        let _third = limits.admit(b).expect("room");
        assert_eq!(limits.admit(b).err(), Some(Refusal::Full(3)));
        drop(first);
        assert_eq!(limits.open(), 2);
        assert!(limits.admit(a).is_ok(), "a place came back");
        assert!(Refusal::Full(3).response().starts_with("HTTP/1.1 503"));
    }

    #[test]
    fn zero_means_the_fd_limit_and_no_per_ip_cap() {
        let limits = Limits::new(0, Some(0));
        assert!(limits.max() >= 16);
        let ip: IpAddr = [127, 0, 0, 1].into();
        let held: Vec<_> = (0..10).map(|_| limits.admit(ip)).collect();
        assert!(held.iter().all(Result::is_ok));
    }
}
