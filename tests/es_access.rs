//! Reaching a secured Elasticsearch from the command line, and what happens
//! when the target refuses every document: the real `dnsenrich` binary
//! against osmem-server, behind a TLS terminator or an HTTP front that
//! answers refusals (osmem-server has no TLS and no authentication), and
//! `check-config` refusing what `run` refuses.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use common::daemon::{logger, run_to_exit, wait_until, DaemonBuilder};
use common::front::{HttpFront, TlsFront};
use common::osmem::Osmem;
use common::pki::Pki;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

/// Sends `n` query lines over TCP syslog, names `q<i>.<tag>.test`.
fn send_queries(d: &common::daemon::Daemon, tag: &str, n: usize) {
    let port = d.tcp().port().to_string();
    let lines: String = (0..n)
        .map(|i| format!("query[A] q{i}.{tag}.test from 192.0.2.9\n"))
        .collect();
    logger(
        &["-n", "127.0.0.1", "-P", &port, "-T", "-t", "dnsmasq"],
        lines.as_bytes(),
    );
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn a_tls_cluster_is_reached_with_es_ca_and_an_untrusted_ca_says_to_set_it() {
    let es = Osmem::start();
    let pki = Pki::server();
    let front = TlsFront::start(&pki.path("server.pem"), &pki.path("server.key"), es.addr());
    let url = format!("https://127.0.0.1:{}", front.addr.port());

    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .elasticsearch(&url, "dns-tls-untrusted")
        .start();
    send_queries(&d, "untrusted", 1);
    assert!(
        d.wait_for_stderr("--es-ca", WAIT),
        "no hint to set the CA: {}",
        d.stderr()
    );
    assert!(d.stderr().contains("UnknownIssuer"), "{}", d.stderr());
    assert_eq!(es.count("dns-tls-untrusted"), 0);
    drop(d);

    // The same through the environment variable, and then it works.
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&url, "dns-tls")
        .env("DNSENRICH_ES_CA", pki.path("ca.pem"))
        .start();
    send_queries(&d, "tls", 3);
    wait_until("3 documents over TLS", WAIT, || es.count("dns-tls") == 3);
    assert!(d.sigterm().success());
    assert!(!d.stderr().contains("--es-ca"), "{}", d.stderr());
}

#[test]
fn https_to_a_plain_http_port_says_the_server_does_not_speak_tls() {
    let es = Osmem::start();
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .elasticsearch(&format!("https://127.0.0.1:{}", es.port), "dns-plain")
        .start();
    send_queries(&d, "plain", 1);
    assert!(
        d.wait_for_stderr("does not speak TLS: use http://", WAIT),
        "{}",
        d.stderr()
    );
}

#[test]
fn http_to_a_tls_port_says_to_write_https() {
    let es = Osmem::start();
    let pki = Pki::server();
    let front = TlsFront::start(&pki.path("server.pem"), &pki.path("server.key"), es.addr());
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .elasticsearch(
            &format!("http://127.0.0.1:{}", front.addr.port()),
            "dns-http",
        )
        .start();
    send_queries(&d, "http", 1);
    assert!(
        d.wait_for_stderr("if the cluster uses TLS", WAIT),
        "{}",
        d.stderr()
    );
    assert_eq!(es.count("dns-http"), 0);
}

/// A front that refuses every request with 401, as Elasticsearch does.
fn refusing_front() -> HttpFront {
    HttpFront::start(
        None,
        Box::new(|_| {
            Some((
                401,
                json!({"error": {"type": "security_exception",
                                 "reason": "unable to authenticate user [elastic] for REST request [/_bulk]"},
                       "status": 401})
                .to_string(),
            ))
        }),
    )
}

/// The first log line about a refused bulk request.
fn refusal(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.contains("refused a whole bulk request"))
        .unwrap_or_default()
}

