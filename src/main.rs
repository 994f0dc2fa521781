//! The `dnsenrich` command line: subcommands and their flags, nothing else.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};

use dnsenrich::config::Config;
use dnsenrich::config::ValidConfig;
use dnsenrich::correlate::{Correlator, EventsMode, TxnConfig};
use dnsenrich::decode::{DecodeStats, LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::event::Event;
use dnsenrich::grammar::GrammarSet;
use dnsenrich::indicator::distribution::DistributionKind;
use dnsenrich::lines::BoundedLines;
use dnsenrich::pipeline::{BuildContext, Daemon};
use dnsenrich::syslog::Zone;

#[derive(Parser)]
#[command(
    name = "dnsenrich",
    version,
    about = "Pi-hole / dnsmasq query logs → ECS → threat-intel enrichment → Elasticsearch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector: receive syslog / tail files, parse, enrich, ship.
    Run(Box<RunArgs>),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Load threat indicators from MISP, MISP feeds and blocklists into memcached
    /// (or into an indicator file with --to-file).
    Sync(Box<sync_args::SyncArgs>),
    /// Parse log lines from files or stdin and print one ECS JSON object per line.
    Parse(ParseArgs),
    /// Ask every memcached server for a sample of keys and report whether the
    /// configured distribution looks for each where it is.
    CheckIndicators(CheckIndicatorsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (dnsenrich.1 and one per subcommand) into DIR.
    Manpages {
        /// The directory to write them into (created if missing).
        dir: PathBuf,
    },
    /// Work with dead-letter files (documents Elasticsearch refused).
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Subcommand)]
enum DeadLettersCommand {
    /// Send the documents of a dead-letter file to the configured
    /// Elasticsearch output again, once the cause of their refusal is fixed.
    /// FILE is not changed; documents refused again go to a new dead-letter
    /// file (--refused), and so do lines that are not dead-letter lines.
    /// Exits 1 if anything was kept there.
    Replay(Box<ReplayArgs>),
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The dead-letter file to send again.
    file: PathBuf,
    /// The configuration `run` uses; its `[output]` says where to send.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Send to Elasticsearch at this URL (overrides the config).
    #[arg(long, value_name = "URL")]
    elasticsearch: Option<String>,
    /// Send into this plain index instead of the configured target.
    #[arg(long, value_name = "NAME")]
    index: Option<String>,
    #[command(flatten)]
    es: EsAccessArgs,
    /// Where documents refused again (and unreadable lines) go
    /// [default: FILE.refused.ndjson].
    #[arg(long, value_name = "FILE")]
    refused: Option<PathBuf>,
}

#[derive(clap::Args)]
struct CheckIndicatorsArgs {
    /// A configuration file; its `[enrich]` memcached, distribution and
    /// namespace are the base the flags override.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// memcached server (repeatable; replaces the configured list).
    #[arg(long, value_name = "HOST:PORT")]
    memcached: Vec<String>,
    /// The distribution to check (default: the configured one).
    #[arg(long, value_enum, value_name = "DISTRIBUTION")]
    distribution: Option<DistributionKind>,
    /// The key namespace (default: the configured one).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// A key to look for, exactly as stored, namespace included (repeatable).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
    /// A blocklist (plain or hosts format) whose entries make the keys, as
    /// `dnsenrich sync --list` would write them.
    #[arg(long, value_name = "FILE")]
    list: Option<PathBuf>,
    /// Check at most this many keys from --list.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    sample: usize,
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file (see dnsenrich.example.toml); flags override it.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen for syslog over UDP (repeatable; replaces the configured list).
    #[arg(long, value_name = "ADDR")]
    listen_udp: Vec<std::net::SocketAddr>,
    /// Listen for syslog over TCP (repeatable; replaces the configured list).
    #[arg(long, value_name = "ADDR")]
    listen_tcp: Vec<std::net::SocketAddr>,
    /// Listen for syslog over TLS (repeatable); needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR")]
    listen_tls: Vec<std::net::SocketAddr>,
    /// Listen for RELP from rsyslog's omrelp (repeatable; replaces the
    /// configured list); each message is answered once it is stored.
    #[arg(long, value_name = "ADDR")]
    listen_relp: Vec<std::net::SocketAddr>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Accept only TLS clients with a certificate signed by this CA (PEM).
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Open no syslog listener (UDP, TCP or TLS), whatever the configuration
    /// file says.
    #[arg(long)]
    no_listen: bool,
    /// Follow a log file such as /var/log/pihole/pihole.log (repeatable).
    /// With files to follow, the loopback syslog listeners of the defaults are
    /// not opened; a listen address given in the file or with --listen-* is.
    #[arg(long, value_name = "FILE")]
    tail: Vec<PathBuf>,
    /// Ship to Elasticsearch at this URL (instead of NDJSON); repeat it for
    /// each node of a cluster.
    #[arg(long, value_name = "URL")]
    elasticsearch: Vec<String>,
    /// Write into this plain index instead of the data streams (`{dataset}`
    /// in the name: one index per dataset).
    #[arg(long, value_name = "NAME")]
    index: Option<String>,
    /// The namespace of the data streams, logs-<dataset>-<NAMESPACE>
    /// (`[output] namespace`; not the memcached key namespace).
    #[arg(long, value_name = "NAMESPACE")]
    es_namespace: Option<String>,
    /// Keep data-stream documents this long (30d, 12h): a data stream
    /// lifecycle instead of Elastic's `logs` ILM policy (`[output] retention`).
    #[arg(long, value_name = "PERIOD")]
    es_retention: Option<String>,
    #[command(flatten)]
    es: EsAccessArgs,
    /// Write NDJSON to this file (`-` is stdout).
    #[arg(long, value_name = "FILE|-")]
    output: Option<PathBuf>,
    /// Directory for file offsets and the dead-letter file.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// An extra grammar file (repeatable).
    #[arg(long = "grammar", value_name = "FILE")]
    grammars: Vec<PathBuf>,
    /// Time zone for RFC 3164 stamps.
    #[arg(long, value_name = "ZONE")]
    timezone: Option<String>,
    /// Look indicators up in this memcached server (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    memcached: Vec<String>,
    /// How keys are spread over several --memcached servers (default:
    /// rendezvous, how `dnsenrich sync` writes them).
    #[arg(long, value_enum, value_name = "DISTRIBUTION")]
    distribution: Option<DistributionKind>,
    /// Load indicators from this file into memory (repeatable): a plain list,
    /// hosts format, CSV `value,feed`, or a `dnsenrich sync --to-file` file.
    #[arg(long, value_name = "FILE")]
    ioc_file: Vec<PathBuf>,
    /// Serve Prometheus metrics, /health and /ready on this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// What to write: one document per log line, per DNS query, or both
    /// (`events` in the configuration file; default lines).
    #[arg(long, value_enum, value_name = "MODE")]
    events: Option<EventsMode>,
}

