//! Writing the key set into memcached, pipelined.
//!
//! Each server gets one connection and a stream of
//!
//! ```text
//! set <key> 0 <ttl> <bytes> noreply\r\n<value>\r\n   (× every key)
//! version\r\n                                        (the barrier)
//! ```
//!
//! written through a large buffer without waiting for replies; `noreply`
//! keeps the server silent on success, and the `VERSION` answer proves every
//! set before it was processed. Anything else that comes back is an error for
//! some key and is counted. A reader thread drains the socket meanwhile, so
//! a server with replies to send can never stall the writer. This is the
//! classic text protocol, so any memcached version works.
//!
//! With several servers, a key goes to the server the reader looks it up on:
//! the configured [`Placement`] (`sync.distribution`), dnsenrich's rendezvous
//! hashing by default or the placement of the reader's client.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::collect::Collector;
use super::config::ValueFormat;
use super::http::io_reason;
use super::progress::Progress;
use super::target::WriteOutcome;
use super::SyncError;
use crate::indicator::distribution::Placement;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// memcached reads TTLs above 30 days as a Unix time.
const MAX_RELATIVE_TTL: u64 = 30 * 86_400;
/// Writer threads (and connections per server) at most.
const MAX_WRITERS: usize = 4;
/// Per-item overhead memcached counts against `item_size_max`, rounded up.
const ITEM_OVERHEAD: usize = 96;

/// What a server said about itself before the write.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    pub addr: String,
    pub item_size_max: usize,
    pub evictions: u64,
}

/// Connects and asks for `stats`: proves the server is there and speaks
/// memcached before any source is read.
pub(crate) fn probe(addr: &str) -> Result<ServerInfo, SyncError> {
    let stream = connect(addr)?;
    let mut r = BufReader::new(stream.try_clone().map_err(|e| lost(addr, &e))?);
    let mut w = stream;
    let general = stats(addr, &mut w, &mut r, "stats")?;
    let settings = stats(addr, &mut w, &mut r, "stats settings")?;
    Ok(ServerInfo {
        addr: addr.to_string(),
        item_size_max: settings
            .get("item_size_max")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1 << 20),
        evictions: general
            .get("evictions")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    })
}

fn connect(addr: &str) -> Result<TcpStream, SyncError> {
    let unreachable = |reason: String| SyncError::MemcachedUnreachable {
        addr: addr.to_string(),
        reason,
    };
    let addrs: Vec<_> = addr
        .to_socket_addrs()
        .map_err(|e| unreachable(format!("cannot resolve: {}", io_reason(&e))))?
        .collect();
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                s.set_write_timeout(Some(IO_TIMEOUT))
                    .map_err(|e| lost(addr, &e))?;
                s.set_read_timeout(Some(IO_TIMEOUT))
                    .map_err(|e| lost(addr, &e))?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(unreachable(
        last.map(|e| io_reason(&e))
            .unwrap_or_else(|| "no address".into()),
    ))
}

fn lost(addr: &str, e: &std::io::Error) -> SyncError {
    SyncError::Memcached {
        addr: addr.to_string(),
        reason: format!("connection lost: {}", io_reason(e)),
    }
}

fn stats(
    addr: &str,
    w: &mut TcpStream,
    r: &mut BufReader<TcpStream>,
    cmd: &str,
) -> Result<HashMap<String, String>, SyncError> {
    w.write_all(format!("{cmd}\r\n").as_bytes())
        .map_err(|e| lost(addr, &e))?;
    let mut out = HashMap::new();
    let mut line = String::new();
    for _ in 0..10_000 {
        line.clear();
        let n = r.read_line(&mut line).map_err(|e| lost(addr, &e))?;
        if n == 0 {
            return Err(lost(
                addr,
                &std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the server"),
            ));
        }
        let l = line.trim_end();
        if l == "END" {
            return Ok(out);
        }
        match l.strip_prefix("STAT ").and_then(|s| s.split_once(' ')) {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                return Err(SyncError::Memcached {
                    addr: addr.to_string(),
                    reason: format!("does not answer `{cmd}` like memcached: {l:?}"),
                })
            }
        }
    }
    Err(SyncError::Memcached {
        addr: addr.to_string(),
        reason: format!("endless answer to `{cmd}`"),
    })
}

/// The `exptime` memcached is sent for a TTL.
/// Stores one key on `addr` and waits for memcached to say it did.
pub(crate) fn set_one(addr: &str, key: &str, value: &[u8], exp: u64) -> Result<(), SyncError> {
    let stream = connect(addr)?;
    let mut r = BufReader::new(stream.try_clone().map_err(|e| lost(addr, &e))?);
    let mut w = stream;
    let mut req = format!("set {key} 0 {exp} {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    w.write_all(&req).map_err(|e| lost(addr, &e))?;
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| lost(addr, &e))?;
    if line.trim_end() == "STORED" {
        Ok(())
    } else {
        Err(SyncError::MemcachedUnreachable {
            addr: addr.to_string(),
            reason: format!("refused the sync status key: {:?}", line.trim_end()),
        })
    }
}

