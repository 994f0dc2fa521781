#!/usr/bin/env bash
# End-to-end benchmark of the dnsenrich daemon (the release binary), fed over
# loopback by examples/loadgen (and Debian's loggen), shipping to /dev/null, to
# examples/bulk_sink and to osmem-server.
#
#   scripts/bench-e2e.sh                 # RUNS=3 by default
#   RUNS=5 LINES_TCP=3000000 scripts/bench-e2e.sh
#   SCENARIOS="a b" SKIP_BUILD=1 scripts/bench-e2e.sh   # a subset, no build
#
# Scenarios (each run RUNS times; the table shows medians):
#   gen  the load generator's own ceiling (TCP and UDP into an in-process discard server)
#   a    TCP octet-counted -> dnsenrich -> NDJSON to /dev/null
#   b    TCP octet-counted -> dnsenrich -> Elasticsearch _bulk -> examples/bulk_sink
#   b1m  as b, with the output's flush_bytes at 1 MiB instead of the default 5 MiB
#   bid  as b, with document_ids = true (an _id per document, kept across retries)
#   bdisk as b, through the disk buffer ([buffer] type = "disk"): compare its
#        CPU/event with (b)'s at the same offered load
#   drain the disk buffer filled with DRAIN_LINES while the sink is down (CPU/event
#        of the fill, disk bytes per event), then the sink starts: documents/s
#        from the buffer into _bulk
#   c    UDP at a fixed offered rate (UDP_RATE lines/s for UDP_SECS s) -> NDJSON /dev/null
#   d    loggen (syslog-ng-core) over TCP -> dnsenrich -> NDJSON /dev/null
#   e    TCP at a modest rate -> dnsenrich -> osmem-server; reads back _count and a hit
#   f    as (a), with enrichment on: a real memcached holding 200 of the mix's
#        10,000 names (2 %), loaded by `dnsenrich sync --list`; enriched events
#        are counted from the daemon's metrics
#   t    as (b), once with --events lines and once with --events transactions
#        (LINES_TXN lines each): documents, bytes sent to _bulk and CPU per
#        query (queries = transactions the daemon emitted, from its stopped line)
#   The loggen scenarios (a real syslog client, the mix's lines sent as they are
#   with `loggen -R FILE -d -l`; Debian's syslog-ng-core):
#   lgb    loggen at its maximum over 1 TCP connection -> _bulk -> bulk_sink
#   lgf    the same into an NDJSON file
#   lg50   loggen paced, 50 connections x 400 lines/s -> _bulk
#   lg500  loggen paced, 500 connections x 40 lines/s -> _bulk
#   lgtb, lgt50, lgt500  as lgb, lg50, lg500 over TLS (loggen -U)
#   idle   no traffic for IDLE_SECS: wake-ups/s and CPU of the idle daemon
#   They report, besides CPU/event and RSS, context switches per event (all
#   threads, /proc/PID/task/*/status) and wake-ups/s (voluntary switches/s).
#   PERF_STAT=1 also runs `perf stat -e task-clock,context-switches -p PID`.
#
# How it measures: the generator sends a fixed number of lines and follows the
# daemon's process (--watch-pid): after the last write it waits until the
# daemon stops using CPU (no more than 10% of a core for 0.5 s).
#   events/s   (a), (d): lines / (generator start -> daemon idle);
#              (b): documents answered by the sink / (generator start -> last
#              document at the sink), so the output's final flush counts;
#              (c): lines received / sending time (the offered rate when nothing is lost).
#   CPU/event  the daemon's utime+stime (/proc/PID/stat) from generator start
#              to idle, divided by the lines — start-up is not counted.
#   peak RSS   VmHWM of the daemon, read before SIGTERM.
# Then the daemon gets SIGTERM and its `stopped` log line must account for
# every line (and the sink for every document).
#
# Everything runs on 127.0.0.1 with ports picked by the kernel; every process
# started here is stopped by the trap on exit.

set -euo pipefail

RUNS=${RUNS:-3}
LINES_TCP=${LINES_TCP:-3000000}       # lines per run in (a) and (b)
LINES_TXN=${LINES_TXN:-1000000}       # lines per run and mode in (t)
LINES_GEN=${LINES_GEN:-5000000}       # lines per generator-ceiling run
UDP_RATE=${UDP_RATE:-100000}          # offered lines/s in (c)
UDP_SECS=${UDP_SECS:-10}              # seconds of UDP load in (c)
LOGGEN_RATE=${LOGGEN_RATE:-200000}    # loggen --rate in (d)
LOGGEN_SECS=${LOGGEN_SECS:-5}         # loggen --interval in (d)
OSMEM_LINES=${OSMEM_LINES:-20000}     # lines sent to osmem-server in (e)
DRAIN_LINES=${DRAIN_LINES:-1000000}   # lines buffered on disk in (drain)
OSMEM_RATE=${OSMEM_RATE:-2000}        # offered lines/s in (e)
OSMEM_WAIT=${OSMEM_WAIT:-120}         # seconds (e) waits for osmem-server to hold every document
SKIP_BUILD=${SKIP_BUILD:-0}           # 1: use the binaries already built
LG_SECS=${LG_SECS:-5}                 # loggen --interval in the lg* scenarios
LG_MAX_RATE=${LG_MAX_RATE:-2000000}   # loggen --rate for "at its maximum" (per connection)
IDLE_SECS=${IDLE_SECS:-10}            # seconds of no traffic in (idle)
PERF_STAT=${PERF_STAT:-0}             # 1: perf stat the daemon during each lg* run
SCENARIOS=${SCENARIOS:-"gen a b b1m bid bdisk drain c d e f t lgb lgf lg50 lg500 lgtb lgt50 lgt500 idle"}  # which scenarios to run

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${DNSENRICH_BIN:-$TARGET_DIR/release/dnsenrich}   # DNSENRICH_BIN: measure another build
LOADGEN=$TARGET_DIR/release/examples/loadgen
SINK=$TARGET_DIR/release/examples/bulk_sink

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "bench-e2e: needs $1 ($2)" >&2; exit 1; }
}
need jq "apt-get install jq"
need python3 "apt-get install python3"
need curl "apt-get install curl"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/dnsenrich-bench.XXXXXX")
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "bench-e2e: work files kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

log() { echo "[bench-e2e $(date +%H:%M:%S)] $*" >&2; }

# Stops a process started here and waits for it (at most $2 seconds, then KILL).
stop_pid() {
    local pid=$1 limit=${2:-90} i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop within ${limit}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    local kept=()
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
}

# Waits until $1 contains a line matching $2 (at most $3 seconds).
wait_for() {
    local file=$1 pattern=$2 limit=${3:-20} i
    for i in $(seq $((limit * 20))); do
        grep -q -- "$pattern" "$file" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench-e2e: timed out waiting for '$pattern' in $file:" >&2
    tail -5 "$file" >&2 || true
    return 1
}

