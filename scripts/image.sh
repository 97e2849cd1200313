#!/usr/bin/env bash
# The kentledge image, without a container engine: the runtime filesystem assembled from Debian
# packages by mmdebstrap (exactly what the mover runs: borg 1.4 from bookworm-backports, restic,
# the ssh client, rsync, CA certificates), the kentledge binary, a non-root user, written as an
# OCI image layout and archived (docker-archive-free; `skopeo copy oci-archive:… docker://…` or
# `podman load -i …` take it).
#
#   scripts/image.sh rootfs         the runtime filesystem only (target/image/rootfs.tar, cached)
#   scripts/image.sh [BINARY]       the OCI archive target/image/kentledge-<version>.oci.tar with
#                                   BINARY (default: a release build) as /usr/local/bin/kentledge
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/image
mkdir -p "$out"
log() { printf 'image: %s\n' "$*" >&2; }

# What the image holds besides kentledge. A change of this list (or of this script) makes a new
# filesystem; otherwise the cached one is used.
packages="ca-certificates,openssh-client,restic,rsync,borgbackup/bookworm-backports"
suite=bookworm
mirror=http://deb.debian.org/debian
stamp=$(printf '%s\n' "$packages" "$suite" "$(sha256sum < "$0")" | sha256sum | cut -c1-16)

rootfs() {
  # One builder at a time (tests run in parallel); the others wait and take its result.
  exec 9>"$out/rootfs.lock"
  flock 9
  if [ -s "$out/rootfs.tar" ] && [ "$(cat "$out/rootfs.stamp" 2>/dev/null)" = "$stamp" ]; then
    flock -u 9
    return
  fi
  command -v mmdebstrap >/dev/null || {
    apt-get update -qq && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
  }
  log "assembling the runtime filesystem from Debian $suite packages ($packages)"
  rm -f "$out/rootfs.tar"
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
    --customize-hook='echo "kentledge:x:65532:65532:kentledge:/home/kentledge:/usr/sbin/nologin" >> "$1"/etc/passwd' \
    --customize-hook='echo "kentledge:x:65532:" >> "$1"/etc/group' \
    --customize-hook='mkdir -p "$1"/home/kentledge && chown 65532:65532 "$1"/home/kentledge' \
    --include="$packages" \
    "$suite" "$out/rootfs.tar.part" "deb $mirror $suite main" "deb $mirror $suite-backports main"
  mv "$out/rootfs.tar.part" "$out/rootfs.tar"
  echo "$stamp" > "$out/rootfs.stamp"
  flock -u 9
}

rootfs
[ "${1:-}" = rootfs ] && { echo "$out/rootfs.tar"; exit 0; }

bin=${1:-}
if [ -z "$bin" ]; then
  log "building the release binary"
  cargo build --release -q -p kentledge --bin kentledge
  bin=target/release/kentledge
fi
version=$("$bin" --version | cut -d' ' -f2)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One layer: the filesystem plus the binary, in name order with fixed times and owners, so the
# same inputs make the same digest.
mkdir "$work/root"
tar -xf "$out/rootfs.tar" -C "$work/root"
install -D -m 0755 "$bin" "$work/root/usr/local/bin/kentledge"
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
tar --sort=name --mtime="@$epoch" --numeric-owner --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$work/root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -6 "$work/layer.tar"
mkdir -p "$work/oci/blobs/sha256"
layer=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$work/oci/blobs/sha256/$layer"

created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"$created",
 "config":{"User":"65532:65532","Entrypoint":["/usr/local/bin/kentledge"],"WorkingDir":"/",
  "Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","HOME=/home/kentledge"],
  "Labels":{"org.opencontainers.image.title":"kentledge","org.opencontainers.image.version":"$version",
   "org.opencontainers.image.licenses":"Apache-2.0"}},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"$created","created_by":"scripts/image.sh ($packages)"}]}
JSON
config=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")
mv "$work/config.json" "$work/oci/blobs/sha256/$config"
cat > "$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
JSON
manifest=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
manifest_size=$(stat -c %s "$work/manifest.json")
mv "$work/manifest.json" "$work/oci/blobs/sha256/$manifest"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"
cat > "$work/oci/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,
  "annotations":{"org.opencontainers.image.ref.name":"$version","io.containerd.image.name":"ghcr.io/kentledge/kentledge:$version"}}]}
JSON
archive="$out/kentledge-$version.oci.tar"
# Written beside and renamed: a reader never sees half an archive.
tar --sort=name --mtime="@$epoch" --numeric-owner -C "$work/oci" -cf "$archive.part.$$" .
mv "$archive.part.$$" "$archive"
log "binary $(stat -c %s "$bin") bytes ($(du -h "$bin" | cut -f1)); image layer $layer_size bytes compressed, $(du -sh "$work/root" | cut -f1) unpacked"
log "wrote $archive (ghcr.io/kentledge/kentledge:$version, manifest sha256:$manifest)"
echo "$archive"
