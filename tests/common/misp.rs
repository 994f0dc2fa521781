//! A small HTTP server on a loopback port that answers like MISP, replaying
//! the fixtures in `fixtures/misp/`:
//!
//! * `POST /attributes/restSearch` — checks `Authorization` (403 with MISP's
//!   error body when wrong), slices `attributes.json` by the `page`/`limit`
//!   of the JSON body as MISP does, and records every request body;
//! * `GET /feed/<file>` — the MISP-format feed in `fixtures/misp/feed/`;
//! * `GET /lists/<file>` — the blocklists in `fixtures/misp/lists/`.
//!
//! [`Mode`] injects faults into restSearch: another status, a malformed
//! body, or a huge (bounded) body sent in chunks. Plain std threads, one per
//! connection, `Connection: close`; stopped when the [`MispServer`] drops.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_rustls::rustls;

/// How restSearch answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Pages of `attributes.json`.
    Normal,
    /// This status with MISP's error body.
    Status(u16),
    /// `malformed.json` with 200.
    Malformed,
    /// A valid-looking answer of about this many bytes, in chunks.
    Huge(usize),
}

/// What the server saw of one restSearch request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: Option<String>,
    pub body: Value,
}

struct State {
    key: String,
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Seen>>,
    gets: Mutex<Vec<String>>,
    attributes: Vec<Value>,
    stop: AtomicBool,
}

/// A running fake MISP.
pub struct MispServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    state: Arc<State>,
    port: u16,
}

/// `fixtures/misp/`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/misp")
}

impl MispServer {
    /// Starts a server that accepts `key` as the API key.
    pub fn start(key: &str) -> MispServer {
        Self::start_with(key, None)
    }

    /// The same over HTTPS with this certificate chain and key (PEM files);
    /// `url` is then `https://127.0.0.1:PORT`.
    pub fn start_tls(key: &str, cert: &Path, private_key: &Path) -> MispServer {
        let certs: Vec<_> = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        let pk = rustls_pemfile::private_key(&mut std::fs::read(private_key).unwrap().as_slice())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, pk)
            .unwrap();
        Self::start_with(key, Some(Arc::new(cfg)))
    }

    fn start_with(key: &str, tls: Option<Arc<rustls::ServerConfig>>) -> MispServer {
        let text = std::fs::read_to_string(fixtures().join("attributes.json"))
            .expect("fixtures/misp/attributes.json");
        let v: Value = serde_json::from_str(&text).expect("attributes.json is JSON");
        let attributes = v["response"]["Attribute"]
            .as_array()
            .expect("response.Attribute")
            .clone();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(State {
            key: key.to_string(),
            mode: Mutex::new(Mode::Normal),
            requests: Mutex::new(Vec::new()),
            gets: Mutex::new(Vec::new()),
            attributes,
            stop: AtomicBool::new(false),
        });
        let scheme = if tls.is_some() { "https" } else { "http" };
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let s = s.clone();
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = match tls {
                        None => serve(conn, &s),
                        Some(cfg) => match rustls::ServerConnection::new(cfg) {
                            Ok(c) => serve(rustls::StreamOwned::new(c, conn), &s),
                            Err(_) => Ok(()),
                        },
                    };
                });
            }
        });
        MispServer {
            url: format!("{scheme}://127.0.0.1:{port}"),
            state,
            port,
        }
    }

    pub fn set_mode(&self, m: Mode) {
        *self.state.mode.lock().unwrap() = m;
    }

    /// The restSearch requests so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.state.requests.lock().unwrap().clone()
    }

    /// The paths of GET requests so far.
    pub fn gets(&self) -> Vec<String> {
        self.state.gets.lock().unwrap().clone()
    }

    /// How many attributes `attributes.json` has.
    pub fn attribute_count(&self) -> usize {
        self.state.attributes.len()
    }
}

impl Drop for MispServer {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request<S: Read>(r: &mut BufReader<S>) -> std::io::Result<Request> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

fn respond(conn: &mut impl Write, status: u16, body: &[u8]) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Error",
    };
    write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

fn serve<S: Read + Write>(stream: S, s: &State) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let req = read_request(&mut reader)?;
    let mut conn = reader.into_inner();
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if req.method == "GET" {
        s.gets.lock().unwrap().push(req.path.clone());
        let file = req
            .path
            .strip_prefix("/feed/")
            .map(|f| fixtures().join("feed").join(f))
            .or_else(|| {
                req.path
                    .strip_prefix("/lists/")
                    .map(|f| fixtures().join("lists").join(f))
            });
        return match file.filter(|_| !req.path.contains("..")) {
            Some(f) => match std::fs::read(f) {
                Ok(b) => respond(&mut conn, 200, &b),
                Err(_) => respond(
                    &mut conn,
                    404,
                    br#"{"name":"Not Found","message":"Not Found"}"#,
                ),
            },
            None => respond(
                &mut conn,
                404,
                br#"{"name":"Not Found","message":"Not Found"}"#,
            ),
        };
    }
    if req.method != "POST" || req.path != "/attributes/restSearch" {
        return respond(
            &mut conn,
            404,
            br#"{"name":"Not Found","message":"Not Found"}"#,
        );
    }
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let auth = header("authorization");
    s.requests.lock().unwrap().push(Seen {
        authorization: auth.clone(),
        body: body.clone(),
    });
    let error_403 = std::fs::read(fixtures().join("error-403.json")).unwrap_or_default();
    if auth.as_deref() != Some(s.key.as_str()) {
        return respond(&mut conn, 403, &error_403);
    }
    let mode = s.mode.lock().unwrap().clone();
    match mode {
        Mode::Status(code) => respond(&mut conn, code, &error_403),
        Mode::Malformed => {
            let b = std::fs::read(fixtures().join("malformed.json")).unwrap_or_default();
            respond(&mut conn, 200, &b)
        }
        Mode::Huge(bytes) => huge(&mut conn, s, bytes),
        Mode::Normal => {
            let n = s.attributes.len();
            let limit = body["limit"].as_u64().map_or(n, |l| l as usize).max(1);
            let page = body["page"].as_u64().unwrap_or(1).max(1) as usize;
            let from = ((page - 1) * limit).min(n);
            let to = (from + limit).min(n);
            let out = json!({"response": {"Attribute": &s.attributes[from..to]}});
            respond(&mut conn, 200, &serde_json::to_vec(&out).unwrap())
        }
    }
}

/// About `bytes` of `{"response":{"Attribute":[…]}}`, chunked, never closed
/// properly (the client is expected to give up first).
fn huge(conn: &mut impl Write, s: &State, bytes: usize) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )?;
    let one = serde_json::to_vec(&s.attributes[0]).unwrap();
    let mut chunk = b"{\"response\":{\"Attribute\":[".to_vec();
    let mut sent = 0;
    while sent < bytes {
        while chunk.len() < 64 * 1024 {
            chunk.extend_from_slice(&one);
            chunk.push(b',');
        }
        write!(conn, "{:x}\r\n", chunk.len())?;
        conn.write_all(&chunk)?;
        conn.write_all(b"\r\n")?;
        sent += chunk.len();
        chunk.clear();
    }
    conn.write_all(b"0\r\n\r\n")?;
    conn.flush()
}