/// How to reach a secured Elasticsearch; each flag can also be given as the
/// environment variable named in its help. They override the config file:
/// a basic-auth flag replaces its API key, an API key flag its user and
/// password.
#[derive(clap::Args, Debug, Default, Clone)]
struct EsAccessArgs {
    /// Elasticsearch user for basic auth (with --es-password-file, or the
    /// password in $DNSENRICH_ES_PASSWORD).
    #[arg(long, value_name = "USER", env = "DNSENRICH_ES_USER")]
    es_user: Option<String>,
    /// A file holding the password of --es-user (trailing newline ignored).
    #[arg(long, value_name = "FILE", env = "DNSENRICH_ES_PASSWORD_FILE")]
    es_password_file: Option<PathBuf>,
    /// A file holding an Elasticsearch API key: `id:key`, or the base64
    /// `encoded` value Elasticsearch prints when it creates one.
    #[arg(long, value_name = "FILE", env = "DNSENRICH_ES_API_KEY_FILE")]
    es_api_key_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the cluster's certificate, e.g. the
    /// config/certs/http_ca.crt of an Elasticsearch 8 node.
    #[arg(long, value_name = "FILE", env = "DNSENRICH_ES_CA")]
    es_ca: Option<PathBuf>,
}

impl EsAccessArgs {
    fn is_empty(&self) -> bool {
        self.es_user.is_none()
            && self.es_password_file.is_none()
            && self.es_api_key_file.is_none()
            && self.es_ca.is_none()
    }

    /// Puts the flags into the Elasticsearch output's settings.
    fn apply(&self, es: &mut dnsenrich::output::ElasticsearchConfig) {
        // A flag of one kind of credential replaces the other kind: basic
        // auth flags drop the file's API key, an API key flag its user and
        // password. Both kinds on the command line are refused by the check.
        if self.es_user.is_some() || self.es_password_file.is_some() {
            es.api_key = None;
            es.api_key_file = None;
            if self.es_user.is_some() {
                es.username = self.es_user.clone();
            }
            if self.es_password_file.is_some() {
                es.password = None;
                es.password_file = self.es_password_file.clone();
            }
        }
        if self.es_api_key_file.is_some() {
            if self.es_user.is_none() && self.es_password_file.is_none() {
                es.username = None;
                es.password = None;
                es.password_file = None;
            }
            es.api_key = None;
            es.api_key_file = self.es_api_key_file.clone();
        }
        if self.es_ca.is_some() {
            es.ca_file = self.es_ca.clone();
        }
    }
}

#[derive(clap::Args)]
struct ParseArgs {
    /// Files to read (raw pihole.log lines or syslog frames, detected per line); stdin when none or `-`.
    files: Vec<PathBuf>,
    /// An extra grammar file, tried before the built-in ones (repeatable).
    #[arg(long = "grammar", value_name = "FILE")]
    grammars: Vec<PathBuf>,
    /// Time zone for RFC 3164 stamps, which carry none: `local`, `UTC`, an IANA name, or an offset like `+02:00`.
    #[arg(long, default_value = "local", value_name = "ZONE")]
    timezone: Zone,
    /// Longer lines are cut to this many bytes and tagged `_dnsenrich_truncated`.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE, value_name = "BYTES")]
    max_line_bytes: usize,
    /// Keep the raw line in `event.original` on every event (lines no rule
    /// matches always keep it).
    #[arg(long)]
    keep_original: bool,
    /// Read the lines as if received at this instant (RFC 3339), for reproducible
    /// output: it sets the year of RFC 3164 stamps and the time of lines without one.
    #[arg(long, value_name = "TIME")]
    now: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Do not print the summary to stderr.
    #[arg(long, short)]
    quiet: bool,
    /// One event per log line, per DNS query (the lines of each query
    /// correlated as `run` does, with `[transactions]` defaults; whatever is
    /// open at the end of input is emitted), or both.
    #[arg(long, value_enum, default_value = "lines", value_name = "MODE")]
    events: EventsMode,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => parse(args),
        Command::Run(args) => run(*args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Sync(args) => sync(*args),
        Command::CheckIndicators(args) => check_indicators(args),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "dnsenrich", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { dir } => manpages(&dir),
        Command::DeadLetters(DeadLettersCommand::Replay(args)) => replay(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dnsenrich: error: {}", error_chain(&e));
            ExitCode::from(2)
        }
    }
}

