#!/usr/bin/env bash
# The `make bench` measures that need the local cluster (release build; each prints one row:
# measure, kentledge, reference, ratio, goal).
#
# A real CSI driver cuts snapshots and clones copy-on-write; the local test cluster's driver
# copies each one (`cp -a`), which costs in proportion to the data and shows up in every
# figure that clones a volume. When it can, this script gives the benchmark clusters (and their
# raw references) an XFS filesystem with reflinks in a loop-mounted sparse file, where `cp -a`
# clones extents as such a driver would. It needs root, a loop device and mkfs.xfs (xfsprogs);
# without them the benchmarks run on plain directories, and the first line says which.
# The filesystem is unmounted and its file removed when the script ends, however it ends.
set -euo pipefail

CARGO=${CARGO:-cargo}
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/bench-storage"
image="$work.img"
mounted=0

cleanup() {
  if [ "$mounted" = 1 ]; then umount -l "$work" 2>/dev/null || true; fi
  rm -f "$image"
  rmdir "$work" 2>/dev/null || true
}
trap cleanup EXIT

storage="plain directories: the local driver copies every snapshot and clone in full"
if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null 2>&1; then
  # What a run killed outright (SIGKILL: no trap) left.
  if mountpoint -q "$work" 2>/dev/null; then umount -l "$work" || true; fi
  cleanup
  mkdir -p "$work"
  truncate -s 64G "$image"
  if mkfs.xfs -q -f -m reflink=1 "$image" >/dev/null 2>&1 && mount -o loop "$image" "$work" 2>/dev/null; then
    mounted=1
    chmod 1777 "$work"
    export TMPDIR="$work"
    storage="XFS with reflinks: snapshots and clones are copy-on-write, as on a CSI driver's storage"
  fi
fi
printf 'storage: %s\n' "$storage"
printf '%-48s %16s %16s %6s  %s\n' measure kentledge reference ratio goal
"$CARGO" test -q --release -p kentledge --test e2e -- --ignored --nocapture --test-threads 1 "${1:-bench::}" 2>&1 \
  | grep -E '^[PB][0-9]' || { echo "a benchmark failed: run it with cargo test --release --test e2e -- --ignored --nocapture bench::"; exit 1; }
# P6's size goal: the release binary the measures above ran.
bin="${CARGO_TARGET_DIR:-$root/target}/release/kentledge"
if [ -f "$bin" ]; then
  awk -v b="$(stat -c %s "$bin")" 'BEGIN { printf "%-48s %10.1f %-5s %10.1f %-5s %6.2f  %s\n", "P6 release binary size vs 15 MB", b / 1e6, "MB", 15, "MB", b / 1e6 / 15, "<= 1.0x" }'
fi