# loggen ships in Debian's syslog-ng-core, which conflicts with rsyslog (the RELP
# forwarder of the tests): when it is missing, the package is unpacked under
# $WORK/syslog-ng (not installed) and run with SYSLOGNG_PREFIX pointing there.
LOGGEN=(loggen)
ensure_loggen() {
    command -v loggen >/dev/null 2>&1 && return 0
    local dir=$WORK/syslog-ng
    if [ ! -x "$dir/usr/bin/loggen" ]; then
        log "loggen missing: unpacking Debian's syslog-ng-core into $dir"
        mkdir -p "$dir"
        (cd "$dir" && apt-get download syslog-ng-core >/dev/null 2>&1 && dpkg -x syslog-ng-core_*.deb "$dir") ||
            { echo "bench-e2e: needs loggen (apt-get download syslog-ng-core failed; run apt-get update)" >&2; exit 1; }
    fi
    LOGGEN=(env "SYSLOGNG_PREFIX=$dir/usr" "LD_LIBRARY_PATH=$dir/usr/lib/syslog-ng" "$dir/usr/bin/loggen")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------- build
if [ "$SKIP_BUILD" != 1 ]; then
    log "cargo build --release --examples"
    (cd "$ROOT" && cargo build --release --bin dnsenrich --examples)
fi
for b in "$BIN" "$LOADGEN" "$SINK"; do
    [ -x "$b" ] || { echo "bench-e2e: missing $b (build with cargo build --release --examples)" >&2; exit 1; }
done
HAS_METRICS=0
"$BIN" run --help | grep -q -- '--metrics' && HAS_METRICS=1

mkdir -p "$WORK/state"
cat >"$WORK/dnsenrich.toml" <<EOF
# Benchmark configuration: a long drain deadline so SIGTERM never cuts the run short.
state_dir = "$WORK/state"
shutdown_timeout_secs = 60

[log]
format = "json"
level = "info"
EOF

# The same with bulk requests of 1 MiB instead of the default 5 MiB (scenario b1m).
cat "$WORK/dnsenrich.toml" - >"$WORK/dnsenrich-1m.toml" <<EOF

[output]
type = "elasticsearch"
url = "http://127.0.0.1:9200"
flush_bytes = 1048576
EOF

# The same with an _id per document (scenario bid).
cat "$WORK/dnsenrich.toml" - >"$WORK/dnsenrich-ids.toml" <<EOF

[output]
type = "elasticsearch"
url = "http://127.0.0.1:9200"
document_ids = true
EOF

# Through the disk buffer (scenarios bdisk and drain), with the buffer under
# state directory $2.
disk_config() {
    mkdir -p "$2"
    sed "s|^state_dir = .*|state_dir = \"$2\"|" "$WORK/dnsenrich.toml" >"$1"
    cat >>"$1" <<EOF

[buffer]
type = "disk"
max_bytes = 8589934592

[output]
type = "elasticsearch"
url = "http://127.0.0.1:9200"

[output.retry]
max_backoff_ms = 500
EOF
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"
# record SCENARIO KEY VALUE: one measurement of one run.
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$RESULTS"; }

# Starts dnsenrich with extra args; sets DPID, DTCP, DUDP, DMETRICS, DLOG.
start_daemon() {
    local tag=$1
    shift
    DLOG=$WORK/daemon-$tag.log
    local extra=()
    [ "$HAS_METRICS" = 1 ] && extra=(--metrics 127.0.0.1:0)
    "$BIN" run -c "${DCONF:-$WORK/dnsenrich.toml}" --listen-tcp 127.0.0.1:0 --listen-udp 127.0.0.1:0 \
        "${extra[@]+"${extra[@]}"}" "$@" >"$DLOG.stdout" 2>"$DLOG" &
    DPID=$!
    PIDS+=("$DPID")
    wait_for "$DLOG" 'listening on' 20
    DTCP=$(grep -o 'tcp://127\.0\.0\.1:[0-9]*' "$DLOG" | head -1 | sed 's/.*://')
    DUDP=$(grep -o 'udp://127\.0\.0\.1:[0-9]*' "$DLOG" | head -1 | sed 's/.*://')
    DMETRICS=$(grep -o 'metrics://127\.0\.0\.1:[0-9]*' "$DLOG" | head -1 | sed 's|metrics://||' || true)
}

# Reads the daemon's `stopped` line: sets S_LINES S_PARSED S_UNMATCHED S_SENT S_STORED.
read_stopped() {
    local line
    line=$(grep '"message":"stopped"' "$DLOG" | tail -1)
    if [ -z "$line" ]; then
        echo "bench-e2e: no stopped line in $DLOG:" >&2
        tail -5 "$DLOG" >&2
        S_LINES=0 S_PARSED=0 S_UNMATCHED=0 S_SENT=0 S_STORED=0
        return 0
    fi
    S_LINES=$(jq -r '.fields.lines' <<<"$line")
    S_PARSED=$(jq -r '.fields.parsed' <<<"$line")
    S_UNMATCHED=$(jq -r '.fields.unmatched' <<<"$line")
    S_SENT=$(jq -r '.fields.output' <<<"$line" | awk '{print $1}')
    S_STORED=$(jq -r '.fields.output' <<<"$line" | awk '{print $3}')
}

# Sum of a Prometheus counter over its labels (empty when there is no endpoint).
scrape() {
    [ -n "${DMETRICS:-}" ] || { echo ""; return; }
    curl -s --max-time 2 "http://$DMETRICS/metrics" |
        awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $NF} END {printf "%d\n", s}'
}

# Records the watch block of a loadgen JSON summary for scenario $1.
record_watch() {
    local sc=$1 json=$2
    record "$sc" eps "$(jq -r '.watch.lines_per_busy_sec' <<<"$json")"
    record "$sc" cpu_us "$(jq -r '.watch.cpu_us_per_line' <<<"$json")"
    record "$sc" rss_mib "$(jq -r '.watch.vmhwm_kib / 1024' <<<"$json")"
}

# /proc/net/snmp Udp: field value by name.
udp_snmp() {
    awk -v f="$1" '/^Udp:/ { if (!h) { for (i = 2; i <= NF; i++) n[$i] = i; h = 1 } else { print $(n[f]) } }' /proc/net/snmp
}

T_START=$(date +%s)
E_NOTE="not run"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
if python3 -c "import os,sys; sys.exit(0 if os.getloadavg()[0] > os.cpu_count() else 1)"; then
    log "warning: load average $LOAD_START on $(nproc) CPUs: other work will lower the numbers"
fi

# Follows the daemon like loadgen's --watch-pid: waits until it is idle.
watch_idle() {
    python3 - "$@" <<'PY'
import os, sys, time
pid, t0, cpu0 = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
hz = os.sysconf("SC_CLK_TCK")
def sched():
    s = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            s += int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    return s
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz
last, busy, give_up = sched(), time.time(), time.time() + 120
while True:
    time.sleep(0.02)
    now_s, now = sched(), time.time()
    if now_s - last > 2_000_000:
        busy = now
    last = now_s
    if now - busy >= 0.5 or now >= give_up:
        break
hwm = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith("VmHWM:")][0]
print(f"{busy - t0:.6f} {cpu() - cpu0:.4f} {hwm}")
PY
}
cpu_of() {
    python3 -c "import os,sys; f=open('/proc/$1/stat').read().rsplit(')',1)[1].split(); print((int(f[11])+int(f[12]))/os.sysconf('SC_CLK_TCK'))"
}

