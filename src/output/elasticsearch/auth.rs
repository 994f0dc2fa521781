//! Who dnsenrich is to Elasticsearch and whom it trusts: the credentials
//! (basic auth or an API key, from the config, a file, a flag or the
//! environment), the CA, and the URL checks, resolved once by
//! [`Access::resolve`] and applied to every request through the transport.
//! [`Auth::describe`] names the credential in messages without its secret;
//! [`mask_url`] hides a password written into a URL; [`explain_transport`]
//! turns TLS and connection errors into what to do about them.

use std::path::{Path, PathBuf};

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::transport::TransportBuilder;
use elasticsearch::http::Url;

use super::config::{ElasticsearchConfig, Secret};
use crate::output::OutputError;

/// Environment variable read for the password when the config has none.
pub const ENV_PASSWORD: &str = "DNSENRICH_ES_PASSWORD";
/// Environment variable read for the API key when the config has none.
pub const ENV_API_KEY: &str = "DNSENRICH_ES_API_KEY";
/// `--es-user` as an environment variable.
pub const ENV_USER: &str = "DNSENRICH_ES_USER";
/// `--es-password-file` as an environment variable.
pub const ENV_PASSWORD_FILE: &str = "DNSENRICH_ES_PASSWORD_FILE";
/// `--es-api-key-file` as an environment variable.
pub const ENV_API_KEY_FILE: &str = "DNSENRICH_ES_API_KEY_FILE";
/// `--es-ca` as an environment variable.
pub const ENV_CA: &str = "DNSENRICH_ES_CA";

/// The credential sent with every request.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    /// `id:key`, or the base64 `encoded` form (whose id is read from it).
    ApiKey {
        id: Option<String>,
        key: Secret,
        encoded: bool,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Auth {
    /// What to hand the HTTP client.
    pub fn credentials(&self) -> Option<Credentials> {
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(Credentials::Basic(
                user.clone(),
                password.expose().to_owned(),
            )),
            Auth::ApiKey {
                key, encoded: true, ..
            } => Some(Credentials::EncodedApiKey(key.expose().to_owned())),
            Auth::ApiKey { id, key, .. } => Some(Credentials::ApiKey(
                id.clone().unwrap_or_default(),
                key.expose().to_owned(),
            )),
        }
    }

    /// The credential in words, for messages: the user name or the API key
    /// id, never the secret.
    pub fn describe(&self) -> String {
        match self {
            Auth::None => "no credentials".into(),
            Auth::Basic { user, .. } => format!("user `{user}` (basic auth)"),
            Auth::ApiKey { id: Some(id), .. } => format!("API key id `{id}`"),
            Auth::ApiKey { id: None, .. } => "an API key whose id cannot be read".into(),
        }
    }

    /// An API key as given: `id:key`, or the encoded form `base64(id:key)`.
    fn api_key(text: String) -> Auth {
        match text.split_once(':') {
            Some((id, key)) => Auth::ApiKey {
                id: Some(id.to_owned()),
                key: Secret::new(key),
                encoded: false,
            },
            None => Auth::ApiKey {
                id: decode_base64(&text)
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .and_then(|s| s.split_once(':').map(|(id, _)| id.to_owned())),
                key: Secret::new(text),
                encoded: true,
            },
        }
    }
}

/// Everything about reaching the cluster that is read and checked before
/// the first request: the nodes' URLs, the credential and the CA.
#[derive(Debug, Clone)]
pub struct Access {
    /// Every node's URL, checked; at least one, none twice.
    pub urls: Vec<Url>,
    pub auth: Auth,
    /// The PEM of `ca_file`, checked to hold certificates.
    ca_pem: Option<Vec<u8>>,
}