#[test]
fn rejected_credentials_name_the_user_or_key_id_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let pw = write(dir.path(), "pw", "hunter2-secret\n");
    let key = write(dir.path(), "key", "key-id-7:topsecret-key\n");

    // Basic auth from the flags.
    let front = refusing_front();
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .elasticsearch(&front.url(), "dns-auth")
        .arg("--es-user")
        .arg("elastic")
        .arg("--es-password-file")
        .arg(&pw)
        .start();
    send_queries(&d, "auth", 2);
    assert!(
        d.wait_for_stderr("refused a whole bulk request", WAIT),
        "{}",
        d.stderr()
    );
    let err = d.stderr();
    assert!(
        refusal(&err).contains("credential=user `elastic` (basic auth)"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    // The credential was sent: Basic base64("elastic:hunter2-secret").
    let seen = front.seen();
    assert!(
        seen.iter()
            .any(|s| s.header("authorization") == Some("Basic ZWxhc3RpYzpodW50ZXIyLXNlY3JldA==")),
        "{seen:?}"
    );
    // Nothing was given up on.
    assert!(!state.path().join("dead-letter.ndjson").exists());
    drop(d);

    // An API key from the environment variable.
    let front = refusing_front();
    let state = tempfile::tempdir().unwrap();
    let d = DaemonBuilder::new(state.path())
        .elasticsearch(&front.url(), "dns-auth")
        .env("DNSENRICH_ES_API_KEY_FILE", &key)
        .start();
    send_queries(&d, "key", 1);
    assert!(
        d.wait_for_stderr("refused a whole bulk request", WAIT),
        "{}",
        d.stderr()
    );
    let err = d.stderr();
    assert!(
        refusal(&err).contains("credential=API key id `key-id-7`"),
        "{err}"
    );
    assert!(!err.contains("topsecret"), "{err}");
    let seen = front.seen();
    assert!(
        seen.iter().any(|s| s
            .header("authorization")
            .is_some_and(|h| h.starts_with("ApiKey "))),
        "{seen:?}"
    );
}

/// The base configuration of the refusal cases, with `extra` merged in.
fn refused_config(dir: &Path, extra: &str) -> String {
    let text = format!(
        "state_dir = {state:?}\n[input.udp]\nlisten = [\"127.0.0.1:0\"]\n\
         [input.tcp]\nlisten = []\n{extra}",
        state = dir.display().to_string()
    );
    write(dir, "dnsenrich.toml", &text)
}

/// Runs `args`; it must fail with exit status 2; its stderr.
fn refused(args: &[&str]) -> String {
    let os: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let (status, _, err) = run_to_exit(&os, WAIT);
    assert_eq!(status.code(), Some(2), "{args:?}: {err}");
    err
}

#[test]
fn check_config_refuses_what_run_refuses_with_the_same_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pw = write(d, "pw", "pw\n");
    let not_pem = write(d, "ca.pem", "this is no certificate\n");
    let ioc_dir = d.join("not-a-file-but-a-directory");
    std::fs::create_dir(&ioc_dir).unwrap();
    let es = "[output]\ntype = \"elasticsearch\"\nurl = \"http://127.0.0.1:9\"\n";
    let cases: Vec<(&str, String, &str)> =
        vec![
        (
            "a password without a user",
            format!("{es}password_file = {pw:?}\n"),
            "output.username: a password is set but no username",
        ),
        (
            "a password file that cannot be read",
            format!("{es}username = \"u\"\npassword_file = \"/nonexistent/dnsenrich/pw\"\n"),
            "cannot read /nonexistent/dnsenrich/pw",
        ),
        (
            "a user without a password",
            format!("{es}username = \"u\"\n"),
            "output.password: username `u` is set but no password",
        ),
        (
            "credentials in the URL",
            "[output]\ntype = \"elasticsearch\"\nurl = \"https://elastic:hunter2@127.0.0.1:9\"\n"
                .to_string(),
            "output.url: `https://***@127.0.0.1:9` holds credentials",
        ),
        (
            "a URL without a scheme",
            "[output]\ntype = \"elasticsearch\"\nurl = \"127.0.0.1:9200\"\n".to_string(),
            "does not start with http:// or https://; write http://127.0.0.1:9200",
        ),
        (
            "a CA file that is not PEM",
            format!("{es}ca_file = {not_pem:?}\n"),
            "no PEM certificate in it",
        ),
        (
            "a missing TLS certificate",
            "[input.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"/nonexistent/dnsenrich/c.pem\"\n\
             key = \"/nonexistent/dnsenrich/k.pem\"\n"
                .to_string(),
            "input.tls: ",
        ),
        (
            "an indicator file that cannot be read",
            format!("[enrich]\nioc_files = [{:?}]\n", ioc_dir.display().to_string()),
            "enrich.ioc_files: ",
        ),
    ];
    for (what, extra, expect) in cases {
        let case_dir = tempfile::tempdir().unwrap();
        let cfg = refused_config(case_dir.path(), &extra);
        let check = refused(&["check-config", &cfg]);
        let run = refused(&["run", "--config", &cfg]);
        assert!(check.contains(expect), "{what}: check-config said {check}");
        assert_eq!(check, run, "{what}: check-config and run differ");
        assert!(!check.contains("hunter2"), "{what}: {check}");
    }

    // The flags are checked by the same code.
    let cfg = refused_config(d, "");
    let err = refused(&[
        "run",
        "--config",
        &cfg,
        "--elasticsearch",
        "http://127.0.0.1:9",
        "--es-password-file",
        &pw,
    ]);
    assert!(
        err.contains("output.username: a password is set but no username (username, --es-user"),
        "{err}"
    );
    let err = refused(&["run", "--config", &cfg, "--es-user", "u"]);
    assert!(err.contains("need the Elasticsearch output"), "{err}");
}

