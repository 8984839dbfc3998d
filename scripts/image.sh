#!/usr/bin/env bash
# xlb as an OCI container image, built from files on this machine: no base image, no
# registry, no container engine. The image is an OCI image layout directory (what
# `skopeo copy oci:DIR:xlb ...` and `podman run oci:DIR:xlb` read) whose one layer holds
# the xlb binary, exactly the shared libraries `ldd` says it loads, the dynamic loader,
# /etc/passwd and /etc/group with the xlb user (uid 65532) and empty mount points.
# Pipelines are compiled into the binary (src/pipeline/loader.rs), so none are shipped.
# Layout and use: packaging/README.md.
#
#   image.sh build [--binary PATH] [--out DIR] [--tag TAG]
#       Writes the layout to DIR (default target/image). Without --binary, builds
#       target/release/xlb first. Reproducible: the same binary, libraries and
#       SOURCE_DATE_EPOCH (default: the last commit's time) give the same digests.
#   image.sh bundle --image DIR --bundle DIR --netns NAME|PATH --config FILE
#       Unpacks the image's layer into BUNDLE/rootfs and writes BUNDLE/config.json from
#       packaging/image/runtime.json.in: xlb as uid 65532 with only the capabilities of
#       packaging/systemd/xlb.service, in network namespace NAME (/run/netns/NAME) or
#       PATH, with FILE bind-mounted read-only as /etc/xlb/xlb.yaml. Then, as root:
#       crun run --bundle BUNDLE xlb
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

