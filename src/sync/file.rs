//! `--to-file`: the key set as the in-process store file, one NDJSON line per
//! key — `{"key":"domain-evil.example","value":{…}}` (in plain mode the
//! value is a string) — sorted by key, written to a temporary file beside
//! the target and renamed over it, so a reader never sees half a file. The
//! store is keyed without the memcached namespace, so the file is too, and
//! the keys are written before key safety: the store makes each one safe
//! as it loads it (`domain-bad name.example` → `domain-#…`), exactly as for
//! memcached, so hashed keys are not hashed twice.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::collect::Collector;
use super::config::ValueFormat;
use super::http::io_reason;
use super::target::WriteOutcome;
use super::SyncError;

/// Writes the file; returns the keys written by kind, and the hashed count.
pub(crate) fn write(
    path: &Path,
    c: &Collector,
    format: ValueFormat,
) -> Result<WriteOutcome, SyncError> {
    let err = |e: std::io::Error| SyncError::WriteFile {
        path: path.to_owned(),
        reason: io_reason(&e),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut out = WriteOutcome::default();
    let result = (|| {
        let f = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 18, f);
        for item in c.sorted_items(None, format) {
            w.write_all(b"{\"key\":")?;
            serde_json::to_writer(&mut w, &item.raw)?;
            w.write_all(b",\"value\":")?;
            match format {
                ValueFormat::Json => w.write_all(&item.value)?,
                ValueFormat::Plain => {
                    serde_json::to_writer(&mut w, &String::from_utf8_lossy(&item.value))?
                }
            }
            w.write_all(b"}\n")?;
            *out.keys.entry(item.kind.name()).or_default() += 1;
            out.written += 1;
            out.hashed += u64::from(item.key.is_hashed());
        }
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(out)
}