# ---------------------------------------------------------------- generator ceiling
if want gen; then
    for r in $(seq "$RUNS"); do
        j=$("$LOADGEN" --self-test tcp --lines "$LINES_GEN")
        record gen_tcp eps "$(jq -r '.lines / .self_test.seconds_until_received' <<<"$j")"
        j=$("$LOADGEN" --self-test tcp --lines "$LINES_GEN" --framing lf)
        record gen_tcp_lf eps "$(jq -r '.lines / .self_test.seconds_until_received' <<<"$j")"
        j=$("$LOADGEN" --self-test udp --lines 1000000)
        record gen_udp eps "$(jq -r '.lines_per_sec' <<<"$j")"
        log "generator ceiling run $r: $(jq -c '{lines_per_sec, self_test}' <<<"$j" | head -c 200)"
    done

fi

# ---------------------------------------------------------------- (a) TCP -> NDJSON /dev/null
if want a; then
    for r in $(seq "$RUNS"); do
        start_daemon "a$r" --output /dev/null
        j=$("$LOADGEN" --tcp "127.0.0.1:$DTCP" --lines "$LINES_TCP" --duration-secs 120 --watch-pid "$DPID")
        stop_pid "$DPID"
        read_stopped
        record_watch a "$j"
        record a gen_eps "$(jq -r '.lines_per_sec' <<<"$j")"
        record a complete "$([ "$S_LINES" = "$LINES_TCP" ] && [ "$S_SENT" = "$LINES_TCP" ] && echo 1 || echo 0)"
        log "(a) run $r: $(jq -c '.watch | {busy_secs, lines_per_busy_sec, cpu_us_per_line, vmhwm_kib}' <<<"$j") stopped lines=$S_LINES parsed=$S_PARSED sent=$S_SENT"
    done

fi

# ---------------------------------------------------------------- (b) TCP -> _bulk -> bulk_sink
# bench_bulk SCENARIO CONFIG
bench_bulk() {
    local sc=$1 r j sj docs
    for r in $(seq "$RUNS"); do
        "$SINK" --port 0 --max-secs 300 >"$WORK/sink-$sc$r.out" 2>"$WORK/sink-$sc$r.err" &
        SPID=$!
        PIDS+=("$SPID")
        wait_for "$WORK/sink-$sc$r.out" '^listening' 10
        SPORT=$(head -1 "$WORK/sink-$sc$r.out" | sed 's/.*://')
        DCONF=$2 start_daemon "$sc$r" --elasticsearch "http://127.0.0.1:$SPORT" --index bench
        j=$("$LOADGEN" --tcp "127.0.0.1:$DTCP" --lines "$LINES_TCP" --duration-secs 120 --watch-pid "$DPID")
        stop_pid "$DPID"
        read_stopped
        stop_pid "$SPID" 10
        sj=$(tail -1 "$WORK/sink-$sc$r.out")
        docs=$(jq -r '.docs' <<<"$sj")
        # events/s: documents the sink answered / (generator start -> last
        # document at the sink). It includes the output's last flush_interval
        # wait, which the daemon's CPU going idle would not show.
        record "$sc" eps "$(jq -n --argjson s "$sj" --argjson g "$j" \
            '$s.docs / (($s.last_doc_unix_ms - $g.start_unix_ms) / 1000)')"
        record "$sc" idle_eps "$(jq -r '.watch.lines_per_busy_sec' <<<"$j")"
        record "$sc" cpu_us "$(jq -r '.watch.cpu_us_per_line' <<<"$j")"
        record "$sc" rss_mib "$(jq -r '.watch.vmhwm_kib / 1024' <<<"$j")"
        record "$sc" sink_docs "$docs"
        record "$sc" sink_eps "$(jq -r '.docs_per_sec_first_to_last' <<<"$sj")"
        record "$sc" sink_cpu_us "$(jq -r '.cpu_secs * 1e6 / ([.docs, 1] | max)' <<<"$sj")"
        record "$sc" complete "$([ "$docs" = "$LINES_TCP" ] && [ "$S_STORED" = "$LINES_TCP" ] && echo 1 || echo 0)"
        log "($sc) run $r: $(jq -n --argjson s "$sj" --argjson g "$j" '{secs_to_last_doc: (($s.last_doc_unix_ms - $g.start_unix_ms) / 1000)}' | jq -c .) $(jq -c '.watch | {busy_secs, lines_per_busy_sec, cpu_us_per_line, vmhwm_kib}' <<<"$j") stored=$S_STORED sink=$(jq -c '{requests, docs, invalid_docs, bytes, cpu_secs}' <<<"$sj")"
    done
}
if want b; then
    bench_bulk b "$WORK/dnsenrich.toml"
fi
if want b1m; then
    bench_bulk b1m "$WORK/dnsenrich-1m.toml"
fi
if want bid; then
    bench_bulk bid "$WORK/dnsenrich-ids.toml"
fi
if want bdisk; then
    disk_config "$WORK/dnsenrich-disk.toml" "$WORK/state-bdisk"
    bench_bulk bdisk "$WORK/dnsenrich-disk.toml"
fi

# ---------------------------------------------------------------- (drain) disk buffer: fill, then drain
if want drain; then
    for r in $(seq "$RUNS"); do
        rm -rf "$WORK/state-drain$r"
        disk_config "$WORK/dnsenrich-drain$r.toml" "$WORK/state-drain$r"
        SPORT=$(free_port)
        # The sink is down: everything goes to disk.
        DCONF="$WORK/dnsenrich-drain$r.toml" start_daemon "drain$r" --elasticsearch "http://127.0.0.1:$SPORT" --index bench
        j=$("$LOADGEN" --tcp "127.0.0.1:$DTCP" --lines "$DRAIN_LINES" --duration-secs 120 --watch-pid "$DPID")
        bytes=$(du -sb "$WORK/state-drain$r/buffer" | cut -f1)
        record drain cpu_us "$(jq -r '.watch.cpu_us_per_line' <<<"$j")"
        record drain eps "$(jq -r '.watch.lines_per_busy_sec' <<<"$j")"
        record drain rss_mib "$(jq -r '.watch.vmhwm_kib / 1024' <<<"$j")"
        record drain disk_bytes "$(python3 -c "print($bytes / $DRAIN_LINES)")"
        cpu0=$(cpu_of "$DPID")
        "$SINK" --port "$SPORT" --max-secs 300 --exit-after-docs "$DRAIN_LINES" >"$WORK/sink-drain$r.out" 2>"$WORK/sink-drain$r.err" &
        SPID=$!
        PIDS+=("$SPID")
        for _ in $(seq 3000); do
            kill -0 "$SPID" 2>/dev/null || break
            sleep 0.1
        done
        cpu1=$(cpu_of "$DPID")
        stop_pid "$SPID" 10
        stop_pid "$DPID"
        sj=$(tail -1 "$WORK/sink-drain$r.out")
        sdocs=$(jq -r '.docs' <<<"$sj")
        record drain drain_dps "$(jq -r '.docs_per_sec_first_to_last' <<<"$sj")"
        record drain drain_cpu_us "$(python3 -c "print(($cpu1 - $cpu0) * 1e6 / max(1, $sdocs))")"
        record drain complete "$([ "$sdocs" = "$DRAIN_LINES" ] && echo 1 || echo 0)"
        log "(drain) run $r: fill $(jq -c '.watch | {busy_secs, lines_per_busy_sec, cpu_us_per_line}' <<<"$j") disk_bytes=$bytes sink=$(jq -c '{docs, docs_per_sec_first_to_last, cpu_secs}' <<<"$sj")"
    done
