//! Blocklists: plain lists (one name, address or URL per line), hosts-format
//! lists (`0.0.0.0 name [name…]`), and CSV files with a chosen column. `#`
//! comments and blank lines are ignored; so are the `localhost` lines at the
//! top of hosts files.

use super::collect::{Collector, FeedId, FeedRef, Seen};
use super::config::{InvalidSyncConfig, ListFormat, ListSource};
use super::http::{Fetcher, Location, ParseFailure};
use super::progress::Progress;
use super::SyncError;
use crate::indicator::list::{self, Column, Entry, LineFormat, ListError};

fn column(key: &'static str, s: &str) -> Result<Column, SyncError> {
    Column::parse(s).map_err(|reason| {
        SyncError::Config(InvalidSyncConfig {
            key,
            reason: reason.into(),
        })
    })
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
        Some(s) => column("lists.csv_column", s)?,
        None => Column::Index(0),
    };
    let feed_col = match &src.csv_feed_column {
        Some(s) => Some(column("lists.csv_feed_column", s)?),
        None => None,
    };
    let before = c.report.indicators();
    let mut c = fetcher
        .read("list", &loc, move |r| {
            let feed = c.feed(FeedRef::named(&feed_name));
            let take = |c: &mut Collector, e: Entry<'_>| take(c, e, feed);
            let read = match format {
                ListFormat::Csv => {
                    list::read_csv(r, &value_col, feed_col.as_ref(), |e| take(&mut c, e))
                }
                ListFormat::Hosts => list::read_lines(r, LineFormat::Hosts, |e| take(&mut c, e)),
                ListFormat::Plain => list::read_lines(r, LineFormat::Plain, |e| take(&mut c, e)),
                ListFormat::Auto => list::read_lines(r, LineFormat::Auto, |e| take(&mut c, e)),
            };
            read.map_err(|e| match e {
                ListError::Io(e) => ParseFailure::Io(e),
                ListError::Malformed(m) => ParseFailure::Malformed(m),
            })?;
            Ok(c)
        })
        .await?;
    let taken = c.report.indicators() - before;
    c.report.sources.push((origin, taken));
    Ok(c)
}

/// One list entry into the collector, under its row's feed or the list's.
fn take(c: &mut Collector, e: Entry<'_>, list_feed: FeedId) {
    match e {
        Entry::Value {
            ty,
            raw,
            mapped,
            feed,
        } => {
            let feed = match feed {
                Some(name) => c.feed(FeedRef::named(name)),
                None => list_feed,
            };
            c.add(ty, raw, mapped, &[feed], Seen::default());
        }
        Entry::Skip { reason, line } => c.skip(reason, || line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::indicator::normalize::SkipReason;
    use crate::sync::config::ValueFormat;

    fn keys(c: &Collector) -> Vec<String> {
        c.sorted_items(None, ValueFormat::Plain)
            .into_iter()
            .map(|i| format!("{}={}", i.key.as_str(), String::from_utf8_lossy(&i.value)))
            .collect()
    }

    #[test]
    fn entries_land_under_the_list_feed_or_their_row_feed() {
        let mut c = Collector::new();
        let f = c.feed(FeedRef::named("ads"));
        let text = "127.0.0.1 localhost
0.0.0.0 Ads.Example
plain.example
";
        list::read_lines(&mut text.as_bytes(), LineFormat::Auto, |e| {
            take(&mut c, e, f)
        })
        .unwrap();
        let text = "value,feed
c2.example,Feed-C
ads.example,
";
        list::read_csv(
            &mut text.as_bytes(),
            &Column::Index(0),
            Some(&Column::Index(1)),
            |e| take(&mut c, e, f),
        )
        .unwrap();
        assert_eq!(
            keys(&c),
            [
                "domain-ads.example=ads",
                "domain-c2.example=Feed-C",
                "domain-plain.example=ads",
            ]
        );
        assert_eq!(c.report.skipped[&SkipReason::HostsBoilerplate], 1);
    }

    #[test]
    fn a_bad_column_is_a_config_error() {
        assert!(matches!(
            column("lists.csv_column", "0"),
            Err(SyncError::Config(InvalidSyncConfig {
                key: "lists.csv_column",
                ..
            }))
        ));
    }
}