/// Writes `dnsenrich.1` and one `dnsenrich-SUBCOMMAND.1` per subcommand.
fn manpages(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let write = |name: String, page: clap::Command| -> anyhow::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(page).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
    };
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() {
            continue;
        }
        let name = format!("dnsenrich-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    write("dnsenrich".into(), cmd)?;
    Ok(ExitCode::SUCCESS)
}

/// An error and its causes on one line, each cause once: errors that already
/// say their cause in their own message are not followed by it again.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

fn sync(args: sync_args::SyncArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let cfg = args.into_config()?;
    init_logging(&dnsenrich::config::LogConfig::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    rt.block_on(async move {
        if cfg.every.is_some() {
            let (trigger, sd) = dnsenrich::pipeline::shutdown::channel();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                trigger.trigger();
            });
            dnsenrich::sync::run_every(cfg, sd).await?;
        } else {
            let report = dnsenrich::sync::run_once(&cfg, progress).await?;
            eprintln!("{report}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    use dnsenrich::output::replay::{default_refused_path, replay};
    use dnsenrich::output::{ElasticsearchConfig, OutputConfig};
    let mut cfg = match &a.config {
        Some(p) => Config::read(p)?,
        None => Config::default(),
    };
    if let Some(url) = &a.elasticsearch {
        let mut es = match &cfg.output {
            OutputConfig::Elasticsearch(es) => es.clone(),
            OutputConfig::Ndjson(_) => ElasticsearchConfig::default(),
        };
        es.url = vec![url.clone()];
        cfg.output = OutputConfig::Elasticsearch(es);
    }
    let OutputConfig::Elasticsearch(es) = &mut cfg.output else {
        anyhow::bail!(
            "the output is not Elasticsearch: give --elasticsearch URL, or a --config whose \
             [output] has type = \"elasticsearch\""
        );
    };
    if let Some(index) = &a.index {
        es.index = Some(index.clone());
    }
    a.es.apply(es);
    let cfg = cfg.check()?;
    init_logging(&cfg.log);
    let OutputConfig::Elasticsearch(es) = &cfg.output else {
        unreachable!("set above")
    };
    let refused = a.refused.unwrap_or_else(|| default_refused_path(&a.file));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()?;
    let report = rt.block_on(replay(es.clone(), &a.file, &refused))?;
    eprintln!(
        "dnsenrich dead-letters replay {}: {report}",
        a.file.display()
    );
    Ok(if report.refused + report.unreadable > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(file)?;
    print!("{}", cfg.to_toml());
    eprintln!("{}: OK", file.display());
    Ok(ExitCode::SUCCESS)
}

fn check_indicators(a: CheckIndicatorsArgs) -> anyhow::Result<ExitCode> {
    use dnsenrich::enrich::check;
    use dnsenrich::enrich::memcached::{Memcached, MemcachedSettings};
    use dnsenrich::indicator::{key, list};
    let mut enrich = match &a.config {
        Some(p) => Config::read(p)?.enrich,
        None => dnsenrich::enrich::EnrichConfig::default(),
    };
    if !a.memcached.is_empty() {
        enrich.memcached = a.memcached;
    }
    if let Some(d) = a.distribution {
        enrich.distribution = d;
    }
    if a.namespace.is_some() {
        enrich.namespace = a.namespace;
    }
    if enrich.memcached.is_empty() {
        anyhow::bail!("no memcached servers: give --memcached or a --config with enrich.memcached");
    }
    let namespace = enrich.namespace.as_deref().filter(|ns| !ns.is_empty());
    let mut keys = a.keys;
    if let Some(path) = &a.list {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut r = BufReader::new(f);
        let mut from_list = Vec::new();
        list::read_lines(&mut r, list::LineFormat::Auto, |e| {
            if let list::Entry::Value { mapped, .. } = e {
                for (kind, value) in mapped.atoms {
                    if from_list.len() < a.sample {
                        from_list.push(key::compose(namespace, &kind, &value).into_string());
                    }
                }
            }
        })
        .with_context(|| format!("cannot read {}", path.display()))?;
        keys.extend(from_list);
    }
    if keys.is_empty() {
        anyhow::bail!("no keys to check: give --key or --list");
    }
    let placement = enrich.placement()?;
    let settings = MemcachedSettings {
        timeout: std::time::Duration::from_millis(enrich.timeout_ms.max(1000)),
        pool_size: 1,
        backoff_min: std::time::Duration::from_millis(enrich.reconnect_min_ms),
        backoff_max: std::time::Duration::from_millis(enrich.reconnect_max_ms),
    };
    let addrs: Vec<String> = enrich
        .memcached
        .iter()
        .map(|s| dnsenrich::indicator::distribution::address_of(enrich.distribution, s).to_owned())
        .collect();
    let m = Memcached::new(&addrs, settings)
        .map_err(|(i, e)| anyhow::anyhow!("enrich.memcached[{i}]: {e}"))?;
    let m = match placement {
        Some(p) => m.placed(p),
        None => m,
    };
    let report = check::check(&m, &enrich.memcached, &keys, namespace);
    let name = |i: usize| report.servers[i].as_str();
    for k in &report.keys {
        let verdict = if k.found_on.is_empty() {
            "not found".to_string()
        } else {
            let on: Vec<&str> = k.found_on.iter().map(|&i| name(i)).collect();
            let v = if k.matches() { "ok" } else { "MISPLACED" };
            format!("{v}: found on {}", on.join(", "))
        };
        println!(
            "{}\t{verdict}; {} looks on {}",
            k.key,
            report.distribution.as_str(),
            name(k.expected)
        );
    }
    for (i, why) in &report.unreachable {
        eprintln!("dnsenrich: memcached {} did not answer ({why})", name(*i));
    }
    let found = report.keys.len() - report.missing();
    eprintln!(
        "{} keys: {found} found, {} not where the {} distribution looks, {} on no server",
        report.keys.len(),
        report.misplaced(),
        report.distribution.as_str(),
        report.missing()
    );
    if report.misplaced() > 0 {
        let hint: Vec<&str> = report.would_match.iter().map(|d| d.as_str()).collect();
        if hint.is_empty() {
            eprintln!("hint: no distribution places every found key where it is (keys written during an outage, or by several writers?)");
        } else {
            eprintln!(
                "hint: the keys sit where the {} distribution puts them: set distribution = {:?} in [enrich] (and [sync]), or --distribution {}",
                hint.join(" or "),
                hint[0],
                hint[0]
            );
        }
    }
    if report.ok() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}

/// The configuration file (or the defaults) with the flags applied, checked
/// once they are.
fn effective_config(a: &RunArgs) -> anyhow::Result<ValidConfig> {
    use dnsenrich::output::{ElasticsearchConfig, NdjsonConfig, OutputConfig};
    let mut cfg = match &a.config {
        Some(p) => Config::read(p)?,
        None => Config::default(),
    };
    if !a.listen_udp.is_empty() {
        cfg.input.udp.listen = a.listen_udp.clone();
        cfg.input.explicit_listen.udp = true;
    }
    if !a.listen_tcp.is_empty() {
        cfg.input.tcp.listen = a.listen_tcp.clone();
        cfg.input.explicit_listen.tcp = true;
    }
    if !a.listen_tls.is_empty() {
        cfg.input.tls.listen = a.listen_tls.clone();
    }
    if !a.listen_relp.is_empty() {
        cfg.input.relp.listen = a.listen_relp.clone();
    }
    if let Some(c) = &a.tls_cert {
        cfg.input.tls.cert = c.clone();
    }
    if let Some(k) = &a.tls_key {
        cfg.input.tls.key = k.clone();
    }
    if a.tls_client_ca.is_some() {
        cfg.input.tls.client_ca = a.tls_client_ca.clone();
    }
    if a.no_listen {
        if !(a.listen_udp.is_empty() && a.listen_tcp.is_empty() && a.listen_tls.is_empty()) {
            anyhow::bail!("--no-listen turns every syslog listener off; it cannot go with --listen-udp, --listen-tcp or --listen-tls");
        }
        cfg.input.no_listeners();
    }
    cfg.input.file.paths.extend(a.tail.iter().cloned());
    if let Some(d) = &a.state_dir {
        cfg.state_dir = d.clone();
        cfg.state_dir_explicit = true;
    }
    cfg.parse.grammars.extend(a.grammars.iter().cloned());
    if let Some(z) = &a.timezone {
        cfg.parse.timezone = z.clone();
    }
    if a.metrics.is_some() {
        cfg.metrics.listen = a.metrics;
    }
    if let Some(e) = a.events {
        cfg.events = e;
    }
    if !a.memcached.is_empty() {
        cfg.enrich.memcached = a.memcached.clone();
    }
    if let Some(d) = a.distribution {
        cfg.enrich.distribution = d;
    }
    cfg.enrich.ioc_files.extend(a.ioc_file.iter().cloned());
    let urls = (!a.elasticsearch.is_empty()).then_some(&a.elasticsearch);
    match (urls, &a.output) {
        (Some(_), Some(_)) => {
            anyhow::bail!("--elasticsearch and --output are two different outputs; choose one")
        }
        (Some(url), None) => {
            let mut es = match &cfg.output {
                OutputConfig::Elasticsearch(es) => es.clone(),
                OutputConfig::Ndjson(_) => ElasticsearchConfig::default(),
            };
            es.url = url.clone();
            cfg.output = OutputConfig::Elasticsearch(es);
        }
        (None, Some(path)) => {
            let mut nd = match &cfg.output {
                OutputConfig::Ndjson(nd) => nd.clone(),
                OutputConfig::Elasticsearch(_) => NdjsonConfig::default(),
            };
            nd.path = path.clone();
            cfg.output = OutputConfig::Ndjson(nd);
        }
        (None, None) => {}
    }
    for (flag, value) in [
        ("--index", &a.index),
        ("--es-namespace", &a.es_namespace),
        ("--es-retention", &a.es_retention),
    ] {
        let Some(value) = value else { continue };
        let OutputConfig::Elasticsearch(es) = &mut cfg.output else {
            anyhow::bail!("{flag} needs the Elasticsearch output (--elasticsearch URL)")
        };
        match flag {
            "--index" => es.index = Some(value.clone()),
            "--es-namespace" => es.namespace = value.clone(),
            _ => es.retention = Some(value.clone()),
        }
    }
    if !a.es.is_empty() {
        match &mut cfg.output {
            OutputConfig::Elasticsearch(es) => a.es.apply(es),
            OutputConfig::Ndjson(_) => anyhow::bail!(
                "--es-user, --es-password-file, --es-api-key-file and --es-ca (or their \
                 DNSENRICH_ES_* variables) need the Elasticsearch output (--elasticsearch URL)"
            ),
        }
    }
    Ok(cfg.check()?)
}

fn init_logging(cfg: &dnsenrich::config::LogConfig) {
    use dnsenrich::config::LogFormat;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps every line already.
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    // Colours only for a person at a terminal: not in files, pipes or the
    // journal, and not when NO_COLOR is set (no-color.org).
    let colour = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal()
            && !std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    };
    let _ = match cfg.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Auto if under_journal => builder.without_time().with_ansi(false).try_init(),
        _ => builder.with_ansi(colour).try_init(),
    };
}

/// Caps glibc's malloc arenas at 8. Each arena keeps the memory freed into it
/// (bulk bodies of several MiB among it), so without a cap peak RSS grows
/// with the thread count, which grows with the cores. Fewer arenas cost CPU
/// instead: threads sharing one wait for its lock. Measured on 2 cores
/// (scenario b of `scripts/bench-e2e.sh`): 2 arenas 2.66 µs/event and
/// 64 MiB, 4 arenas 2.42 µs and 69 MiB, 8 arenas 2.36 µs and 77 MiB.
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes allocator tuning; called before any
        // thread is started.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 8);
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    limit_malloc_arenas();
    let cfg = effective_config(&args)?;
    init_logging(&cfg.log);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all()
        .worker_threads(cfg.pipeline.io_threads())
        .thread_name("dnsenrich-io");
    let coalesce = std::time::Duration::from_micros(cfg.pipeline.io_coalesce_us);
    if let Some(hook) = dnsenrich::pipeline::wakeups::park_hook(coalesce) {
        rt.on_thread_park(hook);
    }
    let rt = rt.build()?;
    rt.block_on(async move {
        let ctx = BuildContext::new(&cfg);
        let daemon = Daemon::build(cfg, ctx)?;
        announce(&daemon);
        let report = daemon.run_until(std::future::pending()).await?;
        let p = &report.parse;
        tracing::info!(
            lines = p.lines,
            parsed = p.parsed,
            unmatched = p.no_match,
            truncated = p.truncated,
            invalid_utf8 = p.invalid_utf8,
            empty = p.empty,
            lost = report.abandoned.lost,
            reread_from_files = report.abandoned.reread,
            resent_by_relp = report.abandoned.resent,
            transactions = report.transactions.transactions,
            output = %report.output,
            "stopped"
        );
        Ok(if report.timed_out {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

/// One line saying where dnsenrich listens and how to send it a test message.
fn announce(d: &Daemon) {
    let inputs = d.inputs();
    let mut parts = Vec::new();
    if let Some(u) = &inputs.udp {
        parts.extend(u.local_addrs().iter().map(|a| format!("udp://{a}")));
    }
    if let Some(t) = &inputs.tcp {
        parts.extend(t.local_addrs().iter().map(|a| format!("tcp://{a}")));
    }
    if let Some(t) = &inputs.tls {
        parts.extend(t.local_addrs().iter().map(|a| format!("tls://{a}")));
    }
    if let Some(r) = &inputs.relp {
        let scheme = if r.is_tls() { "relp+tls" } else { "relp" };
        parts.extend(r.local_addrs().iter().map(|a| format!("{scheme}://{a}")));
    }
    let hint = inputs
        .udp
        .as_ref()
        .and_then(|u| u.local_addrs().first().copied())
        .map(|a| {
            format!(
                "; try: logger -n {} -P {} -d -t dnsmasq 'query[A] example.com from 192.0.2.1'",
                a.ip(),
                a.port()
            )
        })
        .unwrap_or_default();
    let mut files = Vec::new();
    if let Some(f) = &inputs.file {
        files.extend(f.paths().iter().map(|p| p.display().to_string()));
    }
    if let Some(m) = d.metrics_addr() {
        parts.push(format!("metrics://{m}"));
    }
    let mut line = String::from("dnsenrich:");
    if !parts.is_empty() {
        line.push_str(" listening on ");
        line.push_str(&parts.join(" "));
    }
    if !files.is_empty() {
        if !parts.is_empty() {
            line.push(';');
        }
        line.push_str(" following ");
        line.push_str(&files.join(" "));
    }
    if parts.is_empty() && files.is_empty() {
        line.push_str(" no input configured (no listener, no file to follow)");
    }
    line.push_str(&hint);
    line.push('\n');
    // One write, so a reader never sees half of the line.
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let grammars = Arc::new(GrammarSet::with_files(&args.grammars)?);
    let mut decoder = LineDecoder::new(grammars, args.timezone, args.max_line_bytes)
        .keep_original(args.keep_original);
    // Lines are read faster than any timeout runs out: the clock here is the
    // lines' own time stamps (see LogClock).
    let mut clock = LogClock::default();
    let mut correlator = args
        .events
        .correlates()
        .then(|| Correlator::new(args.events, TxnConfig::default()));
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut buf = Vec::with_capacity(1024);
    let files = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files
    };
    for path in &files {
        let reader: Box<dyn Read> = if path.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(
                std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            )
        };
        let mut lines = BoundedLines::new(
            BufReader::with_capacity(1 << 16, reader),
            args.max_line_bytes,
        );
        while let Some(line) = lines
            .next_line()
            .with_context(|| format!("reading {}", path.display()))?
        {
            let now = args
                .now
                .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
            let ev = decoder.decode_at(line.bytes, line.truncated, now);
            let events = match &mut correlator {
                Some(c) => {
                    let now = clock.at(ev.timestamp);
                    c.push(ev, None, now);
                    if let Some(due) = now.checked_sub(PARSE_CLOCK_SLACK) {
                        c.expire(due);
                    }
                    c.take_output().0
                }
                None => vec![ev],
            };
            if !write_events(&mut out, &mut buf, &events)? {
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    if let Some(c) = &mut correlator {
        c.flush();
        let events = c.take_output().0;
        if !write_events(&mut out, &mut buf, &events)? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        r => r?,
    }
    if !args.quiet {
        print_summary(&decoder.stats);
    }
    Ok(ExitCode::SUCCESS)
}

/// How far behind the newest line's stamp `parse --events` closes
/// transactions: dnsmasq's stamps have whole seconds, so lines one or two
/// seconds apart may still belong together.
const PARSE_CLOCK_SLACK: Duration = Duration::from_secs(2);

/// A clock for correlating a file read at full speed: it follows the lines'
/// time stamps (never going back) and moves on by [`PARSE_LINE_TICK`] per
/// line, so a busy second of log still closes its transactions as it goes
/// instead of holding them all open.
struct LogClock {
    base: Instant,
    first: Option<chrono::DateTime<chrono::Utc>>,
    newest: Duration,
    lines: u32,
}

/// How far one line moves the `parse --events` clock.
const PARSE_LINE_TICK: Duration = Duration::from_millis(1);

impl Default for LogClock {
    fn default() -> Self {
        LogClock {
            base: Instant::now(),
            first: None,
            newest: Duration::ZERO,
            lines: 0,
        }
    }
}

impl LogClock {
    fn at(&mut self, ts: Option<chrono::DateTime<chrono::Utc>>) -> Instant {
        if let Some(ts) = ts {
            let first = *self.first.get_or_insert(ts);
            let since = (ts - first).to_std().unwrap_or_default();
            self.newest = self.newest.max(since);
        }
        self.lines = self.lines.saturating_add(1);
        self.base + self.newest + PARSE_LINE_TICK * self.lines
    }
}

/// Writes events as NDJSON; `false` when the reader went away.
fn write_events(out: &mut impl Write, buf: &mut Vec<u8>, events: &[Event]) -> anyhow::Result<bool> {
    for ev in events {
        buf.clear();
        ev.write_json(buf);
        buf.push(b'\n');
        if let Err(e) = out.write_all(buf) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(false);
            }
            return Err(e.into());
        }
    }
    Ok(true)
}

fn print_summary(s: &DecodeStats) {
    let reasons: Vec<String> = s
        .reasons()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{r}={n}"))
        .collect();
    eprintln!(
        "dnsenrich parse: {} lines, {} parsed, {} unmatched{}{}",
        s.lines,
        s.parsed,
        s.no_match,
        if reasons.is_empty() { "" } else { "; " },
        reasons.join(" ")
    );
}

mod sync_args {
    //! The flags of `dnsenrich sync`, merged over the `[sync]` section of a
    //! configuration file: a flag given replaces the file's value (a repeatable
    //! flag replaces the whole list).

    use std::path::{Path, PathBuf};

    use anyhow::Context;

    use dnsenrich::indicator::distribution::DistributionKind;
    use dnsenrich::output::Secret;
    use dnsenrich::sync::{
        split_name, DurationSpec, ListFormat, ListSource, SyncConfig, ValueFormat,
    };

    /// `dnsenrich sync` flags.
    #[derive(Debug, Clone, Default, clap::Args)]
    pub struct SyncArgs {
        /// A configuration file; its `[sync]` section is the base the flags override.
        #[arg(long, short, value_name = "FILE")]
        pub config: Option<PathBuf>,
        /// MISP base URL; attributes come from its /attributes/restSearch.
        #[arg(long, value_name = "URL")]
        pub misp_url: Option<String>,
        /// MISP API key. Prefer --misp-key-file or $DNSENRICH_MISP_KEY, which
        /// other users cannot see in the process list.
        #[arg(long, value_name = "KEY")]
        pub misp_key: Option<String>,
        /// A file holding the MISP API key.
        #[arg(long, value_name = "FILE")]
        pub misp_key_file: Option<PathBuf>,
        /// Trust this CA (PEM) for MISP and feed URLs.
        #[arg(long = "misp-ca", value_name = "FILE")]
        pub misp_ca_file: Option<PathBuf>,
        /// Do not verify TLS certificates of MISP and feed URLs (labs only).
        #[arg(long)]
        pub insecure: bool,
        /// MISP attribute type to load (repeatable; `%` wildcard). Default:
        /// domain, hostname, domain|ip, ip-dst, ip-src, url.
        #[arg(long = "type", value_name = "TYPE")]
        pub types: Vec<String>,
        /// Only attributes with this tag (repeatable; `%` wildcard, `!` negates), e.g. 'Feed-%'.
        #[arg(long = "tag", value_name = "TAG")]
        pub tags: Vec<String>,
        /// Also load attributes not flagged for detection (to_ids off).
        #[arg(long)]
        pub all_attributes: bool,
        /// Only attributes of published events.
        #[arg(long)]
        pub published: bool,
        /// Only attributes changed within this window, e.g. 30d.
        #[arg(long, value_name = "DURATION")]
        pub since: Option<DurationSpec>,
        /// Attributes per restSearch page.
        #[arg(long, value_name = "N")]
        pub page_limit: Option<u32>,
        /// A MISP-format feed: directory or URL with manifest.json, optionally NAME=… (repeatable).
        #[arg(long = "misp-feed", value_name = "[NAME=]DIR|URL")]
        pub misp_feeds: Vec<String>,
        /// A blocklist (plain, hosts or CSV), optionally NAME=… (repeatable).
        #[arg(long = "list", value_name = "[NAME=]FILE|URL")]
        pub lists: Vec<String>,
        /// Feed name of a --list given without NAME=; the n-th --feed-name
        /// belongs to the n-th such --list (repeatable).
        #[arg(long = "feed-name", value_name = "NAME")]
        pub feed_names: Vec<String>,
        /// Read every --list as CSV, taking the indicator from this column
        /// (1-based number or header name).
        #[arg(long, value_name = "N|NAME")]
        pub csv_column: Option<String>,
        /// With CSV lists: the column that names the feed per row.
        #[arg(long, value_name = "N|NAME")]
        pub csv_feed_column: Option<String>,
        /// memcached server host:port (repeatable). Default: 127.0.0.1:11211.
        #[arg(long, value_name = "HOST:PORT")]
        pub memcached: Vec<String>,
        /// Key prefix: keys become NS:domain-….
        #[arg(long, value_name = "NS")]
        pub namespace: Option<String>,
        /// How keys are spread over several --memcached servers: as the
        /// reader's client places them (dalli, pymemcache, ketama) or
        /// rendezvous (dnsenrich's own; the default).
        #[arg(long, value_enum, value_name = "DISTRIBUTION")]
        pub distribution: Option<DistributionKind>,
        /// Key TTL (default: twice --every, or 1d for a single run: keys from
        /// a one-off sync expire a day later unless it runs again; `run`
        /// warns before they do).
        #[arg(long, value_name = "DURATION")]
        pub ttl: Option<DurationSpec>,
        /// Repeat the sync this often, e.g. 10m, until stopped.
        #[arg(long, value_name = "DURATION")]
        pub every: Option<DurationSpec>,
        /// json (feeds with event context) or plain (feed names joined by `,`).
        #[arg(long, value_enum, value_name = "FORMAT")]
        pub value_format: Option<ValueFormat>,
        /// Write the in-process store file (NDJSON) instead of memcached.
        #[arg(long, value_name = "FILE")]
        pub to_file: Option<PathBuf>,
        /// No progress bar even on a terminal.
        #[arg(long)]
        pub no_progress: bool,
    }

    impl SyncArgs {
        /// The configuration: the `[sync]` section of `--config` (or the
        /// defaults), with every given flag applied, validated.
        pub fn into_config(self) -> anyhow::Result<SyncConfig> {
            let mut cfg = match &self.config {
                Some(p) => load_section(p)?,
                None => SyncConfig::default(),
            };
            let a = self;
            if a.misp_url.is_some() {
                cfg.misp_url = a.misp_url;
            }
            if let Some(k) = a.misp_key {
                cfg.misp_key = Some(Secret::new(k));
            }
            if a.misp_key_file.is_some() {
                cfg.misp_key_file = a.misp_key_file;
            }
            if a.misp_ca_file.is_some() {
                cfg.misp_ca_file = a.misp_ca_file;
            }
            cfg.insecure |= a.insecure;
            if !a.types.is_empty() {
                cfg.types = a.types;
            }
            if !a.tags.is_empty() {
                cfg.tags = a.tags;
            }
            if a.all_attributes {
                cfg.to_ids = false;
            }
            if a.published {
                cfg.published = Some(true);
            }
            if a.since.is_some() {
                cfg.since = a.since;
            }
            if let Some(n) = a.page_limit {
                cfg.page_limit = n;
            }
            if !a.misp_feeds.is_empty() {
                cfg.misp_feeds = a.misp_feeds;
            }
            if !a.lists.is_empty() {
                cfg.lists =
                    lists_from_flags(&a.lists, &a.feed_names, a.csv_column, a.csv_feed_column)?;
            } else if !a.feed_names.is_empty() {
                anyhow::bail!("--feed-name names the feed of a --list; there is no --list");
            }
            if !a.memcached.is_empty() {
                cfg.memcached = a.memcached;
            }
            if a.namespace.is_some() {
                cfg.namespace = a.namespace;
            }
            if let Some(d) = a.distribution {
                cfg.distribution = d;
            }
            if let Some(t) = a.ttl {
                cfg.ttl_secs = Some(t.as_secs());
            }
            if a.every.is_some() {
                cfg.every = a.every;
            }
            if let Some(f) = a.value_format {
                cfg.value_format = f;
            }
            if a.to_file.is_some() {
                cfg.to_file = a.to_file;
            }
            cfg.validate()?;
            Ok(cfg)
        }
    }

    /// Pairs `--list` values with names: `NAME=PATH` carries its own; the others
    /// take the `--feed-name`s in order, or their file name when none is given.
    fn lists_from_flags(
        lists: &[String],
        names: &[String],
        csv_column: Option<String>,
        csv_feed_column: Option<String>,
    ) -> anyhow::Result<Vec<ListSource>> {
        let unnamed = lists.iter().filter(|l| split_name(l).0.is_none()).count();
        if !names.is_empty() && names.len() != unnamed {
            anyhow::bail!(
                "{} --feed-name for {} --list without NAME=: give one --feed-name per such --list \
             (in the same order), or write --list NAME=PATH",
                names.len(),
                unnamed
            );
        }
        let mut names = names.iter();
        let format = if csv_column.is_some() || csv_feed_column.is_some() {
            ListFormat::Csv
        } else {
            ListFormat::Auto
        };
        Ok(lists
            .iter()
            .map(|spec| {
                let (name, path) = split_name(spec);
                let feed_name = name.map(str::to_string).or_else(|| names.next().cloned());
                ListSource {
                    path_or_url: path.to_string(),
                    feed_name,
                    format,
                    csv_column: csv_column.clone(),
                    csv_feed_column: csv_feed_column.clone(),
                }
            })
            .collect())
    }

    /// The `[sync]` table of a configuration file (other sections are not
    /// checked here; `check-config` does that).
    fn load_section(path: &Path) -> anyhow::Result<SyncConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let value: toml::Value =
            toml::from_str(&text).with_context(|| format!("{}: not valid TOML", path.display()))?;
        match value.get("sync") {
            None => Ok(SyncConfig::default()),
            Some(t) => t
                .clone()
                .try_into::<SyncConfig>()
                .map_err(|e| anyhow::anyhow!("{}: [sync]: {}", path.display(), e.message())),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sync: SyncArgs,
        }

        fn cfg(args: &[&str]) -> anyhow::Result<SyncConfig> {
            let mut v = vec!["sync"];
            v.extend_from_slice(args);
            Cli::try_parse_from(v)?.sync.into_config()
        }

        #[test]
        fn lists_pair_with_feed_names_in_order() {
            let c = cfg(&[
                "--list",
                "a.txt",
                "--feed-name",
                "A",
                "--list",
                "B=b.hosts",
                "--list",
                "c.txt",
                "--feed-name",
                "C",
            ])
            .unwrap();
            let names: Vec<_> = c.lists.iter().map(|l| l.effective_feed_name()).collect();
            assert_eq!(names, ["A", "B", "C"]);
            assert_eq!(c.lists[1].path_or_url, "b.hosts");
            let e = cfg(&["--list", "a.txt", "--list", "b.txt", "--feed-name", "A"]).unwrap_err();
            assert!(e.to_string().contains("one --feed-name per"), "{e}");
            let c = cfg(&["--list", "/x/ads.txt"]).unwrap();
            assert_eq!(c.lists[0].effective_feed_name(), "ads");
        }

        #[test]
        fn flags_override_the_file_section() {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("d.toml");
            std::fs::write(
            &p,
            "[output]\ntype = \"ndjson\"\n[sync]\nmisp_url = \"https://misp.example\"\nevery = \"5m\"\nmemcached = [\"10.0.0.1:11211\"]\n",
        )
        .unwrap();
            let path = p.to_str().unwrap();
            let c = cfg(&["--config", path, "--memcached", "127.0.0.1:1"]).unwrap();
            assert_eq!(c.misp_url.as_deref(), Some("https://misp.example"));
            assert_eq!(c.memcached, ["127.0.0.1:1"]);
            assert_eq!(c.effective_ttl_secs(), 600);
            std::fs::write(&p, "[sync]\nmisp_ur = \"x\"\n").unwrap();
            let e = cfg(&["--config", path]).unwrap_err().to_string();
            assert!(e.contains("[sync]") && e.contains("misp_ur"), "{e}");
        }

        #[test]
        fn no_source_is_refused() {
            let e = cfg(&[]).unwrap_err().to_string();
            assert!(e.contains("no source"), "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EsAccessArgs;
    use dnsenrich::output::{ElasticsearchConfig, Secret};

    #[test]
    fn credential_flags_replace_the_other_kind_of_credential() {
        let file = ElasticsearchConfig {
            username: Some("from-file".into()),
            password: Some(Secret::new("pw")),
            api_key_file: Some("/etc/key".into()),
            ..Default::default()
        };
        // The file's user goes with a password file from the command line.
        let mut es = file.clone();
        EsAccessArgs {
            es_password_file: Some("/run/pw".into()),
            ..Default::default()
        }
        .apply(&mut es);
        assert_eq!(es.username.as_deref(), Some("from-file"));
        assert!(es.password.is_none() && es.api_key_file.is_none());
        assert_eq!(es.password_file.as_deref(), Some("/run/pw".as_ref()));
        // An API key flag drops the user and password.
        let mut es = file.clone();
        EsAccessArgs {
            es_api_key_file: Some("/run/key".into()),
            es_ca: Some("/run/ca.pem".into()),
            ..Default::default()
        }
        .apply(&mut es);
        assert!(es.username.is_none() && es.password.is_none());
        assert_eq!(es.api_key_file.as_deref(), Some("/run/key".as_ref()));
        assert_eq!(es.ca_file.as_deref(), Some("/run/ca.pem".as_ref()));
        // No flags: the file as it is.
        let mut es = file.clone();
        EsAccessArgs::default().apply(&mut es);
        assert_eq!(es, file);
    }
}
