#!/usr/bin/env bash
# Capture genuine dnsmasq query-log lines for fixtures/raw/dnsmasq/.
#
# Usage: scripts/capture-dnsmasq.sh [OUTDIR]
#
# Everything runs on 127.0.0.1 and stops by itself. Per variant it starts:
#   * "upstream": a dnsmasq answering *.example.test and a few other names from
#     its own configuration (host-record, cname, txt/mx/srv/ptr/naptr/caa,
#     dns-rr, address=, local=);
#   * "auth": a dnsmasq authoritative (--auth-zone) for auth.test;
#   * "odd": a small Python responder (written below) for what dnsmasq cannot
#     imitate: error RCODEs, truncated and slow replies, 1-second TTLs, an
#     oversized TXT record and a DNSSEC-signed tree (fixed keys);
#   * "front": the dnsmasq whose log is the fixture. It forwards to the others,
#     has an addn-hosts file, address=/local= rules and a cache, and logs with
#     the variant's --log-queries setting.
# It sends a bounded list of dig queries (and, for dhcp, DHCP packets), dumps
# the cache (SIGUSR1), rereads the hosts file (SIGHUP), stops every dnsmasq
# (SIGTERM) and copies the logs to
#   OUTDIR/dnsmasq-<variant>.log    the front (the fixture proper)
#   OUTDIR/upstream-<variant>.log   the upstream (always --log-queries=extra)
#   OUTDIR/auth-<variant>.log       the auth server (always --log-queries=extra)
# (the last two only for variants that send them queries).
# Variants (CAPTURE_VARIANTS="..." picks some):
#   plain   --log-queries
#   extra   --log-queries=extra
#   proto   --log-queries=proto          (dnsmasq 2.91 and later only)
#   stale   --use-stale-cache            (cached-stale lines)
#   dnssec  --dnssec with a local trust anchor (needs python3 cryptography)
#   dhcp    --dhcp-range on lo, --log-dhcp (dnsmasq-dhcp lines, DHCP answers)
#   sets    --ipset/--nftset (root, unshare, ipset and/or nft; runs in a
#           private network namespace so the host's firewall is untouched)
# Without OUTDIR the logs go to a fresh temporary directory, printed at the end.
#
# Ports: CAPTURE_BASE_PORT (default 15353) up to +6, all on 127.0.0.1.
set -euo pipefail

BASE_PORT=${CAPTURE_BASE_PORT:-15353}
PORT_FRONT=$BASE_PORT
PORT_UP=$((BASE_PORT + 1))
PORT_ODD=$((BASE_PORT + 2))
PORT_DEAD=$((BASE_PORT + 3)) # nothing listens here: forwards to it get no answer
PORT_AUTH=$((BASE_PORT + 4))
PORT_DHCP=$((BASE_PORT + 5))  # dnsmasq's DHCP server port (--dhcp-alternate-port)
PORT_DHCPC=$((BASE_PORT + 6)) # the DHCP client port
LOOP=127.0.0.1

for tool in dnsmasq dig python3; do
    command -v "$tool" >/dev/null || { echo "capture-dnsmasq: $tool not found" >&2; exit 1; }
done

OUT=${1:-}
if [[ -z $OUT ]]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/dnsmasq-capture-out.XXXXXX")
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/capture-dnsmasq.XXXXXX")

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        { wait "$pid" || true; } 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

VERSION=$(dnsmasq --version | sed -n '1s/^Dnsmasq version \([^ ]*\).*/\1/p')
version_at_least() { # $1 = wanted "major.minor"
    local have_major have_minor want_major want_minor
    IFS=. read -r have_major have_minor _ <<<"${VERSION%%[!0-9.]*}"
    IFS=. read -r want_major want_minor _ <<<"$1"
    ((have_major > want_major || (have_major == want_major && ${have_minor:-0} >= want_minor)))
}

