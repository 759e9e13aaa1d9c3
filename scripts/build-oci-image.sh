#!/usr/bin/env bash
# Builds the Dockerfile's image without a Docker engine or registry: a minimal Debian bookworm
# root file system from Debian's packages (debootstrap), this machine's Node 20 binary, the
# production node_modules and the built server, written as
#   OUT/rootfs/            the tree (runnable with chroot, see docs/deployment.md)
#   OUT/rootfs.tar         the same as one tarball (podman import / docker import)
#   OUT/oci/               an OCI image layout, one layer, tagged tritium:latest
#   OUT/tritium-oci.tar    that layout as an archive (podman load -i, skopeo copy oci-archive:...)
#
# Usage (as root, Linux): scripts/build-oci-image.sh [--no-build] [OUT]   (OUT: dist/image)
# Environment: NODE_BIN (default: the node on PATH), DEBIAN_MIRROR, IMAGE_TAG (tritium:latest).
# The debootstrap result is kept in OUT/cache, so a second run takes seconds instead of minutes.
set -euo pipefail

build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$repo/dist/image}" && cd "${1:-$repo/dist/image}" && pwd)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
tag="${IMAGE_TAG:-tritium:latest}"
node_bin="$(readlink -f "${NODE_BIN:-$(command -v node)}")"
suite=bookworm

say() { printf '[build-oci-image] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(uname -s)" = Linux ] || die "needs Linux"
[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install -y debootstrap)"
node_major="$("$node_bin" -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "$node_bin is Node $node_major; the server needs 20 or later"
case "$(uname -m)" in
  x86_64) deb_arch=amd64; ort_arch=x64 ;;
  aarch64) deb_arch=arm64; ort_arch=arm64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac

start=$SECONDS
cd "$repo"
if [ "$build" = 1 ]; then say "npm run build"; npm run build >&2; fi
[ -f dist/src/cli/main.js ] || die "dist/src/cli/main.js is missing: run npm run build"

