//! Who may use which channel of the websocket server (PROTOCOL 1.6), as pure rules.
//!
//! The server's channels live under [`ROOT`]: setup channels
//! (`/client/websocket/_incoming/<random>`, one per new connection) and connection
//! channels (`/client/websocket/connection/<id>`, one per connection). The rules:
//!
//! - a network client may subscribe to a setup channel by its exact name, and to a
//!   connection channel only if it owns that connection; any wildcard under the root is
//!   refused, while a wildcard that merely covers it (`/**`, `/client/**`) is allowed
//!   (the delivery rule below keeps the root's traffic from it);
//! - a publish under the root is a verb only on a connection channel, and only from its
//!   owner; anything else there is refused;
//! - a delivery under the root reaches a client only if it owns the connection it is
//!   about (named by the channel, or, on a setup channel, announced in `data.id`), and
//!   never as the echo of its own publish.
//!
//! The server looks owners up (they may live on another node); these functions only
//! say what must be checked.

use plugin_api::Value;

use crate::bayeux::channel;

/// Root of every websocket-server channel.
pub const ROOT: &str = "/client/websocket";
/// Prefix of setup channels.
pub const SETUP_PREFIX: &str = "/client/websocket/_incoming/";
/// Prefix of connection channels.
pub const CONNECTION_PREFIX: &str = "/client/websocket/connection/";

/// The connection channel of connection `id`.
pub fn connection_channel(id: &str) -> String {
    format!("{CONNECTION_PREFIX}{id}")
}

/// Whether `name` is a setup channel: one segment after the prefix, no wildcard.
pub fn is_setup_channel(name: &str) -> bool {
    name.strip_prefix(SETUP_PREFIX)
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('/') && !rest.contains('*'))
}

/// What a network client's subscription to `name` (a channel or pattern) asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Subscription<'a> {
    /// Not the server's business (outside the root, or a wildcard that covers it).
    Outside,
    /// A setup channel: allowed; it makes a connection.
    Setup,
    /// Connection `id`'s channel: allowed to its owner alone.
    Connection(&'a str),
    /// Refused.
    Forbidden,
}

/// Classifies a subscription.
pub(crate) fn subscription(name: &str) -> Subscription<'_> {
    let wildcard = channel::is_wildcard(name);
    let base = if wildcard {
        name.trim_end_matches("/**").trim_end_matches("/*")
    } else {
        name
    };
    if !channel::is_under(base, ROOT) {
        return Subscription::Outside;
    }
    if wildcard {
        return Subscription::Forbidden;
    }
    if let Some(id) = name.strip_prefix(CONNECTION_PREFIX) {
        if !id.is_empty() && !id.contains('/') {
            return Subscription::Connection(id);
        }
        return Subscription::Forbidden;
    }
    if is_setup_channel(name) {
        Subscription::Setup
    } else {
        Subscription::Forbidden
    }
}

/// What a network client's publish on `name` is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Publish<'a> {
    /// Not the server's business.
    Outside,
    /// A verb for connection `id`: allowed to its owner alone.
    Verb(&'a str),
    /// Refused.
    Forbidden,
}

/// Classifies a publish.
pub(crate) fn publish(name: &str) -> Publish<'_> {
    if channel::is_meta(name) || !channel::is_under(name, ROOT) {
        return Publish::Outside;
    }
    match name.strip_prefix(CONNECTION_PREFIX) {
        Some(id) if !id.is_empty() && !id.contains('/') => Publish::Verb(id),
        _ => Publish::Forbidden,
    }
}

/// The connection a delivery on `name` is about: the one its channel names, or the one
/// a setup channel announces; `None` outside the root. `Some(None)` is a delivery under
/// the root that is about no connection (it reaches nobody).
pub(crate) fn delivery_connection<'a>(
    name: &'a str,
    data: Option<&'a Value>,
) -> Option<Option<&'a str>> {
    if !channel::is_under(name, ROOT) {
        return None;
    }
    Some(match name.strip_prefix(CONNECTION_PREFIX) {
        Some(id) => Some(id),
        None => data.and_then(|d| d.get("id")).and_then(Value::as_str),
    })
}

