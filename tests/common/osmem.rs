//! Starts `osmem-server` (an in-memory server speaking the Elasticsearch /
//! OpenSearch REST API, `pip install osmem-server`) on a loopback port for a
//! test, and reads back what was stored.
//!
//! ```ignore
//! let es = Osmem::start();              // free port, waits until it answers
//! // ... point the code under test at es.url ...
//! assert_eq!(es.count("dns"), 3);
//! ```
//!
//! The helpers block (reqwest's blocking client): call them from a plain
//! `#[test]`, or through `spawn_blocking`, not from inside an async task.
//! The server is killed when the [`Osmem`] is dropped, and also exits by itself
//! if the test process goes away (`-parent-pid`).
//!
//! The binary is `$OSMEM_SERVER_BIN` if set, else the one the pip package
//! bundles. A missing binary fails the test with the install command.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running osmem-server.
pub struct Osmem {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    child: Option<Child>,
    stderr: Arc<Mutex<String>>,
    http: reqwest::blocking::Client,
}

/// The osmem-server binary; panics naming the install command if there is none.
pub fn binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("OSMEM_SERVER_BIN") {
            return Ok(PathBuf::from(p));
        }
        let out = Command::new("python3")
            .args([
                "-c",
                "import osmem_server,os;print(os.path.dirname(osmem_server.__file__))",
            ])
            .output()
            .map_err(|e| format!("cannot run python3: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let bin = PathBuf::from(dir).join("bin").join("osmem-server");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{} does not exist", bin.display()))
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(why) => panic!(
            "osmem-server not found ({why}); install it with `pip install osmem-server` \
             (or set OSMEM_SERVER_BIN to the binary)"
        ),
    }
}

/// A loopback port nothing listens on right now (for "server not up yet").
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

impl Osmem {
    /// Starts a server on a free loopback port and waits until it answers.
    pub fn start() -> Osmem {
        Self::spawn(0)
    }

    /// Starts a server on `port` (retrying while the port is still held by a
    /// server that was just stopped) and waits until it answers.
    pub fn start_on(port: u16) -> Osmem {
        Self::spawn(port)
    }

    fn spawn(port: u16) -> Osmem {
        let http = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last_err = String::new();
        while Instant::now() < deadline {
            match Self::try_spawn(port, deadline) {
                Ok((child, url, stderr)) => {
                    let port = url
                        .rsplit(':')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .expect("port in osmem-server's url");
                    let mut os = Osmem {
                        url,
                        port,
                        child: Some(child),
                        stderr,
                        http,
                    };
                    os.wait_ready(deadline);
                    return os;
                }
                Err(e) => {
                    last_err = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        panic!("osmem-server did not start on port {port} within {START_TIMEOUT:?}: {last_err}");
    }

    /// Runs the binary and reads the JSON line it prints once listening.
    fn try_spawn(
        port: u16,
        deadline: Instant,
    ) -> Result<(Child, String, Arc<Mutex<String>>), String> {
        let mut child = Command::new(binary())
            .arg("-addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-no-stdin-watch")
            .arg("-parent-pid")
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; install it with `pip install osmem-server`",
                    binary().display()
                )
            });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // The start of stderr is what explains a failed start.
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                if s.len() < 8192 {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let wait = deadline.saturating_duration_since(Instant::now());
        let first = match rx.recv_timeout(wait) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                return Err(format!("no start-up line ({other:?}); stderr: {err}"));
            }
        };
        let info: Value = serde_json::from_str(&first)
            .map_err(|e| format!("unexpected start-up line {first:?}: {e}"))?;
        let url = info["url"]
            .as_str()
            .ok_or_else(|| format!("no url in {first:?}"))?
            .to_string();
        Ok((child, url, stderr))
    }

    fn wait_ready(&mut self, deadline: Instant) {
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(&self.url).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "osmem-server at {} did not answer GET / within {START_TIMEOUT:?}; stderr: {}",
            self.url,
            self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
        );
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (everything stored is gone: it is in memory).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `sig` to the server process (SIGSTOP makes it hang: connections
    /// are accepted by the kernel, nothing is answered; SIGCONT resumes it).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child, which has not been reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, sig);
            }
        }
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel
    /// and stay open, nothing is answered. Returns once the kernel reports
    /// the process stopped.
    pub fn pause(&self) {
        let child = self.child.as_ref().expect("the server runs");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGSTOP);
        }
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(&stat).ok().and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next())
            });
            if state == Some('T') {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        panic!("osmem-server did not stop after SIGSTOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        if let Some(child) = &self.child {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGCONT);
            }
        }
    }

    /// Whether the server is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server if it runs and starts an empty one on the same port.
    pub fn restart_same_port(&mut self) {
        self.stop();
        let fresh = Osmem::start_on(self.port);
        *self = fresh;
    }

    /// `GET` a path (e.g. `/_index_template/x`); the JSON body, whatever the status.
    pub fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/{}", self.url, path.trim_start_matches('/')))
            .send()
            .unwrap_or_else(|e| panic!("GET {path} on {}: {e}", self.url));
        r.json().unwrap_or(Value::Null)
    }

    /// `PUT` a JSON body; the JSON answer, whatever the status.
    pub fn put(&self, path: &str, body: &Value) -> Value {
        let r = self
            .http
            .put(format!("{}/{}", self.url, path.trim_start_matches('/')))
            .json(body)
            .send()
            .unwrap_or_else(|e| panic!("PUT {path} on {}: {e}", self.url));
        r.json().unwrap_or(Value::Null)
    }

    /// Makes recent writes visible to search (osmem shows them at once; real
    /// servers need this).
    pub fn refresh(&self, index: &str) {
        let _ = self
            .http
            .post(format!("{}/{index}/_refresh", self.url))
            .send();
    }

    /// Documents in `index`; 0 if it does not exist.
    pub fn count(&self, index: &str) -> u64 {
        self.refresh(index);
        self.get(&format!("{index}/_count"))["count"]
            .as_u64()
            .unwrap_or(0)
    }

    /// The `_source` of every document in `index` (up to 10,000); empty if it
    /// does not exist.
    pub fn search_all(&self, index: &str) -> Vec<Value> {
        self.refresh(index);
        let r = self
            .http
            .post(format!("{}/{index}/_search", self.url))
            .json(&json!({ "size": 10000, "query": { "match_all": {} } }))
            .send()
            .unwrap_or_else(|e| panic!("search {index} on {}: {e}", self.url));
        let v: Value = r.json().unwrap_or(Value::Null);
        v["hits"]["hits"]
            .as_array()
            .map(|hits| hits.iter().map(|h| h["_source"].clone()).collect())
            .unwrap_or_default()
    }

    /// The `mappings` object of `index`.
    pub fn mapping(&self, index: &str) -> Value {
        self.get(&format!("{index}/_mapping"))[index]["mappings"].clone()
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        self.stop();
    }
}
