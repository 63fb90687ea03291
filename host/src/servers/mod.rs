//! Network servers: HTTP (`/api`, `/public`, client assets) and the websocket protocol.

pub mod api;
pub mod documentation;
pub mod identity;
pub mod web;