impl Access {
    /// Checks the URLs, reads the secret files and the CA: what `run` and
    /// `check-config` refuse alike.
    pub fn resolve(
        cfg: &ElasticsearchConfig,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<Access, OutputError> {
        let urls = checked_urls(&cfg.url)?;
        let auth = resolve_auth(cfg, env)?;
        let ca_pem = match &cfg.ca_file {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        Ok(Access { urls, auth, ca_pem })
    }

    /// Applies the credential and the CA to a transport.
    pub fn apply(&self, mut builder: TransportBuilder) -> TransportBuilder {
        if let Some(creds) = self.auth.credentials() {
            builder = builder.auth(creds);
        }
        if let Some(pem) = &self.ca_pem {
            // Checked by `read_ca`, which parses the same bytes.
            if let Ok(cert) = Certificate::from_pem(pem) {
                builder = builder.cert_validation(CertificateValidation::Full(cert));
            }
        }
        builder
    }
}

/// Reads and checks a CA file: PEM with at least one certificate.
fn read_ca(path: &Path) -> Result<Vec<u8>, OutputError> {
    let pem = std::fs::read(path).map_err(|source| OutputError::Io {
        what: "cannot read the CA file",
        path: path.to_owned(),
        source,
    })?;
    let mut reader = std::io::Cursor::new(&pem);
    let mut found = 0;
    for item in rustls_pemfile::certs(&mut reader) {
        item.map_err(|e| {
            OutputError::config("ca_file", format!("{}: not PEM: {e}", path.display()))
        })?;
        found += 1;
    }
    if found == 0 {
        return Err(OutputError::config(
            "ca_file",
            format!("{}: no PEM certificate in it", path.display()),
        ));
    }
    Certificate::from_pem(&pem)
        .map_err(|e| OutputError::config("ca_file", format!("{}: {e}", path.display())))?;
    Ok(pem)
}

/// Every node's URL, checked as [`checked_url`] does; at least one, none
/// twice.
fn checked_urls(texts: &[String]) -> Result<Vec<Url>, OutputError> {
    if texts.is_empty() {
        return Err(OutputError::config("url", "no URL given"));
    }
    let mut urls: Vec<Url> = Vec::with_capacity(texts.len());
    for text in texts {
        let url = checked_url(text)?;
        if urls.contains(&url) {
            return Err(OutputError::config(
                "url",
                format!("`{}` is listed twice", mask_url(text)),
            ));
        }
        urls.push(url);
    }
    Ok(urls)
}

/// The cluster's URL, checked: http or https, a host, no credentials in it.
pub fn checked_url(text: &str) -> Result<Url, OutputError> {
    let shown = mask_url(text);
    let no_scheme = || {
        OutputError::config(
            "url",
            format!(
                "`{shown}` does not start with http:// or https://; write \
                 http://{shown} (or https://{shown} for a cluster with TLS, \
                 as Elasticsearch 8 and later set up by default)"
            ),
        )
    };
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => return Err(no_scheme()),
        Err(e) => return Err(OutputError::config("url", format!("`{shown}`: {e}"))),
    };
    if !matches!(url.scheme(), "http" | "https") {
        // `localhost:9200` parses as scheme `localhost`.
        if !text.contains("://") {
            return Err(no_scheme());
        }
        return Err(OutputError::config(
            "url",
            format!("`{shown}`: must start with http:// or https://"),
        ));
    }
    if url.host_str().map_or(true, str::is_empty) {
        return Err(OutputError::config(
            "url",
            format!("`{shown}` names no host"),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutputError::config(
            "url",
            format!(
                "`{shown}` holds credentials, which would show wherever the URL is \
                 printed; put the user in username (--es-user) and the password in \
                 password_file (--es-password-file)"
            ),
        ));
    }
    Ok(url)
}

/// A URL for messages: a user name and password written into it
/// (`https://user:pw@host`) become `***`. Works on text that is not a valid
/// URL too.
pub fn mask_url(text: &str) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => ("", text),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}***@{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

/// Any text (a TOML syntax error quoting the line, say) with the userinfo
/// of every URL in it masked as in [`mask_url`].
pub fn mask_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\''))
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Basic auth, an API key, or nothing. A value in the config (or its
/// `_file`) wins over the environment; setting both forms of one secret,
/// or a password and an API key, is refused.
fn resolve_auth(
    cfg: &ElasticsearchConfig,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Auth, OutputError> {
    let password = secret(
        ("password", &cfg.password),
        ("password_file", &cfg.password_file),
    )?;
    let api_key = secret(
        ("api_key", &cfg.api_key),
        ("api_key_file", &cfg.api_key_file),
    )?;
    let env_password = || env(ENV_PASSWORD).filter(|p| !p.is_empty());
    match (&cfg.username, password, api_key) {
        (Some(user), _, _) if user.is_empty() => Err(OutputError::config("username", "is empty")),
        (Some(_), _, Some(_)) => Err(OutputError::config(
            "api_key",
            "set either username/password or api_key, not both",
        )),
        (None, Some(_), _) => Err(OutputError::config(
            "username",
            format!(
                "a password is set but no username (username, --es-user or {ENV_USER}); \
                 for an API key use api_key_file (--es-api-key-file)"
            ),
        )),
        (Some(user), password, None) => {
            let password = password
                .or_else(|| env_password().map(Secret::new))
                .ok_or_else(|| {
                    OutputError::config(
                        "password",
                        format!(
                            "username `{user}` is set but no password \
                             (password_file, --es-password-file, password or {ENV_PASSWORD})"
                        ),
                    )
                })?;
            Ok(Auth::Basic {
                user: user.clone(),
                password,
            })
        }
        (None, None, Some(key)) => Ok(Auth::api_key(key.expose().to_owned())),
        (None, None, None) => {
            if let Some(key) = env(ENV_API_KEY).filter(|k| !k.is_empty()) {
                return Ok(Auth::api_key(key));
            }
            if env_password().is_some() {
                return Err(OutputError::config(
                    "username",
                    format!(
                        "{ENV_PASSWORD} is set but no username (username, --es-user or {ENV_USER})"
                    ),
                ));
            }
            Ok(Auth::None)
        }
    }
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
        (Some(s), None) if s.expose().is_empty() => Err(OutputError::config(inline.0, "is empty")),
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
            Ok(Some(Secret::new(s)))
        }
        (None, None) => Ok(None),
    }
}