/// A daemon shipping to `index` on `es`, with metrics.
fn shipping(es: &Osmem, state: &Path, index: &str) -> common::daemon::Daemon {
    DaemonBuilder::new(state)
        .elasticsearch(&es.url, index)
        .arg("--metrics")
        .arg("127.0.0.1:0")
        .start()
}

fn post(es: &Osmem, path: &str, body: &Value) -> Value {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/{path}", es.url))
        .json(body)
        .send()
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

#[test]
fn a_read_only_index_keeps_the_documents_until_the_block_is_lifted() {
    let es = Osmem::start();
    es.put("dns-ro", &json!({}));
    es.put("dns-ro/_settings", &json!({"index.blocks.write": true}));
    let state = tempfile::tempdir().unwrap();
    let mut d = shipping(&es, state.path(), "dns-ro");
    send_queries(&d, "ro", 3);
    assert!(
        d.wait_for_stderr("the target is read-only", WAIT),
        "{}",
        d.stderr()
    );
    wait_until("the blocked metric", WAIT, || {
        d.metric("dnsenrich_bulk_blocked_total{reason=\"read_only\"}")
            .is_some_and(|n| n >= 1.0)
    });
    assert!(!state.path().join("dead-letter.ndjson").exists());
    es.put("dns-ro/_settings", &json!({"index.blocks.write": false}));
    wait_until("3 documents once writable", WAIT, || {
        es.count("dns-ro") == 3
    });
    assert!(d.sigterm().success());
    assert_eq!(d.stopped().dead_lettered, 0);
}

#[test]
fn a_closed_index_keeps_the_documents_until_it_is_opened() {
    let es = Osmem::start();
    es.put("dns-closed", &json!({}));
    post(&es, "dns-closed/_close", &json!({}));
    let state = tempfile::tempdir().unwrap();
    let mut d = shipping(&es, state.path(), "dns-closed");
    send_queries(&d, "closed", 2);
    assert!(d.wait_for_stderr("index is closed", WAIT), "{}", d.stderr());
    post(&es, "dns-closed/_open", &json!({}));
    wait_until("2 documents once open", WAIT, || {
        es.count("dns-closed") == 2
    });
    assert!(d.sigterm().success());
    assert!(!state.path().join("dead-letter.ndjson").exists());
}

#[test]
fn a_mapping_that_refuses_a_field_every_document_has_is_reported_not_dead_lettered() {
    let es = Osmem::start();
    // `event.kind` as a number: no dnsenrich document can be stored.
    let broken = json!({"mappings": {"properties": {"event": {"properties": {
        "kind": {"type": "long"}}}}}});
    es.put("dns-conflict", &broken);
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&es.url, "dns-conflict")
        .config("[output]\ninstall_template = false\n")
        .start();
    send_queries(&d, "conflict", 2);
    assert!(
        d.wait_for_stderr("mapping refuses a field every document has", WAIT),
        "{}",
        d.stderr()
    );
    assert!(!state.path().join("dead-letter.ndjson").exists());
    // Fixed by giving the index a mapping that fits.
    reqwest::blocking::Client::new()
        .delete(format!("{}/dns-conflict", es.url))
        .send()
        .unwrap();
    es.put("dns-conflict", &json!({}));
    wait_until("2 documents once fixed", WAIT, || {
        es.count("dns-conflict") == 2
    });
    assert!(d.sigterm().success());
}

