//! Runs the real `dnsenrich` binary for end-to-end tests: writes a
//! configuration file, starts `dnsenrich run --config FILE` with it, learns the
//! ports it bound from the line it announces on stderr, and stops it with
//! SIGTERM (a clean drain) or SIGKILL (a crash). Also the real syslog client,
//! util-linux `logger`.
//!
//! ```ignore
//! let state = tempfile::tempdir().unwrap();
//! // UDP and TCP on loopback port 0, NDJSON to stdout (captured to a file).
//! let mut d = DaemonBuilder::new(state.path()).start();
//! let port = d.tcp().port().to_string();
//! logger(&["-n", "127.0.0.1", "-P", &port, "-T", "-t", "dnsmasq"], b"hello\n");
//! wait_until("one event", WAIT, || d.events().len() == 1);
//! assert!(d.sigterm().success());
//! assert_eq!(d.stopped().lines, 1);
//! ```
//!
//! The daemon's stderr and stdout go to files in a directory the [`Daemon`]
//! owns, so a test can read them at any moment and they stay complete after
//! the process exits. The process is killed when the [`Daemon`] is dropped.
//! Every wait is bounded; a daemon that exits early or does not start fails
//! the test with its stderr.

#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_dnsenrich");

/// How long the daemon may take to announce its addresses.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// `shutdown_timeout_secs` in the configuration the builder writes.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// How long a stop may take: the drain deadline plus a margin.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 5);

/// How a started daemon is configured: a TOML table (written to a file) and
/// the command-line flags after `run --config FILE`.
#[derive(Debug, Clone)]
pub struct DaemonBuilder {
    config: toml::Table,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    under: Vec<OsString>,
}

impl DaemonBuilder {
    /// A configuration for tests: state in `state_dir`, RFC 3164 stamps read
    /// as UTC, UDP and TCP on `127.0.0.1:0` (the ports chosen are announced),
    /// NDJSON on stdout flushed every 50 ms, a drain deadline of
    /// [`SHUTDOWN_TIMEOUT_SECS`].
    pub fn new(state_dir: &Path) -> Self {
        let text = format!(
            r#"
            state_dir = {state}
            shutdown_timeout_secs = {SHUTDOWN_TIMEOUT_SECS}
            [parse]
            timezone = "UTC"
            [input.udp]
            listen = ["127.0.0.1:0"]
            recv_buffer_bytes = 1048576
            [input.tcp]
            listen = ["127.0.0.1:0"]
            [output]
            type = "ndjson"
            path = "-"
            flush_interval_ms = 50
            "#,
            state = toml::Value::String(state_dir.display().to_string()),
        );
        DaemonBuilder {
            config: text.parse().expect("the base test configuration is TOML"),
            args: Vec::new(),
            env: Vec::new(),
            under: Vec::new(),
        }
    }

    /// Merges TOML into the configuration: tables are merged key by key,
    /// anything else is replaced. An `[output]` table that names a `type`
    /// replaces the whole output section (the two types have different keys).
    pub fn config(mut self, toml_text: &str) -> Self {
        let extra: toml::Table = toml_text
            .parse()
            .unwrap_or_else(|e| panic!("test configuration is not TOML: {e}\n{toml_text}"));
        if let Some(out) = extra.get("output").and_then(toml::Value::as_table) {
            if out.contains_key("type") {
                self.config.remove("output");
            }
        }
        merge(&mut self.config, extra);
        self
    }

    /// Ships to Elasticsearch with `--elasticsearch URL --index NAME`, with a
    /// short flush interval and short retry delays so faults heal quickly.
    /// The request timeout stays at its default (30 s): a request that times
    /// out is sent again whole, which would store its documents twice.
    pub fn elasticsearch(self, url: &str, index: &str) -> Self {
        self.config(
            r#"
            [output]
            type = "elasticsearch"
            flush_interval_ms = 100
            [output.retry]
            initial_backoff_ms = 50
            max_backoff_ms = 500
            "#,
        )
        .arg("--elasticsearch")
        .arg(url)
        .arg("--index")
        .arg(index)
    }

    /// Writes NDJSON to `path` (appending) instead of stdout.
    pub fn ndjson_file(self, path: &Path) -> Self {
        let path = toml::Value::String(path.display().to_string());
        self.config(&format!(
            "[output]\ntype = \"ndjson\"\npath = {path}\nflush_interval_ms = 50\n"
        ))
    }

