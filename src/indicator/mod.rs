//! Indicators in memcached: where keys written by other clients live.
//!
//! [`distribution`] places a key on one of several memcached servers exactly
//! as the client that wrote it does (Dalli, pymemcache, libmemcached ketama,
//! or dnsenrich's own rendezvous hashing).

pub mod distribution;