fi

# ---------------------------------------------------------------- (f) (a) with enrichment
if want f; then
    need memcached "apt-get install memcached"
    MPORT=$(free_port)
    muser=()
    [ "$(id -u)" = 0 ] && muser=(-u root)   # memcached will not run as root without it
    memcached "${muser[@]+"${muser[@]}"}" -l 127.0.0.1 -p "$MPORT" -U 0 -m 64 >"$WORK/memcached.log" 2>&1 &
    MPID=$!
    PIDS+=("$MPID")
    up=0
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$MPORT") 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    [ "$up" = 1 ] || { echo "bench-e2e: memcached did not start:" >&2; cat "$WORK/memcached.log" >&2; exit 1; }
    # 2 % of the mix's names (benches/support/mix.rs: 20 words x 50 numbers x 10 domains).
    for w in api cdn; do
        for n in $(seq 0 49); do
            printf '%s%d.example.com\n%s%d.example.org\n' "$w" "$n" "$w" "$n"
        done
    done >"$WORK/indicators.txt"
    "$BIN" sync --list "bench=$WORK/indicators.txt" --memcached "127.0.0.1:$MPORT" --no-progress \
        >"$WORK/sync.out" 2>&1 || { cat "$WORK/sync.out" >&2; exit 1; }
    for r in $(seq "$RUNS"); do
        # To /dev/null like (a), so the difference is the enrichment; the
        # enriched events are counted from the daemon's metrics.
        start_daemon "f$r" --output /dev/null --memcached "127.0.0.1:$MPORT"
        j=$("$LOADGEN" --tcp "127.0.0.1:$DTCP" --lines "$LINES_TCP" --duration-secs 120 --watch-pid "$DPID")
        hits=$(scrape dnsenrich_enrichment_hits_total)
        keys=$(scrape dnsenrich_memcached_keys_total)
        stop_pid "$DPID"
        read_stopped
        record_watch f "$j"
        record f hits "${hits:-0}"
        record f mc_keys "${keys:-0}"
        record f complete "$([ "$S_LINES" = "$LINES_TCP" ] && [ "$S_SENT" = "$LINES_TCP" ] && [ "${hits:-0}" -gt 0 ] && echo 1 || echo 0)"
        log "(f) run $r: $(jq -c '.watch | {busy_secs, lines_per_busy_sec, cpu_us_per_line, vmhwm_kib}' <<<"$j") stopped lines=$S_LINES sent=$S_SENT enriched=$hits memcached_keys=$keys"
    done
    stop_pid "$MPID" 10
fi

# ---------------------------------------------------------------- (t) lines vs transactions -> _bulk
if want t; then
    for r in $(seq "$RUNS"); do
        for mode in lines transactions; do
            sc=t_$mode
            "$SINK" --port 0 --max-secs 300 >"$WORK/sink-$sc$r.out" 2>"$WORK/sink-$sc$r.err" &
            SPID=$!
            PIDS+=("$SPID")
            wait_for "$WORK/sink-$sc$r.out" '^listening' 10
            SPORT=$(head -1 "$WORK/sink-$sc$r.out" | sed 's/.*://')
            start_daemon "$sc$r" --events "$mode" --elasticsearch "http://127.0.0.1:$SPORT" --index bench
            j=$("$LOADGEN" --tcp "127.0.0.1:$DTCP" --lines "$LINES_TXN" --duration-secs 120 --watch-pid "$DPID")
            stop_pid "$DPID"
            read_stopped
            stop_pid "$SPID" 10
            sj=$(tail -1 "$WORK/sink-$sc$r.out")
            txns=$(grep '"message":"stopped"' "$DLOG" | tail -1 | jq -r '.fields.transactions // 0')
            record "$sc" cpu_us "$(jq -r '.watch.cpu_us_per_line' <<<"$j")"
            record "$sc" cpu_total_us "$(jq -r '.watch.cpu_us_per_line * .lines' <<<"$j")"
            record "$sc" rss_mib "$(jq -r '.watch.vmhwm_kib / 1024' <<<"$j")"
            record "$sc" docs "$(jq -r '.docs' <<<"$sj")"
            record "$sc" bytes "$(jq -r '.bytes' <<<"$sj")"
            [ "$mode" = transactions ] && record t txns "$txns"
            log "($sc) run $r: $(jq -c '.watch | {busy_secs, cpu_us_per_line, vmhwm_kib}' <<<"$j") lines=$S_LINES stored=$S_STORED transactions=$txns sink=$(jq -c '{docs, bytes}' <<<"$sj")"
        done
    done
fi

# ---------------------------------------------------------------- (c) UDP at a fixed rate
if want c; then
    UDP_LINES=$((UDP_RATE * UDP_SECS))
    for r in $(seq "$RUNS"); do
        start_daemon "c$r" --output /dev/null
        rb0=$(udp_snmp RcvbufErrors)
        ie0=$(udp_snmp InErrors)
        j=$("$LOADGEN" --udp "127.0.0.1:$DUDP" --rate "$UDP_RATE" --lines "$UDP_LINES" \
            --duration-secs $((UDP_SECS + 5)) --watch-pid "$DPID")
        rb1=$(udp_snmp RcvbufErrors)
        ie1=$(udp_snmp InErrors)
        dropped=$(scrape dnsenrich_events_dropped_total)
        stop_pid "$DPID"
        read_stopped
        if [ -z "$dropped" ]; then
            # No metrics endpoint: the last throttled warning carries the total.
            dropped=$(grep '"dropped_total"' "$DLOG" | tail -1 | jq -r '.fields.dropped_total // 0' 2>/dev/null || echo 0)
            dropped=${dropped:-0}
        fi
        offered=$(jq -r '.lines' <<<"$j")
        # Lines the daemon received and kept are the lines it parsed.
        received=$S_LINES
        loss=$(python3 -c "print(f'{100.0 * ($offered - $received) / max($offered, 1):.3f}')")
        gen_rate=$(jq -r '.lines_per_sec' <<<"$j")
        # events/s here is what was received over the sending time: the offered rate
        # when nothing is lost.
        record c eps "$(python3 -c "print($received / $(jq -r '.seconds' <<<"$j"))")"
        record c cpu_us "$(python3 -c "print($(jq -r '.watch.cpu_secs' <<<"$j") * 1e6 / max($received, 1))")"
        record c rss_mib "$(jq -r '.watch.vmhwm_kib / 1024' <<<"$j")"
        record c offered "$offered"
        record c received "$received"
        record c loss_pct "$loss"
        record c kernel_drops "$((rb1 - rb0 + ie1 - ie0))"
        record c daemon_drops "$dropped"
        record c gen_eps "$gen_rate"
        log "(c) run $r: offered=$offered (${gen_rate}/s) received=$received loss=${loss}% kernel RcvbufErrors+InErrors=$((rb1 - rb0 + ie1 - ie0)) daemon dropped=$dropped"
    done