#[test]
fn a_request_too_large_for_the_server_is_sent_in_halves() {
    let es = Osmem::start();
    // Like a proxy's body limit: more than one document is too large.
    let front = HttpFront::start(
        Some(es.url.clone()),
        Box::new(|s| {
            (s.line.contains("/_bulk") && s.bulk_docs() > 1)
                .then(|| (413, r#"{"error":"request entity too large"}"#.to_owned()))
        }),
    );
    let state = tempfile::tempdir().unwrap();
    let mut d = DaemonBuilder::new(state.path())
        .elasticsearch(&front.url(), "dns-413")
        .config("[output]\nflush_interval_ms = 500\n")
        .start();
    send_queries(&d, "big", 4);
    wait_until("4 documents", WAIT, || es.count("dns-413") == 4);
    assert!(d.sigterm().success());
    assert_eq!(d.stopped().dead_lettered, 0);
    let seen = front.seen();
    assert!(
        seen.iter()
            .any(|s| s.line.contains("/_bulk") && s.bulk_docs() > 1),
        "the documents were never sent together, so nothing was split: {seen:?}"
    );
}

#[test]
fn dead_letters_replay_resends_and_keeps_what_is_refused_again() {
    let es = Osmem::start();
    let dir = tempfile::tempdir().unwrap();
    // A dead-letter file as the output writes it: two documents that fit
    // the index now, one that still does not, and a line that is not one.
    es.put(
        "dns-replay",
        &json!({"mappings": {"properties": {"source": {"properties": {"ip": {"type": "ip"}}}}}}),
    );
    let line = |doc: Value| {
        json!({"@timestamp": "2026-11-28T01:10:39.000Z", "status": 400,
               "error": {"type": "mapper_parsing_exception", "reason": "was wrong"},
               "index": "dns-replay", "document": doc})
        .to_string()
    };
    let file = dir.path().join("dead-letter.ndjson");
    let text = [
        line(json!({"dns": {"question": {"name": "one.test"}}, "source": {"ip": "10.0.0.1"}})),
        line(json!({"dns": {"question": {"name": "two.test"}}})),
        line(json!({"dns": {"question": {"name": "bad.test"}}, "source": {"ip": "not-an-ip"}})),
        "this line is damaged".to_owned(),
    ]
    .join("\n")
        + "\n";
    std::fs::write(&file, &text).unwrap();
    let file_s = file.display().to_string();
    let os: Vec<&OsStr> = [
        "dead-letters",
        "replay",
        &file_s,
        "--elasticsearch",
        &es.url,
        "--index",
        "dns-replay",
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let (status, _, err) = run_to_exit(&os, WAIT);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("4 lines, 3 documents sent: 2 stored, 0 already stored, 1 refused again, 1 unreadable lines"),
        "{err}"
    );
    let names: Vec<String> = es
        .search_all("dns-replay")
        .iter()
        .filter_map(|d| d["dns"]["question"]["name"].as_str().map(String::from))
        .collect();
    assert_eq!(names.len(), 2);
    assert!(names.contains(&"one.test".into()) && names.contains(&"two.test".into()));
    // The file itself is untouched; what is refused again is kept.
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let again = dir.path().join("dead-letter.ndjson.refused.ndjson");
    let kept: Vec<Value> = std::fs::read_to_string(&again)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    let refused = kept.iter().find(|k| k.get("document").is_some()).unwrap();
    assert_eq!(refused["document"]["source"]["ip"], "not-an-ip");
    assert_eq!(refused["status"], 400);
    let damaged = kept.iter().find(|k| k.get("line").is_some()).unwrap();
    assert_eq!(damaged["line"], "this line is damaged");
    assert_eq!(damaged["error"]["type"], "unreadable_dead_letter_line");

    // Replaying the new file sends the refused one again and keeps both.
    let again_s = again.display().to_string();
    let out2 = dir.path().join("second.ndjson").display().to_string();
    let os: Vec<&OsStr> = [
        "dead-letters",
        "replay",
        &again_s,
        "--elasticsearch",
        &es.url,
        "--index",
        "dns-replay",
        "--refused",
        &out2,
    ]
    .into_iter()
    .map(OsStr::new)
    .collect();
    let (status, _, err) = run_to_exit(&os, WAIT);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("1 refused again, 1 unreadable lines"), "{err}");
    assert_eq!(std::fs::read_to_string(&out2).unwrap().lines().count(), 2);
    assert_eq!(es.count("dns-replay"), 2);
}
