//! Blocklists: plain lists (one name, address or URL per line), hosts-format
//! lists (`0.0.0.0 name [name…]`), and CSV files with a chosen column. `#`
//! comments and blank lines are ignored; so are the `localhost` lines at the
//! top of hosts files.

use std::io::BufRead;

use super::collect::{Collector, FeedId, FeedRef, Seen};
use super::config::{ListFormat, ListSource};
use super::http::{Fetcher, Location, ParseFailure};
use super::indicator::{domain, looks_like_ip, map_free, Mapped, SkipReason};
use super::progress::Progress;
use super::SyncError;
use crate::enrich::store::HOSTS_OWN_NAMES;
use crate::lines::BoundedLines;

/// Longer list lines are cut (and then usually rejected as invalid).
const MAX_LINE: usize = 8192;

/// A CSV column: 0-based index or header name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Column {
    Index(usize),
    Name(String),
}

impl Column {
    fn parse(key: &'static str, s: &str) -> Result<Column, SyncError> {
        let s = s.trim();
        match s.parse::<usize>() {
            Ok(0) => Err(SyncError::Config(super::config::InvalidSyncConfig {
                key,
                reason: "columns are numbered from 1".into(),
            })),
            Ok(n) => Ok(Column::Index(n - 1)),
            Err(_) if !s.is_empty() => Ok(Column::Name(s.to_string())),
            Err(_) => Err(SyncError::Config(super::config::InvalidSyncConfig {
                key,
                reason: "empty column".into(),
            })),
        }
    }
}

/// Loads one list.
pub(crate) async fn load(
    fetcher: &Fetcher,
    src: &ListSource,
    mut c: Collector,
    progress: &Progress,
) -> Result<Collector, SyncError> {
    let loc = Location::parse(&src.path_or_url)?;
    let origin = format!("list {loc}");
    progress.message(origin.clone());
    let feed_name = src.effective_feed_name();
    let format = src.effective_format();
    let value_col = match &src.csv_column {
        Some(s) => Column::parse("lists.csv_column", s)?,
        None => Column::Index(0),
    };
    let feed_col = match &src.csv_feed_column {
        Some(s) => Some(Column::parse("lists.csv_feed_column", s)?),
        None => None,
    };
    let before = c.report.indicators();
    let mut c = fetcher
        .read("list", &loc, move |r| {
            let feed = c.feed(FeedRef::named(&feed_name));
            match format {
                ListFormat::Csv => read_csv(r, &mut c, &feed_name, value_col, feed_col)?,
                f => read_lines(r, &mut c, feed, f)?,
            }
            Ok(c)
        })
        .await?;
    let taken = c.report.indicators() - before;
    c.report.sources.push((origin, taken));
    Ok(c)
}

fn read_lines(
    r: &mut dyn BufRead,
    c: &mut Collector,
    feed: FeedId,
    format: ListFormat,
) -> Result<(), ParseFailure> {
    let mut lines = BoundedLines::new(r, MAX_LINE);
    while let Some(line) = lines.next_line().map_err(ParseFailure::Io)? {
        let text = String::from_utf8_lossy(line.bytes);
        take_line(c, &text, feed, format);
    }
    Ok(())
}

/// One line of a plain or hosts-format list.
fn take_line(c: &mut Collector, line: &str, feed: FeedId, format: ListFormat) {
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
        ListFormat::Hosts => true,
        ListFormat::Plain => false,
        _ => looks_like_ip(first) && line.split_whitespace().nth(1).is_some(),
    };
    if hosts {
        let mut any = false;
        for name in tokens {
            any = true;
            if HOSTS_OWN_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
                c.skip(SkipReason::HostsBoilerplate, || line.to_string());
                continue;
            }
            let mut m = Mapped::default();
            match domain(name) {
                Ok(a) => m.atoms.push(a),
                Err(e) => m.skipped.push(e),
            }
            c.add("domain", name, m, &[feed], Seen::default());
        }
        if !any {
            c.skip(SkipReason::InvalidDomain, || line.to_string());
        }
    } else {
        take_free(c, line, &[feed]);
    }
}

fn take_free(c: &mut Collector, value: &str, feeds: &[FeedId]) {
    let ty = if value.contains("://") {
        "url"
    } else if looks_like_ip(value) {
        "ip-dst"
    } else {
        "domain"
    };
    c.add(ty, value, map_free(value), feeds, Seen::default());
}