    /// Turns the UDP and TCP inputs off (flags such as `--listen-tcp` or
    /// `--tail` add back what a test needs).
    pub fn no_network(self) -> Self {
        self.config("[input.udp]\nlisten = []\n[input.tcp]\nlisten = []\n")
    }

    /// One more command-line flag or value.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    /// One more environment variable for the daemon.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs the daemon under another program, which is given the daemon's
    /// command line after `command` (for example
    /// `["systemd-socket-activate", "-l", ADDR]`). The program must exec the
    /// daemon, so that signals sent to the process reach it.
    pub fn under(mut self, command: &[&str]) -> Self {
        self.under = command.iter().map(OsString::from).collect();
        self
    }

    /// Removes one key (`input.udp.listen`) from the configuration, so the
    /// daemon's default for it applies.
    pub fn unset(mut self, dotted: &str) -> Self {
        let mut parts: Vec<&str> = dotted.split('.').collect();
        let last = parts.pop().expect("a key");
        let mut table = &mut self.config;
        for p in parts {
            table = table
                .get_mut(p)
                .and_then(toml::Value::as_table_mut)
                .unwrap_or_else(|| panic!("no table {p} in the test configuration"));
        }
        table.remove(last);
        self
    }

    /// The configuration file's text.
    pub fn config_text(&self) -> String {
        toml::to_string(&self.config).expect("the configuration serialises")
    }

    /// Starts the daemon and waits until it announces where it listens.
    pub fn start(self) -> Daemon {
        let mut d = self.spawn();
        d.wait_listening();
        d
    }

    /// Starts the daemon without waiting for anything.
    pub fn spawn(self) -> Daemon {
        let dir = tempfile::tempdir().expect("a directory for the daemon's files");
        let config_path = dir.path().join("dnsenrich.toml");
        std::fs::write(&config_path, self.config_text()).expect("write the configuration");
        let stderr_path = dir.path().join("stderr.log");
        let stdout_path = dir.path().join("stdout.ndjson");
        let stderr = std::fs::File::create(&stderr_path).expect("create the stderr file");
        let stdout = std::fs::File::create(&stdout_path).expect("create the stdout file");
        let mut cmd = match self.under.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = cmd
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .args(&self.args)
            // The daemon's own log is read by the tests: keep its level and
            // format as configured, whatever the environment says.
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("STATE_DIRECTORY")
            .env_remove("DNSENRICH_ES_PASSWORD")
            .env_remove("DNSENRICH_ES_API_KEY")
            .env_remove("DNSENRICH_ES_USER")
            .env_remove("DNSENRICH_ES_PASSWORD_FILE")
            .env_remove("DNSENRICH_ES_API_KEY_FILE")
            .env_remove("DNSENRICH_ES_CA")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {BIN} ({:?}): {e}", self.under));
        Daemon {
            child: Some(child),
            status: None,
            dir,
            stderr_path,
            stdout_path,
            udp: None,
            tcp: None,
            tls: None,
            relp: None,
            metrics: None,
            announced: None,
        }
    }
}

