//! The flags of `dnsenrich sync`, merged over the `[sync]` section of a
//! configuration file: a flag given replaces the file's value (a repeatable
//! flag replaces the whole list).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::config::{DurationSpec, ListFormat, ListSource, SyncConfig, ValueFormat};
use super::feed::split_name;
use crate::output::Secret;

/// `dnsenrich sync` flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SyncArgs {
    /// A configuration file; its `[sync]` section is the base the flags override.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// MISP base URL; attributes come from its /attributes/restSearch.
    #[arg(long, value_name = "URL")]
    pub misp_url: Option<String>,
    /// MISP API key. Prefer --misp-key-file or $DNSENRICH_MISP_KEY, which
    /// other users cannot see in the process list.
    #[arg(long, value_name = "KEY")]
    pub misp_key: Option<String>,
    /// A file holding the MISP API key.
    #[arg(long, value_name = "FILE")]
    pub misp_key_file: Option<PathBuf>,
    /// Trust this CA (PEM) for MISP and feed URLs.
    #[arg(long = "misp-ca", value_name = "FILE")]
    pub misp_ca_file: Option<PathBuf>,
    /// Do not verify TLS certificates of MISP and feed URLs (labs only).
    #[arg(long)]
    pub insecure: bool,
    /// MISP attribute type to load (repeatable; `%` wildcard). Default:
    /// domain, hostname, domain|ip, ip-dst, ip-src, url.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Only attributes with this tag (repeatable; `%` wildcard, `!` negates), e.g. 'Feed-%'.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Also load attributes not flagged for detection (to_ids off).
    #[arg(long)]
    pub all_attributes: bool,
    /// Only attributes of published events.
    #[arg(long)]
    pub published: bool,
    /// Only attributes changed within this window, e.g. 30d.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<DurationSpec>,
    /// Attributes per restSearch page.
    #[arg(long, value_name = "N")]
    pub page_limit: Option<u32>,
    /// A MISP-format feed: directory or URL with manifest.json, optionally NAME=… (repeatable).
    #[arg(long = "misp-feed", value_name = "[NAME=]DIR|URL")]
    pub misp_feeds: Vec<String>,
    /// A blocklist (plain, hosts or CSV), optionally NAME=… (repeatable).
    #[arg(long = "list", value_name = "[NAME=]FILE|URL")]
    pub lists: Vec<String>,
    /// Feed name of a --list given without NAME=; the n-th --feed-name
    /// belongs to the n-th such --list (repeatable).
    #[arg(long = "feed-name", value_name = "NAME")]
    pub feed_names: Vec<String>,
    /// Read every --list as CSV, taking the indicator from this column
    /// (1-based number or header name).
    #[arg(long, value_name = "N|NAME")]
    pub csv_column: Option<String>,
    /// With CSV lists: the column that names the feed per row.
    #[arg(long, value_name = "N|NAME")]
    pub csv_feed_column: Option<String>,
    /// memcached server host:port (repeatable). Default: 127.0.0.1:11211.
    #[arg(long, value_name = "HOST:PORT")]
    pub memcached: Vec<String>,
    /// Key prefix: keys become NS:domain-….
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Key TTL (default: twice --every, or 1d for a single run).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<DurationSpec>,
    /// Repeat the sync this often, e.g. 10m, until stopped.
    #[arg(long, value_name = "DURATION")]
    pub every: Option<DurationSpec>,
    /// json (feeds with event context) or plain (feed names joined by `,`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub value_format: Option<ValueFormat>,
    /// Write the in-process store file (NDJSON) instead of memcached.
    #[arg(long, value_name = "FILE")]
    pub to_file: Option<PathBuf>,
    /// No progress bar even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
}

