//! A minimal Elasticsearch `_bulk` sink for throughput benchmarks.
//!
//! It speaks just enough of the Elasticsearch REST API for dnsenrich's output
//! (HTTP/1.1 with keep-alive, Content-Length or chunked bodies, gzip request
//! bodies) and answers every bulk action as created. It does not store or
//! index anything, so it can take far more documents per second than a real
//! cluster or a test server — the point is to measure the sender, not the sink.
//! For correctness tests use a real server (osmem-server).
//!
//! Per bulk request it splits the NDJSON body into action/document pairs, and
//! checks that each document line looks like a JSON object (starts with `{` and
//! ends with `}`); `--validate` parses every document with serde_json instead.
//! A document that fails gets a 400 item with `errors:true`, as Elasticsearch
//! answers a mapping error.
//!
//! ```text
//! cargo run --release --example bulk_sink -- --port 0
//! listening 127.0.0.1:40123
//! ```
//!
//! On SIGTERM/SIGINT, `--exit-after-docs N` or `--max-secs S` it prints one JSON
//! line: requests, bulk requests, docs, bytes, and when the first and last
//! documents arrived.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const HELP: &str = "\
bulk_sink: a minimal Elasticsearch _bulk sink for benchmarks

USAGE:
  bulk_sink [--bind IP] [--port P] [--validate] [--exit-after-docs N] [--max-secs S] [--threads T]

OPTIONS:
  --bind IP             address to listen on (default 127.0.0.1)
  --port P              port (default 9200; 0 picks a free one). The first line on
                        stdout is `listening IP:PORT`.
  --validate            parse every document with serde_json (costs CPU); by
                        default a document only has to start with `{` and end with `}`
  --exit-after-docs N   exit once N documents have been answered
  --max-secs S          exit after S seconds whatever happens (default 3600)
  --threads T           runtime worker threads (default 1)
  --log-requests        one line per request on stderr: connection, method, path,
                        bytes, docs, and when (ms since start) the head arrived,
                        the body was complete and the answer was written
  -h, --help            this text

On exit prints one JSON line: requests, bulk_requests, docs, invalid_docs, bytes
(request bodies as received), decoded_bytes (after gunzip), first/last document times,
and the sink's own CPU seconds and peak RSS.";

struct Cfg {
    validate: bool,
    /// Print one line per request to stderr (timings, for finding stalls).
    log_requests: bool,
    exit_after_docs: Option<u64>,
}

#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    bulk_requests: AtomicU64,
    docs: AtomicU64,
    invalid_docs: AtomicU64,
    bytes: AtomicU64,
    decoded_bytes: AtomicU64,
    gzip_requests: AtomicU64,
    chunked_requests: AtomicU64,
    connections: AtomicU64,
    /// Nanoseconds since start at which the first / last documents arrived
    /// (0: none yet).
    first_doc_ns: AtomicU64,
    last_doc_ns: AtomicU64,
}

struct Shared {
    cfg: Cfg,
    stats: Stats,
    start: Instant,
    start_unix: SystemTime,
    done: Notify,
    /// Bodies of PUT requests, so that GET/HEAD on the same path find them.
    stored: Mutex<HashMap<String, Vec<u8>>>,
}

fn main() {
    let mut bind = "127.0.0.1".to_string();
    let mut port: u16 = 9200;
    let mut cfg = Cfg {
        validate: false,
        log_requests: false,
        exit_after_docs: None,
    };
    let mut max_secs: u64 = 3600;
    let mut threads: usize = 1;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next().unwrap_or_else(|| {
                eprintln!("bulk_sink: {flag} needs a value");
                std::process::exit(2)
            })
        };
        fn parse<T: std::str::FromStr>(flag: &str, v: String) -> T {
            v.parse().unwrap_or_else(|_| {
                eprintln!("bulk_sink: bad value for {flag}: {v}");
                std::process::exit(2)
            })
        }
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return;
            }
            "--bind" => bind = value(),
            "--port" => port = parse(&flag, value()),
            "--validate" => cfg.validate = true,
            "--log-requests" => cfg.log_requests = true,
            "--exit-after-docs" => cfg.exit_after_docs = Some(parse(&flag, value())),
            "--max-secs" => max_secs = parse(&flag, value()),
            "--threads" => threads = parse::<usize>(&flag, value()).max(1),
            other => {
                eprintln!("bulk_sink: unknown option `{other}` (see --help)");
                std::process::exit(2);
            }
        }
    }
    let addr: SocketAddr = match format!("{bind}:{port}").parse() {
        Ok(a) => a,
        Err(_) => match format!("[{bind}]:{port}").parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("bulk_sink: bad address {bind}: {e}");
                std::process::exit(2);
            }
        },
    };
    let rt = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    }
    .enable_all()
    .build()
    .expect("tokio runtime");
    let shared = Arc::new(Shared {
        cfg,
        stats: Stats::default(),
        start: Instant::now(),
        start_unix: SystemTime::now(),
        done: Notify::new(),
        stored: Mutex::new(HashMap::new()),
    });
    let reason = rt.block_on(serve(addr, shared.clone(), Duration::from_secs(max_secs)));
    match reason {
        Ok(reason) => println!("{}", summary(&shared, reason)),
        Err(e) => {
            eprintln!("bulk_sink: {e}");
            std::process::exit(1);
        }
    }
    rt.shutdown_timeout(Duration::from_millis(100));
}

