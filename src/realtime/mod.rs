//! Real-time delivery: the Hub fans relayed events out to this instance's sockets; each
//! Session owns one socket.

#![warn(missing_docs)]

pub mod frame;
pub mod hub;
pub mod inbound;
pub mod outbound;
pub mod presence;
pub mod session;
pub mod trim;
pub mod volatile;

pub use hub::{CloseReason, Hub, Subscriber};
