//! Network servers: HTTP (`/api`, `/public`, client assets) and the actionhero websocket
//! server protocol on top of Bayeux (the Bayeux transports themselves, websocket
//! included, are in [`crate::bayeux`]).

pub mod actionhero;
pub mod api;
pub mod assets;
pub mod deadline;
pub mod documentation;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod public;
pub mod tls;
pub mod web;