impl SyncArgs {
    /// The configuration: the `[sync]` section of `--config` (or the
    /// defaults), with every given flag applied, validated.
    pub fn into_config(self) -> anyhow::Result<SyncConfig> {
        let mut cfg = match &self.config {
            Some(p) => load_section(p)?,
            None => SyncConfig::default(),
        };
        let a = self;
        if a.misp_url.is_some() {
            cfg.misp_url = a.misp_url;
        }
        if let Some(k) = a.misp_key {
            cfg.misp_key = Some(Secret::new(k));
        }
        if a.misp_key_file.is_some() {
            cfg.misp_key_file = a.misp_key_file;
        }
        if a.misp_ca_file.is_some() {
            cfg.misp_ca_file = a.misp_ca_file;
        }
        cfg.insecure |= a.insecure;
        if !a.types.is_empty() {
            cfg.types = a.types;
        }
        if !a.tags.is_empty() {
            cfg.tags = a.tags;
        }
        if a.all_attributes {
            cfg.to_ids = false;
        }
        if a.published {
            cfg.published = Some(true);
        }
        if a.since.is_some() {
            cfg.since = a.since;
        }
        if let Some(n) = a.page_limit {
            cfg.page_limit = n;
        }
        if !a.misp_feeds.is_empty() {
            cfg.misp_feeds = a.misp_feeds;
        }
        if !a.lists.is_empty() {
            cfg.lists = lists_from_flags(&a.lists, &a.feed_names, a.csv_column, a.csv_feed_column)?;
        } else if !a.feed_names.is_empty() {
            anyhow::bail!("--feed-name names the feed of a --list; there is no --list");
        }
        if !a.memcached.is_empty() {
            cfg.memcached = a.memcached;
        }
        if a.namespace.is_some() {
            cfg.namespace = a.namespace;
        }
        if let Some(t) = a.ttl {
            cfg.ttl_secs = Some(t.as_secs());
        }
        if a.every.is_some() {
            cfg.every = a.every;
        }
        if let Some(f) = a.value_format {
            cfg.value_format = f;
        }
        if a.to_file.is_some() {
            cfg.to_file = a.to_file;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Pairs `--list` values with names: `NAME=PATH` carries its own; the others
/// take the `--feed-name`s in order, or their file name when none is given.
fn lists_from_flags(
    lists: &[String],
    names: &[String],
    csv_column: Option<String>,
    csv_feed_column: Option<String>,
) -> anyhow::Result<Vec<ListSource>> {
    let unnamed = lists.iter().filter(|l| split_name(l).0.is_none()).count();
    if !names.is_empty() && names.len() != unnamed {
        anyhow::bail!(
            "{} --feed-name for {} --list without NAME=: give one --feed-name per such --list \
             (in the same order), or write --list NAME=PATH",
            names.len(),
            unnamed
        );
    }
    let mut names = names.iter();
    let format = if csv_column.is_some() || csv_feed_column.is_some() {
        ListFormat::Csv
    } else {
        ListFormat::Auto
    };
    Ok(lists
        .iter()
        .map(|spec| {
            let (name, path) = split_name(spec);
            let feed_name = name.map(str::to_string).or_else(|| names.next().cloned());
            ListSource {
                path_or_url: path.to_string(),
                feed_name,
                format,
                csv_column: csv_column.clone(),
                csv_feed_column: csv_feed_column.clone(),
            }
        })
        .collect())
}

/// The `[sync]` table of a configuration file (other sections are not
/// checked here; `check-config` does that).
fn load_section(path: &Path) -> anyhow::Result<SyncConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: toml::Value =
        toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
    match value.get("sync") {
        None => Ok(SyncConfig::default()),
        Some(t) => t
            .clone()
            .try_into::<SyncConfig>()
            .map_err(|e| anyhow::anyhow!("{}: [sync]: {}", path.display(), e.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sync: SyncArgs,
    }

    fn cfg(args: &[&str]) -> anyhow::Result<SyncConfig> {
        let mut v = vec!["sync"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)?.sync.into_config()
    }

    #[test]
    fn lists_pair_with_feed_names_in_order() {
        let c = cfg(&[
            "--list",
            "a.txt",
            "--feed-name",
            "A",
            "--list",
            "B=b.hosts",
            "--list",
            "c.txt",
            "--feed-name",
            "C",
        ])
        .unwrap();
        let names: Vec<_> = c.lists.iter().map(|l| l.effective_feed_name()).collect();
        assert_eq!(names, ["A", "B", "C"]);
        assert_eq!(c.lists[1].path_or_url, "b.hosts");
        let e = cfg(&["--list", "a.txt", "--list", "b.txt", "--feed-name", "A"]).unwrap_err();
        assert!(e.to_string().contains("one --feed-name per"), "{e}");
        let c = cfg(&["--list", "/x/ads.txt"]).unwrap();
        assert_eq!(c.lists[0].effective_feed_name(), "ads");
    }

    #[test]
    fn flags_override_the_file_section() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.toml");
        std::fs::write(
            &p,
            "[output]\ntype = \"ndjson\"\n[sync]\nmisp_url = \"https://misp.example\"\nevery = \"5m\"\nmemcached = [\"10.0.0.1:11211\"]\n",
        )
        .unwrap();
        let path = p.to_str().unwrap();
        let c = cfg(&["--config", path, "--memcached", "127.0.0.1:1"]).unwrap();
        assert_eq!(c.misp_url.as_deref(), Some("https://misp.example"));
        assert_eq!(c.memcached, ["127.0.0.1:1"]);
        assert_eq!(c.effective_ttl_secs(), 600);
        std::fs::write(&p, "[sync]\nmisp_ur = \"x\"\n").unwrap();
        let e = cfg(&["--config", path]).unwrap_err().to_string();
        assert!(e.contains("[sync]") && e.contains("misp_ur"), "{e}");
    }

    #[test]
    fn no_source_is_refused() {
        let e = cfg(&[]).unwrap_err().to_string();
        assert!(e.contains("no source"), "{e}");
    }
}