die() { echo "image: $*" >&2; exit 1; }
usage() { sed -n '/^#   image.sh build/,/^#       crun run/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

sha256() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# blob FILE: moves FILE into the layout's blobs under its digest; prints "DIGEST SIZE".
blob() {
  local digest size
  digest=$(sha256 "$1")
  size=$(size "$1")
  mv "$1" "$OUT/blobs/sha256/$digest"
  echo "sha256:$digest $size"
}

# A path printed by ldd, inside the usr-merged root: /lib/x and /lib64/x live in /usr.
rooted() {
  case $1 in
    /lib/* | /lib64/*) echo "usr$1" ;;
    /usr/*) echo "${1#/}" ;;
    *) die "unexpected library location $1 (expected under /lib, /lib64 or /usr)" ;;
  esac
}

build() {
  local binary="" tag=xlb
  OUT=$REPO/target/image
  while (($#)); do
    case $1 in
      --binary) binary=${2:?--binary needs a path}; shift 2 ;;
      --out) OUT=${2:?--out needs a directory}; shift 2 ;;
      --tag) tag=${2:?--tag needs a name}; shift 2 ;;
      *) usage ;;
    esac
  done
  if [[ -z $binary ]]; then
    cargo build --release --locked --bin xlb
    binary=$REPO/target/release/xlb
  fi
  [[ -x $binary ]] || die "$binary: no such executable; build it with: cargo build --release --locked --bin xlb"
  if [[ -e $OUT && -n $(ls -A "$OUT") && ! -e $OUT/oci-layout ]]; then
    die "$OUT exists and is not an image layout; refusing to replace it"
  fi
  local epoch=${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}
  local created version arch
  created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
  version=$("$binary" --version | awk '{print $2}')
  case $(uname -m) in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
  esac

  local stage
  stage=$(mktemp -d /tmp/xlb-image.XXXXXX)
  STAGE=$stage
  trap 'rm -rf "$STAGE"' EXIT
  local root=$stage/rootfs
  mkdir -p "$root"/usr/bin "$root"/usr/lib "$root"/usr/lib64 "$root"/etc/xlb \
    "$root"/proc "$root"/sys "$root"/dev "$root"/tmp
  chmod 1777 "$root/tmp"
  ln -s usr/lib "$root/lib"
  ln -s usr/lib64 "$root/lib64"
  install -m 0755 "$binary" "$root/usr/bin/xlb"

  # `ldd` lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" for libraries,
  # "/lib64/ld-linux-x86-64.so.2 (0x...)" for the loader; linux-vdso is the kernel's.
  local libs
  libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
  ldd "$binary" | grep -q 'not found' && die "$(ldd "$binary" | grep 'not found')"
  [[ -n $libs ]] || die "$binary is not dynamically linked; ldd found no loader"
  local lib dest
  for lib in $libs; do
    dest=$root/$(rooted "$lib")
    mkdir -p "$(dirname "$dest")"
    # The file itself under the name the binary asks for (symlinks resolved).
    install -m 0755 "$(readlink -f "$lib")" "$dest"
  done
  install -m 0644 packaging/image/passwd "$root/etc/passwd"
  install -m 0644 packaging/image/group "$root/etc/group"

  rm -rf "$OUT"
  mkdir -p "$OUT/blobs/sha256"
  # A reproducible tar: sorted names, numeric root ownership, one mtime, no atime/ctime.
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$root" -cf "$stage/layer.tar" .
  local diff_id
  diff_id=sha256:$(sha256 "$stage/layer.tar")
  gzip -9n "$stage/layer.tar"
  local layer config manifest
  layer=$(blob "$stage/layer.tar.gz")

  cat >"$stage/config.json" <<EOF
{"created":"$created","architecture":"$arch","os":"linux","config":{"User":"65532:65532","Entrypoint":["/usr/bin/xlb"],"Cmd":["run","-c","/etc/xlb/xlb.yaml"],"Env":["PATH=/usr/bin"],"WorkingDir":"/","StopSignal":"SIGTERM","Labels":{"org.opencontainers.image.title":"xlb","org.opencontainers.image.version":"$version"}},"rootfs":{"type":"layers","diff_ids":["$diff_id"]},"history":[{"created":"$created","created_by":"scripts/image.sh build"}]}
EOF
  config=$(blob "$stage/config.json")

  cat >"$stage/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"${config% *}","size":${config#* }},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"${layer% *}","size":${layer#* }}],"annotations":{"org.opencontainers.image.created":"$created","org.opencontainers.image.version":"$version"}}
EOF
  manifest=$(blob "$stage/manifest.json")

  cat >"$OUT/index.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${manifest% *}","size":${manifest#* },"platform":{"architecture":"$arch","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"$tag"}}]}
EOF
  echo '{"imageLayoutVersion":"1.0.0"}' >"$OUT/oci-layout"
  echo "image: $OUT (tag $tag, manifest ${manifest% *}, layer ${layer#* } bytes)"
  echo "image: libraries: $(echo $libs)"
}

# json FILE KEY...: one value of a JSON file, e.g. `json index.json manifests 0 digest`
# (python3, which the lab already needs).
json() {
  python3 -c '
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value)' "$@"
}

bundle() {
  local image="" bundle="" netns="" config=""
  while (($#)); do
    case $1 in
      --image) image=${2:?}; shift 2 ;;
      --bundle) bundle=${2:?}; shift 2 ;;
      --netns) netns=${2:?}; shift 2 ;;
      --config) config=${2:?}; shift 2 ;;
      *) usage ;;
    esac
  done
  [[ -n $image && -n $bundle && -n $netns && -n $config ]] || usage
  [[ -f $image/oci-layout ]] || die "$image: no oci-layout; build one with: scripts/image.sh build"
  [[ -f $config ]] || die "$config: no such file"
  [[ $netns == /* ]] || netns=/run/netns/$netns
  [[ -e $netns ]] || die "$netns: no such network namespace"
  config=$(readlink -f "$config")
  [[ -e $bundle && -n $(ls -A "$bundle") ]] && die "$bundle exists and is not empty"

  local manifest layer
  manifest=$(json "$image/index.json" manifests 0 digest)
  layer=$(json "$image/blobs/sha256/${manifest#sha256:}" layers 0 digest)
  mkdir -p "$bundle/rootfs"
  tar -xzf "$image/blobs/sha256/${layer#sha256:}" -C "$bundle/rootfs" --numeric-owner
  # Paths go into sed replacements: escape what sed would read as syntax.
  local config_re netns_re
  config_re=$(printf '%s' "$config" | sed 's/[|&\\]/\\&/g')
  netns_re=$(printf '%s' "$netns" | sed 's/[|&\\]/\\&/g')
  sed -e "s|@CONFIG@|$config_re|" -e "s|@NETNS@|$netns_re|" packaging/image/runtime.json.in \
    >"$bundle/config.json"
  echo "image: bundle $bundle (run: crun run --bundle $bundle xlb)"
}

case ${1:-} in
  build) shift; build "$@" ;;
  bundle) shift; bundle "$@" ;;
  *) usage ;;
esac