async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
    max: Duration,
) -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener = TcpListener::bind(addr).await?;
    println!("listening {}", listener.local_addr()?);
    // The first line must reach a reading script at once.
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let deadline = tokio::time::sleep(max);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            acc = listener.accept() => {
                let Ok((s, _)) = acc else { continue };
                let _ = s.set_nodelay(true);
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                let sh = shared.clone();
                tokio::spawn(async move {
                    let id = sh.stats.connections.load(Ordering::Relaxed);
                    let _ = connection(s, &sh, id).await;
                });
            }
            _ = term.recv() => return Ok("sigterm"),
            _ = int.recv() => return Ok("sigint"),
            _ = shared.done.notified() => return Ok("exit_after_docs"),
            _ = &mut deadline => return Ok("max_secs"),
        }
    }
}

fn summary(sh: &Shared, reason: &str) -> String {
    let s = &sh.stats;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (first, last) = (ld(&s.first_doc_ns), ld(&s.last_doc_ns));
    let start_ms = sh
        .start_unix
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0);
    let span = (last.saturating_sub(first)) as f64 / 1e9;
    let docs = ld(&s.docs);
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = tv(ru.ru_utime) + tv(ru.ru_stime);
    format!(
        "{{\"exit\":\"{reason}\",\"uptime_secs\":{:.3},\"connections\":{},\"requests\":{},\
         \"bulk_requests\":{},\"docs\":{docs},\"invalid_docs\":{},\"bytes\":{},\"decoded_bytes\":{},\
         \"gzip_requests\":{},\"chunked_requests\":{},\"first_doc_unix_ms\":{:.3},\
         \"last_doc_unix_ms\":{:.3},\"first_to_last_secs\":{span:.6},\"docs_per_sec_first_to_last\":{:.1},\
         \"cpu_secs\":{cpu:.3},\"max_rss_kib\":{}}}",
        sh.start.elapsed().as_secs_f64(),
        ld(&s.connections),
        ld(&s.requests),
        ld(&s.bulk_requests),
        ld(&s.invalid_docs),
        ld(&s.bytes),
        ld(&s.decoded_bytes),
        ld(&s.gzip_requests),
        ld(&s.chunked_requests),
        if first > 0 { start_ms + first as f64 / 1e6 } else { 0.0 },
        if last > 0 { start_ms + last as f64 / 1e6 } else { 0.0 },
        if span > 0.0 { docs as f64 / span } else { 0.0 },
        ru.ru_maxrss,
    )
}

/// One request's head.
struct Head {
    method: String,
    path: String,
    query: String,
    content_length: Option<usize>,
    chunked: bool,
    gzip: bool,
    keep_alive: bool,
    expect_continue: bool,
}

/// Largest head or body we take (a sender's bulk requests are a few MiB).
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 512 * 1024 * 1024;

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

