//! Operating dnsenrich: the systemd units verify, socket activation hands
//! sockets over (under Debian's `systemd-socket-activate`), the sd_notify
//! protocol, and the metrics/health listener.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{http_get, logger, wait_until, DaemonBuilder, STOP_TIMEOUT};

const WAIT: Duration = Duration::from_secs(15);

fn require(tool: &str, package: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{tool} is needed for this test: apt-get install -y {package}"
    );
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `path` holds a line for which `f` is true.
#[test]
fn systemd_units_verify() {
    require("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let units = [
        "dnsenrich.service",
        "dnsenrich.socket",
        "dnsenrich-sync.service",
        "dnsenrich-sync.timer",
    ];
    for u in units {
        // verify checks that ExecStart exists: point it at the binary under test.
        let text = std::fs::read_to_string(repo().join("systemd").join(u)).unwrap();
        let text = text.replace("/usr/bin/dnsenrich", env!("CARGO_BIN_EXE_dnsenrich"));
        std::fs::write(dir.path().join(u), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(units.iter().map(|u| dir.path().join(u)))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn nothing_listens_beyond_loopback_unless_the_operator_says_so() {
    let socket = std::fs::read_to_string(repo().join("systemd/dnsenrich.socket")).unwrap();
    let listens: Vec<&str> = socket
        .lines()
        .filter_map(|l| l.strip_prefix("Listen"))
        .filter_map(|l| l.split_once('=').map(|(_, v)| v.trim()))
        .collect();
    assert!(!listens.is_empty(), "{socket}");
    for addr in listens {
        let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| {
            panic!("{addr:?} is not IP:port ({e}): a bare port binds every interface")
        });
        assert!(addr.ip().is_loopback(), "{addr} is not loopback");
    }
    // The service does without the socket (a tail-only install binds nothing).
    let service = std::fs::read_to_string(repo().join("systemd/dnsenrich.service")).unwrap();
    assert!(
        !service
            .lines()
            .any(|l| l.starts_with("Requires=") && l.contains("dnsenrich.socket")),
        "{service}"
    );
    // The package enables nothing at install.
    let manifest: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let units = &manifest["package"]["metadata"]["deb"]["systemd-units"];
    assert_eq!(units["enable"].as_bool(), Some(false), "{units}");
    assert_eq!(units["start"].as_bool(), Some(false), "{units}");
}

#[test]
fn service_is_hardened() {
    require("systemd-analyze", "systemd");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(repo().join("systemd/dnsenrich.service"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .expect("an exposure score");
    let score: f64 = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("a number in the exposure line");
    assert!(score <= 2.0, "exposure {score}: {line}");
}

fn socket_activated(datagram: bool) {
    require("systemd-socket-activate", "systemd");
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut wrapper = vec!["systemd-socket-activate", "-l", &listen];
    if datagram {
        wrapper.push("--datagram");
    }
    // The builder's own UDP and TCP listen addresses (127.0.0.1:0) must give
    // way to the inherited socket.
    let mut d = DaemonBuilder::new(state.path()).under(&wrapper).spawn();
    // systemd-socket-activate starts the program on the first connection or
    // datagram, and hands it the socket with that data still waiting.
    assert!(
        d.wait_for_stderr("Listening on", WAIT),
        "systemd-socket-activate did not start listening; stderr:\n{}",
        d.stderr()
    );
    let transport = if datagram { "-d" } else { "-T" };
    logger(
        &[
            "-n",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            transport,
            "-t",
            "dnsmasq",
        ],
        b"query[A] activated.example from 192.0.2.7\n",
    );
    d.wait_listening();
    wait_until("the event through the inherited socket", WAIT, || {
        d.stdout().contains("activated.example")
    });
    let line = d.announced.clone().unwrap();
    let expect = if datagram {
        format!("udp://{listen}")
    } else {
        format!("tcp://{listen}")
    };
    assert!(line.contains(&expect), "{line}");
    let inputs = line.matches("udp://").count() + line.matches("tcp://").count();
    assert_eq!(inputs, 1, "only the inherited socket is an input: {line}");
    let events = d.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["source"]["ip"], "192.0.2.7");
    assert!(d.sigterm().success());
}

#[test]
fn socket_activation_tcp() {
    socket_activated(false);
}

#[test]
fn socket_activation_udp() {
    socket_activated(true);
}

#[test]
fn sd_notify_ready_and_stopping() {
    let state = tempfile::tempdir().unwrap();
    let sock_path = state.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .start();
    let mut buf = [0u8; 256];
    let mut seen = Vec::new();
    // READY=1, then watchdog pings (every 200 ms for a 400 ms WatchdogSec).
    while seen.iter().filter(|m: &&String| *m == "WATCHDOG=1").count() < 2 {
        let n = sock.recv(&mut buf).expect("a notification");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(seen[0], "READY=1", "{seen:?}");
    d.signal(libc::SIGTERM);
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if &buf[..n] == b"STOPPING=1" {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM; got {seen:?}");
    assert!(d.wait_exit(STOP_TIMEOUT).success());
}

#[test]
fn metrics_health_and_ready() {
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let m = d.metrics.expect("the metrics address is announced");
    let port = d.udp().port().to_string();
    logger(
        &["-n", "127.0.0.1", "-P", &port, "-d", "-t", "dnsmasq"],
        b"query[A] metrics.example from 192.0.2.8\nthis line matches no rule\n",
    );
    wait_until("both events", WAIT, || d.events().len() == 2);
    assert_eq!(http_get(m, "/health").0, 200);
    assert_eq!(http_get(m, "/ready"), (200, "ready\n".into()));
    let (status, body) = http_get(m, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("dnsenrich_queue_depth"), "{body}");
    assert_eq!(
        d.metric("dnsenrich_events_received_total{input=\"udp\"}"),
        Some(2.0)
    );
    assert_eq!(
        d.metric("dnsenrich_parse_failures_total{reason=\"no_rule_matched\"}"),
        Some(1.0)
    );
    assert!(d.sigterm().success());
}

#[test]
fn ready_reports_an_unreachable_elasticsearch() {
    let state = tempfile::tempdir().unwrap();
    let closed = free_port();
    let d = DaemonBuilder::new(state.path())
        .elasticsearch(&format!("http://127.0.0.1:{closed}"), "x")
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let m = d.metrics.expect("the metrics address is announced");
    let end = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(m, "/ready");
        if status == 503 {
            assert!(body.contains("output"), "{body}");
            break;
        }
        assert!(Instant::now() < end, "/ready kept answering {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(m, "/health").0, 200);
}

/// One dnsmasq query line for `name`, sent to the daemon over UDP.
fn query_over_udp(port: u16, name: &str) {
    logger(
        &[
            "-n",
            "127.0.0.1",
            "-P",
            &port.to_string(),
            "-d",
            "-t",
            "dnsmasq",
        ],
        format!("query[A] {name} from 192.0.2.8\n").as_bytes(),
    );
}

/// Replaces `path` at once (a rename, as a sync job does) with `text`,
/// modified at `mtime`, so the file watcher never sees a half-made change.
fn replace_with_mtime(path: &std::path::Path, text: &[u8], mtime: std::time::SystemTime) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn sighup_and_a_rewritten_indicator_file_both_reload_the_indicators() {
    let state = tempfile::tempdir().unwrap();
    let list = state.path().join("Feed-Local.txt");
    std::fs::write(&list, "old.example\n").unwrap();
    let written = std::fs::metadata(&list).unwrap().modified().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--ioc-file")
        .arg(&list)
        .start();
    let port = d.udp().port();
    let reloads =
        |d: &common::daemon::Daemon| d.stderr().matches("indicator files reloaded").count();

    query_over_udp(port, "new.example");
    wait_until("the first event", WAIT, || d.events().len() == 1);
    assert_eq!(d.events()[0]["misp_src"], "none");

    // SIGHUP: the file keeps its modification time, so only the signal can
    // be what reloads it.
    replace_with_mtime(&list, b"new.example\n", written);
    d.signal(libc::SIGHUP);
    wait_until("the reload after SIGHUP", WAIT, || reloads(&d) == 1);
    query_over_udp(port, "new.example");
    wait_until("the second event", WAIT, || d.events().len() == 2);
    assert_eq!(d.events()[1]["misp_src"], "Feed-Local");

    // A newer modification time, no signal: the file watcher reloads it.
    replace_with_mtime(&list, b"third.example\n", written + Duration::from_secs(60));
    wait_until(
        "the reload after the file changed",
        Duration::from_secs(20),
        || reloads(&d) == 2,
    );
    query_over_udp(port, "third.example");
    wait_until("the third event", WAIT, || d.events().len() == 3);
    assert_eq!(d.events()[2]["misp_src"], "Feed-Local");
    assert!(d.sigterm().success());
}

#[test]
fn ready_follows_memcached_going_away_and_coming_back() {
    use common::memcached::Memcached;
    let mut mc = Memcached::start();
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .arg("--memcached")
        .arg(&mc.addr)
        .start();
    let m = d.metrics.expect("the metrics address is announced");
    let port = d.udp().port();
    let mut n = 0;
    // Fresh names each time, so the negative cache does not answer for memcached.
    let mut ask_and_read_ready = || {
        n += 1;
        query_over_udp(port, &format!("q{n}.example"));
        std::thread::sleep(Duration::from_millis(200));
        http_get(m, "/ready").0
    };
    wait_until("ready with memcached up", WAIT, || {
        ask_and_read_ready() == 200
    });
    mc.stop();
    wait_until("not ready with memcached gone", WAIT, || {
        ask_and_read_ready() == 503
    });
    let _mc = Memcached::start_on(mc.port);
    wait_until(
        "ready again with memcached back",
        Duration::from_secs(30),
        || ask_and_read_ready() == 200,
    );
    assert!(d.sigterm().success());
}

#[test]
fn a_normal_user_gets_a_state_directory_of_their_own() {
    use std::os::unix::fs::PermissionsExt;
    let user = Unprivileged::new();
    let home = user.dir.path();
    let config = home.join("dnsenrich.toml");
    std::fs::write(&config, "[output]\ntype = \"ndjson\"\npath = \"-\"\n").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = user
        .command()
        .arg("check-config")
        .arg(&config)
        .env("HOME", home)
        .env_remove("XDG_STATE_HOME")
        .env_remove("STATE_DIRECTORY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stderr}");
    let expected = home.join(".local/state/dnsenrich");
    assert!(
        stderr.contains("/var/lib/dnsenrich is not writable by this user")
            && stderr.contains(&expected.display().to_string()),
        "{stderr}"
    );
    let printed: toml::Table = stdout.parse().unwrap();
    assert_eq!(
        printed["state_dir"].as_str(),
        Some(expected.to_str().unwrap()),
        "{stdout}"
    );
    // Asked for, the default is kept (and refused later if unusable).
    std::fs::write(&config, "state_dir = \"/var/lib/dnsenrich\"\n").unwrap();
    let out = user
        .command()
        .arg("check-config")
        .arg(&config)
        .env("HOME", home)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("not writable by this user"), "{stderr}");
}

/// A copy of the binary a normal user can run, in a directory anyone may
/// write; as root, [`Unprivileged::command`] runs it as `nobody` (setpriv
/// from util-linux).
struct Unprivileged {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Unprivileged {
    fn new() -> Unprivileged {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let bin = dir.path().join("dnsenrich");
        std::fs::copy(env!("CARGO_BIN_EXE_dnsenrich"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Unprivileged { dir, bin }
    }

    fn command(&self) -> Command {
        if effective_uid() != 0 {
            return Command::new(&self.bin);
        }
        require("setpriv", "util-linux");
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&self.bin);
        c
    }
}

/// The effective uid of this process, from /proc.
fn effective_uid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("an effective uid in /proc/self/status")
}

#[test]
fn manual_pages_and_completions_are_generated_from_the_cli() {
    require("groff", "groff-base");
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .arg("manpages")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sub in ["run", "sync", "parse", "check-config", "check-indicators"] {
        let page = dir.path().join(format!("dnsenrich-{sub}.1"));
        // groff renders it without a warning.
        let out = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww"])
            .arg(&page)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "{sub}: {stderr}");
        let text = String::from_utf8_lossy(&out.stdout);
        // Rendered text has backspace overstrikes for bold: drop them.
        let plain: String = text
            .split('\u{8}')
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    &part[part.chars().next().map_or(0, char::len_utf8)..]
                }
            })
            .collect();
        if sub == "run" {
            for flag in ["--tail", "--no-listen", "--elasticsearch", "--metrics"] {
                assert!(
                    plain.contains(flag),
                    "{flag} missing from dnsenrich-run.1:\n{plain}"
                );
            }
        }
    }
    assert!(dir.path().join("dnsenrich.1").exists());
    let out = Command::new(env!("CARGO_BIN_EXE_dnsenrich"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    assert!(script.contains("check-config") && script.contains("--no-listen"));
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(bash.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    drop(bash.stdin.take());
    assert!(
        bash.wait().unwrap().success(),
        "bash -n refused the completion script"
    );
}

/// Runs the binary (as `nobody` when the tests run as root) and returns its
/// exit status and stderr.
fn run_unprivileged(args: &[&str]) -> (std::process::ExitStatus, String) {
    let user = Unprivileged::new();
    let mut cmd = user.command();
    let mut child = cmd
        .args(args)
        .arg("--state-dir")
        .arg(user.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dnsenrich {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn a_port_it_may_not_bind_says_what_to_do_and_the_os_error_once() {
    // Port 514 as a normal user.
    let (status, err) = run_unprivileged(&["run", "--listen-udp", "127.0.0.1:514"]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("cannot listen on udp 127.0.0.1:514"), "{err}");
    assert!(
        err.contains("CAP_NET_BIND_SERVICE") && err.contains("dnsenrich.socket"),
        "{err}"
    );
    assert_eq!(err.matches("Permission denied").count(), 1, "{err}");

    // A port another process holds.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (status, err) = run_unprivileged(&["run", "--no-listen", "--listen-tcp", &addr]);
    assert!(!status.success(), "{err}");
    // (--no-listen and --listen-tcp together are refused first.)
    assert!(err.contains("--no-listen"), "{err}");
    let (status, err) = run_unprivileged(&["run", "--listen-tcp", &addr]);
    assert!(!status.success(), "{err}");
    assert!(err.contains("another process listens there"), "{err}");
    assert_eq!(err.matches("Address already in use").count(), 1, "{err}");
}

#[test]
fn the_counters_an_operator_alerts_on_exist_at_zero_from_the_start() {
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start();
    let m = d.metrics.unwrap();
    // Nothing was sent: an `increase(...) > 0` alert still has its first
    // sample, at 0.
    let (_, body) = http_get(m, "/metrics");
    for sample in [
        "dnsenrich_events_received_total{input=\"udp\"} 0",
        "dnsenrich_events_received_total{input=\"tcp\"} 0",
        "dnsenrich_events_dropped_total{input=\"udp\",reason=\"pipeline_full\"} 0",
        "dnsenrich_events_dropped_total{input=\"udp\",reason=\"socket_buffer_full\"} 0",
        "dnsenrich_parse_failures_total{reason=\"no_rule_matched\"} 0",
        "dnsenrich_framing_errors_total{input=\"tcp\"} 0",
    ] {
        assert!(
            body.lines().any(|l| l == sample),
            "{sample} missing:\n{body}"
        );
    }
    // An input that is off has no series.
    assert!(!body.contains("input=\"tls\""), "{body}");
    assert!(d.sigterm().success());
}