# dnsmasq run as root drops to "nobody" unless told otherwise; keep the user so
# it can write its log and pid file in $WORK.
AS_USER=()
if [[ $(id -u) -eq 0 ]]; then
    AS_USER=(--user=root --group=root)
fi

# ---------------------------------------------------------------------------
# The "odd" upstream.
cat >"$WORK/oddns.py" <<'PY'
"""Loopback-only DNS responder for capture-dnsmasq.sh.

Usage: oddns.py PORT ANCHOR_FILE LIFETIME_SECONDS. Answers on 127.0.0.1:PORT
(UDP and TCP), writes the root trust anchor of its signed tree to
ANCHOR_FILE, and exits after LIFETIME_SECONDS. The signed tree is
". -> test. -> sec.test.", the unsigned delegation "insecure.test." and
"bogusds.test." whose DS signature is broken and "badkey.test." whose DNSKEY
self-signature is broken.
"""
import hashlib
import select
import socket
import struct
import sys
import time

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    HAVE_CRYPTO = True
except ImportError:
    HAVE_CRYPTO = False

A, NS, SOA, TXT, AAAA, OPT, DS, RRSIG, NSEC, DNSKEY = 1, 2, 6, 16, 28, 41, 43, 46, 47, 48
ALG = 13  # ECDSAP256SHA256
NOW = int(time.time())


def wire(name):
    name = name.rstrip(".").lower()
    out = b""
    if name:
        for label in name.split("."):
            out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def rr(name, rtype, ttl, rdata):
    return (name.rstrip(".").lower(), rtype, ttl, rdata)


def pack_rr(r):
    name, rtype, ttl, rdata = r
    return wire(name) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


