//! The `[output]` section for Elasticsearch: its settings and their checks
//! (index and data-stream names, limits, the URL), the credentials and where
//! they come from (config, a file, the environment), [`Secret`], and
//! [`ElasticsearchConfig::build`], which turns a checked config into a client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::Elasticsearch;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::OnceCell;

use super::auth::Access;
use super::bulk::{self, Backoff};
use super::install::Templates;
use super::nodes::Nodes;
use super::route::Target;
use super::{ElasticsearchOutput, Shared};
use crate::output::dead_letter::DeadLetterFile;
use crate::output::OutputError;

/// `[output] type = "elasticsearch"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URLs of the cluster's nodes (or of one load balancer). A single
    /// string is taken as a list of one.
    #[serde(deserialize_with = "one_or_many")]
    pub url: Vec<String>,
    /// The longest wait between two probes (`GET /`) of a node that is down.
    pub probe_interval_ms: u64,
    /// Ask the cluster for its nodes' HTTP addresses (`GET _nodes/http`) and
    /// send to those too.
    pub sniff: bool,
    /// How often to sniff, in seconds.
    pub sniff_interval_secs: u64,
    /// Write to this plain index instead of data streams; `{dataset}` in the
    /// name is replaced by each event's dataset.
    pub index: Option<String>,
    /// The namespace of the data streams, `logs-<dataset>-<namespace>`.
    pub namespace: String,
    /// How long the data streams keep documents (`30d`): installs a data
    /// stream lifecycle instead of Elastic's `logs` ILM policy.
    pub retention: Option<String>,
    /// Replaced by `namespace` (the dataset comes from each event); kept
    /// only to refuse it with that hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_stream: Option<String>,
    /// Send a bulk request once this many bytes of documents are gathered.
    pub flush_bytes: usize,
    /// ... or once the oldest gathered document has waited this long.
    pub flush_interval_ms: u64,
    /// Bulk requests sent at the same time.
    pub max_in_flight: usize,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// `id:key`, or the base64 `encoded` form Elasticsearch prints.
    pub api_key: Option<Secret>,
    pub api_key_file: Option<PathBuf>,
    /// PEM file of the CA that signed the cluster's certificate.
    pub ca_file: Option<PathBuf>,
    pub request_timeout_ms: u64,
    /// Install the index template before the first bulk request.
    pub install_template: bool,
    /// Give every document an `_id` when it joins a bulk request, kept across
    /// retries: a retried request whose first attempt was stored (its answer
    /// lost) is answered 409 and not stored twice. Off by default: documents
    /// with ids index more slowly than with ids the server makes.
    pub document_ids: bool,
    /// Where refused documents go; relative to the state directory.
    pub dead_letter_path: PathBuf,
    pub retry: RetryConfig,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        ElasticsearchConfig {
            url: vec!["http://127.0.0.1:9200".into()],
            probe_interval_ms: 1000,
            sniff: false,
            sniff_interval_secs: 300,
            index: None,
            namespace: "default".into(),
            retention: None,
            data_stream: None,
            flush_bytes: 5 * 1024 * 1024,
            flush_interval_ms: 1000,
            max_in_flight: 2,
            gzip: false,
            username: None,
            password: None,
            password_file: None,
            api_key: None,
            api_key_file: None,
            ca_file: None,
            request_timeout_ms: 30_000,
            install_template: true,
            document_ids: false,
            dead_letter_path: PathBuf::from("dead-letter.ndjson"),
            retry: RetryConfig::default(),
        }
    }
}

/// `url = "http://a:9200"` or `url = ["http://a:9200", "http://b:9200"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a URL or a list of URLs"))?
    {
        OneOrMany::One(u) => Ok(vec![u]),
        OneOrMany::Many(v) => Ok(v),
    }
}

/// `[output.retry]`: the delays between retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 30_000,
        }
    }
}

