//! What building the stages needs beyond each stage's own config section.
//!
//! A section such as `[input.file]` or `[output]` describes that stage alone;
//! a few settings come from the daemon as a whole — where state lives, and how
//! long the drain may take. [`BuildContext`] carries them to the stages that
//! need them, so the user's configuration is never rewritten on the way: a
//! stage's effective settings are derived from its section and the context.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::input::{FileConfig, InputsConfig};
use crate::output::buffer::BufferConfig;
use crate::output::OutputConfig;

/// The daemon-wide settings the stages are built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildContext {
    /// Where state lives: file offsets (unless `[input.file] state_dir` is
    /// set) and relative dead-letter paths.
    pub state_dir: PathBuf,
    /// How long the drain may take once the inputs stop.
    pub drain_deadline: Duration,
}

impl BuildContext {
    /// The context of a configuration: its `state_dir` and
    /// `shutdown_timeout_secs`.
    pub fn new(cfg: &Config) -> Self {
        BuildContext {
            state_dir: cfg.state_dir.clone(),
            drain_deadline: Duration::from_secs(cfg.shutdown_timeout_secs),
        }
    }

    /// The inputs' settings as built: the file input keeps its offsets in the
    /// daemon's state directory unless its own `state_dir` was changed from
    /// the default, and waits at shutdown for its last batches to be stored
    /// for as long as the drain may take (less a margin to save the offsets),
    /// so a clean stop commits everything shipped; the RELP input waits as
    /// long to answer its last messages, so its senders need not resend them.
    pub fn inputs(&self, cfg: &InputsConfig) -> InputsConfig {
        let mut cfg = cfg.clone();
        if cfg.file.state_dir == FileConfig::default().state_dir {
            cfg.file.state_dir = self.state_dir.clone();
        }
        cfg.file.ack_wait = Some(
            self.drain_deadline
                .saturating_sub(Duration::from_millis(500)),
        );
        cfg.relp.ack_wait = cfg.file.ack_wait;
        cfg
    }

    /// The output's settings as built: a relative dead-letter path is resolved
    /// against the state directory; an absolute one is kept.
    pub fn output(&self, cfg: &OutputConfig) -> OutputConfig {
        let mut cfg = cfg.clone();
        if let OutputConfig::Elasticsearch(es) = &mut cfg {
            es.dead_letter_path = self.state_path(&es.dead_letter_path);
        }
        cfg
    }

    /// The buffer's settings as built: a relative `path` is resolved against
    /// the state directory; an absolute one is kept.
    pub fn buffer(&self, cfg: &BufferConfig) -> BufferConfig {
        cfg.clone().with_state_dir(&self.state_dir)
    }

    fn state_path(&self, p: &Path) -> PathBuf {
        self.state_dir.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::ElasticsearchConfig;

    fn ctx() -> BuildContext {
        BuildContext {
            state_dir: "/var/lib/dnsenrich-test".into(),
            drain_deadline: Duration::from_secs(10),
        }
    }

    #[test]
    fn state_dir_applies_to_relative_dead_letter_paths_only() {
        let OutputConfig::Elasticsearch(es) =
            ctx().output(&OutputConfig::Elasticsearch(ElasticsearchConfig::default()))
        else {
            unreachable!()
        };
        assert_eq!(
            es.dead_letter_path,
            Path::new("/var/lib/dnsenrich-test/dead-letter.ndjson")
        );

        let es = ElasticsearchConfig {
            dead_letter_path: "/srv/dl.ndjson".into(),
            ..Default::default()
        };
        let OutputConfig::Elasticsearch(es) = ctx().output(&OutputConfig::Elasticsearch(es)) else {
            unreachable!()
        };
        assert_eq!(es.dead_letter_path, Path::new("/srv/dl.ndjson"));
    }

    #[test]
    fn the_buffer_lives_under_the_state_dir_unless_absolute() {
        let built = ctx().buffer(&BufferConfig::default());
        assert_eq!(built.path, Path::new("/var/lib/dnsenrich-test/buffer"));
        let own = BufferConfig {
            path: "/srv/buffer".into(),
            ..Default::default()
        };
        assert_eq!(ctx().buffer(&own).path, Path::new("/srv/buffer"));
    }

    #[test]
    fn file_offsets_follow_the_state_dir_unless_set_and_wait_for_the_drain() {
        let built = ctx().inputs(&InputsConfig::default());
        assert_eq!(built.file.state_dir, Path::new("/var/lib/dnsenrich-test"));
        assert_eq!(built.file.ack_wait, Some(Duration::from_millis(9_500)));
        assert_eq!(built.relp.ack_wait, Some(Duration::from_millis(9_500)));

        let mut own = InputsConfig::default();
        own.file.state_dir = "/srv/offsets".into();
        let built = ctx().inputs(&own);
        assert_eq!(built.file.state_dir, Path::new("/srv/offsets"));
    }
}