/// Merges `extra` into `base`, table by table.
fn merge(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// A running (or exited) `dnsenrich run`.
pub struct Daemon {
    child: Option<Child>,
    status: Option<ExitStatus>,
    dir: tempfile::TempDir,
    pub stderr_path: PathBuf,
    pub stdout_path: PathBuf,
    /// The first address of each input, as announced.
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub relp: Option<SocketAddr>,
    /// The metrics listener, when started with `--metrics`.
    pub metrics: Option<SocketAddr>,
    /// The `dnsenrich: listening on ...` line, once seen.
    pub announced: Option<String>,
}

impl Daemon {
    /// The process id (also after exit).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon was started").id()
    }

    /// The TCP input's address; panics if it is off.
    pub fn tcp(&self) -> SocketAddr {
        self.tcp.expect("the daemon listens on TCP")
    }

    /// The UDP input's address; panics if it is off.
    pub fn udp(&self) -> SocketAddr {
        self.udp.expect("the daemon listens on UDP")
    }

    /// The TLS input's address; panics if it is off.
    pub fn tls(&self) -> SocketAddr {
        self.tls.expect("the daemon listens on TLS")
    }

    /// The RELP input's address (plain or TLS); panics if it is off.
    pub fn relp(&self) -> SocketAddr {
        self.relp.expect("the daemon listens on RELP")
    }

    /// The value of one Prometheus sample (`name{labels}` exactly as
    /// exposed) from the metrics listener; None when it is not exposed (yet).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let addr = self.metrics.expect("the daemon was started with --metrics");
        let (_, body) = http_get(addr, "/metrics");
        body.lines().find_map(|l| {
            l.strip_prefix(sample)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Everything written to stderr so far, terminal colour codes removed.
    pub fn stderr(&self) -> String {
        strip_ansi(&String::from_utf8_lossy(
            &std::fs::read(&self.stderr_path).unwrap_or_default(),
        ))
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout_path).unwrap_or_default()).into_owned()
    }

    /// The events written to stdout so far (complete lines only).
    pub fn events(&self) -> Vec<Value> {
        read_events(&self.stdout_path)
    }

    /// Waits for the start-up line (`dnsenrich: listening on ...`,
    /// `dnsenrich: following ...`) and records the
    /// addresses in it.
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let err = self.stderr();
            // Only a complete line: the announcement may be caught half-written.
            if let Some(line) = err
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(str::trim_end)
                .find(|l| is_announcement(l))
            {
                for word in line.split_whitespace() {
                    let Some((scheme, rest)) = word.split_once("://") else {
                        continue;
                    };
                    let addr: SocketAddr = rest
                        .trim_end_matches(|c: char| !c.is_ascii_digit())
                        .parse()
                        .unwrap_or_else(|e| panic!("bad address {word:?} in {line:?}: {e}"));
                    let slot = match scheme {
                        "udp" => &mut self.udp,
                        "tcp" => &mut self.tcp,
                        "tls" => &mut self.tls,
                        "relp" | "relp+tls" => &mut self.relp,
                        "metrics" => &mut self.metrics,
                        _ => continue,
                    };
                    slot.get_or_insert(addr);
                }
                self.announced = Some(line.to_owned());
                return;
            }
            if let Some(status) = self.try_status() {
                panic!("dnsenrich exited ({status}) before it listened; stderr:\n{err}");
            }
            if Instant::now() >= deadline {
                panic!("dnsenrich did not announce its addresses within {START_TIMEOUT:?}; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until stderr holds `needle`; false if `within` passed first.
    pub fn wait_for_stderr(&self, needle: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.stderr().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                self.status = child.try_wait().expect("wait for dnsenrich");
            }
        }
        self.status
    }

    /// Waits for the process to exit; kills it and fails the test if it takes
    /// longer than `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "dnsenrich did not exit within {within:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal to the process (if it still runs).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.try_status().is_none() {
            // SAFETY: kill(2) on the pid of our own child, which has not been
            // reaped yet (try_status saw it running), so the pid is still ours.
            unsafe {
                libc::kill(self.pid() as libc::pid_t, sig);
            }
        }
    }

    /// SIGTERM, then waits for the drain to finish ([`STOP_TIMEOUT`]).
    pub fn sigterm(&mut self) -> ExitStatus {
        self.sigterm_within(STOP_TIMEOUT)
    }

    /// SIGTERM, then waits up to `within` for the process to exit.
    pub fn sigterm_within(&mut self, within: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(within)
    }

    /// SIGKILL (a crash: nothing is drained or flushed), and reaps the process.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if self.status.is_none() {
                let _ = child.kill();
                self.status = child.wait().ok();
            }
        }
    }

    /// The counts of the `stopped` line the daemon logs after a drain.
    pub fn stopped(&self) -> Stopped {
        let err = self.stderr();
        let line = err
            .lines()
            .find(|l| l.contains(" stopped ") && l.contains("lines="))
            .unwrap_or_else(|| panic!("no `stopped` line on stderr:\n{err}"));
        Stopped::parse(line).unwrap_or_else(|| panic!("cannot read the `stopped` line {line:?}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the daemon reports when it stops:
/// `stopped lines=N parsed=N unmatched=N output=N sent, N stored, N duplicates,
/// N item retries, N dead-lettered, N failed requests`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopped {
    pub lines: u64,
    pub parsed: u64,
    pub unmatched: u64,
    pub sent: u64,
    pub stored: u64,
    pub duplicates: u64,
    pub item_retries: u64,
    pub dead_lettered: u64,
    pub failed_requests: u64,
}

/// The number after ` key=` in a text log line, if it has one.
pub fn log_field(line: &str, key: &str) -> Option<u64> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

impl Stopped {
    fn parse(line: &str) -> Option<Stopped> {
        let field = |key: &str| log_field(line, key);
        let output = &line[line.find(" output=")? + " output=".len()..];
        let count = |what: &str| -> Option<u64> {
            output
                .split(", ")
                .find_map(|part| part.trim().strip_suffix(what)?.trim().parse().ok())
        };
        Some(Stopped {
            lines: field("lines")?,
            parsed: field("parsed")?,
            unmatched: field("unmatched")?,
            sent: count("sent")?,
            stored: count("stored")?,
            duplicates: count("duplicates")?,
            item_retries: count("item retries")?,
            dead_lettered: count("dead-lettered")?,
            failed_requests: count("failed requests")?,
        })
    }
}

/// Removes terminal colour sequences (`ESC [ ... m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The complete lines of an NDJSON file (a line still being written is left
/// out), parsed; empty if the file does not exist.
pub fn read_events(path: &Path) -> Vec<Value> {
    complete_lines(path)
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!(
                    "{} holds a line that is not JSON ({e}): {l}",
                    path.display()
                )
            })
        })
        .collect()
}