/// A password or API key. It prints and serialises as `***`, so a config dump
/// or a debug log never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for handing to the HTTP client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Checks a data-stream name against the ECS naming scheme:
/// `<type>-<dataset>-<namespace>`, type `logs` or `metrics`, dataset and
/// namespace without `-`, at most 100 characters each, no upper case, none of
/// `\ / * ? " < > | , #` or space.
pub fn validate_data_stream_name(name: &str) -> Result<(), String> {
    check_chars(name)?;
    let parts: Vec<&str> = name.split('-').collect();
    let [ty, dataset, namespace] = parts[..] else {
        return Err(format!(
            "`{name}` is not <type>-<dataset>-<namespace> (e.g. logs-pihole.dns-default); \
             dataset and namespace cannot contain `-`"
        ));
    };
    if !matches!(ty, "logs" | "metrics") {
        return Err(format!("type `{ty}` must be `logs` or `metrics`"));
    }
    for (what, part) in [("dataset", dataset), ("namespace", namespace)] {
        if part.is_empty() {
            return Err(format!("the {what} of `{name}` is empty"));
        }
        if part.chars().count() > 100 {
            return Err(format!(
                "the {what} of `{name}` is longer than 100 characters"
            ));
        }
    }
    Ok(())
}

/// Checks a dataset (from a grammar's `event.dataset`) as the middle part of
/// a data-stream name.
pub fn validate_dataset(dataset: &str) -> Result<(), String> {
    validate_data_stream_name(&format!("logs-{dataset}-default"))
}

/// Checks a namespace as the last part of a data-stream name.
pub fn validate_namespace(namespace: &str) -> Result<(), String> {
    validate_data_stream_name(&format!("logs-pihole.dns-{namespace}"))
}

/// Checks a retention period: a whole number of days, hours, minutes or
/// seconds, the units Elasticsearch's `data_retention` takes (`30d`, `12h`).
pub fn validate_retention(r: &str) -> Result<(), String> {
    let digits = r.trim_end_matches(['d', 'h', 'm', 's']);
    let unit = &r[digits.len()..];
    let ok = matches!(unit, "d" | "h" | "m" | "s")
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(format!("`{r}` is not a period like 30d, 12h, 90m or 3600s"))
    }
}

/// Checks a plain index name against Elasticsearch's rules; a `{dataset}`
/// in it stands for a valid dataset.
pub fn validate_index_name(name: &str) -> Result<(), String> {
    let name = &name.replace(super::route::DATASET_PLACEHOLDER, "dataset");
    check_chars(name)?;
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Err(format!(
            "`{name}` cannot start with `-`, `_` or `+`, or be `.` or `..`"
        ));
    }
    if name.contains(':') {
        return Err(format!("`{name}` cannot contain `:`"));
    }
    Ok(())
}

fn check_chars(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".into());
    }
    if name.len() > 255 {
        return Err(format!("`{name}` is longer than 255 bytes"));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(format!("`{name}` has upper-case letters"));
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(
            c,
            '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ' '
        )
    }) {
        return Err(format!("`{name}` contains `{c}`"));
    }
    Ok(())
}

impl ElasticsearchConfig {
    /// Where documents go: data streams of `namespace`, or `index`.
    pub fn target(&self) -> Target {
        match &self.index {
            Some(name) => Target::Index { name: name.clone() },
            None => Target::DataStream {
                namespace: self.namespace.clone(),
            },
        }
    }

    /// Checks everything [`build`](Self::build) checks, reading the secret
    /// and CA files, without building a client: what `check-config` and
    /// `run` refuse alike.
    pub fn validate(&self) -> Result<(), OutputError> {
        self.access(&|k| std::env::var(k).ok()).map(|_| ())
    }

    /// The settings checked, and the URL, the credential and the CA read.
    fn access(&self, env: &impl Fn(&str) -> Option<String>) -> Result<Access, OutputError> {
        let access = Access::resolve(self, env)?;
        self.check_values()?;
        Ok(access)
    }

