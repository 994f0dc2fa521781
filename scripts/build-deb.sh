#!/usr/bin/env bash
# Builds the Debian package (target/debian/dnsenrich_*.deb) with cargo-deb:
# the binary, the systemd units (service, socket, sync service and timer), the
# example configuration as /etc/dnsenrich/dnsenrich.toml, the docs, the manual
# pages and the bash/zsh/fish completions (generated from the binary's CLI).
# Installs cargo-deb from crates.io when it is missing. Extra arguments go to
# cargo deb.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    cargo install cargo-deb --locked
fi
cargo build --release --locked --bin dnsenrich
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
target/release/dnsenrich manpages "$assets/man"
gzip -9n "$assets"/man/*.1
target/release/dnsenrich completions bash >"$assets/completions/dnsenrich"
target/release/dnsenrich completions zsh >"$assets/completions/_dnsenrich"
target/release/dnsenrich completions fish >"$assets/completions/dnsenrich.fish"
cargo deb --no-build "$@"
ls -l target/debian/*.deb
