#!/usr/bin/env bash
# Installs everything the test suite needs, idempotently: fast when already present.
# Runs on a fresh Debian bookworm machine as root (CI) and on a developer's machine.
set -euo pipefail

log() { printf 'install-test-deps: %s\n' "$*"; }

need_cmd() { command -v "$1" >/dev/null 2>&1; }

# Rust toolchain pieces used by `make test`.
for c in cargo rustc; do
  need_cmd "$c" || { log "missing $c: install a Rust toolchain (rustup) first"; exit 1; }
done
for pair in fmt:rustfmt clippy:clippy; do
  sub=${pair%%:*} comp=${pair#*:}
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    log "installing the $comp component"
    rustup component add "$comp"
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo-nextest not found: the suite runs with cargo test instead"
fi

# Debian packages, installed only when missing. The list grows with the suite.
APT_PACKAGES=()
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "ok"
