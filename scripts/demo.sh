#!/usr/bin/env bash
# `make demo`: build kentledge and run it on the embedded defaults.
# Today: validate every example config and show what each covers, show how a broken config is
# reported, and show that commands whose cluster work has not landed say so and exit non-zero.
# As the local test cluster and the commands land, this grows into the full
# snapshot -> backup -> prune -> restore round trip on that cluster.
set -uo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p kentledge || exit 1
bin=target/debug/kentledge

echo "== kentledge $($bin --version | cut -d' ' -f2): checking every example config"
for f in examples/*.yaml; do
  $bin check -c "$f" || { echo "demo: $f does not validate" >&2; exit 1; }
  echo
done

echo "== a broken config is refused with every problem located (exit 2, no API call)"
broken=$(mktemp --suffix=.yaml)
trap 'rm -f "$broken"' EXIT
cat >"$broken" <<'YAML'
apiVersion: kentledge.io/v1alpha1
kind: BackupConfig
metadata:
  name: Shop
spec:
  timezone: Europe/Berln
  snapshots:
    targets:
      - pvc: data
    retention:
      daily: 0
YAML
$bin check -c "$broken"
code=$?
echo "exit code: $code"
[ "$code" -eq 2 ] || { echo "demo: expected exit 2" >&2; exit 1; }
echo

echo "== commands whose cluster work has not landed say so (exit 69)"
$bin snapshot --dry-run -c examples/minimal.yaml
code=$?
echo "exit code: $code"
[ "$code" -eq 69 ] || { echo "demo: expected exit 69" >&2; exit 1; }
echo
echo "demo: done"
