//! Blocklists, read the same way by `dnsenrich sync --list` and by the
//! in-process store (`--ioc-file`): plain lists (one name, address or URL per
//! line), hosts-format lists (`0.0.0.0 name [name…]`), and CSV files with a
//! chosen value column and optionally a feed column.
//!
//! In plain and hosts lists `#` starts a comment and blank lines are ignored;
//! in CSV a row whose first cell starts with `#` is a comment (it may name the
//! columns, as abuse.ch exports do). Entries are mapped by
//! [`normalize::map_free`](super::normalize::map_free): an address becomes
//! `ip-dst`, a URL its host, anything else a name (lower case, no trailing dot,
//! IDN as punycode). The names hosts files carry for the machine itself
//! ([`HOSTS_OWN_NAMES`], any case) are skipped as boilerplate.
//!
//! The reader hands every entry to a callback and keeps nothing, so `sync` can
//! stream a list of millions of lines into its collector and the store into
//! its map.

use std::io::BufRead;

use super::key::KeyKind;
use super::normalize::{domain, looks_like_ip, map_free, Atom, Mapped, SkipReason};
use crate::lines::BoundedLines;

/// Longer list lines are cut (and then usually rejected as invalid).
const MAX_LINE: usize = 8192;

/// Names every hosts file carries for the machine itself, compared in lower
/// case; never indicators.
pub const HOSTS_OWN_NAMES: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
    "0.0.0.0",
];

/// How the lines of a non-CSV list are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// Each line by its shape: an address followed by names is a hosts line,
    /// anything else a plain entry.
    Auto,
    /// Every line is one plain entry.
    Plain,
    /// Every line is `<address> <name>…`.
    Hosts,
}

/// A CSV column: 0-based index or header name (any case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Index(usize),
    Name(String),
}

impl Column {
    /// A column as users write it: a 1-based number or a header name.
    pub fn parse(s: &str) -> Result<Column, &'static str> {
        let s = s.trim();
        match s.parse::<usize>() {
            Ok(0) => Err("columns are numbered from 1"),
            Ok(n) => Ok(Column::Index(n - 1)),
            Err(_) if !s.is_empty() => Ok(Column::Name(s.to_string())),
            Err(_) => Err("empty column"),
        }
    }
}

/// What a list yields, one callback per entry.
#[derive(Debug)]
pub enum Entry<'a> {
    /// One value: its type as counted by source (`domain`, `ip-dst`, `url`),
    /// the text as listed, what it maps to (which may be only skip reasons),
    /// and the feed named on its CSV row, if any.
    Value {
        ty: &'static str,
        raw: &'a str,
        mapped: Mapped,
        feed: Option<&'a str>,
    },
    /// Something that is no indicator, and why: hosts boilerplate, a hosts
    /// line without names, a CSV row without the value column.
    Skip { reason: SkipReason, line: &'a str },
}

/// Why a list could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// Reading failed underneath the parser.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The content is not what was expected (bad CSV, a missing header column).
    #[error("{0}")]
    Malformed(String),
}

/// Reads a plain or hosts-format list.
pub fn read_lines(
    r: &mut dyn BufRead,
    format: LineFormat,
    mut f: impl FnMut(Entry<'_>),
) -> Result<(), ListError> {
    let mut lines = BoundedLines::new(r, MAX_LINE);
    while let Some(line) = lines.next_line()? {
        let text = String::from_utf8_lossy(line.bytes);
        take_line(&text, format, &mut f);
    }
    Ok(())
}

/// One line of a plain or hosts-format list.
fn take_line(line: &str, format: LineFormat, f: &mut impl FnMut(Entry<'_>)) {
    let line = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.trim_matches(|ch: char| ch.is_whitespace() || ch == '\u{feff}');
    if line.is_empty() {
        return;
    }
    let mut tokens = line.split_whitespace();
    let first = tokens.next().unwrap_or("");
    let hosts = match format {
        LineFormat::Hosts => true,
        LineFormat::Plain => false,
        LineFormat::Auto => looks_like_ip(first) && line.split_whitespace().nth(1).is_some(),
    };
    if !hosts {
        free(line, None, f);
        return;
    }
    let mut any = false;
    for name in tokens {
        any = true;
        if HOSTS_OWN_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
            f(Entry::Skip {
                reason: SkipReason::HostsBoilerplate,
                line,
            });
            continue;
        }
        let mut mapped = Mapped::default();
        match domain(name) {
            Ok(a) => mapped.atoms.push(a),
            Err(e) => mapped.skipped.push(e),
        }
        f(Entry::Value {
            ty: "domain",
            raw: name,
            mapped,
            feed: None,
        });
    }
    if !any {
        f(Entry::Skip {
            reason: SkipReason::InvalidDomain,
            line,
        });
    }
}

fn free<'a>(value: &'a str, feed: Option<&'a str>, f: &mut impl FnMut(Entry<'_>)) {
    let ty = if value.contains("://") {
        "url"
    } else if looks_like_ip(value) {
        "ip-dst"
    } else {
        "domain"
    };
    f(Entry::Value {
        ty,
        raw: value,
        mapped: both_directions(map_free(value)),
        feed,
    });
}