async fn read_head(
    r: &mut BufReader<TcpStream>,
    line: &mut String,
) -> std::io::Result<Option<Head>> {
    line.clear();
    // Tolerate empty lines between requests.
    loop {
        if r.read_line(line).await? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
        line.clear();
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let version = parts.next().unwrap_or("HTTP/1.1");
    let mut h = Head {
        method,
        path: String::new(),
        query: String::new(),
        content_length: None,
        chunked: false,
        gzip: false,
        keep_alive: version != "HTTP/1.0",
        expect_continue: false,
    };
    match target.split_once('?') {
        Some((p, q)) => {
            h.path = p.to_string();
            h.query = q.to_string();
        }
        None => h.path = target,
    }
    let mut total = line.len();
    loop {
        line.clear();
        let n = r.read_line(line).await?;
        if n == 0 {
            return Err(bad("connection closed inside a request head"));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                h.content_length = Some(value.parse().map_err(|_| bad("bad Content-Length"))?)
            }
            "transfer-encoding" => h.chunked = value.to_ascii_lowercase().contains("chunked"),
            "content-encoding" => h.gzip = value.eq_ignore_ascii_case("gzip"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    h.keep_alive = false;
                } else if v.contains("keep-alive") {
                    h.keep_alive = true;
                }
            }
            "expect" => h.expect_continue = value.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    Ok(Some(h))
}

/// Reads the body into `body` (Content-Length or chunked).
async fn read_body(
    r: &mut BufReader<TcpStream>,
    h: &Head,
    body: &mut Vec<u8>,
    line: &mut String,
) -> std::io::Result<()> {
    body.clear();
    if h.chunked {
        loop {
            line.clear();
            if r.read_line(line).await? == 0 {
                return Err(bad("connection closed inside a chunked body"));
            }
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(line).await? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                return Ok(());
            }
            if body.len() + size > MAX_BODY {
                return Err(bad("body too large"));
            }
            read_n(r, body, size).await?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await?;
        }
    } else if let Some(n) = h.content_length {
        if n > MAX_BODY {
            return Err(bad("body too large"));
        }
        read_n(r, body, n).await?;
    }
    Ok(())
}

/// Appends exactly `n` bytes from `r` to `body`, without zero-filling first.
async fn read_n(r: &mut BufReader<TcpStream>, body: &mut Vec<u8>, n: usize) -> std::io::Result<()> {
    body.reserve(n);
    let got = (&mut *r).take(n as u64).read_to_end(body).await?;
    if got < n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed inside a request body",
        ));
    }
    Ok(())
}

async fn respond(
    w: &mut TcpStream,
    out: &mut Vec<u8>,
    status: u16,
    body: &[u8],
    head_only: bool,
    keep_alive: bool,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "OK",
    };
    out.clear();
    out.extend_from_slice(format!("HTTP/1.1 {status} {reason}\r\n").as_bytes());
    out.extend_from_slice(
        b"content-type: application/json\r\nx-elastic-product: Elasticsearch\r\n",
    );
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(body);
    }
    w.write_all(out).await
}

