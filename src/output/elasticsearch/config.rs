//! The `[output]` section for Elasticsearch: its settings and their checks
//! (index and data-stream names, limits, the URL), the credentials and where
//! they come from (config, a file, the environment), [`Secret`], and
//! [`ElasticsearchConfig::build`], which turns a checked config into a client.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::Elasticsearch;
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::OnceCell;

use super::bulk::{self, Backoff};
use super::nodes::Nodes;
use super::template;
use super::{ElasticsearchOutput, Shared, TemplateGate};
use crate::output::dead_letter::DeadLetterFile;
use crate::output::OutputError;

/// Environment variable read for the password when the config has none.
pub const ENV_PASSWORD: &str = "DNSENRICH_ES_PASSWORD";
/// Environment variable read for the API key when the config has none.
pub const ENV_API_KEY: &str = "DNSENRICH_ES_API_KEY";

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
    /// Write to this plain index instead of a data stream.
    pub index: Option<String>,
    /// The data stream, `<type>-<dataset>-<namespace>`.
    pub data_stream: String,
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
            data_stream: "logs-pihole.dns-default".into(),
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

/// Checks a plain index name against Elasticsearch's rules.
pub fn validate_index_name(name: &str) -> Result<(), String> {
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
    /// The index or data stream written to.
    pub fn target(&self) -> &str {
        self.index.as_deref().unwrap_or(&self.data_stream)
    }

    /// Checks the settings, reads secret and CA files, and builds the client.
    /// Secrets missing from the config are taken from
    /// [`ENV_PASSWORD`] / [`ENV_API_KEY`].
    pub fn build(&self) -> Result<ElasticsearchOutput, OutputError> {
        self.build_with_env(|k| std::env::var(k).ok())
    }

    fn build_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ElasticsearchOutput, OutputError> {
        let urls = self.checked_urls()?;
        let urls_scheme = urls[0].scheme().to_owned();
        self.check_values()?;
        let timeout = Duration::from_millis(self.request_timeout_ms);
        let mut clients = Vec::with_capacity(urls.len());
        for (text, url) in self.url.iter().zip(urls) {
            let transport = self.transport(url, timeout, &env)?;
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

        let target = self.target().to_owned();
        let data_stream = self.index.is_none();
        let template = self.install_template.then(|| TemplateGate {
            name: template::template_name(&target),
            body: template::template_body(&target, data_stream).to_string(),
            installed: OnceCell::new(),
        });
        Ok(ElasticsearchOutput {
            shared: Arc::new(Shared {
                nodes: Arc::new(nodes),
                bulk_path: format!("/{target}/_bulk"),
                target,
                data_stream,
                gzip: self.gzip,
                timeout,
                backoff: Backoff {
                    initial: Duration::from_millis(self.retry.initial_backoff_ms),
                    max: Duration::from_millis(self.retry.max_backoff_ms),
                },
                dead_letters: DeadLetterFile::new(&self.dead_letter_path),
                stats,
                template,
            }),
            ids: self.document_ids.then(bulk::DocIds::new),
            flush_bytes: self.flush_bytes,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            max_in_flight: self.max_in_flight,
            sniff: self.sniff.then(|| self.sniffer(&urls_scheme, timeout)),
        })
    }

    /// The names, the limits and the dead-letter path.
    fn check_values(&self) -> Result<(), OutputError> {
        validate_data_stream_name(&self.data_stream)
            .map_err(|r| OutputError::config("data_stream", r))?;
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

    /// The HTTP transport: the node, its timeout, the credentials and the CA.
    fn transport(
        &self,
        url: Url,
        timeout: Duration,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Transport, OutputError> {
        let mut builder =
            TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(timeout);
        if let Some(creds) = self.credentials(env)? {
            builder = builder.auth(creds);
        }
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|source| OutputError::Io {
                what: "cannot read the CA file",
                path: ca.clone(),
                source,
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| OutputError::config("ca_file", format!("{}: {e}", ca.display())))?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        builder
            .build()
            .map_err(|e| OutputError::config("url", e.to_string()))
    }

    /// What sniffing needs: the scheme of the configured nodes, and a way to
    /// build a client for a node it finds, as the configured ones are built.
    fn sniffer(&self, scheme: &str, timeout: Duration) -> super::Sniff {
        let cfg = self.clone();
        super::Sniff {
            scheme: scheme.to_owned(),
            every: Duration::from_secs(self.sniff_interval_secs),
            connect: Box::new(move |url| {
                cfg.transport(url, timeout, &|k| std::env::var(k).ok())
                    .map(Elasticsearch::new)
                    .map_err(|e| e.to_string())
            }),
        }
    }

    /// Every node's URL, checked; at least one, none twice.
    fn checked_urls(&self) -> Result<Vec<Url>, OutputError> {
        if self.url.is_empty() {
            return Err(OutputError::config("url", "no URL given"));
        }
        let mut urls: Vec<Url> = Vec::with_capacity(self.url.len());
        for text in &self.url {
            let url = checked_url(text)?;
            if urls.contains(&url) {
                return Err(OutputError::config(
                    "url",
                    format!("`{text}` is listed twice"),
                ));
            }
            urls.push(url);
        }
        Ok(urls)
    }

    /// Basic auth, an API key, or nothing. A value in the config (or its
    /// `_file`) wins over the environment; setting both forms of one secret,
    /// or a password and an API key, is refused.
    fn credentials(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, OutputError> {
        let password = secret(
            ("password", &self.password),
            ("password_file", &self.password_file),
        )?;
        let api_key = secret(
            ("api_key", &self.api_key),
            ("api_key_file", &self.api_key_file),
        )?;
        match (&self.username, password, api_key) {
            (Some(_), _, Some(_)) => Err(OutputError::config(
                "api_key",
                "set either username/password or api_key, not both",
            )),
            (None, Some(_), _) => Err(OutputError::config(
                "username",
                "a password is set but no username",
            )),
            (Some(user), password, None) => {
                let password = password
                    .or_else(|| env(ENV_PASSWORD).filter(|p| !p.is_empty()).map(Secret))
                    .ok_or_else(|| {
                        OutputError::config(
                            "password",
                            format!(
                                "username is set but no password \
                                 (password, password_file or {ENV_PASSWORD})"
                            ),
                        )
                    })?;
                Ok(Some(Credentials::Basic(user.clone(), password.0)))
            }
            (None, None, key) => {
                let Some(key) =
                    key.or_else(|| env(ENV_API_KEY).filter(|k| !k.is_empty()).map(Secret))
                else {
                    return Ok(None);
                };
                Ok(Some(match key.0.split_once(':') {
                    Some((id, k)) => Credentials::ApiKey(id.to_owned(), k.to_owned()),
                    None => Credentials::EncodedApiKey(key.0),
                }))
            }
        }
    }
}

fn checked_url(text: &str) -> Result<Url, OutputError> {
    let url = Url::parse(text).map_err(|e| OutputError::config("url", format!("`{text}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(OutputError::config(
            "url",
            "must start with http:// or https://",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutputError::config(
            "url",
            "must not hold credentials (they would show in logs); \
             use username/password or api_key",
        ));
    }
    Ok(url)
}

/// One secret given inline or as a file (trailing whitespace trimmed).
fn secret(
    inline: (&'static str, &Option<Secret>),
    file: (&'static str, &Option<PathBuf>),
) -> Result<Option<Secret>, OutputError> {
    match (inline.1, file.1) {
        (Some(_), Some(_)) => Err(OutputError::config(
            file.0,
            format!("set {} or {}, not both", inline.0, file.0),
        )),
        (Some(s), None) if s.0.is_empty() => Err(OutputError::config(inline.0, "is empty")),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| OutputError::Io {
                what: "cannot read",
                path: path.clone(),
                source,
            })?;
            let s = text.trim_end();
            if s.is_empty() {
                return Err(OutputError::config(
                    file.0,
                    format!("{} is empty", path.display()),
                ));
            }
            Ok(Some(Secret(s.to_owned())))
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

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
            data_stream: "logs-Pihole-x".into(),
            ..Default::default()
        };
        assert!(build(c).starts_with("output.data_stream: "));
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
        assert_eq!(out.shared.bulk_path, "/logs-pihole.dns-default/_bulk");
        assert!(out.shared.data_stream);
        let t = out.shared.template.as_ref().unwrap();
        assert_eq!(t.name, "dnsenrich-logs-pihole.dns-default");
        let body: Value = serde_json::from_str(&t.body).unwrap();
        assert_eq!(body["data_stream"], serde_json::json!({}));
        assert_eq!(body["index_patterns"][0], "logs-pihole.dns-default");

        let c = ElasticsearchConfig {
            index: Some("dns".into()),
            ..Default::default()
        };
        let out = c.build_with_env(no_env).unwrap();
        assert_eq!(out.shared.bulk_path, "/dns/_bulk");
        assert!(!out.shared.data_stream);
        let body: Value =
            serde_json::from_str(&out.shared.template.as_ref().unwrap().body).unwrap();
        assert!(body.get("data_stream").is_none());
        assert_eq!(body["index_patterns"][0], "dns");

        let c = ElasticsearchConfig {
            install_template: false,
            ..Default::default()
        };
        assert!(c.build_with_env(no_env).unwrap().shared.template.is_none());
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
