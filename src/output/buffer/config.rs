//! `[buffer]`: where encoded batches wait for the output — in the pipeline's
//! memory (the default) or in a disk buffer that outlives crashes and outages.
//!
//! ```toml
//! [buffer]
//! type = "disk"              # or "memory" (the default)
//! path = "buffer"            # relative to the state directory
//! max_bytes = 1073741824     # 1 GiB
//! when_full = "block"        # or "drop_newest"
//! sync = "interval"          # or "always"
//! sync_interval_ms = 500
//! sync_bytes = 4194304
//! high_water_percent = 90    # /ready answers 503 above this fill level
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Memory or disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    #[default]
    Memory,
    Disk,
}

/// What a writer does when the disk buffer holds `max_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait until the output acknowledges enough to free a segment; the
    /// pipeline backs up and inputs push back as they do without a buffer.
    #[default]
    Block,
    /// Refuse the batch and count its documents as dropped.
    DropNewest,
}

/// When appended records are forced to disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicy {
    /// Every `sync_interval_ms`, or sooner once `sync_bytes` are unsynced.
    #[default]
    Interval,
    /// After every batch.
    Always,
}

/// `[buffer]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    #[serde(rename = "type")]
    pub kind: BufferType,
    /// The disk buffer's directory; relative to the state directory.
    pub path: PathBuf,
    /// Bytes of segment files the disk buffer may hold.
    pub max_bytes: u64,
    pub when_full: WhenFull,
    pub sync: SyncPolicy,
    pub sync_interval_ms: u64,
    pub sync_bytes: u64,
    /// `/ready` answers 503 while the disk buffer holds more than this share
    /// of `max_bytes`, in percent.
    pub high_water_percent: u8,
}

/// The smallest `max_bytes` accepted: room for a few segments of useful size.
pub const MIN_MAX_BYTES: u64 = 1024 * 1024;
/// Segment files are at most this large (smaller when `max_bytes` is small,
/// so that acknowledged segments free space in useful steps).
pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            kind: BufferType::Memory,
            path: PathBuf::from("buffer"),
            max_bytes: 1024 * 1024 * 1024,
            when_full: WhenFull::Block,
            sync: SyncPolicy::Interval,
            sync_interval_ms: 500,
            sync_bytes: 4 * 1024 * 1024,
            high_water_percent: 90,
        }
    }
}

/// A `[buffer]` setting is out of range; `key` is its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("buffer.{key}: {reason}")]
pub struct InvalidBufferConfig {
    pub key: &'static str,
    pub reason: String,
}

fn invalid(key: &'static str, reason: impl Into<String>) -> InvalidBufferConfig {
    InvalidBufferConfig {
        key,
        reason: reason.into(),
    }
}

impl BufferConfig {
    /// Checks the values; the disk settings only matter for `type = "disk"`.
    pub fn validate(&self) -> Result<(), InvalidBufferConfig> {
        if self.kind == BufferType::Memory {
            return Ok(());
        }
        if self.path.as_os_str().is_empty() {
            return Err(invalid("path", "must not be empty"));
        }
        if self.max_bytes < MIN_MAX_BYTES {
            return Err(invalid(
                "max_bytes",
                format!("{} is too small (at least {MIN_MAX_BYTES})", self.max_bytes),
            ));
        }
        if !(1..=100).contains(&self.high_water_percent) {
            return Err(invalid("high_water_percent", "must be 1 to 100"));
        }
        if self.sync == SyncPolicy::Interval {
            if !(1..=60_000).contains(&self.sync_interval_ms) {
                return Err(invalid("sync_interval_ms", "must be 1 to 60000"));
            }
            if self.sync_bytes == 0 {
                return Err(invalid("sync_bytes", "must be at least 1"));
            }
        }
        Ok(())
    }

    /// Resolves a relative `path` against `dir`; an absolute path is kept.
    pub fn with_state_dir(mut self, dir: &Path) -> Self {
        self.path = dir.join(&self.path);
        self
    }