/// Standard base64 (with or without padding); `None` if it is not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = acc << 6 | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// A transport error in words, with what to do about the usual ones: a CA
/// that is not trusted, `https://` to a plain HTTP port, a name the
/// certificate does not cover.
pub fn explain_transport(text: &str, url: &Url) -> String {
    let hint = if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
        Some(format!(
            "the server's certificate is signed by a CA dnsenrich does not trust: set \
             ca_file (--es-ca or {ENV_CA}) to the cluster's CA certificate \
             (Elasticsearch 8 writes it to config/certs/http_ca.crt)"
        ))
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        Some(format!(
            "the server at {} does not speak TLS: use http:// instead of https://, or \
             the port of its TLS listener",
            mask_url(url.as_str())
        ))
    } else if text.contains("NotValidForName") {
        Some(format!(
            "the server's certificate is not made out for `{}`: use the host name it \
             names in the URL",
            url.host_str().unwrap_or_default()
        ))
    } else if text.contains("Expired") {
        Some("the server's certificate has expired".to_owned())
    } else if url.scheme() == "http"
        && (text.contains("connection closed before message completed")
            || text.contains("IncompleteMessage")
            // A TLS server answers a plain request with a TLS alert.
            || text.contains("invalid HTTP version parsed"))
    {
        Some(
            "the server closed the connection or answered in something other than \
             HTTP; if the cluster uses TLS (Elasticsearch 8 does by default), write \
             https://"
                .to_owned(),
        )
    } else {
        None
    };
    match hint {
        Some(h) => format!("{h} ({text})"),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn urls_without_a_scheme_or_with_credentials_are_explained() {
        for bare in ["127.0.0.1:9200", "localhost:9200", "es.example"] {
            let e = checked_url(bare).unwrap_err().to_string();
            assert!(
                e.contains("does not start with http:// or https://")
                    && e.contains(&format!("http://{bare}")),
                "{e}"
            );
            assert!(!e.contains("relative URL"), "{e}");
        }
        let e = checked_url("https://elastic:hunter2@es:9200").unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("output.url: ") && e.contains("credentials"),
            "{e}"
        );
        assert!(!e.contains("hunter2") && !e.contains("elastic:"), "{e}");
        // Masked also when the rest does not parse.
        let e = checked_url("https://u:hunter2@es:99999")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(checked_url("ftp://x").is_err());
        assert!(checked_url("https://es.example:9200/prefix").is_ok());
    }

    #[test]
    fn mask_url_hides_the_userinfo_only() {
        assert_eq!(
            mask_url("https://u:pw@h:9200/x@y"),
            "https://***@h:9200/x@y"
        );
        assert_eq!(mask_url("u:pw@h:9200"), "***@h:9200");
        assert_eq!(mask_url("http://h:9200/a@b"), "http://h:9200/a@b");
    }

    #[test]
    fn urls_in_any_text_lose_their_userinfo() {
        assert_eq!(
            mask_urls_in("url = \"https://u:pw@es:9200/x\" and http://h/a@b"),
            "url = \"https://***@es:9200/x\" and http://h/a@b"
        );
        assert_eq!(mask_urls_in("no url here"), "no url here");
    }

    #[test]
    fn the_credential_is_named_without_its_secret() {
        let key = Auth::api_key("my-id:my-key".into());
        assert_eq!(key.describe(), "API key id `my-id`");
        // base64("VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw")
        let encoded =
            Auth::api_key("VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==".into());
        assert_eq!(encoded.describe(), "API key id `VuaCfGcBCdbkQm-e5aOx`");
        assert!(matches!(
            encoded.credentials(),
            Some(Credentials::EncodedApiKey(_))
        ));
        let basic = Auth::Basic {
            user: "elastic".into(),
            password: Secret::new("hunter2"),
        };
        assert_eq!(basic.describe(), "user `elastic` (basic auth)");
        assert!(!format!("{basic:?}{key:?}").contains("hunter2"));
        assert!(!format!("{key:?}").contains("my-key"));
    }

    #[test]
    fn a_password_without_a_user_is_refused_from_any_source() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "secret\n").unwrap();
        let cfg = ElasticsearchConfig {
            password_file: Some(pw),
            ..Default::default()
        };
        let e = resolve_auth(&cfg, &no_env).unwrap_err().to_string();
        assert!(
            e.starts_with("output.username: ") && e.contains("--es-user"),
            "{e}"
        );
        let env_pw = |k: &str| (k == ENV_PASSWORD).then(|| "x".to_string());
        let e = resolve_auth(&ElasticsearchConfig::default(), &env_pw)
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_PASSWORD), "{e}");
    }

    #[test]
    fn transport_errors_say_what_to_do() {
        let https = Url::parse("https://127.0.0.1:9200").unwrap();
        let t = explain_transport(
            "error sending request: invalid peer certificate: UnknownIssuer",
            &https,
        );
        assert!(t.contains("--es-ca") && t.contains("UnknownIssuer"), "{t}");
        let t = explain_transport(
            "error sending request: received corrupt message of type InvalidContentType",
            &https,
        );
        assert!(t.contains("does not speak TLS"), "{t}");
        assert_eq!(
            explain_transport("connection refused", &https),
            "connection refused"
        );
    }
}
