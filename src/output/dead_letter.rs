//! The dead-letter file: documents Elasticsearch refused for good (a mapping
//! error, a missing index), kept with the server's reason so nothing is lost
//! silently and the data can be fixed and sent again.
//!
//! One JSON object per line, appended:
//!
//! ```text
//! {"@timestamp":"2026-11-28T01:02:03.456Z","status":400,
//!  "error":{"type":"mapper_parsing_exception","reason":"failed to parse field [source.ip] ..."},
//!  "index":"logs-pihole.dns-default","document":{ ...the document as sent... }}
//! ```
//!
//! The file is created on first use and closed on a reopen request; the next
//! write opens it again by name (for logrotate). It is created 0600: it holds
//! client addresses and queried names.

use std::path::{Path, PathBuf};

use serde::de::IgnoredAny;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::event::format_timestamp;

/// An append-only dead-letter file shared by the requests in flight.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: Mutex<Option<tokio::fs::File>>,
}

impl DeadLetterFile {
    /// A dead-letter file at `path`; nothing is opened yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DeadLetterFile {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends whole lines and hands them to the operating system before
    /// returning, so the caller may then ack the documents.
    pub async fn append(&self, lines: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock().await;
        if guard.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                tokio::fs::create_dir_all(dir).await?;
            }
            let f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                // Client addresses and queried names: for the daemon's user only.
                .mode(0o600)
                .open(&self.path)
                .await?;
            *guard = Some(f);
        }
        let Some(f) = guard.as_mut() else {
            unreachable!("opened above")
        };
        let res = match f.write_all(lines).await {
            Ok(()) => f.flush().await,
            Err(e) => Err(e),
        };
        if res.is_err() {
            // Start from a fresh handle next time.
            *guard = None;
        }
        res
    }

    /// Closes the file; the next [`append`](Self::append) reopens it by name.
    pub async fn close(&self) {
        *self.file.lock().await = None;
    }
}

/// Appends one dead-letter line for `doc`, refused with `status` and `error`
/// when sent to `index`. A document that is not valid JSON is kept as a string.
pub fn push_line(out: &mut Vec<u8>, status: u16, error: &Value, index: &str, doc: &[u8]) {
    let mut ts = String::with_capacity(32);
    format_timestamp(&chrono::Utc::now(), &mut ts);
    out.extend_from_slice(b"{\"@timestamp\":");
    write_json(out, &ts);
    out.extend_from_slice(b",\"status\":");
    out.extend_from_slice(status.to_string().as_bytes());
    out.extend_from_slice(b",\"error\":");
    write_json(out, error);
    out.extend_from_slice(b",\"index\":");
    write_json(out, index);
    out.extend_from_slice(b",\"document\":");
    if serde_json::from_slice::<IgnoredAny>(doc).is_ok() {
        out.extend_from_slice(doc);
    } else {
        write_json(out, &String::from_utf8_lossy(doc));
    }
    out.extend_from_slice(b"}\n");
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Strings and JSON values always serialise.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_carries_status_reason_index_and_the_document_itself() {
        let mut out = Vec::new();
        let err = serde_json::json!({"type":"mapper_parsing_exception","reason":"bad ip"});
        push_line(&mut out, 400, &err, "dns", br#"{"source":{"ip":"nope"}}"#);
        push_line(&mut out, 400, &err, "dns", b"not json \"at all\"");
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["status"], 400);
        assert_eq!(lines[0]["error"]["reason"], "bad ip");
        assert_eq!(lines[0]["index"], "dns");
        assert_eq!(lines[0]["document"]["source"]["ip"], "nope");
        assert!(lines[0]["@timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["document"], "not json \"at all\"");
    }

    #[tokio::test]
    async fn file_is_created_on_first_use_and_reopened_after_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/dead-letter.ndjson");
        let dl = DeadLetterFile::new(&path);
        assert!(!path.exists());
        dl.append(b"{\"n\":1}\n").await.unwrap();
        let rotated = dir.path().join("dead-letter.ndjson.1");
        std::fs::rename(&path, &rotated).unwrap();
        dl.close().await;
        dl.append(b"{\"n\":2}\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "{\"n\":1}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");
    }

    #[tokio::test]
    async fn file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        // The usual umask, under which a plain create gives 0644.
        // SAFETY: umask only swaps the process's creation mask.
        unsafe { libc::umask(0o022) };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letter.ndjson");
        DeadLetterFile::new(&path).append(b"{}\n").await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