/// A list says an address is bad, not in which direction: it is filed under
/// `ip-dst-` and `ip-src-` alike, so rules on `destination.ip`/answers and on
/// `source.ip` find it, whether the list went through `sync` or `--ioc-file`.
fn both_directions(mut mapped: Mapped) -> Mapped {
    let twins: Vec<Atom> = mapped
        .atoms
        .iter()
        .filter(|(kind, _)| *kind == KeyKind::IpDst)
        .map(|(_, value)| (KeyKind::IpSrc, value.clone()))
        .collect();
    mapped.atoms.extend(twins);
    mapped
}

/// Finds the columns named in `value_col` and `feed_col` in the header: a `#`
/// comment row just before the first row when it names them all, else the
/// first row itself. Returns the value and feed indexes and whether the header
/// came from the comment (then the first row is data).
fn header_columns(
    comment: Option<&[String]>,
    first: &[String],
    value_col: &Column,
    feed_col: Option<&Column>,
) -> Result<(Option<usize>, Option<usize>, bool), ListError> {
    let resolve = |h: &[String], col: &Column| match col {
        Column::Name(n) => h.iter().position(|x| x.eq_ignore_ascii_case(n)),
        Column::Index(i) => Some(*i),
    };
    let from_comment = comment.is_some_and(|h| {
        resolve(h, value_col).is_some() && feed_col.map_or(true, |fc| resolve(h, fc).is_some())
    });
    let header = match comment {
        Some(h) if from_comment => h,
        _ => first,
    };
    let value_idx = resolve(header, value_col);
    let feed_idx = feed_col.and_then(|fc| resolve(header, fc));
    let missing = match (value_col, feed_col) {
        (Column::Name(n), _) if value_idx.is_none() => Some(n),
        (_, Some(Column::Name(n))) if feed_idx.is_none() => Some(n),
        _ => None,
    };
    if let Some(n) = missing {
        return Err(ListError::Malformed(format!(
            "no column `{n}` in the header ({})",
            header.join(", ")
        )));
    }
    Ok((value_idx, feed_idx, from_comment))
}