fi

# ---------------------------------------------------------------- (d) loggen over TCP
if want d; then
    ensure_loggen
    for r in $(seq "$RUNS"); do
        start_daemon "d$r" --output /dev/null
        cpu0=$(cpu_of "$DPID")
        t0=$(date +%s.%N)
        timeout $((LOGGEN_SECS + 20)) "${LOGGEN[@]}" --inet --stream --rate "$LOGGEN_RATE" --interval "$LOGGEN_SECS" \
            --size 300 127.0.0.1 "$DTCP" >"$WORK/loggen-$r.out" 2>"$WORK/loggen-$r.err" || true
        read -r busy cpu hwm < <(watch_idle "$DPID" "$t0" "$cpu0")
        stop_pid "$DPID"
        read_stopped
        sent=$(grep -o 'average rate.*count=[0-9]*' "$WORK/loggen-$r.err" | grep -o 'count=[0-9]*' | cut -d= -f2 | tail -1)
        sent=${sent:-0}
        record d eps "$(python3 -c "print($S_LINES / $busy)")"
        record d cpu_us "$(python3 -c "print($cpu * 1e6 / max($S_LINES, 1))")"
        record d rss_mib "$(python3 -c "print($hwm / 1024)")"
        record d loggen_sent "$sent"
        record d received "$S_LINES"
        record d complete "$([ "$sent" = "$S_LINES" ] && [ "$S_SENT" = "$S_LINES" ] && echo 1 || echo 0)"
        log "(d) run $r: loggen sent=$sent, daemon lines=$S_LINES unmatched=$S_UNMATCHED sent=$S_SENT in ${busy}s, cpu=${cpu}s"
    done

fi

# ---------------------------------------------------------------- loggen scenarios (lg*, idle)
# A real syslog client: loggen sends the mix's lines (rendered once by loadgen
# into a file, `<30>`-prefixed RFC 3164 frames) as they are, LF-framed, over
# TCP or TLS, either at its maximum over one connection or paced over many.
want_any() { local s; for s in "$@"; do want "$s" && return 0; done; return 1; }

# proc_sample PID: "cpu_secs voluntary nonvoluntary unix_time" over every thread.
proc_sample() {
    python3 - "$1" <<'PY'
import os, sys, time
pid = sys.argv[1]
hz = os.sysconf("SC_CLK_TCK")
f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
vol = nonvol = 0
for t in os.listdir(f"/proc/{pid}/task"):
    try:
        for l in open(f"/proc/{pid}/task/{t}/status"):
            if l.startswith("voluntary_ctxt_switches:"):
                vol += int(l.split()[1])
            elif l.startswith("nonvoluntary_ctxt_switches:"):
                nonvol += int(l.split()[1])
    except OSError:
        pass
print((int(f[11]) + int(f[12])) / hz, vol, nonvol, time.time())
PY
}

# Starts a perf stat on the daemon when PERF_STAT=1; sets PERF_PID.
perf_start() {
    PERF_PID=""
    [ "$PERF_STAT" = 1 ] || return 0
    perf stat -e task-clock,context-switches -p "$DPID" -o "$WORK/perf-$1.txt" >/dev/null 2>&1 &
    PERF_PID=$!
    PIDS+=("$PERF_PID")
}
perf_stop() {
    [ -n "${PERF_PID:-}" ] || return 0
    kill -INT "$PERF_PID" 2>/dev/null || true
    wait "$PERF_PID" 2>/dev/null || true
    local kept=()
    for p in "${PIDS[@]}"; do [ "$p" = "$PERF_PID" ] || kept+=("$p"); done
    PIDS=("${kept[@]+"${kept[@]}"}")
    log "($1) perf stat: $(grep -E 'task-clock|context-switches' "$WORK/perf-$1.txt" | awk '{printf "%s %s; ", $1, $2}')"
}

if want_any lgb lgf lg50 lg500 lgtb lgt50 lgt500 idle; then
    ensure_loggen
    # The mix's lines, captured from loadgen by a one-connection listener.
    LG_FILE=$WORK/mix.log
    CPORT=$(free_port)
    python3 - "$CPORT" "$LG_FILE" <<'PY' &
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
s.settimeout(30)
c, _ = s.accept()
with open(sys.argv[2], "wb") as out:
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        out.write(b)
PY
    CAPPID=$!
    sleep 0.5
    "$LOADGEN" --tcp "127.0.0.1:$CPORT" --lines 200000 --framing lf --duration-secs 30 >/dev/null
    wait "$CAPPID"
    log "loggen input: $(wc -l <"$LG_FILE") lines of the mix in $LG_FILE"
    # Many connections from 127.0.0.1: lift the per-source limit; TLS on a
    # self-signed certificate (loggen does not verify it), ECDSA P-256 so the
    # 500 handshakes of (lgt500) cost little next to the lines.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost -days 2 \
        -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
    cat "$WORK/dnsenrich.toml" - >"$WORK/dnsenrich-lg.toml" <<EOT

[input.tcp]
max_connections = 2048
max_connections_per_source = 1024

[input.tls]
listen = ["127.0.0.1:0"]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
max_connections = 2048
max_connections_per_source = 1024
EOT
fi