fn read_csv(
    r: &mut dyn BufRead,
    c: &mut Collector,
    default_feed: &str,
    value_col: Column,
    feed_col: Option<Column>,
) -> Result<(), ParseFailure> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(r);
    let needs_header =
        matches!(value_col, Column::Name(_)) || matches!(feed_col, Some(Column::Name(_)));
    let mut value_idx = match &value_col {
        Column::Index(i) => Some(*i),
        Column::Name(_) => None,
    };
    let mut feed_idx = match &feed_col {
        Some(Column::Index(i)) => Some(*i),
        _ => None,
    };
    let mut header_done = false;
    let mut last_comment: Option<Vec<String>> = None;
    let default_id = c.feed(FeedRef::named(default_feed));
    let mut rec = csv::ByteRecord::new();
    loop {
        match rd.read_byte_record(&mut rec) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                return Err(match e.kind() {
                    csv::ErrorKind::Io(_) => ParseFailure::Io(std::io::Error::other(e.to_string())),
                    _ => ParseFailure::Malformed(e.to_string()),
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
                let resolve = |h: &[String], col: &Column| match col {
                    Column::Name(n) => h.iter().position(|x| x.eq_ignore_ascii_case(n)),
                    Column::Index(i) => Some(*i),
                };
                let from_comment = last_comment.as_deref().is_some_and(|h| {
                    resolve(h, &value_col).is_some()
                        && feed_col
                            .as_ref()
                            .map_or(true, |fc| resolve(h, fc).is_some())
                });
                let header: &[String] = if from_comment {
                    last_comment.as_deref().unwrap_or(&[])
                } else {
                    &fields
                };
                value_idx = resolve(header, &value_col);
                feed_idx = feed_col.as_ref().and_then(|fc| resolve(header, fc));
                let missing = match (&value_col, &feed_col) {
                    (Column::Name(n), _) if value_idx.is_none() => Some(n.clone()),
                    (_, Some(Column::Name(n))) if feed_idx.is_none() => Some(n.clone()),
                    _ => None,
                };
                if let Some(n) = missing {
                    return Err(ParseFailure::Malformed(format!(
                        "no column `{n}` in the header ({})",
                        header.join(", ")
                    )));
                }
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
            c.skip(SkipReason::MissingColumn, || fields.join(","));
            continue;
        };
        let feed = match feed_idx
            .and_then(|i| fields.get(i))
            .filter(|f| !f.is_empty())
        {
            Some(name) => c.feed(FeedRef::named(name)),
            None => default_id,
        };
        take_free(c, value, &[feed]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::config::ValueFormat;

    fn keys(c: &Collector) -> Vec<String> {
        c.sorted_items(None, ValueFormat::Plain)
            .into_iter()
            .map(|i| format!("{}={}", i.key.as_str(), String::from_utf8_lossy(&i.value)))
            .collect()
    }

    #[test]
    fn hosts_and_plain_lines() {
        let mut c = Collector::new();
        let f = c.feed(FeedRef::named("ads"));
        let text = "# comment\n127.0.0.1 localhost\n0.0.0.0 Ads.Example tracker.example # two\n\n\
                    plain.example\n198.51.100.7\n  \n::1 ip6-localhost\n";
        read_lines(&mut text.as_bytes(), &mut c, f, ListFormat::Auto).unwrap();
        assert_eq!(
            keys(&c),
            [
                "domain-ads.example=ads",
                "domain-plain.example=ads",
                "domain-tracker.example=ads",
                "ip-dst-198.51.100.7=ads"
            ]
        );
        assert_eq!(c.report.skipped[&SkipReason::HostsBoilerplate], 2);
    }

    #[test]
    fn csv_by_header_name_and_number() {
        let text =
            "# id,dateadded,url,threat\n1,2026-01-01,http://Bad.Example/x,malware_download\n\
                    2,2026-01-01,not a url,phishing\n";
        let mut c = Collector::new();
        read_csv(
            &mut text.as_bytes(),
            &mut c,
            "urlhaus",
            Column::Name("url".into()),
            Some(Column::Name("threat".into())),
        )
        .unwrap();
        assert_eq!(keys(&c), ["domain-bad.example=malware_download"]);
        assert_eq!(c.report.skipped[&SkipReason::InvalidDomain], 1);

        let text = "domain,first_seen\nc2.example,2026\n\"quoted.example\",2026\n";
        let mut c = Collector::new();
        read_csv(&mut text.as_bytes(), &mut c, "feed", Column::Index(0), None).unwrap();
        assert_eq!(
            keys(&c),
            ["domain-c2.example=feed", "domain-quoted.example=feed"]
        );

        let mut c = Collector::new();
        let e = read_csv(
            &mut text.as_bytes(),
            &mut c,
            "feed",
            Column::Name("host".into()),
            None,
        );
        assert!(matches!(e, Err(ParseFailure::Malformed(m)) if m.contains("no column `host`")));
    }
}