/// Reads a CSV list, the value from `value_col` and the feed (when given and
/// not empty) from `feed_col`. A column named by header is found in the first
/// row, or in a `#` comment row just before it. Without named columns, a
/// first row whose value cell could not be a name or address (`domain`,
/// `Value`) is a header and skipped.
pub fn read_csv(
    r: &mut dyn BufRead,
    value_col: &Column,
    feed_col: Option<&Column>,
    mut f: impl FnMut(Entry<'_>),
) -> Result<(), ListError> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(r);
    let needs_header =
        matches!(value_col, Column::Name(_)) || matches!(feed_col, Some(Column::Name(_)));
    let mut value_idx = match value_col {
        Column::Index(i) => Some(*i),
        Column::Name(_) => None,
    };
    let mut feed_idx = match feed_col {
        Some(Column::Index(i)) => Some(*i),
        _ => None,
    };
    let mut header_done = false;
    let mut last_comment: Option<Vec<String>> = None;
    let mut rec = csv::ByteRecord::new();
    loop {
        match rd.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(match e.kind() {
                    csv::ErrorKind::Io(_) => ListError::Io(std::io::Error::other(e.to_string())),
                    _ => ListError::Malformed(e.to_string()),
                })
            }
        }
        let fields: Vec<String> = rec
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        if fields[0].starts_with('#') {
            let mut h = fields.clone();
            h[0] = h[0].trim_start_matches('#').trim().to_string();
            last_comment = Some(h);
            continue;
        }
        if !header_done {
            header_done = true;
            if needs_header {
                let (v, fc, from_comment) =
                    header_columns(last_comment.as_deref(), &fields, value_col, feed_col)?;
                (value_idx, feed_idx) = (v, fc);
                if !from_comment {
                    continue;
                }
            } else if let Some(v) = value_idx.and_then(|i| fields.get(i)) {
                // A first row whose cell could not be a name or address is
                // a header ("domain", "url", "ip").
                if !v.contains(['.', ':']) {
                    continue;
                }
            }
        }
        let Some(value) = value_idx.and_then(|i| fields.get(i)) else {
            let line = fields.join(",");
            f(Entry::Skip {
                reason: SkipReason::MissingColumn,
                line: &line,
            });
            continue;
        };
        let feed = feed_idx
            .and_then(|i| fields.get(i))
            .map(String::as_str)
            .filter(|f| !f.is_empty());
        free(value, feed, &mut f);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key-to-be and skip, as `prefix+value[@feed]` and `!reason`.
    fn entries(read: impl FnOnce(&mut dyn FnMut(Entry<'_>))) -> Vec<String> {
        let mut out = Vec::new();
        read(&mut |e| match e {
            Entry::Value { mapped, feed, .. } => {
                for (k, v) in mapped.atoms {
                    let at = feed.map(|f| format!("@{f}")).unwrap_or_default();
                    out.push(format!("{}{v}{at}", k.prefix()));
                }
                for r in mapped.skipped {
                    out.push(format!("!{r}"));
                }
            }
            Entry::Skip { reason, .. } => out.push(format!("!{reason}")),
        });
        out
    }

    #[test]
    fn hosts_and_plain_lines_in_one_list() {
        let text = "# comment\n127.0.0.1 LocalHost\n0.0.0.0 Ads.Example tracker.example # two\n\n\
                    plain.example\n198.51.100.7\nhttp://Bad.Example/x\n  \n::1 ip6-localhost\n";
        let got = entries(|f| read_lines(&mut text.as_bytes(), LineFormat::Auto, f).unwrap());
        assert_eq!(
            got,
            [
                "!hosts-file boilerplate",
                "domain-ads.example",
                "domain-tracker.example",
                "domain-plain.example",
                "ip-dst-198.51.100.7",
                "ip-src-198.51.100.7",
                "domain-bad.example",
                "!hosts-file boilerplate",
            ]
        );
        let got =
            entries(|f| read_lines(&mut "0.0.0.0\n".as_bytes(), LineFormat::Hosts, f).unwrap());
        assert_eq!(got, ["!invalid domain"]);
    }

    #[test]
    fn csv_by_header_name_and_number() {
        let text =
            "# id,dateadded,url,threat\n1,2026-01-01,http://Bad.Example/x,malware_download\n\
                    2,2026-01-01,not a url,phishing\n";
        let (url, threat) = (Column::Name("url".into()), Column::Name("threat".into()));
        let got = entries(|f| read_csv(&mut text.as_bytes(), &url, Some(&threat), f).unwrap());
        assert_eq!(
            got,
            ["domain-bad.example@malware_download", "!invalid domain"]
        );

        let text = "Value,Feed\nc2.example,Feed-A\n\"quoted.example\",\nshort\n";
        let got = entries(|f| {
            read_csv(
                &mut text.as_bytes(),
                &Column::Index(0),
                Some(&Column::Index(1)),
                f,
            )
            .unwrap()
        });
        assert_eq!(
            got,
            [
                "domain-c2.example@Feed-A",
                "domain-quoted.example",
                "domain-short"
            ]
        );

        let e = read_csv(
            &mut text.as_bytes(),
            &Column::Name("host".into()),
            None,
            |_| {},
        );
        assert!(matches!(e, Err(ListError::Malformed(m)) if m.contains("no column `host`")));
        assert_eq!(Column::parse("2"), Ok(Column::Index(1)));
        assert!(Column::parse("0").is_err());
    }
}
