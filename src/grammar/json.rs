//! JSON-lines grammars (`@json`): for logs written as one JSON object per
//! line (AdGuard Home's `querylog.json`). Rules test keys instead of matching
//! text: `rule NAME: KEY KEY=VALUE …` matches when every `KEY` is present (and
//! not null, `""` or `false`) and every `KEY=VALUE` holds that value (as text:
//! `Result.Reason=3`, `Cached=true`). `@map KEY: %{kind:field}` lines say what
//! each key is: its value, as text, must match the capture whole, and fills
//! the field exactly like a capture in a text rule. A key is a dotted path;
//! a number indexes an array (`Result.Rules.0.Text`).

use serde_json::Value as Json;

use super::pattern::{Captures, Pattern};
use super::{set_captures, set_constants, Grammar, Matched};
use crate::event::Event;

/// One `KEY` or `KEY=VALUE` test of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub path: Vec<String>,
    pub equals: Option<String>,
}

/// One `@map` line.
#[derive(Debug, Clone)]
pub struct Map {
    pub path: Vec<String>,
    pub pattern: Pattern,
}

/// Splits a dotted key.
pub fn path(key: &str) -> Vec<String> {
    key.split('.').map(str::to_owned).collect()
}

/// Reads a rule's `KEY KEY=VALUE …` list.
pub fn conditions(list: &str) -> Vec<Condition> {
    list.split_whitespace()
        .map(|c| match c.split_once('=') {
            Some((k, v)) => Condition {
                path: path(k),
                equals: Some(v.to_owned()),
            },
            None => Condition {
                path: path(c),
                equals: None,
            },
        })
        .collect()
}

fn lookup<'a>(v: &'a Json, path: &[String]) -> Option<&'a Json> {
    path.iter().try_fold(v, |v, k| match v {
        Json::Object(m) => m.get(k),
        Json::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

/// A scalar as the text a capture reads; objects and arrays have none.
fn text(v: &Json) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Json::String(s) => Some(s.as_str().into()),
        Json::Number(n) => Some(n.to_string().into()),
        Json::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
        _ => None,
    }
}

fn holds(v: &Json, c: &Condition) -> bool {
    let Some(found) = lookup(v, &c.path) else {
        return false;
    };
    match &c.equals {
        Some(want) => text(found).is_some_and(|t| t == want.as_str()),
        None => {
            !matches!(found, Json::Null | Json::Bool(false))
                && found != &Json::String(String::new())
        }
    }
}

/// Tries the rules of JSON grammars on a line; the first whose conditions
/// all hold fills the event.
pub fn apply(members: &[&Grammar], msg: &str, ev: &mut Event) -> Option<Matched> {
    let body = msg.trim();
    if !body.starts_with('{') {
        return None;
    }
    let v: Json = serde_json::from_str(body).ok()?;
    for g in members {
        let Some(rule) = g
            .rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| holds(&v, c)))
        else {
            continue;
        };
        set_constants(ev, &g.defaults);
        set_constants(ev, &rule.constants);
        for m in &g.maps {
            let Some(t) = lookup(&v, &m.path).and_then(text) else {
                continue;
            };
            let mut caps = Captures::new();
            if m.pattern.matches_all(&t, &mut caps) {
                set_captures(ev, &m.pattern, &caps);
            }
        }
        return Some(Matched {
            grammar: g.name,
            rule: rule.name,
        });
    }
    None
}