pub(crate) fn exptime(ttl: u64) -> u64 {
    if ttl <= MAX_RELATIVE_TTL {
        return ttl;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now + ttl
}

/// Writes every key of `c` (blocking). The keys are split over a few
/// threads, each with its own connection to every server, so rendering the
/// values and memcached's own work both run on more than one core.
pub(crate) fn write(
    servers: &[ServerInfo],
    placement: &Placement,
    c: &Collector,
    namespace: Option<&str>,
    format: ValueFormat,
    ttl: u64,
    progress: &Progress,
) -> Result<WriteOutcome, SyncError> {
    let exp = exptime(ttl);
    let parts = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WRITERS);
    let results: Vec<Result<WriteOutcome, SyncError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|part| {
                s.spawn(move || {
                    write_part(
                        servers, placement, c, part, parts, namespace, format, exp, progress,
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(SyncError::Internal("memcached writer panicked".into()))
                })
            })
            .collect()
    });
    let mut out = WriteOutcome::default();
    for r in results {
        let r = r?;
        for (k, n) in r.keys {
            *out.keys.entry(k).or_default() += n;
        }
        out.written += r.written;
        out.hashed += r.hashed;
        out.too_large.extend(r.too_large);
        out.rejected.extend(r.rejected);
    }
    Ok(out)
}

/// One writer thread's share: every `parts`-th key from `part`.
#[allow(clippy::too_many_arguments)]
fn write_part(
    servers: &[ServerInfo],
    placement: &Placement,
    c: &Collector,
    part: usize,
    parts: usize,
    namespace: Option<&str>,
    format: ValueFormat,
    exp: u64,
    progress: &Progress,
) -> Result<WriteOutcome, SyncError> {
    let mut out = WriteOutcome::default();
    let writer_done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let mut writers = Vec::with_capacity(servers.len());
        let mut readers = Vec::with_capacity(servers.len());
        for info in servers {
            let stream = connect(&info.addr)?;
            let rs = stream.try_clone().map_err(|e| lost(&info.addr, &e))?;
            let done = &writer_done;
            readers.push(s.spawn(move || read_replies(&info.addr, rs, done)));
            writers.push((BufWriter::with_capacity(1 << 18, stream), info));
        }
        let mut failed: Option<SyncError> = None;
        let mut since_tick = 0u64;
        let mut num = itoa::Buffer::new();
        c.for_each_item_of_part(part, parts, namespace, format, |item| {
            if failed.is_some() {
                return;
            }
            let i = placement.server_for(item.key.as_str());
            let (w, info) = &mut writers[i];
            if item.key.as_str().len() + item.value.len() + ITEM_OVERHEAD > info.item_size_max {
                out.too_large.push(item.key.as_str().to_string());
                return;
            }
            let r = (|| {
                w.write_all(b"set ")?;
                w.write_all(item.key.as_str().as_bytes())?;
                w.write_all(b" 0 ")?;
                w.write_all(num.format(exp).as_bytes())?;
                w.write_all(b" ")?;
                w.write_all(num.format(item.value.len()).as_bytes())?;
                w.write_all(b" noreply\r\n")?;
                w.write_all(item.value)?;
                w.write_all(b"\r\n")
            })();
            if let Err(e) = r {
                failed = Some(lost(&info.addr, &e));
                return;
            }
            *out.keys.entry(item.kind.name()).or_default() += 1;
            out.written += 1;
            out.hashed += u64::from(item.key.is_hashed());
            since_tick += 1;
            if since_tick == 8192 {
                progress.inc(since_tick);
                since_tick = 0;
            }
        });
        progress.inc(since_tick);
        for (w, info) in &mut writers {
            if failed.is_none() {
                if let Err(e) = w.write_all(b"version\r\n").and_then(|_| w.flush()) {
                    failed = Some(lost(&info.addr, &e));
                }
            }
        }
        writer_done.store(true, Ordering::Release);
        if failed.is_some() {
            for (w, _) in &writers {
                let _ = w.get_ref().shutdown(Shutdown::Both);
            }
        }
        for h in readers {
            match h.join() {
                Ok(Ok(errors)) => out.rejected.extend(errors),
                Ok(Err(e)) => {
                    failed.get_or_insert(e);
                }
                Err(_) => {
                    failed.get_or_insert(SyncError::Internal(
                        "memcached reply reader panicked".into(),
                    ));
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })?;
    Ok(out)
}

/// Reads what the server sends until the barrier's `VERSION`; every other
/// line is an error for some key.
fn read_replies(
    addr: &str,
    s: TcpStream,
    writer_done: &AtomicBool,
) -> Result<Vec<String>, SyncError> {
    let mut r = BufReader::new(s);
    let mut errors = Vec::new();
    let mut line = String::new();
    let mut deadline: Option<Instant> = None;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) => {
                return Err(lost(
                    addr,
                    &std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the server"),
                ))
            }
            Ok(_) => {
                let l = line.trim_end();
                if l.starts_with("VERSION") {
                    return Ok(errors);
                }
                errors.push(l.to_string());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                // Silence is expected while the writer is still sending; once
                // it is done, the barrier answer must come within the timeout.
                if writer_done.load(Ordering::Acquire) {
                    let d = *deadline.get_or_insert_with(|| Instant::now() + IO_TIMEOUT);
                    if Instant::now() >= d {
                        return Err(SyncError::Memcached {
                            addr: addr.to_string(),
                            reason: "no answer to the final `version` within 30s".into(),
                        });
                    }
                }
            }
            Err(e) => return Err(lost(addr, &e)),
        }
    }
}

/// Evictions now, to compare with [`ServerInfo::evictions`].
pub(crate) fn evictions(addr: &str) -> Option<u64> {
    let stream = connect(addr).ok()?;
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut w = stream;
    let s = stats(addr, &mut w, &mut r, "stats").ok()?;
    s.get("evictions").and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_ttls_become_unix_times() {
        assert_eq!(exptime(1200), 1200);
        assert!(exptime(MAX_RELATIVE_TTL + 1) > 1_700_000_000);
    }
}
