//! Helpers shared by the integration tests: real servers started on loopback
//! ports, and the real `dnsenrich` binary with its syslog clients.

pub mod daemon;
pub mod front;
pub mod limits;
pub mod memcached;
pub mod misp;
pub mod osmem;
pub mod pki;
pub mod rsyslog;