/// The complete lines of a text file, unparsed.
pub fn complete_lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls `cond` every 20 ms; fails the test naming `what` if it does not hold
/// within `within`.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `dnsenrich` with `args` to completion (bounded by `within`); the exit
/// status, stdout and stderr.
pub fn run_to_exit(args: &[&OsStr], within: Duration) -> (ExitStatus, String, String) {
    let dir = tempfile::tempdir().expect("a directory for the output");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("STATE_DIRECTORY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"));
    let status = wait_child(&mut child, within, "dnsenrich");
    let read = |p: &Path| {
        strip_ansi(&String::from_utf8_lossy(
            &std::fs::read(p).unwrap_or_default(),
        ))
    };
    (status, read(&out_path), read(&err_path))
}

/// Waits for a child; kills it and fails the test if it takes longer than `within`.
pub fn wait_child(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long one `logger` run may take.
pub const LOGGER_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` from the daemon's metrics listener: (status, body); status 0
/// if the answer has no status line.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .expect("connect to the metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // One write: a request split across writes could be answered (and the
    // connection closed) before its second half is sent.
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("send the request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read the answer");
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Runs util-linux `logger` with `args`, feeding `stdin` (one message per
/// line) when no message is given in `args`; fails the test if it exits
/// non-zero. A missing `logger` fails naming the package to install.
pub fn logger(args: &[&str], stdin: &[u8]) {
    let mut l = LoggerStream::spawn(args);
    let mut pipe = l.stdin.take().expect("piped stdin");
    let data = stdin.to_vec();
    // From another thread: a large input must not fill the pipe while the
    // test waits for logger.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    l.finish_within(LOGGER_TIMEOUT);
    let _ = writer.join();
}

/// A `logger` process reading messages from its stdin, one per line, and
/// sending each as soon as it is read: a client that keeps its connection
/// open while the test feeds it.
pub struct LoggerStream {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<std::thread::JoinHandle<String>>,
    args: Vec<String>,
}

impl LoggerStream {
    /// Starts `logger args...`; a missing `logger` fails the test naming the
    /// package to install.
    pub fn spawn(args: &[&str]) -> LoggerStream {
        let mut child = match Command::new("logger")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "the util-linux `logger` command is needed: install it with `apt-get install bsdutils`"
            ),
            Err(e) => panic!("cannot run logger: {e}"),
        };
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut err_pipe, &mut s);
            s
        });
        LoggerStream {
            stdin: child.stdin.take(),
            child,
            stderr: Some(stderr),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Hands one message to logger.
    pub fn send(&mut self, line: &str) {
        let pipe = self.stdin.as_mut().expect("logger's stdin is open");
        pipe.write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("logger {:?} stopped reading: {e}", self.args));
    }

    /// Closes logger's stdin and waits for it to exit successfully.
    pub fn finish(self) {
        self.finish_within(LOGGER_TIMEOUT);
    }

    fn finish_within(mut self, within: Duration) {
        drop(self.stdin.take());
        let status = wait_child(&mut self.child, within, "logger");
        let err = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        assert!(
            status.success(),
            "logger {:?} failed ({status}): {err}",
            self.args
        );
    }
}

impl Drop for LoggerStream {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether `line` is the daemon's start-up announcement: where it listens,
/// which files it follows, or that it has no input.
fn is_announcement(line: &str) -> bool {
    line.strip_prefix("dnsenrich: ").is_some_and(|rest| {
        rest.starts_with("listening on")
            || rest.starts_with("following")
            || rest.starts_with("no input configured")
    })
}