class Key:
    """A fixed ECDSA P-256 key, so key tags and DS digests never change."""

    def __init__(self, zone, secret):
        self.zone = zone
        self.priv = ec.derive_private_key(secret, ec.SECP256R1())
        nums = self.priv.public_key().public_numbers()
        self.dnskey = struct.pack("!HBB", 257, 3, ALG) + nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")
        acc = sum(b if i & 1 else b << 8 for i, b in enumerate(self.dnskey))
        self.tag = (acc + ((acc >> 16) & 0xFFFF)) & 0xFFFF
        self.ds = struct.pack("!HBB", self.tag, ALG, 2) + hashlib.sha256(wire(zone) + self.dnskey).digest()

    def sign(self, rrset, corrupt=False):
        name, rtype, ttl, _ = rrset[0]
        nlabels = len(name.split(".")) if name else 0
        head = struct.pack("!HBBIIIH", rtype, ALG, nlabels, ttl, NOW + 7 * 86400, NOW - 3600, self.tag)
        head += wire(self.zone)
        data = head + b"".join(pack_rr(r) for r in sorted(rrset, key=lambda r: r[3]))
        r, s = decode_dss_signature(self.priv.sign(data, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if corrupt:
            sig = bytes([sig[0] ^ 0xFF]) + sig[1:]
        return rr(name, RRSIG, ttl, head + sig)


def soa(zone):
    return rr(zone, SOA, 300, wire("ns." + zone) + wire("hostmaster." + zone)
              + struct.pack("!IIIII", 2024010101, 3600, 600, 86400, 60))


def nsec(owner, nxt, types):
    bitmap = bytearray(max(types) // 8 + 1)
    for t in types:
        bitmap[t // 8] |= 0x80 >> (t % 8)
    return rr(owner, NSEC, 60, wire(nxt) + bytes([0, len(bitmap)]) + bytes(bitmap))


if HAVE_CRYPTO:
    KROOT = Key("", 0x5EC0DE00)
    KTEST = Key("test", 0x5EC0DE01)
    KSEC = Key("sec.test", 0x5EC0DE02)
    KBAD = Key("bogusds.test", 0x5EC0DE03)
    KBADKEY = Key("badkey.test", 0x5EC0DE04)


def signed(key, rrset, corrupt=False):
    return list(rrset) + [key.sign(rrset, corrupt)]


def lookup(qname, qtype, tcp):
    """-> (rcode, answer, authority, ede, truncated, delay)"""
    ans, auth, rcode, ede, tc, delay = [], [], 0, None, False, 0.0
    v4 = socket.inet_aton
    dnssec = HAVE_CRYPTO and not qname.endswith("odd.test")
    if dnssec and qname == "" and qtype == DNSKEY:
        ans = signed(KROOT, [rr("", DNSKEY, 300, KROOT.dnskey)])
    elif dnssec and qname == "test" and qtype == DS:
        ans = signed(KROOT, [rr("test", DS, 300, KTEST.ds)])
    elif dnssec and qname == "test" and qtype == DNSKEY:
        ans = signed(KTEST, [rr("test", DNSKEY, 300, KTEST.dnskey)])
    elif dnssec and qname == "sec.test" and qtype == DS:
        ans = signed(KTEST, [rr("sec.test", DS, 300, KSEC.ds)])
    elif dnssec and qname == "sec.test" and qtype == DNSKEY:
        ans = signed(KSEC, [rr("sec.test", DNSKEY, 300, KSEC.dnskey)])
    elif dnssec and qname == "www.sec.test" and qtype == A:
        ans = signed(KSEC, [rr(qname, A, 300, v4("192.0.2.80"))])
    elif dnssec and qname == "bad.sec.test" and qtype == A:
        ans = signed(KSEC, [rr(qname, A, 300, v4("192.0.2.81"))], corrupt=True)
    elif dnssec and qname == "bogusds.test" and qtype == DS:
        ans = signed(KTEST, [rr(qname, DS, 300, KBAD.ds)], corrupt=True)
    elif dnssec and qname == "bogusds.test" and qtype == DNSKEY:
        ans = signed(KBAD, [rr(qname, DNSKEY, 300, KBAD.dnskey)])
    elif dnssec and qname == "www.bogusds.test" and qtype == A:
        ans = signed(KBAD, [rr(qname, A, 300, v4("192.0.2.83"))])
    elif dnssec and qname == "badkey.test" and qtype == DS:
        ans = signed(KTEST, [rr(qname, DS, 300, KBADKEY.ds)])
    elif dnssec and qname == "badkey.test" and qtype == DNSKEY:
        ans = signed(KBADKEY, [rr(qname, DNSKEY, 300, KBADKEY.dnskey)], corrupt=True)
    elif dnssec and qname == "www.badkey.test" and qtype == A:
        ans = signed(KBADKEY, [rr(qname, A, 300, v4("192.0.2.84"))])
    elif dnssec and qname == "insecure.test" and qtype == DS:
        # Signed proof that the delegation to insecure.test. has no DS.
        auth = signed(KTEST, [soa("test")]) + signed(KTEST, [nsec("insecure.test", "sec.test", [NS, RRSIG, NSEC])])
    elif dnssec and qname.endswith("insecure.test"):
        if qtype == A and qname == "www.insecure.test":
            ans = [rr(qname, A, 300, v4("192.0.2.82"))]
        else:
            auth = [soa("insecure.test")]
    elif qname == "servfail.odd.test":
        rcode, ede = 2, (22, b"")
    elif qname == "notimp.odd.test":
        rcode = 4
    elif qname == "formerr.odd.test":
        rcode = 1
    elif qname == "yxdomain.odd.test":
        rcode = 6
    elif qname == "refused.odd.test":
        rcode, ede = 5, (18, b"")
    elif qname == "trunc.odd.test":
        if tcp:
            ans = [rr(qname, A, 300, v4("192.0.2.60"))]
        else:
            tc = True
    elif qname == "slow.odd.test":
        delay = 1.0
        ans = [rr(qname, A, 300, v4("192.0.2.61"))]
    elif qname == "stale.odd.test":
        ans = [rr(qname, A, 1, v4("192.0.2.50"))]
    elif qname == "longtxt.odd.test" and qtype == TXT:
        ans = [rr(qname, TXT, 300, b"".join(bytes([250]) + b"%d" % i * 250 for i in range(1, 6)))]
    elif qname.endswith(".odd.test"):
        rcode, auth = 3, [soa("odd.test")]
    else:
        rcode = 5
    return rcode, ans, auth, ede, tc, delay


def answer(pkt, tcp):
    qid, flags, _, _, _, arcount = struct.unpack("!HHHHHH", pkt[:12])
    pos, parts = 12, []
    while pkt[pos]:
        n = pkt[pos]
        parts.append(pkt[pos + 1:pos + 1 + n].decode("latin-1"))
        pos += n + 1
    qtype = struct.unpack("!H", pkt[pos + 1:pos + 3])[0]
    question = pkt[12:pos + 5]
    rest = pkt[pos + 5:]
    has_opt = arcount and len(rest) >= 11 and rest[0] == 0 and struct.unpack("!H", rest[1:3])[0] == OPT
    do_bit = has_opt and bool(struct.unpack("!I", rest[5:9])[0] & 0x8000)
    rcode, ans, auth, ede, tc, delay = lookup(".".join(parts).lower(), qtype, tcp)
    oflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode | (0x0200 if tc else 0)
    add = b""
    if has_opt:
        opts = struct.pack("!HHH", 15, 2 + len(ede[1]), ede[0]) + ede[1] if ede else b""
        add = b"\x00" + struct.pack("!HHIH", OPT, 1232, 0x8000 if do_bit else 0, len(opts)) + opts
    out = struct.pack("!HHHHHH", qid, oflags, 1, len(ans), len(auth), 1 if add else 0) + question
    out += b"".join(pack_rr(r) for r in ans + auth) + add
    return out, delay


def main():
    port, anchor_file, lifetime = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    if HAVE_CRYPTO:
        with open(anchor_file, "w") as f:
            f.write(".,%d,%d,2,%s\n" % (KROOT.tag, ALG, KROOT.ds[4:].hex()))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(8)
    deadline = time.monotonic() + lifetime
    pending = []  # delayed UDP replies: (due, data, addr)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([udp, tcp], [], [], 0.05)
        now = time.monotonic()
        for item in [p for p in pending if p[0] <= now]:
            udp.sendto(item[1], item[2])
            pending.remove(item)
        if udp in ready:
            pkt, addr = udp.recvfrom(4096)
            try:
                data, delay = answer(pkt, False)
            except (IndexError, struct.error, ValueError):
                continue
            if delay:
                pending.append((now + delay, data, addr))
            else:
                udp.sendto(data, addr)
        if tcp in ready:
            conn, _ = tcp.accept()
            conn.settimeout(2)
            try:
                for _ in range(8):  # bounded number of queries per connection
                    head = conn.recv(2)
                    if len(head) < 2:
                        break
                    need = struct.unpack("!H", head)[0]
                    pkt = b""
                    while len(pkt) < need:
                        chunk = conn.recv(need - len(pkt))
                        if not chunk:
                            break
                        pkt += chunk
                    data, _ = answer(pkt, True)
                    conn.sendall(struct.pack("!H", len(data)) + data)
            except (OSError, IndexError, struct.error, ValueError):
                pass
            finally:
                conn.close()


if __name__ == "__main__":
    main()
PY

# ---------------------------------------------------------------------------
# A minimal DHCP client: a relayed DISCOVER/REQUEST (replies go to the relay
# address 127.0.0.1, i.e. back to dnsmasq's own port, where they are ignored),
# a unicast renewal and INFORM (replies to 127.0.0.x), a refused REQUEST and,
# with "release", a RELEASE. Nothing is broadcast.
cat >"$WORK/dhcpc.py" <<'PY'
import socket
import struct
import sys

server_port, client_port, phase = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
RELAY = "127.0.0.1"


def packet(msgtype, mac, ciaddr="0.0.0.0", giaddr="0.0.0.0", hostname=None, want=None, server=None):
    chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
    out = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1 if giaddr != "0.0.0.0" else 0,
                      0x5EC0DE00 + msgtype, 0, 0, socket.inet_aton(ciaddr), bytes(4), bytes(4),
                      socket.inet_aton(giaddr), chaddr, b"", b"")
    out += b"\x63\x82\x53\x63" + bytes([53, 1, msgtype])
    if want:
        out += bytes([50, 4]) + socket.inet_aton(want)
    if server:
        out += bytes([54, 4]) + socket.inet_aton(server)
    if hostname:
        out += bytes([12, len(hostname)]) + hostname.encode()
    return out + b"\xff"


def send(data, source):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, client_port))
        sock.settimeout(1)
        sock.sendto(data, ("127.0.0.1", server_port))
        try:
            sock.recvfrom(2048)  # unicast replies come back here
        except socket.timeout:
            pass


MAC = "02:00:5e:c0:de:01"
if phase == "lease":
    send(packet(1, MAC, giaddr=RELAY, hostname="laptop", want="127.0.0.55"), "127.0.0.1")
    send(packet(3, MAC, giaddr=RELAY, hostname="laptop", want="127.0.0.55", server="127.0.0.1"), "127.0.0.1")
    send(packet(3, MAC, ciaddr="127.0.0.55", hostname="laptop"), "127.0.0.55")
    send(packet(8, "02:00:5e:c0:de:02", ciaddr="127.0.0.56"), "127.0.0.56")
    send(packet(3, "02:00:5e:c0:de:03", giaddr=RELAY, want="127.0.0.99", server="127.0.0.1"), "127.0.0.1")
else:
    send(packet(7, MAC, ciaddr="127.0.0.55", server="127.0.0.1"), "127.0.0.55")
PY

HAVE_CRYPTO=0
if python3 -c 'import cryptography.hazmat.primitives.asymmetric.ec' 2>/dev/null; then
    HAVE_CRYPTO=1
fi

# ---------------------------------------------------------------------------
# Process and query utilities.

# Wait (bounded) until a log file shows dnsmasq has started.
wait_started() { # $1 = log file
    local i
    for ((i = 0; i < 50; i++)); do
        if [[ -s $1 ]] && grep -q 'started, version' "$1"; then
            return 0
        fi
        sleep 0.1
    done
    echo "capture-dnsmasq: dnsmasq did not start (log $1)" >&2
    cat "$WORK"/*.stdout >&2 || true
    return 1
}

start_bg() { # $1 = name, rest = command; records the pid in LAST_PID
    local name=$1
    shift
    "$@" >"$WORK/$name.stdout" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop_pid() { # $1 = pid; SIGTERM, wait, and forget it
    local pid keep=()
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    for pid in "${PIDS[@]}"; do
        [[ $pid == "$1" ]] || keep+=("$pid")
    done
    PIDS=("${keep[@]}")
}

# Every dig is bounded: one try, short timeout.
q() {
    dig @"$LOOP" -p "$PORT_FRONT" +tries=1 +time=2 "$@" >>"$WORK/dig.out" 2>&1 || true
}

# dnsmasq run as root drops to "nobody" unless told otherwise; keep the user so
# it can write its log and pid file in $WORK.
AS_USER=()
if [[ $(id -u) -eq 0 ]]; then
    AS_USER=(--user=root --group=root)
fi
COMMON=(--keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address="$LOOP" "${AS_USER[@]}")

start_upstream() { # $1 = dir
    start_bg upstream dnsmasq "${COMMON[@]}" --port="$PORT_UP" \
        --pid-file="$1/upstream.pid" --log-queries=extra --log-facility="$1/upstream.log" \
        --local-ttl=300 \
        --local=/example.test/ --local=/nx.test/ \
        --address=/blocked.test/0.0.0.0 --address=/blocked.test/:: \
        --host-record=www.example.test,192.0.2.10,2001:db8::10 \
        --host-record=v4only.example.test,192.0.2.11 \
        --host-record=v6only.example.test,2001:db8::12 \
        --cname=alias.example.test,www.example.test \
        --cname=deep.example.test,alias.example.test \
        --txt-record=txt.example.test,"v=spf1 -all" \
        --txt-record=multi.example.test,"first string","second string" \
        --mx-host=example.test,mail.example.test,10 \
        --srv-host=_sip._udp.example.test,sip.example.test,5060 \
        --ptr-record=10.2.0.192.in-addr.arpa,www.example.test \
        --naptr-record='example.test,10,10,U,E2U+sip,!^.*$!sip:info@example.test!,' \
        --caa-record=example.test,0,issue,ca.example.net \
        --dns-rr=rr.example.test,65,000100 \
        --dns-rr=rr.example.test,999,c0ffee
    UP_PID=$LAST_PID
    wait_started "$1/upstream.log"
}

start_auth() { # $1 = dir
    start_bg auth dnsmasq "${COMMON[@]}" --port="$PORT_AUTH" \
        --pid-file="$1/auth.pid" --log-queries=extra --log-facility="$1/auth.log" \
        --auth-server=ns.auth.test,"$LOOP" --auth-zone=auth.test --auth-ttl=300 \
        --auth-soa=2024010101,hostmaster.auth.test \
        --host-record=host.auth.test,192.0.2.20,2001:db8::20 \
        --cname=www.auth.test,host.auth.test \
        --mx-host=auth.test,host.auth.test,10
    AUTH_PID=$LAST_PID
    wait_started "$1/auth.log"
}

# ---------------------------------------------------------------------------
# Query sets.

queries_full() {
    # Forwarded answers of each kind, then the same again from the cache.
    local pass d1 d2
    for pass in 1 2; do
        q www.example.test A
        q www.example.test AAAA
        q alias.example.test A
        q deep.example.test AAAA
        q foo.nx.test A
        q v4only.example.test AAAA
        q v6only.example.test A
        q txt.example.test TXT
        q -x 192.0.2.10
    done
    q multi.example.test TXT
    q example.test MX
    q _sip._udp.example.test SRV
    q example.test NAPTR
    q example.test CAA
    q rr.example.test TYPE65
    q rr.example.test TYPE999
    q example.test SOA
    q example.test ANY
    q WWW.Example.TEST A
    q . NS
    q +tcp www.example.test AAAA
    q +dnssec www.example.test A
    q blocked.test A
    q blocked.test AAAA
    # The auth zone (its own log shows auth[...] lines).
    q host.auth.test A
    q www.auth.test AAAA
    q auth.test MX
    q none.auth.test A
    # Answered by the front itself: addn-hosts, address=, local=, CHAOS.
    q printer.lan A
    q printer.lan AAAA
    q nas.lan AAAA
    q -x 192.0.2.30
    q printer A
    q ads.example.test A
    q ads.example.test AAAA
    q void.test A
    q pc.home.lan A
    q version.bind TXT CH
    # The odd upstream.
    q servfail.odd.test A
    q notimp.odd.test A
    q formerr.odd.test A
    q yxdomain.odd.test A
    q refused.odd.test A
    q +ignore trunc.odd.test A
    q longtxt.odd.test TXT
    q 'sp\032ace.odd.test' A
    q 'ctl\007char.odd.test' A
    # Two identical queries in flight at once: the second is a duplicate.
    dig @"$LOOP" -p "$PORT_FRONT" +tries=1 +time=3 slow.odd.test A >>"$WORK/dig.out" 2>&1 &
    d1=$!
    sleep 0.2
    dig @"$LOOP" -p "$PORT_FRONT" +tries=1 +time=3 slow.odd.test A >>"$WORK/dig.out" 2>&1 &
    d2=$!
    wait "$d1" "$d2" || true
    # A forward to a port where nobody listens.
    q +time=1 lost.dead.test A
    # Non-QUERY opcodes.
    q +opcode=notify example.test SOA
    q +opcode=status example.test A
}

queries_stale() {
    q www.example.test A
    q stale.odd.test A
    sleep 2.5 # the 1-second TTL has run out
    q stale.odd.test A
    sleep 0.5
    q stale.odd.test A
}

queries_dnssec() {
    q +dnssec www.sec.test A
    q www.sec.test A
    q bad.sec.test A
    q www.bogusds.test A
    q www.badkey.test A
    q www.insecure.test A
    q nothere.insecure.test AAAA
}

queries_dhcp() {
    python3 "$WORK/dhcpc.py" "$PORT_DHCP" "$PORT_DHCPC" lease >>"$WORK/dhcp.out" 2>&1 || true
    sleep 0.3
    q laptop A
    q laptop.lan A
    q -x 127.0.0.55
    python3 "$WORK/dhcpc.py" "$PORT_DHCP" "$PORT_DHCPC" release >>"$WORK/dhcp.out" 2>&1 || true
    sleep 0.3
}

queries_sets() {
    q www.example.test A
    q www.example.test AAAA
    q alias.example.test A
}

# ---------------------------------------------------------------------------
# One capture run.
run_variant() { # $1 = variant
    local variant=$1 dir="$WORK/$1" front_pid odd_pid i
    local -a front=()
    UP_PID='' AUTH_PID=''
    mkdir -p "$dir"

    # A Pi-hole-like addn-hosts file.
    cat >"$dir/custom.list" <<'HOSTS'
192.0.2.30 printer.lan printer
2001:db8::30 printer.lan
192.0.2.31 nas.lan
HOSTS

    start_bg odd python3 "$WORK/oddns.py" "$PORT_ODD" "$dir/anchor" 40
    odd_pid=$LAST_PID

    front=("${COMMON[@]}" --port="$PORT_FRONT" --pid-file="$dir/front.pid"
        --log-facility="$dir/dnsmasq.log" --cache-size=1000 --neg-ttl=60)
    case $variant in
    plain) front+=(--log-queries) ;;
    proto) front+=(--log-queries=proto) ;;
    *) front+=(--log-queries=extra) ;;
    esac
    if [[ $variant == dnssec ]]; then
        for ((i = 0; i < 30; i++)); do
            [[ -s $dir/anchor ]] && break
            sleep 0.1
        done
        front+=(--dnssec --trust-anchor="$(cat "$dir/anchor")" --server="$LOOP#$PORT_ODD")
    else
        start_upstream "$dir"
        start_auth "$dir"
        front+=(--addn-hosts="$dir/custom.list"
            --server="$LOOP#$PORT_UP"
            --server="/odd.test/$LOOP#$PORT_ODD"
            --server="/dead.test/$LOOP#$PORT_DEAD"
            --server="/auth.test/$LOOP#$PORT_AUTH"
            --local=/home.lan/
            --address=/ads.example.test/0.0.0.0
            --address=/void.test/)
    fi
    case $variant in
    stale) front+=(--use-stale-cache) ;;
    dhcp)
        front+=(--log-dhcp --domain=lan --dhcp-authoritative --no-ping
            --dhcp-range=127.0.0.50,127.0.0.60,255.0.0.0,1h
            --dhcp-alternate-port="$PORT_DHCP,$PORT_DHCPC"
            --dhcp-leasefile="$dir/leases")
        ;;
    sets)
        if command -v ipset >/dev/null; then
            front+=(--ipset=/example.test/dnsenrich4,dnsenrich6)
        fi
        if command -v nft >/dev/null; then
            front+=(--nftset=/example.test/4#inet#dnsenrich#resolved4,6#inet#dnsenrich#resolved6)
        fi
        ;;
    esac
    start_bg front dnsmasq "${front[@]}"
    front_pid=$LAST_PID
    wait_started "$dir/dnsmasq.log"

    case $variant in
    stale | dnssec | dhcp | sets) "queries_$variant" ;;
    *) queries_full ;;
    esac

    kill -USR1 "$front_pid"
    sleep 0.3
    kill -HUP "$front_pid"
    sleep 0.3
    stop_pid "$front_pid"
    if [[ -n $UP_PID ]]; then stop_pid "$UP_PID"; fi
    if [[ -n $AUTH_PID ]]; then stop_pid "$AUTH_PID"; fi
    stop_pid "$odd_pid"

    cp "$dir/dnsmasq.log" "$OUT/dnsmasq-$variant.log"
    # The upstream and auth logs only where this variant sent them queries.
    for i in upstream auth; do
        if grep -qE '(query|auth)\[' "$dir/$i.log" 2>/dev/null; then
            cp "$dir/$i.log" "$OUT/$i-$variant.log"
        fi
    done
    echo "capture-dnsmasq: $variant: $(wc -l <"$dir/dnsmasq.log") lines in dnsmasq-$variant.log"
}

# The sets variant needs its own network namespace: lo up, empty sets.
if [[ ${CAPTURE_IN_NETNS:-} == 1 ]]; then
    ip link set lo up
    if command -v ipset >/dev/null; then
        ipset create dnsenrich4 hash:ip family inet
        ipset create dnsenrich6 hash:ip family inet6
    fi
    if command -v nft >/dev/null; then
        nft add table inet dnsenrich
        nft add set inet dnsenrich resolved4 '{ type ipv4_addr; }'
        nft add set inet dnsenrich resolved6 '{ type ipv6_addr; }'
    fi
    run_variant sets
    exit 0
fi

if [[ -n ${CAPTURE_VARIANTS:-} ]]; then
    read -r -a wanted <<<"$CAPTURE_VARIANTS"
else
    wanted=(plain extra proto stale dnssec dhcp sets)
fi
for v in "${wanted[@]}"; do
    case $v in
    proto)
        if ! version_at_least 2.91; then
            echo "capture-dnsmasq: dnsmasq $VERSION has no --log-queries=proto (2.91+), skipping proto"
            continue
        fi
        ;;
    stale)
        if ! version_at_least 2.88; then
            echo "capture-dnsmasq: dnsmasq $VERSION has no --use-stale-cache (2.88+), skipping stale"
            continue
        fi
        ;;
    dnssec)
        if ((!HAVE_CRYPTO)); then
            echo "capture-dnsmasq: python3 cryptography missing, skipping dnssec"
            continue
        fi
        ;;
    sets)
        if [[ $(id -u) -ne 0 ]] || ! command -v unshare >/dev/null ||
            { ! command -v ipset >/dev/null && ! command -v nft >/dev/null; }; then
            echo "capture-dnsmasq: sets needs root, unshare and ipset or nft, skipping sets"
            continue
        fi
        # Re-run this script inside a private network namespace.
        start_bg sets env CAPTURE_IN_NETNS=1 unshare -n bash "$0" "$OUT"
        wait "$LAST_PID" || { echo "capture-dnsmasq: sets failed" >&2; cat "$WORK/sets.stdout" >&2; exit 1; }
        PIDS=()
        cat "$WORK/sets.stdout"
        continue
        ;;
    plain | extra | dhcp) ;;
    *)
        echo "capture-dnsmasq: unknown variant $v" >&2
        exit 2
        ;;
    esac
    run_variant "$v"
done
echo "capture-dnsmasq: dnsmasq $VERSION logs written to $OUT"