    /// Checks the settings, reads secret and CA files, and builds the client.
    /// Secrets missing from the config are taken from
    /// [`ENV_PASSWORD`](super::auth::ENV_PASSWORD) /
    /// [`ENV_API_KEY`](super::auth::ENV_API_KEY).
    pub fn build(&self) -> Result<ElasticsearchOutput, OutputError> {
        self.build_with_env(|k| std::env::var(k).ok())
    }

    fn build_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ElasticsearchOutput, OutputError> {
        let access = self.access(&env)?;
        let urls_scheme = access.urls[0].scheme().to_owned();
        let timeout = Duration::from_millis(self.request_timeout_ms);
        let mut clients = Vec::with_capacity(access.urls.len());
        for (text, url) in self.url.iter().zip(&access.urls) {
            let transport = transport(url.clone(), &access, timeout)?;
            clients.push((
                text.trim_end_matches('/').to_owned(),
                Elasticsearch::new(transport),
            ));
        }
        let stats = Arc::<crate::output::OutputStats>::default();
        let nodes = Nodes::new(
            clients,
            Duration::from_millis(self.probe_interval_ms),
            timeout,
            stats.reachable.clone(),
        );

        let target = self.target();
        Ok(ElasticsearchOutput {
            shared: Arc::new(Shared {
                nodes: Arc::new(nodes),
                auth: access.auth.clone(),
                target,
                retention: self.retention.clone(),
                gzip: self.gzip,
                timeout,
                backoff: Backoff {
                    initial: Duration::from_millis(self.retry.initial_backoff_ms),
                    max: Duration::from_millis(self.retry.max_backoff_ms),
                },
                dead_letters: DeadLetterFile::new(&self.dead_letter_path),
                stats,
                templates: self.install_template.then(Templates::default),
                server: OnceCell::new(),
            }),
            ids: self.document_ids.then(bulk::DocIds::new),
            flush_bytes: self.flush_bytes,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            max_in_flight: self.max_in_flight,
            sniff: self
                .sniff
                .then(|| self.sniffer(&urls_scheme, access, timeout)),
        })
    }

    /// The checks of [`ElasticsearchConfig::build`] that need no file or
    /// server: names, namespace, retention, limits (for `check-config`).
    pub fn check_values(&self) -> Result<(), OutputError> {
        if let Some(old) = &self.data_stream {
            return Err(OutputError::config(
                "data_stream",
                format!(
                    "`{old}`: set `namespace` instead; each event goes to the data stream \
                     logs-<its event.dataset>-<namespace>"
                ),
            ));
        }
        validate_namespace(&self.namespace).map_err(|r| OutputError::config("namespace", r))?;
        if let Some(r) = &self.retention {
            validate_retention(r).map_err(|e| OutputError::config("retention", e))?;
            if self.index.is_some() {
                return Err(OutputError::config(
                    "retention",
                    "applies to data streams; a plain index (index = ...) has no lifecycle",
                ));
            }
        }
        if let Some(index) = &self.index {
            validate_index_name(index).map_err(|r| OutputError::config("index", r))?;
        }
        for (key, v) in [
            ("flush_bytes", self.flush_bytes as u64),
            ("flush_interval_ms", self.flush_interval_ms),
            ("max_in_flight", self.max_in_flight as u64),
            ("request_timeout_ms", self.request_timeout_ms),
            ("probe_interval_ms", self.probe_interval_ms),
            ("sniff_interval_secs", self.sniff_interval_secs),
            ("retry.initial_backoff_ms", self.retry.initial_backoff_ms),
        ] {
            if v == 0 {
                return Err(OutputError::config(key, "must be at least 1"));
            }
        }
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            return Err(OutputError::config(
                "retry.max_backoff_ms",
                "must not be less than retry.initial_backoff_ms",
            ));
        }
        if self.dead_letter_path.as_os_str().is_empty() {
            return Err(OutputError::config("dead_letter_path", "is empty"));
        }
        Ok(())
    }

    /// What sniffing needs: the scheme of the configured nodes, and a way to
    /// build a client for a node it finds, as the configured ones are built
    /// (the same credential and CA).
    fn sniffer(&self, scheme: &str, access: Access, timeout: Duration) -> super::Sniff {
        super::Sniff {
            scheme: scheme.to_owned(),
            every: Duration::from_secs(self.sniff_interval_secs),
            connect: Box::new(move |url| {
                transport(url, &access, timeout)
                    .map(Elasticsearch::new)
                    .map_err(|e| e.to_string())
            }),
        }
    }
}

