//! Typed product namespaces (`bind.*`, `unbound.*`, `pdns.*`, `coredns.*`):
//! values a resolver logs that ECS has no field for, kept with their type (a
//! number stays a number, an address an address) so they can be mapped as
//! `long`, `ip` or `boolean` instead of `labels.*` keyword strings.

use std::net::IpAddr;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use super::Str;

/// The namespaces a grammar may fill, one per product.
pub const NAMESPACES: &[&str] = &["bind", "unbound", "pdns", "coredns", "adguard"];

/// One value of a product namespace.
#[derive(Debug, Clone, PartialEq)]
pub enum CustomValue {
    Text(Str),
    Uint(u64),
    Ip(IpAddr),
    Bool(bool),
}

impl Serialize for CustomValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CustomValue::Text(t) => s.serialize_str(t),
            CustomValue::Uint(n) => s.serialize_u64(*n),
            CustomValue::Ip(ip) => ip.serialize(s),
            CustomValue::Bool(b) => s.serialize_bool(*b),
        }
    }
}

/// The product fields of an event as `(namespace, key, value)`, in the order
/// they were set. Written as one object per namespace at the top level.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Custom(pub Vec<(&'static str, &'static str, CustomValue)>);

impl Custom {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `ns.key`, replacing an earlier value.
    pub fn set(&mut self, ns: &'static str, key: &'static str, v: CustomValue) {
        match self.0.iter_mut().find(|(n, k, _)| *n == ns && *k == key) {
            Some(slot) => slot.2 = v,
            None => self.0.push((ns, key, v)),
        }
    }

    /// The value of `ns.key`, if set.
    pub fn get(&self, ns: &str, key: &str) -> Option<&CustomValue> {
        self.0
            .iter()
            .find(|(n, k, _)| *n == ns && *k == key)
            .map(|(_, _, v)| v)
    }

    /// The namespaces present, in first-set order.
    pub fn namespaces(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0
            .iter()
            .enumerate()
            .filter(|(i, (ns, _, _))| !self.0[..*i].iter().any(|(n, _, _)| n == ns))
            .map(|(_, (ns, _, _))| *ns)
    }

    /// The entries of one namespace.
    pub fn entries<'a>(
        &'a self,
        ns: &'a str,
    ) -> impl Iterator<Item = (&'static str, &'a CustomValue)> + 'a {
        self.0
            .iter()
            .filter(move |(n, _, _)| *n == ns)
            .map(|(_, k, v)| (*k, v))
    }
}

/// Serialised flattened into the event: one key per namespace.
impl Serialize for Custom {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Ns<'a>(&'a Custom, &'a str);
        impl Serialize for Ns<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(None)?;
                for (k, v) in self.0.entries(self.1) {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        for ns in self.namespaces() {
            m.serialize_entry(ns, &Ns(self, ns))?;
        }
        m.end()
    }
}
