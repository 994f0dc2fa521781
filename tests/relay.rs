//! Times through a real rsyslog relay: rsyslog follows a pihole.log-style
//! file (`imfile`) on a box whose zone is not the collector's, and forwards
//! each line inside an RFC 5424 header stamped with its own UTC offset. The
//! zone-less dnsmasq stamp inside must be read in the relay's zone.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{Timelike, Utc};
use chrono_tz::Europe::Berlin;
use common::daemon::{wait_until, DaemonBuilder};

const WAIT: Duration = Duration::from_secs(20);

/// rsyslogd as a plain foreground process with only the given configuration.
struct Rsyslog(Child);

impl Rsyslog {
    fn start(dir: &Path, conf: &str, tz: &str) -> Rsyslog {
        let installed = Command::new("sh")
            .args(["-c", "command -v rsyslogd"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "rsyslogd is needed for this test: apt-get install -y rsyslog"
        );
        let path = dir.join("rsyslog.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslogd.err")).unwrap())
            .spawn()
            .expect("start rsyslogd");
        Rsyslog(child)
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_line_relayed_from_another_zone_keeps_its_time() {
    let work = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    // The collector reads zone-less stamps as UTC (the test base config).
    let mut d = DaemonBuilder::new(state.path()).start();
    let tcp = d.tcp();
    // dnsmasq on the relay's box writes its local (Berlin) wall-clock time.
    let now = Utc::now().with_timezone(&Berlin);
    let stamp = now.format("%b %e %H:%M:%S").to_string();
    let log = work.path().join("pihole.log");
    std::fs::write(
        &log,
        format!("{stamp} dnsmasq[812]: query[A] relayed.example.com from 192.0.2.10\n"),
    )
    .unwrap();
    let conf = format!(
        r#"
global(workDirectory="{work}")
module(load="imfile")
input(type="imfile" File="{log}" Tag="pihole" freshStartTail="off")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
       template="RSYSLOG_SyslogProtocol23Format")
"#,
        work = work.path().display(),
        log = log.display(),
        port = tcp.port(),
    );
    let _relay = Rsyslog::start(work.path(), &conf, "Europe/Berlin");
    wait_until("the relayed line", WAIT, || {
        d.stdout().contains("relayed.example.com")
    });
    let events = d.events();
    let ev = events
        .iter()
        .find(|e| e["dns"]["question"]["name"] == "relayed.example.com")
        .expect("the relayed event");
    // The stamp has whole seconds.
    let expected = now.with_nanosecond(0).unwrap().with_timezone(&Utc);
    assert_eq!(
        ev["@timestamp"].as_str().unwrap(),
        expected.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "{ev}"
    );
    assert!(d.sigterm().success(), "{}", d.stderr());
}