/// One node's HTTP transport: its URL, the timeout, the credentials and the
/// CA.
fn transport(url: Url, access: &Access, timeout: Duration) -> Result<Transport, OutputError> {
    let builder = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(timeout);
    access
        .apply(builder)
        .build()
        .map_err(|e| OutputError::config("url", e.to_string()))
}

#[cfg(test)]
mod tests {
    use elasticsearch::auth::Credentials;

    use super::super::auth::{ENV_API_KEY, ENV_PASSWORD};
    use super::*;

    impl ElasticsearchConfig {
        fn credentials(
            &self,
            env: &impl Fn(&str) -> Option<String>,
        ) -> Result<Option<Credentials>, OutputError> {
            Access::resolve(self, env).map(|a| a.auth.credentials())
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn data_stream_names_follow_the_ecs_scheme() {
        assert!(validate_data_stream_name("logs-pihole.dns-default").is_ok());
        assert!(validate_data_stream_name("metrics-x-prod_eu").is_ok());
        for bad in [
            "logs-pihole.dns",
            "logs-pihole-dns-default",
            "traces-a-b",
            "logs-Pihole.dns-default",
            "logs-pihole.dns-",
            "logs--default",
            "logs-a b-default",
            "logs-a,b-default",
            "logs-a#b-default",
            "logs-a*b-default",
            "logs-a/b-default",
            "",
        ] {
            assert!(validate_data_stream_name(bad).is_err(), "{bad}");
        }
        let long = format!("logs-{}-default", "a".repeat(101));
        assert!(validate_data_stream_name(&long)
            .unwrap_err()
            .contains("longer than 100"));
    }

    #[test]
    fn index_names_follow_elasticsearch_rules() {
        assert!(validate_index_name("dns-events").is_ok());
        for bad in [
            "Dns", "_dns", "-dns", "+dns", ".", "..", "a:b", "a?b", "a\"b", "a|b", "",
        ] {
            assert!(validate_index_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_their_key() {
        let build = |c: ElasticsearchConfig| c.build_with_env(no_env).unwrap_err().to_string();
        let c = ElasticsearchConfig {
            namespace: "Home".into(),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.namespace: "));
        let c = ElasticsearchConfig {
            namespace: "home-lab".into(),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.namespace: "));
        let c = ElasticsearchConfig {
            data_stream: Some("logs-pihole.dns-home".into()),
            ..Default::default()
        };
        let err = build(c);
        assert!(
            err.starts_with("output.data_stream: ") && err.contains("namespace"),
            "{err}"
        );
        for bad in ["30", "d", "0d", "30 d", "30w", "-1d", "1.5d"] {
            let c = ElasticsearchConfig {
                retention: Some(bad.into()),
                ..Default::default()
            };
            assert!(build(c).starts_with("output.retention: "), "{bad}");
        }
        let c = ElasticsearchConfig {
            retention: Some("30d".into()),
            index: Some("dns".into()),
            ..Default::default()
        };
        assert!(build(c).contains("plain index"));
        let c = ElasticsearchConfig {
            index: Some("Bad".into()),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.index: "));
        let c = ElasticsearchConfig {
            url: vec!["ftp://x".into()],
            ..Default::default()
        };
        assert!(build(c).starts_with("output.url: "));
        let c = ElasticsearchConfig {
            url: vec!["https://elastic:hunter2@es:9200".into()],
            ..Default::default()
        };
        let err = build(c);
        assert!(
            err.starts_with("output.url: ") && !err.contains("hunter2"),
            "{err}"
        );
        let c = ElasticsearchConfig {
            max_in_flight: 0,
            ..Default::default()
        };
        assert_eq!(build(c), "output.max_in_flight: must be at least 1");
        let c = ElasticsearchConfig {
            retry: RetryConfig {
                initial_backoff_ms: 500,
                max_backoff_ms: 100,
            },
            ..Default::default()
        };
        assert!(build(c).starts_with("output.retry.max_backoff_ms: "));
    }

    #[test]
    fn url_is_one_string_or_a_list_of_distinct_nodes() {
        let one: ElasticsearchConfig = toml::from_str("url = \"http://a:9200\"\n").unwrap();
        assert_eq!(one.url, ["http://a:9200"]);
        let many: ElasticsearchConfig =
            toml::from_str("url = [\"http://a:9200\", \"https://b:9200/\"]\n").unwrap();
        assert_eq!(many.url, ["http://a:9200", "https://b:9200/"]);
        let out = many.build_with_env(no_env).unwrap();
        // The node label is the URL as written, without a trailing slash.
        assert_eq!(out.shared.nodes.urls(), ["http://a:9200", "https://b:9200"]);
        let err = toml::from_str::<ElasticsearchConfig>("url = 9200\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a URL or a list of URLs"), "{err}");
        let build = |url: Vec<&str>| {
            ElasticsearchConfig {
                url: url.into_iter().map(String::from).collect(),
                ..Default::default()
            }
            .build_with_env(no_env)
            .unwrap_err()
            .to_string()
        };
        assert_eq!(build(vec![]), "output.url: no URL given");
        assert_eq!(
            build(vec!["http://a:9200", "http://a:9200/"]),
            "output.url: `http://a:9200/` is listed twice"
        );
        assert!(build(vec!["http://a:9200", "ftp://b"]).starts_with("output.url: "));
        let c = ElasticsearchConfig {
            probe_interval_ms: 0,
            ..Default::default()
        };
        assert_eq!(
            c.build_with_env(no_env).unwrap_err().to_string(),
            "output.probe_interval_ms: must be at least 1"
        );
        let c = ElasticsearchConfig {
            sniff: true,
            sniff_interval_secs: 0,
            ..Default::default()
        };
        assert_eq!(
            c.build_with_env(no_env).unwrap_err().to_string(),
            "output.sniff_interval_secs: must be at least 1"
        );
        let c = ElasticsearchConfig {
            sniff: true,
            ..Default::default()
        };
        let out = c.build_with_env(no_env).unwrap();
        assert_eq!(out.sniff.as_ref().map(|s| s.scheme.as_str()), Some("http"));
        assert!(ElasticsearchConfig::default()
            .build_with_env(no_env)
            .unwrap()
            .sniff
            .is_none());
    }

    #[test]
    fn target_is_the_index_or_the_data_stream_and_one_bulk_path() {
        let c = ElasticsearchConfig::default();
        let out = c.build_with_env(no_env).unwrap();
        assert_eq!(
            out.shared.target,
            Target::DataStream {
                namespace: "default".into()
            }
        );
        assert!(out.shared.templates.is_some());
        assert_eq!(
            out.shared.target.for_dataset("pihole.dhcp"),
            "logs-pihole.dhcp-default"
        );

        let c = ElasticsearchConfig {
            index: Some("dns-{dataset}".into()),
            ..Default::default()
        };
        let out = c.build_with_env(no_env).unwrap();
        assert_eq!(
            out.shared.target.for_dataset("pihole.dns"),
            "dns-pihole.dns"
        );

        let c = ElasticsearchConfig {
            install_template: false,
            ..Default::default()
        };
        assert!(c.build_with_env(no_env).unwrap().shared.templates.is_none());
        let parsed: ElasticsearchConfig =
            toml::from_str("namespace = \"home\"\nretention = \"30d\"\n").unwrap();
        assert_eq!(parsed.namespace, "home");
        assert_eq!(parsed.retention.as_deref(), Some("30d"));
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialised_config() {
        let c = ElasticsearchConfig {
            username: Some("elastic".into()),
            password: Some(Secret::new("hunter2")),
            api_key: Some(Secret::new("id:topsecret")),
            ..Default::default()
        };
        let debug = format!("{c:?}");
        let json = serde_json::to_string(&c).unwrap();
        let toml = toml::to_string(&c).unwrap();
        for text in [&debug, &json, &toml] {
            assert!(
                !text.contains("hunter2") && !text.contains("topsecret"),
                "{text}"
            );
            assert!(text.contains("***"), "{text}");
        }
        let parsed: ElasticsearchConfig =
            toml::from_str("password = \"hunter2\"\nusername = \"u\"\n").unwrap();
        assert_eq!(parsed.password.unwrap().expose(), "hunter2");
    }

    #[test]
    fn credentials_come_from_config_files_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let pw_file = dir.path().join("pw");
        std::fs::write(&pw_file, "from-file\n").unwrap();
        let basic = |c: &ElasticsearchConfig, env: &dyn Fn(&str) -> Option<String>| match c
            .credentials(&|k: &str| env(k))
        {
            Ok(Some(Credentials::Basic(u, p))) => Ok((u, p)),
            Ok(other) => Err(format!("{:?}", other.is_some())),
            Err(e) => Err(e.to_string()),
        };
        let env_pw = |k: &str| (k == ENV_PASSWORD).then(|| "from-env".to_string());

        let mut c = ElasticsearchConfig {
            username: Some("elastic".into()),
            ..Default::default()
        };
        assert_eq!(basic(&c, &env_pw).unwrap().1, "from-env");
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.password: "));
        c.password_file = Some(pw_file.clone());
        assert_eq!(basic(&c, &env_pw).unwrap().1, "from-file");
        c.password = Some(Secret::new("inline"));
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.password_file: "));
        c.password_file = None;
        assert_eq!(
            basic(&c, &env_pw).unwrap(),
            ("elastic".into(), "inline".into())
        );
        c.api_key = Some(Secret::new("id:key"));
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.api_key: "));

        let c = ElasticsearchConfig {
            password: Some(Secret::new("x")),
            ..Default::default()
        };
        assert!(basic(&c, &no_env)
            .unwrap_err()
            .starts_with("output.username: "));

        let key = |c: &ElasticsearchConfig, env: &dyn Fn(&str) -> Option<String>| {
            c.credentials(&|k: &str| env(k)).unwrap()
        };
        let c = ElasticsearchConfig {
            api_key: Some(Secret::new("my-id:my-key")),
            ..Default::default()
        };
        assert!(
            matches!(key(&c, &no_env), Some(Credentials::ApiKey(i, k)) if i == "my-id" && k == "my-key")
        );
        let env_key = |k: &str| (k == ENV_API_KEY).then(|| "ZW5jb2RlZA==".to_string());
        let c = ElasticsearchConfig::default();
        assert!(
            matches!(key(&c, &env_key), Some(Credentials::EncodedApiKey(k)) if k == "ZW5jb2RlZA==")
        );
        assert!(key(&c, &no_env).is_none());
        // An API key in the environment does not get in the way of basic auth.
        let c = ElasticsearchConfig {
            username: Some("u".into()),
            password: Some(Secret::new("p")),
            ..Default::default()
        };
        assert!(matches!(key(&c, &env_key), Some(Credentials::Basic(..))));
    }
}