    /// The bytes above which `/ready` counts the disk buffer as nearly full.
    pub fn high_water_bytes(&self) -> u64 {
        (self.max_bytes as u128 * u128::from(self.high_water_percent) / 100) as u64
    }

    /// The settings a [`super::DiskBuffer`] opens with.
    pub fn disk_options(&self) -> super::DiskOptions {
        super::DiskOptions {
            max_bytes: self.max_bytes,
            segment_bytes: (self.max_bytes / 8).clamp(64 * 1024, MAX_SEGMENT_BYTES),
            when_full: self.when_full,
            sync: self.sync,
            sync_interval: Duration::from_millis(self.sync_interval_ms),
            sync_bytes: self.sync_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_memory_and_parses_every_key() {
        let c: BufferConfig = toml::from_str("").unwrap();
        assert_eq!(c, BufferConfig::default());
        assert_eq!(c.kind, BufferType::Memory);
        let c: BufferConfig = toml::from_str(
            "type = \"disk\"\npath = \"/srv/buf\"\nmax_bytes = 2097152\nwhen_full = \"drop_newest\"\n\
             sync = \"always\"\nsync_interval_ms = 100\nsync_bytes = 10\n",
        )
        .unwrap();
        assert_eq!(c.kind, BufferType::Disk);
        assert_eq!(c.when_full, WhenFull::DropNewest);
        assert_eq!(c.sync, SyncPolicy::Always);
        assert_eq!(
            (c.max_bytes, c.sync_interval_ms, c.sync_bytes),
            (2097152, 100, 10)
        );
        c.validate().unwrap();
    }

    #[test]
    fn refuses_unknown_keys_and_values() {
        let err = toml::from_str::<BufferConfig>("max_size = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `max_size`"), "{err}");
        assert!(toml::from_str::<BufferConfig>("when_full = \"drop_oldest\"\n").is_err());
        assert!(toml::from_str::<BufferConfig>("type = \"redis\"\n").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let disk = BufferConfig {
            kind: BufferType::Disk,
            ..Default::default()
        };
        let check = |c: BufferConfig| c.validate().unwrap_err().to_string();
        let e = check(BufferConfig {
            max_bytes: 10,
            ..disk.clone()
        });
        assert!(e.starts_with("buffer.max_bytes: "), "{e}");
        let e = check(BufferConfig {
            path: PathBuf::new(),
            ..disk.clone()
        });
        assert!(e.starts_with("buffer.path: "), "{e}");
        let e = check(BufferConfig {
            sync_interval_ms: 0,
            ..disk.clone()
        });
        assert!(e.starts_with("buffer.sync_interval_ms: "), "{e}");
        let e = check(BufferConfig {
            sync_bytes: 0,
            ..disk.clone()
        });
        assert!(e.starts_with("buffer.sync_bytes: "), "{e}");
        let e = check(BufferConfig {
            high_water_percent: 0,
            ..disk.clone()
        });
        assert!(e.starts_with("buffer.high_water_percent: "), "{e}");
        assert_eq!(
            BufferConfig {
                max_bytes: 1000,
                high_water_percent: 90,
                ..disk.clone()
            }
            .high_water_bytes(),
            900
        );
        // Memory mode ignores the disk settings.
        BufferConfig {
            max_bytes: 0,
            ..Default::default()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn segments_scale_with_max_bytes() {
        let c = BufferConfig {
            max_bytes: 1 << 40,
            ..Default::default()
        };
        assert_eq!(c.disk_options().segment_bytes, MAX_SEGMENT_BYTES);
        let c = BufferConfig {
            max_bytes: MIN_MAX_BYTES,
            ..Default::default()
        };
        assert_eq!(c.disk_options().segment_bytes, 128 * 1024);
        let c = BufferConfig::default().with_state_dir(Path::new("/var/lib/dnsenrich"));
        assert_eq!(c.path, Path::new("/var/lib/dnsenrich/buffer"));
    }
}
