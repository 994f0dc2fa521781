//! The NDJSON output: one JSON document per line, to stdout or a file.
//!
//! Documents are gathered in a buffer and written out when it fills, when the
//! flush interval passes, before a reopen, and at the end. A batch is acked once
//! the write that holds it has reached the operating system (written and
//! flushed; not fsynced). On a reopen request the file is closed and opened
//! again by name, so logrotate can move it away and signal us.
//!
//! Each write-out is one `write_all` of the whole buffer on the blocking pool
//! (the buffer and the file go there and come back): one thread hand-off per
//! 256 KiB instead of `tokio::fs`'s one per chunk of its own buffer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::io::Write;

use serde::{Deserialize, Serialize};

use super::{OutputError, OutputReport, OutputStats, ReopenSignal};
use crate::pipeline::{Ack, EncodedBatch, EncodedReceiver};

/// Write out when this much is buffered, even before the flush interval.
const BUFFER_BYTES: usize = 256 * 1024;

/// `[output] type = "ndjson"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NdjsonConfig {
    /// The file to append to; `-` is stdout.
    pub path: PathBuf,
    /// The longest a document waits in the buffer, in milliseconds.
    pub flush_interval_ms: u64,
}

impl Default for NdjsonConfig {
    fn default() -> Self {
        NdjsonConfig {
            path: PathBuf::from("-"),
            flush_interval_ms: 1000,
        }
    }
}

impl NdjsonConfig {
    /// Checks the settings and opens the file (creating it if needed).
    pub fn build(&self) -> Result<NdjsonOutput, OutputError> {
        if self.flush_interval_ms == 0 {
            return Err(OutputError::config(
                "flush_interval_ms",
                "must be at least 1",
            ));
        }
        let path = (self.path != Path::new("-")).then(|| self.path.clone());
        let sink = match &path {
            Some(p) => Sink::File(open_append(p).map_err(|source| OutputError::Io {
                what: "cannot open the output file",
                path: p.clone(),
                source,
            })?),
            None => Sink::Stdout,
        };
        Ok(NdjsonOutput {
            path,
            sink: Some(sink),
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            stats: Arc::default(),
        })
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

enum Sink {
    Stdout,
    File(std::fs::File),
}

impl Sink {
    /// Writes all of `buf` and flushes (blocking).
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Sink::File(f) => f.write_all(buf),
        }
    }
}

/// A running NDJSON output.
pub struct NdjsonOutput {
    /// `None` for stdout.
    path: Option<PathBuf>,
    /// Away on the blocking pool during a write-out.
    sink: Option<Sink>,
    flush_interval: Duration,
    stats: Arc<OutputStats>,
}

impl std::fmt::Debug for NdjsonOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonOutput")
            .field("path", &self.path)
            .field("flush_interval", &self.flush_interval)
            .finish_non_exhaustive()
    }
}

/// What has been buffered but not yet written.
#[derive(Default)]
struct Pending {
    buf: Vec<u8>,
    docs: usize,
    acks: Vec<Ack>,
}

impl Pending {
    fn push(&mut self, batch: EncodedBatch) {
        for i in 0..batch.len() {
            self.buf.extend_from_slice(batch.doc(i));
            self.buf.push(b'\n');
        }
        self.docs += batch.len();
        self.acks.extend(batch.acks);
    }
}

impl NdjsonOutput {
    /// The live counters.
    pub fn stats(&self) -> Arc<OutputStats> {
        self.stats.clone()
    }

