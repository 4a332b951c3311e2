//! The read side of the event pipeline: committed events go out through the Backplane, and on
//! every instance the Relay puts them back in seq order (filling gaps from `live_events`)
//! before the Hub fans them out.

pub mod backplane;
pub mod control;
pub mod redis;
pub mod relay;

pub use backplane::{Backplane, BackplaneSignal};
pub use relay::Relay;