# bench_loggen SCENARIO OUTPUT(bulk|file) PROTO(tcp|tls) CONNECTIONS RATE
bench_loggen() {
    local sc=$1 out=$2 proto=$3 conns=$4 rate=$5 r docs port transport=()
    for r in $(seq "$RUNS"); do
        local dargs=()
        if [ "$out" = bulk ]; then
            "$SINK" --port 0 --max-secs 300 >"$WORK/sink-$sc$r.out" 2>"$WORK/sink-$sc$r.err" &
            SPID=$!
            PIDS+=("$SPID")
            wait_for "$WORK/sink-$sc$r.out" '^listening' 10
            SPORT=$(head -1 "$WORK/sink-$sc$r.out" | sed 's/.*://')
            dargs=(--elasticsearch "http://127.0.0.1:$SPORT" --index bench)
        else
            rm -f "$WORK/out-$sc.ndjson"
            dargs=(--output "$WORK/out-$sc.ndjson")
        fi
        DCONF=$WORK/dnsenrich-lg.toml start_daemon "$sc$r" "${dargs[@]}"
        port=$DTCP
        # loggen takes one transport plugin: the socket one, or -U (TLS over TCP).
        transport=(--inet --stream)
        if [ "$proto" = tls ]; then
            port=$(grep -o 'tls://127\.0\.0\.1:[0-9]*' "$DLOG" | head -1 | sed 's/.*://' || true)
            transport=(-U)
        fi
        sleep 0.3
        read -r c0 v0 n0 t0 < <(proc_sample "$DPID")
        perf_start "$sc$r"
        timeout $((LG_SECS + 30)) "${LOGGEN[@]}" "${transport[@]}" \
            --active-connections="$conns" --rate "$rate" --interval "$LG_SECS" \
            -R "$LG_FILE" -d -l 127.0.0.1 "$port" >"$WORK/loggen-$sc$r.out" 2>"$WORK/loggen-$sc$r.err" || true
        read -r busy _cpu hwm < <(watch_idle "$DPID" "$t0" "$c0")
        read -r c1 v1 n1 t1 < <(proc_sample "$DPID")
        perf_stop "$sc$r"
        stop_pid "$DPID"
        read_stopped
        sent=$(grep -o 'count=[0-9]*' "$WORK/loggen-$sc$r.err" | cut -d= -f2 | tail -1 || true)
        sent=${sent:-0}
        docs=$S_STORED
        if [ "$out" = bulk ]; then
            stop_pid "$SPID" 10
            docs=$(tail -1 "$WORK/sink-$sc$r.out" | jq -r '.docs')
        else
            docs=$(wc -l <"$WORK/out-$sc.ndjson")
            rm -f "$WORK/out-$sc.ndjson"
        fi
        local ev=$S_LINES
        python3 - "$sc" "$ev" "$c0" "$c1" "$v0" "$v1" "$n0" "$n1" "$t0" "$busy" "$hwm" >>"$RESULTS" <<'PY'
import sys
sc = sys.argv[1]
ev, c0, c1, v0, v1, n0, n1, t0, busy, hwm = map(float, sys.argv[2:])
ev = max(ev, 1)
secs = max(busy, 0.001)
for k, v in (("eps", ev / secs), ("cpu_us", (c1 - c0) * 1e6 / ev), ("rss_mib", hwm / 1024),
             ("ctx_per_ev", (v1 - v0 + n1 - n0) / ev), ("wakeups_s", (v1 - v0) / secs)):
    print(f"{sc}\t{k}\t{v}")
PY
        record "$sc" loggen_sent "$sent"
        record "$sc" received "$S_LINES"
        record "$sc" complete "$([ "$sent" = "$S_LINES" ] && [ "$docs" = "$S_LINES" ] && echo 1 || echo 0)"
        log "($sc) run $r: loggen sent=$sent daemon lines=$S_LINES stored=$S_STORED out=$docs in ${busy}s; cpu=$(python3 -c "print(f'{($c1-$c0):.2f}')")s ctx vol=$((v1 - v0)) nonvol=$((n1 - n0)) hwm=${hwm}kB"
    done
}
want lgb && bench_loggen lgb bulk tcp 1 "$LG_MAX_RATE"
want lgf && bench_loggen lgf file tcp 1 "$LG_MAX_RATE"
want lg50 && bench_loggen lg50 bulk tcp 50 400
want lg500 && bench_loggen lg500 bulk tcp 500 40
want lgtb && bench_loggen lgtb bulk tls 1 "$LG_MAX_RATE"
want lgt50 && bench_loggen lgt50 bulk tls 50 400
want lgt500 && bench_loggen lgt500 bulk tls 500 40

# ---------------------------------------------------------------- (idle) no traffic
if want idle; then
    for r in $(seq "$RUNS"); do
        "$SINK" --port 0 --max-secs 300 >"$WORK/sink-idle$r.out" 2>"$WORK/sink-idle$r.err" &
        SPID=$!
        PIDS+=("$SPID")
        wait_for "$WORK/sink-idle$r.out" '^listening' 10
        SPORT=$(head -1 "$WORK/sink-idle$r.out" | sed 's/.*://')
        DCONF=$WORK/dnsenrich-lg.toml start_daemon "idle$r" --elasticsearch "http://127.0.0.1:$SPORT" --index bench
        sleep 2
        read -r c0 v0 n0 t0 < <(proc_sample "$DPID")
        sleep "$IDLE_SECS"
        read -r c1 v1 n1 t1 < <(proc_sample "$DPID")
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DPID/status")
        stop_pid "$DPID"
        stop_pid "$SPID" 10
        python3 - "$c0" "$c1" "$v0" "$v1" "$n0" "$n1" "$t0" "$t1" "$hwm" >>"$RESULTS" <<'PY'
import sys
c0, c1, v0, v1, n0, n1, t0, t1, hwm = map(float, sys.argv[1:])
print(f"idle\twakeups_s\t{(v1 - v0 + n1 - n0) / (t1 - t0)}")
print(f"idle\tcpu_pct\t{100 * (c1 - c0) / (t1 - t0)}")
print(f"idle\trss_mib\t{hwm / 1024}")
PY
        log "(idle) run $r: ${IDLE_SECS}s: cpu=$(python3 -c "print(f'{($c1-$c0):.2f}')")s ctx vol=$((v1 - v0)) nonvol=$((n1 - n0))"
    done
fi

