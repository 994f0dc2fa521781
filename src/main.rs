//! The `dnsenrich` command line: subcommands and their flags, nothing else.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

use dnsenrich::decode::{DecodeStats, LineDecoder, DEFAULT_MAX_LINE};
use dnsenrich::grammar::GrammarSet;
use dnsenrich::lines::BoundedLines;
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
    /// Parse log lines from files or stdin and print one ECS JSON object per line.
    Parse(ParseArgs),
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dnsenrich: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn parse(args: ParseArgs) -> anyhow::Result<ExitCode> {
    let grammars = Arc::new(GrammarSet::with_files(&args.grammars)?);
    let mut decoder = LineDecoder::new(grammars, args.timezone, args.max_line_bytes);
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