async fn connection(s: TcpStream, sh: &Shared, conn_id: u64) -> std::io::Result<()> {
    let mut r = BufReader::with_capacity(256 * 1024, s);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut decoded = Vec::new();
    let mut resp = Vec::new();
    let mut out = Vec::new();
    let ms = |t: Instant| t.duration_since(sh.start).as_secs_f64() * 1000.0;
    while let Some(h) = read_head(&mut r, &mut line).await? {
        let t_head = Instant::now();
        if h.expect_continue {
            r.get_mut()
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        read_body(&mut r, &h, &mut body, &mut line).await?;
        let t_body = Instant::now();
        let st = &sh.stats;
        st.requests.fetch_add(1, Ordering::Relaxed);
        st.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        if h.chunked {
            st.chunked_requests.fetch_add(1, Ordering::Relaxed);
        }
        let payload: &[u8] = if h.gzip {
            st.gzip_requests.fetch_add(1, Ordering::Relaxed);
            decoded.clear();
            if let Err(e) = flate2::read::MultiGzDecoder::new(&body[..]).read_to_end(&mut decoded) {
                let msg = error_json("parse_exception", &format!("gzip: {e}"), 400);
                respond(
                    r.get_mut(),
                    &mut out,
                    400,
                    msg.as_bytes(),
                    false,
                    h.keep_alive,
                )
                .await?;
                if !h.keep_alive {
                    return Ok(());
                }
                continue;
            }
            &decoded
        } else {
            &body
        };
        st.decoded_bytes
            .fetch_add(payload.len() as u64, Ordering::Relaxed);

        let head_only = h.method == "HEAD";
        let segs: Vec<&str> = h.path.split('/').filter(|s| !s.is_empty()).collect();
        let mut docs_crossed = false;
        let mut req_docs = 0u64;
        let (status, answer): (u16, Vec<u8>) = match (h.method.as_str(), segs.as_slice()) {
            ("POST" | "PUT", [.., "_bulk"]) => {
                let target = if segs.len() >= 2 { Some(segs[0]) } else { None };
                let t = Instant::now();
                match bulk(payload, target, &h.query, sh, &mut resp) {
                    Ok(n) => {
                        st.bulk_requests.fetch_add(1, Ordering::Relaxed);
                        let took = t.elapsed().as_millis();
                        req_docs = n;
                        let before = st.docs.fetch_add(n, Ordering::Relaxed);
                        let now_ns = sh.start.elapsed().as_nanos() as u64;
                        let _ = st.first_doc_ns.compare_exchange(0, now_ns.max(1), Ordering::Relaxed, Ordering::Relaxed);
                        st.last_doc_ns.fetch_max(now_ns, Ordering::Relaxed);
                        if let Some(limit) = sh.cfg.exit_after_docs {
                            docs_crossed = before < limit && before + n >= limit;
                        }
                        // `resp` starts with a placeholder for "took".
                        let mut a = format!("{{\"took\":{took},").into_bytes();
                        a.extend_from_slice(&resp);
                        (200, a)
                    }
                    Err(msg) => (400, error_json("illegal_argument_exception", &msg, 400).into_bytes()),
                }
            }
            ("GET" | "HEAD", []) => (
                200,
                br#"{"name":"bulk-sink","cluster_name":"bench","cluster_uuid":"bench","version":{"number":"8.15.0","build_flavor":"default","distribution":"elasticsearch","lucene_version":"9.11.1","minimum_wire_compatibility_version":"7.17.0","minimum_index_compatibility_version":"7.0.0"},"tagline":"You Know, for Search"}"#.to_vec(),
            ),
            ("GET" | "HEAD", ["_cluster", "health", ..]) => (
                200,
                br#"{"cluster_name":"bench","status":"green","timed_out":false,"number_of_nodes":1}"#.to_vec(),
            ),
            ("GET" | "POST", [.., "_count"]) => (
                200,
                format!(
                    "{{\"count\":{},\"_shards\":{{\"total\":1,\"successful\":1,\"skipped\":0,\"failed\":0}}}}",
                    st.docs.load(Ordering::Relaxed)
                )
                .into_bytes(),
            ),
            ("GET" | "POST", [.., "_refresh"]) | ("POST", [.., "_flush"]) => (
                200,
                br#"{"_shards":{"total":1,"successful":1,"failed":0}}"#.to_vec(),
            ),
            ("PUT", _) => {
                sh.stored.lock().unwrap().insert(h.path.clone(), payload.to_vec());
                (200, br#"{"acknowledged":true}"#.to_vec())
            }
            ("DELETE", _) => {
                let had = sh.stored.lock().unwrap().remove(&h.path).is_some();
                if had {
                    (200, br#"{"acknowledged":true}"#.to_vec())
                } else {
                    (404, error_json("resource_not_found_exception", &format!("{} not found", h.path), 404).into_bytes())
                }
            }
            ("GET" | "HEAD", _) => match sh.stored.lock().unwrap().get(&h.path) {
                Some(b) if segs.first() == Some(&"_index_template") => {
                    let name = segs.get(1).copied().unwrap_or("");
                    let doc = std::str::from_utf8(b).unwrap_or("{}");
                    (200, format!("{{\"index_templates\":[{{\"name\":\"{name}\",\"index_template\":{doc}}}]}}").into_bytes())
                }
                Some(b) => (200, b.clone()),
                None => (
                    404,
                    error_json("resource_not_found_exception", &format!("{} not found", h.path), 404).into_bytes(),
                ),
            },
            (m, _) => (
                405,
                error_json("method_not_allowed", &format!("{m} {} is not supported by this sink", h.path), 405).into_bytes(),
            ),
        };
        respond(
            r.get_mut(),
            &mut out,
            status,
            &answer,
            head_only,
            h.keep_alive,
        )
        .await?;
        if sh.cfg.log_requests {
            eprintln!(
                "conn={conn_id} {} {} status={status} bytes={} docs={req_docs} head_ms={:.3} body_ms={:.3} answered_ms={:.3}",
                h.method,
                h.path,
                body.len(),
                ms(t_head),
                ms(t_body),
                ms(Instant::now())
            );
        }
        if docs_crossed {
            sh.done.notify_one();
        }
        if !h.keep_alive {
            return Ok(());
        }
    }
    Ok(())
}

fn error_json(ty: &str, reason: &str, status: u16) -> String {
    let reason = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into());
    format!("{{\"error\":{{\"type\":\"{ty}\",\"reason\":{reason}}},\"status\":{status}}}")
}

/// Checks one bulk body and writes the rest of the response (after `"took":N,`)
/// into `resp`. Returns the number of documents (actions).
fn bulk(
    payload: &[u8],
    target: Option<&str>,
    query: &str,
    sh: &Shared,
    resp: &mut Vec<u8>,
) -> Result<u64, String> {
    // dnsenrich asks for `filter_path=errors,items.*.status,items.*.error`: then
    // only the status (and error) of each item goes back, as Elasticsearch does.
    let short = query.split('&').any(|kv| kv.starts_with("filter_path="));
    resp.clear();
    resp.extend_from_slice(b"\"errors\":false,\"items\":[");
    let errors_at = "\"errors\":".len();
    let mut any_error = false;
    let mut n = 0u64;
    let mut invalid = 0u64;
    let mut lines = Lines { rest: payload }
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace()));
    while let Some(action_line) = lines.next() {
        let action = action_name(action_line).ok_or_else(|| {
            format!(
                "malformed action/metadata line [{}], expected START_OBJECT with an action",
                n * 2 + 1
            )
        })?;
        let (ok_status, needs_doc) = match action {
            "create" | "index" => (201, true),
            "update" => (200, true),
            "delete" => (200, false),
            other => return Err(format!("unknown bulk action [{other}]")),
        };
        let mut valid = true;
        if needs_doc {
            let doc = lines
                .next()
                .ok_or_else(|| "the bulk request must be terminated by a newline and every action needs its document".to_string())?;
            valid = if sh.cfg.validate {
                matches!(
                    serde_json::from_slice::<serde_json::Value>(doc),
                    Ok(serde_json::Value::Object(_))
                )
            } else {
                let t = doc.trim_ascii();
                t.first() == Some(&b'{') && t.last() == Some(&b'}')
            };
        }
        if n > 0 {
            resp.push(b',');
        }
        resp.extend_from_slice(b"{\"");
        resp.extend_from_slice(action.as_bytes());
        resp.extend_from_slice(b"\":{");
        if !short {
            let index = target
                .map(str::to_string)
                .or_else(|| meta_index(action_line))
                .unwrap_or_else(|| "unknown".into());
            resp.extend_from_slice(b"\"_index\":");
            resp.extend_from_slice(serde_json::to_string(&index).unwrap_or_default().as_bytes());
            resp.push(b',');
        }
        if valid {
            resp.extend_from_slice(b"\"status\":");
            resp.extend_from_slice(itoa::Buffer::new().format(ok_status).as_bytes());
        } else {
            any_error = true;
            invalid += 1;
            resp.extend_from_slice(
                br#""status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse: the document is not a JSON object"}"#,
            );
        }
        resp.extend_from_slice(b"}}");
        n += 1;
    }
    resp.extend_from_slice(b"]}");
    if any_error {
        // "true" is one byte shorter than "false": rewrite the flag in place.
        resp.splice(errors_at..errors_at + 5, b"true".iter().copied());
        sh.stats.invalid_docs.fetch_add(invalid, Ordering::Relaxed);
    }
    Ok(n)
}

/// The lines of an NDJSON body (memchr finds the newlines).
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        match memchr::memchr(b'\n', self.rest) {
            Some(i) => {
                let line = &self.rest[..i];
                self.rest = &self.rest[i + 1..];
                Some(line)
            }
            None => Some(std::mem::take(&mut self.rest)),
        }
    }
}

/// The action of a bulk metadata line: the first key of the object.
fn action_name(line: &[u8]) -> Option<&str> {
    let t = line.trim_ascii();
    let rest = t.strip_prefix(b"{")?.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// `_index` from a metadata line, when the request path names none.
fn meta_index(line: &[u8]) -> Option<String> {
    let at = memchr::memmem::find(line, b"\"_index\"")? + 8;
    let rest = &line[at..];
    let q = memchr::memchr(b'"', rest)? + 1;
    let end = memchr::memchr(b'"', &rest[q..])?;
    std::str::from_utf8(&rest[q..q + end])
        .ok()
        .map(str::to_string)
}