# ---------------------------------------------------------------- (e) osmem-server, read back
if want e; then
    OSMEM_DIR=$(python3 -c 'import osmem_server,os;print(os.path.dirname(osmem_server.__file__))' 2>/dev/null || true)
    OSMEM=${OSMEM_DIR:+$OSMEM_DIR/bin/osmem-server}
    E_NOTE="osmem-server not installed (pip install osmem-server)"
    if [ -n "$OSMEM" ] && [ -x "$OSMEM" ]; then
        OPORT=$(free_port)
        "$OSMEM" -addr "127.0.0.1:$OPORT" -no-stdin-watch >"$WORK/osmem.log" 2>&1 &
        OPID=$!
        PIDS+=("$OPID")
        for _ in $(seq 100); do
            curl -s --max-time 1 "http://127.0.0.1:$OPORT/" >/dev/null 2>&1 && break
            sleep 0.1
        done
        start_daemon e --elasticsearch "http://127.0.0.1:$OPORT" --index bench
        cpu0=$(cpu_of "$DPID")
        t0=$(date +%s.%N)
        j=$("$LOADGEN" --tcp "127.0.0.1:$DTCP" --lines "$OSMEM_LINES" --rate "$OSMEM_RATE" --duration-secs 60)
        # osmem-server indexes slowly: wait until it holds every document (or the
        # limit), reading _count, before stopping the daemon.
        count=0
        for _ in $(seq $((OSMEM_WAIT * 2))); do
            curl -s --max-time 10 -XPOST "http://127.0.0.1:$OPORT/bench/_refresh" >/dev/null 2>&1 || true
            count=$(curl -s --max-time 10 "http://127.0.0.1:$OPORT/bench/_count" | jq -r '.count // 0' 2>/dev/null || echo 0)
            [ "${count:-0}" -ge "$OSMEM_LINES" ] && break
            sleep 0.5
        done
        t1=$(date +%s.%N)
        cpu1=$(cpu_of "$DPID")
        hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$DPID/status")
        stop_pid "$DPID"
        read_stopped
        # Settle once more: anything still in flight at SIGTERM was flushed by the drain.
        curl -s --max-time 10 -XPOST "http://127.0.0.1:$OPORT/bench/_refresh" >/dev/null 2>&1 || true
        count=$(curl -s --max-time 10 "http://127.0.0.1:$OPORT/bench/_count" | jq -r '.count')
        hit=$(curl -s --max-time 10 "http://127.0.0.1:$OPORT/bench/_search?size=1" | jq -c '.hits.hits[0]._source // empty')
        stop_pid "$OPID" 10
        retries=$(grep -c 'bulk request failed; retrying' "$DLOG" || true)
        delivered_secs=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
        record e cpu_us "$(python3 -c "print(($cpu1 - $cpu0) * 1e6 / $OSMEM_LINES)")"
        record e rss_mib "$(python3 -c "print($hwm / 1024)")"
        record e count "$count"
        record e complete "$([ "$count" = "$OSMEM_LINES" ] && [ "$S_STORED" = "$OSMEM_LINES" ] && echo 1 || echo 0)"
        echo "$hit" >"$WORK/osmem-hit.json"
        E_NOTE="sent $OSMEM_LINES at ${OSMEM_RATE}/s; waited ${delivered_secs}s for _count; daemon stored=$S_STORED; _count=$count; bulk retries=$retries"
        [ "$count" = "$OSMEM_LINES" ] || E_NOTE="$E_NOTE — _count differs from the lines sent"
        log "(e) $E_NOTE"
        log "(e) one _search hit: $hit"
    else
        log "(e) skipped: $E_NOTE"
fi

fi

T_END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
python3 - "$RESULTS" "$RUNS" "$((T_END - T_START))" "$LINES_TCP" "$UDP_RATE" "$UDP_SECS" "$E_NOTE" "$WORK/osmem-hit.json" "$LOAD_START" "$LOAD_END" <<'PY'
import statistics, sys, json, os
path, runs, secs, lines_tcp, udp_rate, udp_secs, e_note, hit_path, load0, load1 = sys.argv[1:11]
vals = {}
for row in open(path):
    sc, k, v = row.rstrip("\n").split("\t")
    try:
        v = float(v)
    except ValueError:
        continue
    vals.setdefault((sc, k), []).append(v)
def med(sc, k):
    v = vals.get((sc, k))
    return statistics.median(v) if v else None
def allv(sc, k):
    return vals.get((sc, k), [])
def f(v, fmt="{:,.0f}"):
    return "–" if v is None else fmt.format(v)

gen = med("gen_tcp", "eps")
gen_lf = med("gen_tcp_lf", "eps")
gen_udp = med("gen_udp", "eps")
print()
print(f"## dnsenrich end-to-end benchmark (medians of {runs} runs; {os.cpu_count()} CPUs; {secs} s)")
print()
print(f"Load average at start: {load0}; at end: {load1} (other work on the machine makes numbers noisy).")
print()
print("Targets: >= 300,000 events/s over TCP into (a) and (b); <= 3 µs CPU per event; "
      "peak RSS <= 100 MiB; no UDP loss at 100,000 lines/s; with enrichment (f): "
      ">= 250,000 events/s and <= 4 µs.")
print()
print("| scenario | events/s | µs CPU/event | peak RSS MiB | generator ceiling | notes |")
print("|---|---:|---:|---:|---:|---|")
def ran(sc):
    return any(k[0] == sc for k in vals)
def row(name, sc, ceiling, notes):
    if not ran(sc):
        return
    print(f"| {name} | {f(med(sc,'eps'))} | {f(med(sc,'cpu_us'),'{:.2f}')} | "
          f"{f(med(sc,'rss_mib'),'{:.1f}')} | {ceiling} | {notes} |")
if ran("gen_tcp"):
    print(f"| generator (self-test, TCP discard) | {f(gen)} | – | – | – | octet framing; LF: {f(gen_lf)} lines/s; UDP unpaced: {f(gen_udp)} lines/s |")
def complete(sc):
    c = allv(sc, "complete")
    return f"{int(sum(c))}/{len(c)} runs fully delivered"
runs_eps = lambda sc: ", ".join(f"{v:,.0f}" for v in allv(sc, "eps"))
row("(a) TCP octet → NDJSON /dev/null", "a", f(gen),
    f"{int(lines_tcp):,} lines/run; {complete('a')}; runs: {runs_eps('a')}")
row("(b) TCP → _bulk → bulk_sink", "b", f(gen),
    f"{int(lines_tcp):,} lines/run; {complete('b')}; to daemon idle {f(med('b','idle_eps'))}/s; sink docs/s first→last {f(med('b','sink_eps'))}, sink CPU {f(med('b','sink_cpu_us'),'{:.2f}')} µs/doc; runs: {runs_eps('b')}")
row("(b1m) as (b), `flush_bytes = 1 MiB`", "b1m", f(gen),
    f"config variation (default is 5 MiB); {complete('b1m')}; to daemon idle {f(med('b1m','idle_eps'))}/s; sink CPU {f(med('b1m','sink_cpu_us'),'{:.2f}')} µs/doc; runs: {runs_eps('b1m')}")
row("(bid) as (b), `document_ids = true`", "bid", f(gen),
    f"config variation (default is off); {complete('bid')}; to daemon idle {f(med('bid','idle_eps'))}/s; sink CPU {f(med('bid','sink_cpu_us'),'{:.2f}')} µs/doc; runs: {runs_eps('bid')}")
row("(bdisk) as (b), through the disk buffer", "bdisk", f(gen),
    f"{complete('bdisk')}; to daemon idle {f(med('bdisk','idle_eps'))}/s; runs: {runs_eps('bdisk')}")
row("(drain) fill of the disk buffer, sink down", "drain", f(gen),
    f"{complete('drain')}; {f(med('drain','disk_bytes'),'{:.0f}')} disk bytes/event; then drained into _bulk at {f(med('drain','drain_dps'))} docs/s, {f(med('drain','drain_cpu_us'),'{:.2f}')} µs daemon CPU/doc")
loss = allv("c", "loss_pct")
row(f"(c) UDP {int(udp_rate):,}/s × {udp_secs} s → NDJSON", "c", f(gen_udp),
    f"offered {f(med('c','offered'))}, received {f(med('c','received'))}, loss {f(med('c','loss_pct'),'{:.3f}')} % "
    f"(max {max(loss) if loss else 0:.3f} %); kernel drops {f(med('c','kernel_drops'))}; daemon drops {f(med('c','daemon_drops'))}; events/s = received ÷ send time")