/// Whether a delivery about a connection owned by `owner` goes to `recipient`, given
/// who published it: to the owner alone, and never back to its publisher.
pub(crate) fn delivery_allowed(
    owner: Option<&str>,
    recipient: Option<&str>,
    publisher: Option<&str>,
) -> bool {
    let owner_matches = owner.is_some() && owner == recipient;
    let echo = publisher.is_some() && publisher == recipient;
    owner_matches && !echo
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscriptions() {
        use Subscription::*;
        assert_eq!(subscription("/chat/room"), Outside);
        assert_eq!(
            subscription("/**"),
            Outside,
            "covers the root: filtered on delivery"
        );
        assert_eq!(subscription("/client/**"), Outside);
        assert_eq!(subscription("/client/*"), Outside);
        assert_eq!(subscription("/client/websocket/**"), Forbidden);
        assert_eq!(subscription("/client/websocket/*"), Forbidden);
        assert_eq!(subscription("/client/websocket/connection/*"), Forbidden);
        assert_eq!(subscription("/client/websocket/_incoming/**"), Forbidden);
        assert_eq!(subscription("/client/websocket/_incoming/abc"), Setup);
        assert_eq!(subscription("/client/websocket/_incoming/a/b"), Forbidden);
        assert_eq!(subscription("/client/websocket/_incoming/"), Forbidden);
        assert_eq!(
            subscription("/client/websocket/connection/c1"),
            Connection("c1")
        );
        assert_eq!(subscription("/client/websocket/connection/c1/x"), Forbidden);
        assert_eq!(subscription("/client/websocket"), Forbidden);
        assert_eq!(subscription("/client/websocket/other"), Forbidden);
        assert_eq!(
            subscription("/client/websocketx"),
            Outside,
            "a sibling, not under"
        );
    }

    #[test]
    fn publishes() {
        use Publish::*;
        assert_eq!(publish("/chat"), Outside);
        assert_eq!(publish("/meta/connect"), Outside);
        assert_eq!(publish("/client/websocket/connection/c1"), Verb("c1"));
        assert_eq!(publish("/client/websocket/connection/c1/x"), Forbidden);
        assert_eq!(publish("/client/websocket/_incoming/abc"), Forbidden);
        assert_eq!(publish("/client/websocket"), Forbidden);
    }

    #[test]
    fn setup_channels() {
        assert!(is_setup_channel("/client/websocket/_incoming/x1"));
        assert!(!is_setup_channel("/client/websocket/_incoming/*"));
        assert!(!is_setup_channel("/client/websocket/_incoming/"));
        assert!(!is_setup_channel("/client/websocket/connection/x"));
        assert_eq!(connection_channel("c1"), "/client/websocket/connection/c1");
    }

    #[test]
    fn deliveries() {
        let setup = json!({"id": "c9"});
        assert_eq!(delivery_connection("/chat", None), None);
        assert_eq!(
            delivery_connection("/client/websocket/connection/c1", None),
            Some(Some("c1"))
        );
        assert_eq!(
            delivery_connection("/client/websocket/_incoming/x", Some(&setup)),
            Some(Some("c9")),
            "a setup announcement is about the connection it names"
        );
        assert_eq!(
            delivery_connection("/client/websocket/_incoming/x", None),
            Some(None)
        );
        assert!(delivery_allowed(Some("a"), Some("a"), None));
        assert!(delivery_allowed(Some("a"), Some("a"), Some("b")));
        assert!(
            !delivery_allowed(Some("a"), Some("b"), None),
            "not the owner"
        );
        assert!(
            !delivery_allowed(Some("a"), Some("a"), Some("a")),
            "an echo"
        );
        assert!(!delivery_allowed(None, Some("a"), None), "no owner known");
        assert!(!delivery_allowed(None, None, None));
    }
}
