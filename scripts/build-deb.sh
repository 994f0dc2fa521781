#!/usr/bin/env bash
# Builds the Debian package (target/debian/dnsenrich_*.deb) with cargo-deb:
# the binary, the systemd units (service, socket, sync service and timer), the
# example configuration as /etc/dnsenrich/dnsenrich.toml and the docs.
# Installs cargo-deb from crates.io when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked
fi
cargo deb "$@"
ls -l target/debian/*.deb
