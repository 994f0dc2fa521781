//! Starts a real `memcached` (Debian package `memcached`) on a free loopback
//! port for a test, and talks to it over the text protocol to set keys and
//! read `stats`.
//!
//! ```ignore
//! let mc = Memcached::start();            // waits until it accepts connections
//! mc.set("domain-evil.example", b"Feed-A");
//! assert_eq!(mc.stat("cmd_get"), 0);
//! mc.stop();                              // or drop it
//! let mc = Memcached::start_on(port);     // the same address again
//! ```
//!
//! The server is killed when the [`Memcached`] is dropped. A missing binary
//! fails the test with the install command.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running memcached.
pub struct Memcached {
    pub port: u16,
    /// `127.0.0.1:PORT`
    pub addr: String,
    child: Option<Child>,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

impl Memcached {
    /// Starts memcached on a free port. The port is free when picked but
    /// may be taken before memcached binds it: then another port is tried.
    pub fn start() -> Memcached {
        Self::start_with(&[])
    }

    /// Like [`Memcached::start`], with more command-line options after the
    /// defaults (a later `-m` wins over the default 64 MB).
    pub fn start_with(extra: &[&str]) -> Memcached {
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start_on(free_port(), extra) {
                Ok(mc) => return mc,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    /// Starts memcached on `port` (e.g. again after [`Memcached::stop`]).
    pub fn start_on(port: u16) -> Memcached {
        Self::try_start_on(port, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts memcached on `port`; an error if it exits before it accepts
    /// connections (the port was taken) or does not start in time.
    fn try_start_on(port: u16, extra: &[&str]) -> Result<Memcached, String> {
        let bin = std::env::var("MEMCACHED_BIN").unwrap_or_else(|_| "memcached".into());
        let mut cmd = Command::new(&bin);
        cmd.args([
            "-l",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "0",
            "-m",
            "64",
        ]);
        cmd.args(extra);
        // memcached refuses to run as root unless told which user to be.
        if unsafe { libc::geteuid() } == 0 {
            cmd.args(["-u", "root"]);
        }
        let child = match cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start {bin} ({e}); install it with `apt-get install -y memcached` \
                 (or set MEMCACHED_BIN)"
            ),
        };
        let mut mc = Memcached {
            port,
            addr: format!("127.0.0.1:{port}"),
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Checked before connecting: a listener that answers while our
            // memcached has exited belongs to someone else.
            if let Some(status) = mc.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                mc.child = None;
                return Err(format!(
                    "memcached exited ({status}) before listening on {}",
                    mc.addr
                ));
            }
            if TcpStream::connect(&mc.addr).is_ok() {
                // memcached binds once at start: if it is still running now,
                // the listener that answered is its own.
                std::thread::sleep(Duration::from_millis(20));
                if mc
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                    .is_none()
                {
                    return Ok(mc);
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(format!("memcached did not start on {}", mc.addr));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        // kill() returns before the process has stopped: wait until the
        // kernel reports it stopped, so no request is answered after this.
        if let Some(c) = &self.child {
            let stat = format!("/proc/{}/stat", c.id());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                let state = std::fs::read_to_string(&stat)
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(')')
                            .map(|(_, rest)| rest.trim_start().chars().next())
                    })
                    .flatten();
                if state == Some('T') {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            panic!("memcached did not stop after SIGSTOP");
        }
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    fn conn(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).expect("connect to memcached");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Runs one command and returns the reply up to (and including) a line
    /// for which `last` is true.
    fn command(&self, cmd: &[u8], last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut s = self.conn();
        s.write_all(cmd).unwrap();
        let mut r = BufReader::new(s);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = r.read_line(&mut line).expect("memcached reply");
            assert!(n > 0, "memcached closed the connection");
            let line = line.trim_end_matches("\r\n").to_owned();
            let done = last(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Stores `value` under `key` (no expiry), as a sync job would.
    pub fn set(&self, key: &str, value: &[u8]) {
        let mut cmd = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        cmd.extend_from_slice(value);
        cmd.extend_from_slice(b"\r\n");
        let reply = self.command(&cmd, |_| true);
        assert_eq!(reply, ["STORED"], "set {key}");
    }

    /// Removes `key` (as its expiry would).
    pub fn delete(&self, key: &str) {
        let reply = self.command(format!("delete {key}\r\n").as_bytes(), |_| true);
        assert!(
            reply == ["DELETED"] || reply == ["NOT_FOUND"],
            "delete {key}: {reply:?}"
        );
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut s = self.conn();
        s.write_all(format!("get {key}\r\n").as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let mut head = String::new();
        r.read_line(&mut head).unwrap();
        if head.starts_with("END") {
            return None;
        }
        let len: usize = head
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad reply {head:?}"));
        let mut v = vec![0; len + 2];
        r.read_exact(&mut v).unwrap();
        v.truncate(len);
        Some(v)
    }

    /// Empties the cache.
    pub fn flush(&self) {
        assert_eq!(self.command(b"flush_all\r\n", |_| true), ["OK"]);
    }

    /// `stats` as a map.
    pub fn stats(&self) -> HashMap<String, String> {
        self.command(b"stats\r\n", |l| l == "END")
            .into_iter()
            .filter_map(|l| {
                let mut it = l.splitn(3, ' ');
                match (it.next(), it.next(), it.next()) {
                    (Some("STAT"), Some(k), Some(v)) => Some((k.to_owned(), v.to_owned())),
                    _ => None,
                }
            })
            .collect()
    }

    /// One numeric statistic, e.g. `cmd_get` (keys asked for) or `curr_items`.
    pub fn stat(&self, name: &str) -> u64 {
        self.stats()
            .get(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no numeric stat {name}"))
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.resume();
        self.stop();
    }
}