row("(d) loggen TCP → NDJSON", "d", "–",
    f"loggen sent {f(med('d','loggen_sent'))}, daemon got {f(med('d','received'))}; {complete('d')}; runs: {runs_eps('d')}")
row("(e) TCP → osmem-server", "e", "–", e_note + " (rate-limited: not a throughput figure)")
row("(f) as (a), enrichment on (memcached, 2 % indicators)", "f", f(gen),
    f"{int(lines_tcp):,} lines/run; {complete('f')}; enriched events/run {f(med('f','hits'))}; keys asked of memcached/run {f(med('f','mc_keys'))}; runs: {runs_eps('f')}")
if ran("t_lines") and ran("t_transactions"):
    q = med("t", "txns") or 1
    per = lambda sc, k: (med(sc, k) or 0) / q
    print()
    print(f"(t) lines against transactions, {med('t','txns'):,.0f} queries per run (transactions emitted):")
    print()
    print("| events | documents/query | bytes/query to _bulk | µs CPU/query | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for mode in ("lines", "transactions"):
        sc = "t_" + mode
        print(f"| {mode} | {per(sc,'docs'):.2f} | {per(sc,'bytes'):,.0f} | {per(sc,'cpu_total_us'):.2f} | {f(med(sc,'rss_mib'),'{:.1f}')} |")
lg = [("lgb", "loggen max, 1 TCP connection → _bulk"), ("lgf", "loggen max, 1 TCP connection → NDJSON file"),
      ("lg50", "loggen 50 TCP connections × 400/s → _bulk"), ("lg500", "loggen 500 TCP connections × 40/s → _bulk"),
      ("lgtb", "loggen max, 1 TLS connection → _bulk"), ("lgt50", "loggen 50 TLS connections × 400/s → _bulk"),
      ("lgt500", "loggen 500 TLS connections × 40/s → _bulk")]
if any(ran(s) for s, _ in lg) or ran("idle"):
    print()
    print("| loggen scenario | events/s | µs CPU/event | peak RSS MiB | ctx switches/event | wake-ups/s | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for s, name in lg:
        if ran(s):
            print(f"| ({s}) {name} | {f(med(s,'eps'))} | {f(med(s,'cpu_us'),'{:.2f}')} | {f(med(s,'rss_mib'),'{:.1f}')} | "
                  f"{f(med(s,'ctx_per_ev'),'{:.3f}')} | {f(med(s,'wakeups_s'))} | loggen sent {f(med(s,'loggen_sent'))}; {complete(s)}; runs µs: "
                  + ", ".join(f"{v:.2f}" for v in allv(s, "cpu_us")) + " |")
    if ran("idle"):
        print(f"| (idle) no traffic | – | {f(med('idle','cpu_pct'),'{:.3f}')} % of a core | {f(med('idle','rss_mib'),'{:.1f}')} | – | "
              f"{f(med('idle','wakeups_s'),'{:.1f}')} | context switches/s of all threads |")
print()
def verdict(ok, text):
    print(f"- {'PASS' if ok else 'FAIL'}: {text}")
a, b = med("a", "eps"), med("b", "eps")
if ran("a"):
    verdict(a >= 300000, f"(a) {f(a)} events/s vs >= 300,000")
if ran("b"):
    verdict(b >= 300000, f"(b) {f(b)} events/s vs >= 300,000")
if ran("b1m"):
    b1 = med("b1m", "eps")
    verdict(b1 >= 300000, f"(b1m) {f(b1)} events/s vs >= 300,000 (not the default configuration)")
if ran("bid"):
    bi = med("bid", "eps")
    verdict(bi >= 300000, f"(bid) {f(bi)} events/s vs >= 300,000 (not the default configuration)")
if ran("f"):
    ef = med("f", "eps")
    verdict(ef >= 250000, f"(f) {f(ef)} events/s with enrichment vs >= 250,000")
for s, limit in (("a", 3), ("b", 3), ("b1m", 3), ("bid", 3), ("c", 3), ("f", 4)):
    if ran(s):
        c = med(s, "cpu_us")
        verdict(c <= limit, f"({s}) CPU/event {f(c, '{:.2f}')} µs vs <= {limit} µs")
if ran("t_lines") and ran("t_transactions"):
    q = med("t", "txns") or 1
    dq = med("t_transactions", "docs") / q
    ratio = med("t_lines", "bytes") / max(med("t_transactions", "bytes"), 1)
    cpu_l, cpu_t = med("t_lines", "cpu_total_us"), med("t_transactions", "cpu_total_us")
    verdict(dq <= 1.05, f"(t) {dq:.2f} documents per query vs <= 1.05")
    verdict(ratio >= 2.5, f"(t) {ratio:.2f}x fewer bytes per query than lines vs >= 2.5x")
    verdict(cpu_t <= cpu_l, f"(t) CPU per query {cpu_t / q:.2f} µs vs {cpu_l / q:.2f} µs in lines mode")
for s in ("a", "b", "b1m", "bid", "c", "d", "e", "f", "t_lines", "t_transactions"):
    if ran(s):
        r = med(s, "rss_mib")
        verdict(r <= 100, f"({s}) peak RSS {f(r, '{:.1f}')} MiB vs <= 100 MiB")
for s, limit in (("lgb", 2.0), ("lgf", 1.8), ("lg50", 4), ("lg500", 6)):
    if ran(s):
        c = med(s, "cpu_us")
        verdict(c <= limit, f"({s}) CPU/event {f(c, '{:.2f}')} µs vs <= {limit} µs")
for s in ("lgb", "lg50", "lg500"):
    if ran(s):
        r = med(s, "rss_mib")
        verdict(r <= 32, f"({s}) peak RSS {f(r, '{:.1f}')} MiB vs <= 32 MiB")
for t, s in (("lgtb", "lgb"), ("lgt50", "lg50"), ("lgt500", "lg500")):
    if ran(t) and ran(s):
        d = med(t, "cpu_us") - med(s, "cpu_us")
        verdict(d <= 1.0, f"({t}) TLS costs {d:+.2f} µs/event over ({s}) vs <= +1 µs")
if ran("idle"):
    w = med("idle", "wakeups_s")
    verdict(w <= 20, f"(idle) {w:.1f} wake-ups/s vs <= 20")
e_ok = allv("e", "complete")
if e_ok:
    verdict(all(v == 1 for v in e_ok), f"(e) osmem-server holds exactly the lines sent ({e_note})")
if ran("c"):
    verdict(max(loss) <= 0.0, f"(c) UDP loss at {int(udp_rate):,}/s: max {max(loss):.3f} % over runs vs 0 %")
if os.path.exists(hit_path):
    hit = open(hit_path).read().strip()
    if hit:
        print()
        print("(e) one document read back from osmem-server:")
        print()
        print("```json")
        try:
            print(json.dumps(json.loads(hit), indent=1)[:3000])
        except ValueError:
            print(hit[:3000])
        print("```")
PY
