//! Helpers shared by the integration tests: real servers started on loopback ports.

pub mod daemon;
pub mod osmem;
