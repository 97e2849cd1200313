#!/usr/bin/env bash
# `make demo`: kentledge's main job on the embedded default, the local test cluster.
#  1. validate every example config (offline, no API call);
#  2. start a local cluster, deploy a small app that writes data to a PVC;
#  3. kentledge snapshot --dry-run, then kentledge snapshot (hooks, cut, ready);
#  4. kentledge restore volume: the snapshot into a new PVC, bytes compared;
#  5. kentledge backup into borg and restic, the archives extracted by the engines themselves;
#  6. kentledge list, and kentledge restore volume from each repository into new PVCs;
#  7. an S3 bucket (rclone serve s3) backed up into both repositories and restored into
#     another prefix, objects compared;
#  8. kentledge prune --dry-run; stop the cluster (processes, mounts and data are cleaned up).
set -uo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

cargo build --quiet -p kentledge -p kentledge-nodeagents --bin kentledge --bin kentledge-cluster || exit 1
bin=target/debug/kentledge
work=$(mktemp -d)
cluster_pid=
s3_pid=
cleanup() {
  if [ -n "$s3_pid" ]; then kill "$s3_pid" 2>/dev/null; wait "$s3_pid" 2>/dev/null; fi
  if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
    kill -INT "$cluster_pid"; wait "$cluster_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "kentledge $($bin --version | cut -d' ' -f2): every example config validates (offline)"
for f in examples/*.yaml; do
  out=$($bin check -c "$f") || fail "$f does not validate"
  echo "${out%%$'\n'*}"
done

say "a broken config is refused, every problem located (exit 2, no API call)"
printf 'apiVersion: kentledge.io/v1alpha1\nkind: BackupConfig\nmetadata:\n  name: Shop\nspec:\n  timezone: Europe/Berln\n  snapshots:\n    retention:\n      daily: 0\n' > "$work/broken.yaml"
$bin check -c "$work/broken.yaml"; code=$?
[ "$code" -eq 2 ] || fail "expected exit 2, got $code"

say "starting a local cluster"
export KUBECONFIG="$work/kubeconfig"
KUBECONFIG_OUT="$KUBECONFIG" CLUSTER_DATA="$work/cluster" target/debug/kentledge-cluster > "$work/cluster.log" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 100); do grep -q ready "$work/cluster.log" && break; sleep 0.1; done
grep ready "$work/cluster.log" || fail "the cluster did not start: $(cat "$work/cluster.log")"

say "deploying the demo app (a PVC and a pod writing to it)"
kubectl apply -f scripts/demo/app.yaml || fail "kubectl apply"
kubectl -n demo wait --for=jsonpath='{.status.phase}'=Running pod/web --timeout=30s >/dev/null || fail "the app did not start"
for _ in $(seq 1 50); do kubectl -n demo logs web 2>/dev/null | grep -q ready && break; sleep 0.1; done

say "kentledge snapshot --dry-run (reads only)"
$bin -c scripts/demo/kentledge.yaml snapshot --dry-run || fail "dry run"

say "kentledge snapshot"
$bin -c scripts/demo/kentledge.yaml --log-format text snapshot || fail "snapshot"
kubectl -n demo get volumesnapshots -l app.kubernetes.io/managed-by=kentledge -o custom-columns=NAME:.metadata.name,PVC:.spec.source.persistentVolumeClaimName,READY:.status.readyToUse,RUN:.metadata.labels.kentledge\\.io/run
snapshot=$(kubectl -n demo get volumesnapshots -l kentledge.io/pvc=data -o jsonpath='{.items[0].metadata.name}')

say "kentledge restore volume data --snapshot $snapshot --to data-restored, and comparing the bytes"
$bin -c scripts/demo/kentledge.yaml --log-format text restore volume data --snapshot "$snapshot" --to data-restored || fail "restore"
cat <<YAML | kubectl apply -f - >/dev/null || fail "check pod"
apiVersion: v1
kind: Pod
metadata: {name: check, namespace: demo}
spec:
  restartPolicy: Never
  containers:
    - name: check
      image: busybox
      command: [sh, -c, "md5sum /original/numbers /restored/numbers | sed 's|/[a-z]*/||'; cat /restored/created-at"]
      volumeMounts: [{name: restored, mountPath: /restored}, {name: original, mountPath: /original}]
  volumes:
    - {name: restored, persistentVolumeClaim: {claimName: data-restored}}
    - {name: original, persistentVolumeClaim: {claimName: data}}
YAML
kubectl -n demo wait --for=jsonpath='{.status.phase}'=Succeeded pod/check --timeout=30s >/dev/null || fail "the check pod did not finish"
kubectl -n demo logs check
sums=$(kubectl -n demo logs check | head -2 | cut -d' ' -f1 | sort -u | wc -l)
[ "$sums" -eq 1 ] || fail "restored bytes differ"
say "kentledge backup --dry-run: sources, clones, mover pods, archives"
kubectl -n demo create secret generic repo-pass --from-literal=passphrase="demo passphrase" >/dev/null || fail "secret"
$bin -c scripts/demo/kentledge.yaml backup --dry-run || fail "backup dry run"

say "kentledge backup: the snapshot copied into borg and restic by mover pods"
$bin -c scripts/demo/kentledge.yaml --log-format text backup || fail "backup"
kubectl -n demo get volumesnapshot "$snapshot" -o jsonpath='{.metadata.labels}' | tr ',' '\n' | grep backed-up || fail "no backed-up label"
echo

say "extracting the archives with borg and restic themselves and comparing with the snapshot"
hostpath() { kubectl get pv "$(kubectl -n demo get pvc "$1" -o jsonpath='{.spec.volumeName}')" -o jsonpath='{.spec.hostPath.path}'; }
repos=$(hostpath backups); restored=$(hostpath data-restored)
mkdir -p "$work/borg-out" "$work/restic-out"
archive=$(BORG_PASSPHRASE="demo passphrase" BORG_BASE_DIR="$work/borg-base" borg list --short "$repos/borg" | tail -1)
(cd "$work/borg-out" && BORG_PASSPHRASE="demo passphrase" BORG_BASE_DIR="$work/borg-base" borg extract "$repos/borg::$archive") || fail "borg extract"
printf 'demo passphrase' > "$work/pw"
RESTIC_PASSWORD_FILE="$work/pw" RESTIC_CACHE_DIR="$work/restic-cache" restic -q -r "$repos/restic" restore latest --target "$work/restic-out" || fail "restic restore"
echo "borg archive $archive:"; md5sum "$restored/numbers" "$work/borg-out/numbers" "$work/restic-out/numbers"
sums=$(md5sum "$restored/numbers" "$work/borg-out/numbers" "$work/restic-out/numbers" | cut -d' ' -f1 | sort -u | wc -l)
[ "$sums" -eq 1 ] || fail "offsite copies differ from the snapshot"

say "kentledge list: every snapshot and archive, with retention and backed-up labels"
$bin -c scripts/demo/kentledge.yaml --log-format text list || fail "list"

for repo in borg restic; do
  say "kentledge restore volume data --repository $repo --to data-from-$repo (extracted by a mover pod, verified)"
  $bin -c scripts/demo/kentledge.yaml --log-format text restore volume data --repository "$repo" --to "data-from-$repo" || fail "restore from $repo"
  md5sum "$restored/numbers" "$(hostpath "data-from-$repo")/numbers"
  sums=$(md5sum "$restored/numbers" "$(hostpath "data-from-$repo")/numbers" | cut -d' ' -f1 | sort -u | wc -l)
  [ "$sums" -eq 1 ] || fail "the restore from $repo differs from the snapshot"
done

say "an S3 bucket (rclone serve s3): kentledge backup of photos/ into borg and restic"
mkdir -p "$work/s3/media/photos/2026" "$work/s3/media/other"
for i in $(seq 1 50); do seq "$i" 2000 > "$work/s3/media/photos/2026/img-$i.txt"; done
echo "not under the prefix" > "$work/s3/media/other/skip.txt"
printf 'こんにちは\n' > "$work/s3/media/photos/東京 a+b.txt"
s3_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rclone serve s3 "$work/s3" --addr "127.0.0.1:$s3_port" --config /dev/null --auth-key "demo-key,demo-secret-5a4b" >"$work/s3.log" 2>&1 &
s3_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$s3_port") 2>/dev/null && break; sleep 0.1; done
kubectl -n demo create secret generic s3-keys --from-literal=access=demo-key --from-literal=secret=demo-secret-5a4b >/dev/null || fail "secret"
sed "s/S3_PORT/$s3_port/" scripts/demo/buckets.yaml > "$work/buckets.yaml"
$bin -c "$work/buckets.yaml" --log-format text backup || fail "bucket backup"

say "kentledge backup again: the unchanged bucket is listed, no object is downloaded"
$bin -c "$work/buckets.yaml" --log-format text backup || fail "bucket backup again"

say "kentledge restore bucket media --repository restic --to-prefix restored/, objects compared"
$bin -c "$work/buckets.yaml" --log-format text restore bucket media --repository restic --to-prefix restored/ || fail "bucket restore"
diff -r "$work/s3/media/photos" "$work/s3/media/restored" || fail "the restored objects differ"
[ ! -e "$work/s3/media/restored/other" ] || fail "an object outside the prefix was restored"
echo "$(find "$work/s3/media/restored" -type f | wc -l) objects restored, the same bytes as photos/"

say "kentledge prune --dry-run: snapshot and repository retention, decisions with reasons"
$bin -c scripts/demo/kentledge.yaml --log-format text prune --dry-run || fail "prune dry run"

say "demo: done (snapshot with hooks, restored, copied offsite, listed, restored from both repositories, a bucket backed up and restored, bytes equal); stopping the cluster"
