#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need when it is missing
# (Debian packages, osmem-server from PyPI), then: format check, clippy, tests.
# Works on a fresh Debian 12 machine with the Rust toolchain, Python 3 and pip.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

# command -> Debian package
declare -A NEED=(
    [memcached]=memcached
    [dnsmasq]=dnsmasq-base
    [dig]=dnsutils
    [logger]=bsdutils
    [openssl]=openssl
    [systemd-analyze]=systemd
    [systemd-socket-activate]=systemd
    [groff]=groff-base
    [rsyslogd]=rsyslog
    # the other resolvers whose query logs tests/resolvers.rs reads
    [named]=bind9
    [unbound]=unbound
    [pdns_recursor]=pdns-recursor
)
missing=()
for cmd in "${!NEED[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || test -x "/usr/sbin/$cmd" || missing+=("${NEED[$cmd]}")
done
# Libraries the key-distribution tests write with (tests/distribution.rs):
# Dalli for Ruby, and libmemcached through pylibmc for Debian's python3.
ruby -e 'require "dalli"' 2>/dev/null || missing+=(ruby ruby-dalli)
/usr/bin/python3 -c 'import pylibmc' 2>/dev/null || missing+=(python3-pylibmc)
# rsyslog's RELP output module, which the RELP input is tested against (tests/relp.rs).
compgen -G '/usr/lib/*/rsyslog/omrelp.so' >/dev/null || missing+=(rsyslog-relp)
if ((${#missing[@]})); then
    echo "test.sh: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import osmem_server' 2>/dev/null; then
    echo "test.sh: installing osmem-server"
    python3 -m pip install -q osmem-server 2>&1 | grep -v -i "warning: running pip as" || true
fi
if ! python3 -c 'import pymemcache' 2>/dev/null; then
    echo "test.sh: installing pymemcache"
    python3 -m pip install -q pymemcache 2>&1 | grep -v -i "warning: running pip as" || true
fi

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
    # (The crate has no doc tests; nextest's summary is the last line.)
    cargo nextest run --locked --no-fail-fast
else
    cargo test --locked --no-fail-fast
fi
