//! Runs the real `rsyslogd` (Debian `rsyslog` + `rsyslog-relp`) as a plain
//! process for a test: its own configuration, work directory and pid file,
//! no system socket (imuxsock is not loaded), stopped when dropped.
//!
//! ```ignore
//! let r = Rsyslog::start(&config_text);   // fails with the install command if absent
//! ```

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The module directory of Debian's rsyslog.
fn module_dir() -> Option<PathBuf> {
    let lib = Path::new("/usr/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("rsyslog"))
        .find(|p| p.join("omrelp.so").is_file())
}

/// Panics with the install command unless rsyslogd and its RELP modules are
/// installed.
pub fn require() {
    let have_rsyslogd = Command::new("rsyslogd")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have_rsyslogd || module_dir().is_none() {
        panic!(
            "rsyslogd with omrelp is not installed; install it with \
             `apt-get install rsyslog rsyslog-relp`"
        );
    }
}

/// A running rsyslogd.
pub struct Rsyslog {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Rsyslog {
    /// Starts rsyslogd with `config` (after a `global(workDirectory=...)`
    /// line pointing into its own directory) and waits until it has read it.
    pub fn start(config: &str) -> Rsyslog {
        Self::start_in(
            tempfile::tempdir().expect("a directory for rsyslog"),
            config,
        )
    }

    /// As [`Rsyslog::start`], in `dir` (kept across restarts, with the queue
    /// files in `dir/work`).
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Rsyslog {
        require();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).expect("create rsyslog's work directory");
        let conf = dir.path().join("rsyslog.conf");
        let text = format!("global(workDirectory=\"{}\")\n{config}\n", work.display());
        std::fs::write(&conf, text).expect("write rsyslog.conf");
        let check = Command::new("rsyslogd")
            .arg("-N1")
            .arg("-f")
            .arg(&conf)
            .output()
            .expect("run rsyslogd -N1");
        assert!(
            check.status.success(),
            "rsyslogd refuses the configuration:\n{}\n{}",
            String::from_utf8_lossy(&check.stderr),
            std::fs::read_to_string(&conf).unwrap_or_default()
        );
        let log = std::fs::File::create(dir.path().join("rsyslogd.log")).expect("rsyslog log");
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start rsyslogd");
        let r = Rsyslog {
            child: Some(child),
            dir,
        };
        r.wait_pid_file();
        r
    }

    fn wait_pid_file(&self) {
        let pid = self.dir.path().join("rsyslogd.pid");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pid.exists() {
            assert!(
                Instant::now() < deadline,
                "rsyslogd did not start within 10 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What rsyslogd printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// Stops rsyslogd with SIGTERM (it saves its queue) and gives back its
    /// directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        self.terminate();
        let dir = tempfile::tempdir().expect("a placeholder directory");
        std::mem::replace(&mut self.dir, dir)
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child, not reaped yet.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.terminate();
    }
}
