//! Things a test puts in front of osmem-server (which has neither TLS nor
//! authentication): a TLS terminator, and an HTTP front that answers some
//! requests itself (a refusal, for fault injection) and forwards the rest.
//! Each runs on its own thread with its own runtime, on a loopback port,
//! until dropped with the test.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the front saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `POST /dns/_bulk?...`
    pub line: String,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Documents in a `_bulk` body (action and document lines in pairs).
    pub fn bulk_docs(&self) -> usize {
        self.body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            / 2
    }
}

/// What the front does with a request: answer it itself with a status and
/// a JSON body, or (`None`) forward it.
pub type Decide = dyn Fn(&Seen) -> Option<(u16, String)> + Send + Sync;

/// An HTTP/1.1 front on a loopback port.
pub struct HttpFront {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _rt: tokio::runtime::Runtime,
}

impl HttpFront {
    /// Answers by `decide`, forwards the rest to `upstream`
    /// (`http://127.0.0.1:PORT`), if any (else answers 502).
    pub fn start(upstream: Option<String>, decide: Box<Decide>) -> HttpFront {
        let rt = runtime();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the front");
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let decide: Arc<Decide> = Arc::from(decide);
        let s = seen.clone();
        rt.spawn(async move {
            let http = reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(
                    conn,
                    upstream.clone(),
                    decide.clone(),
                    s.clone(),
                    http.clone(),
                ));
            }
        });
        HttpFront {
            addr,
            seen,
            _rt: rt,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut conn: TcpStream,
    upstream: Option<String>,
    decide: Arc<Decide>,
    seen: Arc<Mutex<Vec<Seen>>>,
    http: reqwest::Client,
) {
    // Keep-alive: one request after the other on the connection.
    while let Some(req) = read_request(&mut conn).await {
        seen.lock().unwrap().push(req.clone());
        let (status, body) = match (decide(&req), &upstream) {
            (Some(answer), _) => answer,
            (None, Some(up)) => forward(&http, up, &req).await,
            (None, None) => (502, r#"{"error":"no upstream"}"#.to_owned()),
        };
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if conn.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn forward(http: &reqwest::Client, upstream: &str, req: &Seen) -> (u16, String) {
    let mut parts = req.line.split(' ');
    let method = parts.next().unwrap_or("GET");
    let target = parts.next().unwrap_or("/");
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut r = http
        .request(method, format!("{upstream}{target}"))
        .body(req.body.clone());
    for (n, v) in &req.headers {
        if matches!(n.as_str(), "content-type" | "content-encoding") {
            r = r.header(n, v);
        }
    }
    match r.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(e) => (502, format!(r#"{{"error":"{e}"}}"#)),
    }
}

/// One request with a `content-length` body (bounded), or `None` at the end
/// of the connection.
async fn read_request<S: AsyncReadExt + Unpin>(conn: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let mut lines = head.split("\r\n");
            let line = lines.next().unwrap_or_default().to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let len: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                return Some(Seen {
                    line,
                    headers,
                    body,
                });
            }
        }
        if buf.len() > 64 * 1024 * 1024 {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A TLS terminator: accepts TLS with `cert`/`key` (PEM) and passes the
/// bytes on to `upstream` over plain TCP.
pub struct TlsFront {
    pub addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

impl TlsFront {
    pub fn start(cert: &Path, key: &Path, upstream: SocketAddr) -> TlsFront {
        use tokio_rustls::rustls;
        let certs: Vec<_> = rustls_pemfile::certs(&mut std::io::BufReader::new(
            std::fs::File::open(cert).expect("the certificate"),
        ))
        .collect::<Result<_, _>>()
        .expect("PEM certificates");
        let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
            std::fs::File::open(key).expect("the key"),
        ))
        .expect("a PEM key")
        .expect("a key in the file");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("certificate and key match");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let rt = runtime();
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind the TLS front");
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate gives up
                    // here; that is what some tests look for.
                    let Ok(mut tls) = acceptor.accept(conn).await else {
                        return;
                    };
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsFront { addr, _rt: rt }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}
