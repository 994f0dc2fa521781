//! The indicator contract: what `dnsenrich sync` writes to memcached and the
//! enricher reads back. The two run as separate processes, often on separate
//! machines, so everything both must agree on lives here and only here:
//!
//! * **Keys** ([`key`]): `[<namespace>:]<kind prefix><normalised value>`, e.g.
//!   `misp:domain-evil.example` or `ip-dst-2001:db8::1`, made safe for the
//!   memcached text protocol (an unsafe or over-long key is replaced by its
//!   digest form `domain-#<sha-256 hex>`). [`key::compose`] is the one
//!   function that builds a key; sync, the lookups and the in-process store all
//!   call it.
//! * **Values** ([`value`]): the JSON `{"v":1,"type":…,"value":…,"feeds":[…]}`
//!   sync writes, and every older form the reader still accepts (a plain feed
//!   name, a Python list of feed names).
//! * **Entries** ([`normalize`], [`list`]): how a MISP attribute or a
//!   blocklist line becomes a kind and a normalised value, the same for
//!   `sync --list` and `--ioc-file`.
//! * **Placement** ([`placement`]): which of several servers holds a key
//!   (rendezvous hashing over `host:port`); [`distribution`] places a key
//!   exactly as the client that wrote it does (Dalli, pymemcache's
//!   `HashClient`, libmemcached ketama, or dnsenrich's own rendezvous hashing).
//!
//! * **Freshness** ([`freshness`]): the status key a sync run leaves beside
//!   the indicators, from which `run` tells how old they are.
//!
//! Nothing in here does I/O.

pub mod distribution;
pub mod freshness;
pub mod key;
pub mod list;
pub mod normalize;
pub mod placement;
pub mod value;
