//! The `dnsenrich` command line: subcommands and their flags, nothing else.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use dnsenrich::config::Config;
use dnsenrich::config::ValidConfig;
use dnsenrich::decode::{DecodeStats, LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::grammar::GrammarSet;
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
    Sync(Box<dnsenrich::sync::SyncArgs>),
    /// Parse log lines from files or stdin and print one ECS JSON object per line.
    Parse(ParseArgs),
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
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Accept only TLS clients with a certificate signed by this CA (PEM).
    #[arg(long, value_name = "FILE")]
    tls_client_ca: Option<PathBuf>,
    /// Follow a log file such as /var/log/pihole/pihole.log (repeatable).
    #[arg(long, value_name = "FILE")]
    tail: Vec<PathBuf>,
    /// Ship to Elasticsearch at this URL (instead of NDJSON).
    #[arg(long, value_name = "URL")]
    elasticsearch: Option<String>,
    /// Write into this plain index instead of the data stream.
    #[arg(long, value_name = "NAME")]
    index: Option<String>,
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
    /// Load indicators from this file into memory (repeatable): a plain list,
    /// hosts format, CSV `value,feed`, or a `dnsenrich sync --to-file` file.
    #[arg(long, value_name = "FILE")]
    ioc_file: Vec<PathBuf>,
    /// Serve Prometheus metrics, /health and /ready on this address.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Parse(args) => parse(args),
        Command::Run(args) => run(*args),
        Command::CheckConfig { file } => check_config(&file),
        Command::Sync(args) => sync(*args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dnsenrich: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn sync(args: dnsenrich::sync::SyncArgs) -> anyhow::Result<ExitCode> {
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

fn check_config(file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(file)?;
    print!("{}", cfg.to_toml());
    eprintln!("{}: OK", file.display());
    Ok(ExitCode::SUCCESS)
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
    }
    if !a.listen_tcp.is_empty() {
        cfg.input.tcp.listen = a.listen_tcp.clone();
    }
    if !a.listen_tls.is_empty() {
        cfg.input.tls.listen = a.listen_tls.clone();
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
    cfg.input.file.paths.extend(a.tail.iter().cloned());
    if let Some(d) = &a.state_dir {
        cfg.state_dir = d.clone();
    }
    cfg.parse.grammars.extend(a.grammars.iter().cloned());
    if let Some(z) = &a.timezone {
        cfg.parse.timezone = z.clone();
    }
    if a.metrics.is_some() {
        cfg.metrics.listen = a.metrics;
    }
    if !a.memcached.is_empty() {
        cfg.enrich.memcached = a.memcached.clone();
    }
    cfg.enrich.ioc_files.extend(a.ioc_file.iter().cloned());
    match (&a.elasticsearch, &a.output) {
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
    if let Some(index) = &a.index {
        match &mut cfg.output {
            OutputConfig::Elasticsearch(es) => es.index = Some(index.clone()),
            OutputConfig::Ndjson(_) => {
                anyhow::bail!("--index needs the Elasticsearch output (--elasticsearch URL)")
            }
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(cfg.pipeline.io_threads())
        .thread_name("dnsenrich-io")
        .build()?;
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
    if let Some(m) = d.metrics_addr() {
        parts.push(format!("metrics://{m}"));
    }
    // One write, so a reader never sees half of the line.
    let line = format!("dnsenrich: listening on {}{hint}\n", parts.join(" "));
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let grammars = Arc::new(GrammarSet::with_files(&args.grammars)?);
    let mut decoder = LineDecoder::new(grammars, args.timezone, args.max_line_bytes)
        .keep_original(args.keep_original);
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
            buf.clear();
            ev.write_json(&mut buf);
            buf.push(b'\n');
            if let Err(e) = out.write_all(&buf) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(ExitCode::SUCCESS);
                }
                return Err(e.into());
            }
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
