//! `dnsenrich dead-letters replay FILE`: sends the documents of a
//! dead-letter file (see [`super::dead_letter`]) to the Elasticsearch output
//! again, once the cause of their refusal is fixed.
//!
//! FILE is only read, never changed: what the server refuses again goes to a
//! new dead-letter file (with the new reason), and so do lines that cannot be
//! read as dead-letter lines (kept whole, as a string), so no line is lost
//! whatever happens, including a replay stopped half-way.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::dead_letter::DeadLetterFile;
use super::{ElasticsearchConfig, OutputConfig, OutputError, OutputReport, ReopenSignal};
use crate::pipeline::EncodedBatch;

/// Documents per batch handed to the output.
const BATCH_DOCS: usize = 1000;

/// What a replay came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Lines read from the file (empty lines not counted).
    pub lines: u64,
    /// Documents sent.
    pub documents: u64,
    /// Stored now.
    pub stored: u64,
    /// Already stored (409; with `document_ids`).
    pub duplicates: u64,
    /// Refused again, in `refused_path`.
    pub refused: u64,
    /// Lines that were not dead-letter lines, kept in `refused_path`.
    pub unreadable: u64,
    pub refused_path: PathBuf,
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} lines, {} documents sent: {} stored, {} already stored, {} refused again",
            self.lines, self.documents, self.stored, self.duplicates, self.refused
        )?;
        if self.unreadable > 0 {
            write!(f, ", {} unreadable lines", self.unreadable)?;
        }
        if self.refused + self.unreadable > 0 {
            write!(f, " (kept in {})", self.refused_path.display())?;
        }
        Ok(())
    }
}

/// Why a replay could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the refused documents would go to {}, the file being replayed; choose another --refused file", path.display())]
    SameFile { path: PathBuf },
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// Where the documents refused again go by default: `<FILE>.refused.ndjson`
/// beside FILE.
pub fn default_refused_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".refused.ndjson");
    file.with_file_name(name)
}

/// What one dead-letter line holds for a replay.
enum Line {
    /// The document as it was sent.
    Document(Vec<u8>),
    /// Not a dead-letter line; kept as it is.
    Unreadable(String),
}

fn read_line(line: &[u8]) -> Line {
    let unreadable = |why: &str| Line::Unreadable(why.to_owned());
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(mut o)) => match o.remove("document") {
            Some(doc @ Value::Object(_)) => Line::Document(doc.to_string().into_bytes()),
            // A document that was not JSON is kept as a string.
            Some(Value::String(s)) => Line::Document(s.into_bytes()),
            Some(_) => unreadable("its `document` is neither an object nor a string"),
            None => unreadable("it has no `document`"),
        },
        Ok(_) => unreadable("it is not a JSON object"),
        Err(_) => unreadable("it is not JSON"),
    }
}

/// Sends the documents of the dead-letter file `file` to the Elasticsearch
/// output `es` (its `dead_letter_path` is replaced by `refused`), waits until
/// each is stored, already stored or refused again, and reports.
pub async fn replay(
    mut es: ElasticsearchConfig,
    file: &Path,
    refused: &Path,
) -> Result<ReplayReport, ReplayError> {
    if same_file(file, refused) {
        return Err(ReplayError::SameFile {
            path: refused.to_owned(),
        });
    }
    let f = std::fs::File::open(file).map_err(|source| ReplayError::Read {
        path: file.to_owned(),
        source,
    })?;
    es.dead_letter_path = refused.to_owned();
    let output = OutputConfig::Elasticsearch(es).build()?;
    let (tx, rx) = flume::bounded::<EncodedBatch>(4);
    let run = tokio::spawn(output.run(rx, ReopenSignal::never()));

    // Read on a thread of its own: the file may be large and the reads block.
    let path = file.to_owned();
    let reader = tokio::task::spawn_blocking(move || read_into(f, &path, &tx));
    let read = reader.await.expect("the reading thread does not panic");
    // The sender is gone with the reader: the output drains and returns.
    let report: OutputReport = run.await.expect("the output task does not panic")?;
    let read = read?;

    if !read.kept.is_empty() {
        DeadLetterFile::new(refused)
            .append(&read.kept)
            .await
            .map_err(|source| ReplayError::Write {
                path: refused.to_owned(),
                source,
            })?;
    }
    Ok(ReplayReport {
        lines: read.lines,
        documents: read.documents,
        stored: report.stored,
        duplicates: report.duplicates,
        refused: report.dead_lettered,
        unreadable: read.unreadable,
        refused_path: refused.to_owned(),
    })
}

/// What reading the file came to.
struct Read {
    lines: u64,
    documents: u64,
    unreadable: u64,
    /// Dead-letter lines for the unreadable lines.
    kept: Vec<u8>,
}

fn read_into(
    f: std::fs::File,
    path: &Path,
    tx: &flume::Sender<EncodedBatch>,
) -> Result<Read, ReplayError> {
    let mut read = Read {
        lines: 0,
        documents: 0,
        unreadable: 0,
        kept: Vec::new(),
    };
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut line = Vec::new();
    let mut batch = EncodedBatch::default();
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|source| ReplayError::Read {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        read.lines += 1;
        match read_line(text) {
            Line::Document(doc) => {
                batch.docs.extend_from_slice(&doc);
                batch.ends.push(batch.docs.len());
                read.documents += 1;
                if batch.ends.len() >= BATCH_DOCS {
                    // The output is gone only if it failed; its error is reported.
                    if tx.send(std::mem::take(&mut batch)).is_err() {
                        return Ok(read);
                    }
                }
            }
            Line::Unreadable(why) => {
                read.unreadable += 1;
                // No `document`: a replay of the new file keeps it again
                // rather than sending it.
                let kept = serde_json::json!({
                    "error": {
                        "type": "unreadable_dead_letter_line",
                        "reason": format!("line {} of {}: {why}", read.lines, path.display()),
                    },
                    "line": String::from_utf8_lossy(text),
                });
                let _ = serde_json::to_writer(&mut read.kept, &kept);
                read.kept.push(b'\n');
            }
        }
    }
    if !batch.ends.is_empty() {
        let _ = tx.send(batch);
    }
    Ok(read)
}

/// Whether two paths name one file (or the same path, if it does not exist).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::super::dead_letter;
    use super::*;

    #[test]
    fn a_dead_letter_line_gives_back_the_document_as_sent() {
        let mut out = Vec::new();
        let err = serde_json::json!({"type": "mapper_parsing_exception"});
        dead_letter::push_line(&mut out, 400, &err, "dns", br#"{"a":{"b":1}}"#);
        dead_letter::push_line(&mut out, 400, &err, "dns", b"not json");
        let lines: Vec<&[u8]> = out
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert!(matches!(read_line(lines[0]), Line::Document(d) if d == br#"{"a":{"b":1}}"#));
        assert!(matches!(read_line(lines[1]), Line::Document(d) if d == b"not json"));
        assert!(matches!(read_line(b"garbage"), Line::Unreadable(_)));
        assert!(matches!(
            read_line(br#"{"status":400}"#),
            Line::Unreadable(_)
        ));
        assert!(matches!(read_line(br#"[1]"#), Line::Unreadable(_)));
    }

    #[test]
    fn refused_documents_go_beside_the_file() {
        assert_eq!(
            default_refused_path(Path::new("/var/lib/dnsenrich/dead-letter.ndjson")),
            Path::new("/var/lib/dnsenrich/dead-letter.ndjson.refused.ndjson")
        );
    }
}
