#!/usr/bin/env bash
# Installs the system packages xlb needs to build, test and run its lab.
# Idempotent: asks apt only when something is missing.
set -euo pipefail

PACKAGES=(
  # build: xsk-rs (libxdp/libbpf via cc), hwlocality, the XDP steering program
  clang llvm libelf-dev zlib1g-dev m4 pkg-config make gcc libpcap-dev libhwloc-dev libudev-dev
  linux-libc-dev libbpf-dev
  # tests and lab: namespaces, traffic, captures, SCTP peers
  iproute2 iputils-ping ethtool python3-scapy tcpdump iptables nftables curl util-linux
  # real SCTP peers: usrsctp's tsctp, client and echo_server (tests/sctp_e2e.rs; gcc above
  # builds their preload shim, scripts/usrsctp_shim.c)
  libusrsctp-examples
  # cluster lab (scripts/cluster.sh, tests/cluster_e2e.rs): BIRD 2 on the ECMP router
  # and on every xlb node, announcing VIPs over BGP
  bird2
  # least privilege: crun runs the OCI image of scripts/image.sh in tests/privilege.rs
  crun
  # monitoring: `promtool check rules` on config/monitoring/xlb-alerts.yaml (Debian ships
  # promtool in the prometheus package)
  prometheus
  # perf harness's DPDK peer: testpmd (dpdk-dev ships dpdk-testpmd; dpdk does not) and
  # its AF_XDP driver
  dpdk-dev librte-net-af-xdp23
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}; run as root (apt-get install) or install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup)" >&2; exit 1; }
