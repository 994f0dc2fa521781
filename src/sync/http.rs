//! Fetching for the sync sources: one HTTP client (rustls; a custom CA; no
//! certificate checks only with `insecure`), and reading a body or a file on
//! a blocking thread as a plain `BufRead`, so the JSON and CSV parsers stream
//! it instead of holding it whole. A response longer than the limit is cut
//! off with a clear error.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::config::SyncConfig;
use super::SyncError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// A source location: a local path or an http(s) URL.
#[derive(Debug, Clone)]
pub(crate) enum Location {
    Path(PathBuf),
    Url(url::Url),
}

impl Location {
    /// `http://` and `https://` are URLs, anything else a path.
    pub fn parse(s: &str) -> Result<Location, SyncError> {
        if s.starts_with("http://") || s.starts_with("https://") {
            url::Url::parse(s).map(Location::Url).map_err(|e| {
                SyncError::Config(super::config::InvalidSyncConfig {
                    key: "source",
                    reason: format!("`{s}` is not a valid URL: {e}"),
                })
            })
        } else {
            Ok(Location::Path(PathBuf::from(s)))
        }
    }

    /// The location of `name` inside this directory or URL "directory".
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Path(p) => Location::Path(p.join(name)),
            Location::Url(u) => {
                let mut base = u.clone();
                if !base.path().ends_with('/') {
                    let p = format!("{}/", base.path());
                    base.set_path(&p);
                }
                Location::Url(base.join(name).unwrap_or_else(|_| base.clone()))
            }
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) => write!(f, "{u}"),
        }
    }
}

/// Why a body could not be parsed.
#[derive(Debug)]
pub(crate) enum ParseFailure {
    /// The content is not what was expected (malformed JSON, bad CSV).
    Malformed(String),
    /// Reading failed underneath the parser.
    Io(std::io::Error),
}

impl From<serde_json::Error> for ParseFailure {
    fn from(e: serde_json::Error) -> Self {
        if e.is_io() {
            ParseFailure::Io(std::io::Error::other(e.to_string()))
        } else {
            ParseFailure::Malformed(e.to_string())
        }
    }
}

/// The shared HTTP client and the response size limit.
#[derive(Clone)]
pub(crate) struct Fetcher {
    client: reqwest::Client,
    max_bytes: u64,
}

impl Fetcher {
    pub fn new(cfg: &SyncConfig) -> Result<Fetcher, SyncError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("dnsenrich/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(ca) = &cfg.misp_ca_file {
            let pem = std::fs::read(ca).map_err(|e| SyncError::Ca {
                path: ca.clone(),
                reason: io_reason(&e),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| SyncError::Ca {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            if certs.is_empty() {
                return Err(SyncError::Ca {
                    path: ca.clone(),
                    reason: "no PEM certificate in it".into(),
                });
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        if cfg.insecure {
            b = b.danger_accept_invalid_certs(true);
        }
        let client = b.build().map_err(|e| SyncError::Ca {
            path: cfg.misp_ca_file.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        Ok(Fetcher {
            client,
            max_bytes: cfg.max_response_mib.saturating_mul(1 << 20),
        })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Opens `loc` and hands its content to `parse` on a blocking thread.
    /// `what` names the source in errors (`MISP feed manifest`, `list`).
    pub async fn read<T, F>(&self, what: &str, loc: &Location, parse: F) -> Result<T, SyncError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn BufRead) -> Result<T, ParseFailure> + Send + 'static,
    {
        let origin = format!("{what} {loc}");
        match loc {
            Location::Path(p) => read_file(origin, p.clone(), parse).await,
            Location::Url(u) => {
                let resp = self.client.get(u.clone()).send().await.map_err(|e| {
                    SyncError::Unreachable {
                        origin: origin.clone(),
                        reason: reqwest_reason(&e),
                    }
                })?;
                let status = resp.status();
                if !status.is_success() {
                    let body = error_body(resp).await;
                    return Err(SyncError::Http {
                        origin,
                        status: status.as_u16(),
                        body,
                    });
                }
                self.parse_response(origin, resp, parse).await
            }
        }
    }

    /// Streams a successful response into `parse` on a blocking thread,
    /// holding at most `max_response_mib` of it on the wire.
    pub async fn parse_response<T, F>(
        &self,
        origin: String,
        resp: reqwest::Response,
        parse: F,
    ) -> Result<T, SyncError>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn BufRead) -> Result<T, ParseFailure> + Send + 'static,
    {
        let limit = self.max_bytes;
        let too_large = Arc::new(AtomicBool::new(false));
        let flag = too_large.clone();
        let mut seen: u64 = 0;
        let stream = resp.bytes_stream().map(move |chunk| match chunk {
            Ok(b) => {
                seen += b.len() as u64;
                if seen > limit {
                    flag.store(true, Ordering::Relaxed);
                    Err(std::io::Error::other("response too large"))
                } else {
                    Ok(b)
                }
            }
            Err(e) => Err(std::io::Error::other(reqwest_reason(&e))),
        });
        let reader = SyncIoBridge::new(StreamReader::new(Box::pin(stream)));
        let result = tokio::task::spawn_blocking(move || {
            let mut r = BufReader::with_capacity(1 << 16, reader);
            parse(&mut r)
        })
        .await
        .map_err(|e| SyncError::Internal(e.to_string()))?;
        result.map_err(|f| {
            if too_large.load(Ordering::Relaxed) {
                SyncError::TooLarge {
                    origin: origin.clone(),
                    limit_mib: limit >> 20,
                }
            } else {
                failure(origin.clone(), f)
            }
        })
    }
}

async fn read_file<T, F>(origin: String, path: PathBuf, parse: F) -> Result<T, SyncError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn BufRead) -> Result<T, ParseFailure> + Send + 'static,
{
    let o = origin.clone();
    tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(|e| SyncError::Read {
            origin: o.clone(),
            reason: io_reason(&e),
        })?;
        let mut r = BufReader::with_capacity(1 << 16, f);
        parse(&mut r).map_err(|f| failure(o, f))
    })
    .await
    .map_err(|e| SyncError::Internal(e.to_string()))?
}

fn failure(origin: String, f: ParseFailure) -> SyncError {
    match f {
        ParseFailure::Malformed(reason) => SyncError::Malformed { origin, reason },
        ParseFailure::Io(e) => SyncError::Read {
            origin,
            reason: io_reason(&e),
        },
    }
}

/// The first bytes of an error response, for the message.
pub(crate) async fn error_body(resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(Ok(chunk)) = s.next().await {
        body.extend_from_slice(&chunk);
        if body.len() > 512 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    // MISP answers errors as {"name": "...", "message": "...", "url": "..."}.
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        if let Some(m) = v
            .get("message")
            .or_else(|| v.get("name"))
            .and_then(|m| m.as_str())
        {
            return m.to_string();
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An I/O error as a short reason: `connection refused`, not
/// `Connection refused (os error 111)`.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => format!("{:?}", e.kind()),
    }
}

/// What went wrong under a reqwest error: the innermost I/O or TLS cause.
pub(crate) fn reqwest_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut last: Option<String> = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.get_ref().is_none() {
                return io_reason(io);
            }
        }
        last = Some(err.to_string());
        cur = err.source();
    }
    let reason = last.unwrap_or_else(|| e.to_string());
    let mut c = reason.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => reason,
    }
}