    /// Writes batches until `rx` is closed and empty; see the module docs.
    pub async fn run(
        mut self,
        rx: EncodedReceiver,
        mut reopen: ReopenSignal,
    ) -> Result<OutputReport, OutputError> {
        let mut pending = Pending {
            buf: Vec::with_capacity(BUFFER_BYTES + BUFFER_BYTES / 4),
            ..Pending::default()
        };
        let mut tick = tokio::time::interval(self.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv_async() => match msg {
                    Ok(batch) => {
                        OutputStats::add(&self.stats.sent, batch.len());
                        pending.push(batch);
                        if pending.buf.len() >= BUFFER_BYTES {
                            self.write_out(&mut pending).await?;
                        }
                    }
                    Err(_) => break,
                },
                _ = tick.tick() => self.write_out(&mut pending).await?,
                _ = reopen.requested() => {
                    self.write_out(&mut pending).await?;
                    self.reopen()?;
                }
            }
        }
        self.write_out(&mut pending).await?;
        Ok(self.stats.report())
    }

    /// Writes and flushes the buffer, then fires its acks.
    async fn write_out(&mut self, pending: &mut Pending) -> Result<(), OutputError> {
        if pending.buf.is_empty() && pending.acks.is_empty() {
            return Ok(());
        }
        let Some(mut sink) = self.sink.take() else {
            return Err(self.io_error(std::io::Error::other("the output file was lost")));
        };
        let buf = std::mem::take(&mut pending.buf);
        let (sink, buf, res) = tokio::task::spawn_blocking(move || {
            let res = sink.write_all(&buf);
            (sink, buf, res)
        })
        .await
        .map_err(|e| self.io_error(std::io::Error::other(e)))?;
        self.sink = Some(sink);
        pending.buf = buf;
        res.map_err(|source| self.io_error(source))?;
        pending.buf.clear();
        OutputStats::add(&self.stats.stored, std::mem::take(&mut pending.docs));
        self.stats.ack_all(pending.acks.drain(..));
        Ok(())
    }

    fn io_error(&self, source: std::io::Error) -> OutputError {
        OutputError::Io {
            what: "cannot write to",
            path: self.path.clone().unwrap_or_else(|| PathBuf::from("stdout")),
            source,
        }
    }

    /// Closes the file and opens it again by name (stdout is left alone).
    fn reopen(&mut self) -> Result<(), OutputError> {
        if let Some(path) = &self.path {
            let f = open_append(path).map_err(|source| OutputError::Io {
                what: "cannot reopen the output file",
                path: path.clone(),
                source,
            })?;
            self.sink = Some(Sink::File(f));
            tracing::info!(path = %path.display(), "reopened the output file");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::reopen_channel;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn batch(docs: &[&str], acked: &Arc<AtomicUsize>) -> EncodedBatch {
        let mut b = EncodedBatch::default();
        for d in docs {
            b.docs.extend_from_slice(d.as_bytes());
            b.ends.push(b.docs.len());
        }
        let a = acked.clone();
        b.acks.push(Ack::new(move || {
            a.fetch_add(1, Ordering::SeqCst);
        }));
        b
    }

    fn config(path: &Path, flush_interval_ms: u64) -> NdjsonConfig {
        NdjsonConfig {
            path: path.to_owned(),
            flush_interval_ms,
        }
    }

    #[tokio::test]
    async fn writes_one_line_per_document_and_acks_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let out = config(&path, 60_000).build().unwrap();
        let stats = out.stats();
        let (tx, rx) = flume::bounded(4);
        let acked = Arc::new(AtomicUsize::new(0));
        tx.send_async(batch(&[r#"{"a":1}"#, r#"{"a":2}"#], &acked))
            .await
            .unwrap();
        tx.send_async(batch(&[r#"{"a":3}"#], &acked)).await.unwrap();
        drop(tx);
        let report = out.run(rx, ReopenSignal::never()).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"
        );
        assert_eq!(acked.load(Ordering::SeqCst), 2);
        assert_eq!(
            (report.sent, report.stored, report.batches_acked),
            (3, 3, 2)
        );
        assert_eq!(stats.report(), report);
    }

    #[tokio::test]
    async fn flushes_on_the_interval_and_only_then_acks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let out = config(&path, 30).build().unwrap();
        let (tx, rx) = flume::bounded(4);
        let task = tokio::spawn(out.run(rx, ReopenSignal::never()));
        let acked = Arc::new(AtomicUsize::new(0));
        tx.send_async(batch(&[r#"{"a":1}"#], &acked)).await.unwrap();
        for _ in 0..200 {
            if acked.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(acked.load(Ordering::SeqCst), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n");
        drop(tx);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn reopen_starts_a_new_file_after_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let rotated = dir.path().join("out.ndjson.1");
        let out = config(&path, 60_000).build().unwrap();
        let (trigger, reopen) = reopen_channel();
        let (tx, rx) = flume::bounded(4);
        let task = tokio::spawn(out.run(rx, reopen));
        let acked = Arc::new(AtomicUsize::new(0));
        tx.send_async(batch(&[r#"{"before":1}"#], &acked))
            .await
            .unwrap();
        // Wait until the batch has been taken in before rotating.
        for _ in 0..200 {
            if tx.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        std::fs::rename(&path, &rotated).unwrap();
        trigger.trigger();
        for _ in 0..200 {
            if acked.load(Ordering::SeqCst) == 1 && path.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tx.send_async(batch(&[r#"{"after":1}"#], &acked))
            .await
            .unwrap();
        drop(tx);
        task.await.unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "{\"before\":1}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"after\":1}\n");
        assert_eq!(acked.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn refuses_a_zero_interval_and_an_unopenable_file() {
        let err = config(Path::new("-"), 0).build().unwrap_err();
        assert_eq!(
            err.to_string(),
            "output.flush_interval_ms: must be at least 1"
        );
        let err = config(Path::new("/nonexistent-dir/x.ndjson"), 10)
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x.ndjson"),
            "{err}"
        );
    }
}
