//! Automation (being written).

pub mod delivery;
pub mod events;
pub mod render;
pub mod routing;