# ---- Debian base, kept between runs ----
base="$out/cache/$suite-minbase-$deb_arch.tar"
if [ ! -f "$base" ]; then
  say "debootstrap $suite (minbase) from $mirror"
  mkdir -p "$out/cache"
  tmp="$(mktemp -d "$out/cache/debootstrap.XXXXXX")"
  chmod 0755 "$tmp" # mktemp's 0700 would become the image's / and lock the non-root user out
  # tini is PID 1, as in the Dockerfile; libstdc++6 is what node and ONNX Runtime link against.
  debootstrap --variant=minbase --arch="$deb_arch" --include=tini,libstdc++6 \
    "$suite" "$tmp" "$mirror" >&2
  # Nothing at run time reads apt's lists, documentation or translations.
  rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/* "$tmp"/usr/share/doc/* \
    "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/usr/share/locale/* "$tmp"/var/log/*
  tar --numeric-owner -C "$tmp" -cf "$base.part" .
  mv "$base.part" "$base"
  rm -rf "$tmp"
fi

rootfs="$out/rootfs"
rm -rf "$rootfs"
mkdir -p "$rootfs"
tar --numeric-owner -C "$rootfs" -xf "$base"
chmod 0755 "$rootfs"

# ---- Node and the server ----
say "node $("$node_bin" -v) from $node_bin"
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"

app="$rootfs/opt/tritium"
mkdir -p "$app/packages/client"
cp package.json package-lock.json "$app/"
cp packages/client/package.json "$app/packages/client/"
say "npm ci --omit=dev"
# As in the Dockerfile: package.json's allowScripts denies every install script in this tree.
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund >&2)
rm -rf "$app/node_modules/@tritium" "$app/packages" "$app/package-lock.json"
find "$app/node_modules/onnxruntime-node/bin" -mindepth 2 -maxdepth 2 ! -name linux -exec rm -rf {} +
find "$app/node_modules/onnxruntime-node/bin" -mindepth 3 -maxdepth 3 -path '*/linux/*' ! -name "$ort_arch" -exec rm -rf {} +
find "$app/node_modules" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' \) -type f -delete
mkdir -p "$app/dist"
cp -r dist/src "$app/dist/src"
find "$app/dist" -name '*.map' -type f -delete
cp -r python "$app/python"
mkdir -p "$rootfs/models"
cp -r examples/model_repository/simple "$rootfs/models/simple"

# The Dockerfile's non-root user, without useradd (minbase may lack it).
grep -q '^tritium:' "$rootfs/etc/group" || echo 'tritium:x:10001:' >>"$rootfs/etc/group"
grep -q '^tritium:' "$rootfs/etc/passwd" ||
  echo 'tritium:x:10001:10001::/opt/tritium:/usr/sbin/nologin' >>"$rootfs/etc/passwd"
chown -R 0:0 "$app" "$rootfs/models"
chmod -R a+rX "$app" "$rootfs/models"

chroot "$rootfs" /usr/local/bin/node -e 'require("/opt/tritium/node_modules/onnxruntime-node")' ||
  die "node or ONNX Runtime does not start inside the root file system"

# ---- tarball and OCI layout ----
say "rootfs.tar"
tar --numeric-owner --sort=name --mtime=@0 -C "$rootfs" -cf "$out/rootfs.tar" .

say "OCI layout"
oci="$out/oci"
rm -rf "$oci"
mkdir -p "$oci/blobs/sha256"
diff_id="$(sha256sum "$out/rootfs.tar" | cut -d' ' -f1)"
gzip -n -c "$out/rootfs.tar" >"$oci/layer.tar.gz"
layer="$(sha256sum "$oci/layer.tar.gz" | cut -d' ' -f1)"
layer_size="$(stat -c %s "$oci/layer.tar.gz")"
mv "$oci/layer.tar.gz" "$oci/blobs/sha256/$layer"

blob() { # writes stdin as a blob, prints "digest size"
  local f d
  f="$(mktemp "$oci/blob.XXXXXX")"
  cat >"$f"
  d="$(sha256sum "$f" | cut -d' ' -f1)"
  mv "$f" "$oci/blobs/sha256/$d"
  echo "$d $(stat -c %s "$oci/blobs/sha256/$d")"
}

created="1970-01-01T00:00:00Z"
read -r config config_size < <(blob <<EOF
{"architecture":"$deb_arch","os":"linux","created":"$created",
 "config":{"User":"10001:10001","WorkingDir":"/opt/tritium",
  "Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","MALLOC_ARENA_MAX=2"],
  "Entrypoint":["/usr/bin/tini","--","node","/opt/tritium/dist/src/cli/main.js"],
  "Cmd":["--model-repository=/models"],
  "ExposedPorts":{"8000/tcp":{},"8001/tcp":{},"8002/tcp":{}},
  "StopSignal":"SIGTERM"},
 "rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},
 "history":[{"created":"$created","created_by":"scripts/build-oci-image.sh"}]}
EOF
)
read -r manifest manifest_size < <(blob <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
 "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},
 "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}]}
EOF
)
cat >"$oci/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
 "manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,
  "annotations":{"org.opencontainers.image.ref.name":"$tag"}}]}
EOF
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"
tar --numeric-owner --sort=name --mtime=@0 -C "$oci" -cf "$out/tritium-oci.tar" .

mib() { echo "$(( $1 / 1048576 )) MiB"; }
say "done in $((SECONDS - start)) s"
say "rootfs: $(du -sh "$rootfs" | cut -f1) in $rootfs"
say "rootfs.tar: $(mib "$(stat -c %s "$out/rootfs.tar")"); layer (gzip): $(mib "$layer_size")"
say "OCI image $tag: $oci (archive $out/tritium-oci.tar)"
say "load it: podman load -i $out/tritium-oci.tar  |  skopeo copy oci-archive:$out/tritium-oci.tar docker-daemon:$tag"
