#!/usr/bin/env bash
# The cluster lab: three xlb nodes behind an ECMP router, each announcing its VIPs with
# its own BIRD over BGP (docs/deployment.md). Only 198.18.0.0/15 and 2001:db8::/32 are
# used.
#
#   cluster.sh up PREFIX     build it and start the four BIRDs (xlb and the backends'
#                            servers are started by the caller: tests/cluster_e2e.rs)
#   cluster.sh down PREFIX   remove it
#
#   client ${PREFIX}cl --eth0---eth1-- router ${PREFIX}rt --eth0-- bridge br0 (${PREFIX}sw)
#                                                                  |-- n1, n2, n3 (xlb)
#                                                                  '-- b1, b2, b3 (backends)
# Addresses:
#   client   198.18.0.10-19/24   2001:db8::10-19/64       default via the router
#   router   198.18.0.1/24       2001:db8::1/64           (client side, eth1)
#            198.18.1.1/24       2001:db8:1::1/64         (cluster side, eth0), AS 65000
#   node N   198.18.1.2N/24      2001:db8:1::2N/64        AS 65001, xlb on eth0
#   backend  198.18.1.1N/24      2001:db8:1::1N/64        default via the router
# VIPs 198.18.100.0/22 and 2001:db8:100::/48 are routed by BGP only: each node's BIRD
# exports the host routes of the addresses on its `xlb-announce` device (protocol
# direct), the router's BIRD merges equal routes from the three nodes into one kernel
# multipath route (merge paths), and the router's kernel hashes flows over the next
# hops by their L4 ports (fib_multipath_hash_policy=1). BFD runs on every session.
# Forwarding is DSR: nodes and backends share the bridge, and backends hold every VIP on
# vip0 (one end of a veth pair of their own, never answering ARP/NDP for it) and answer
# clients straight through the router.
set -euo pipefail

cmd=${1:?usage: cluster.sh up|down PREFIX}
p=${2:?usage: cluster.sh up|down PREFIX}
run=${TMPDIR:-/tmp}/xlb-cluster-$p

# The backends hold every VIP; a node announces those of its services. The second IPv4
# VIP is the multihomed SCTP service's other address (tests/cluster_sctp_e2e.rs).
VIPS4=(198.18.100.10 198.18.101.10)
VIPS6=(2001:db8:100::10)
NAMESPACES=(cl rt sw n1 n2 n3 b1 b2 b3)

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

down() {
  for short in "${NAMESPACES[@]}"; do
    ip netns pids "${p}$short" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "${p}$short" 2>/dev/null || true
  done
  rm -rf "$run"
}

# veth NS_A IF_A NS_B IF_B: a veth pair between two namespaces, both ends up, transmit
# checksums finished in software (AF_XDP gets frames whose checksum was left to offload).
veth() {
  ip link add "$2" netns "${p}$1" type veth peer name "$4" netns "${p}$3"
  for end in "$1 $2" "$3 $4"; do
    set -- $end
    nsx "${p}$1" ethtool -K "$2" tx off >/dev/null
    nsx "${p}$1" ip link set "$2" up
  done
}

# bridged SHORT: eth0 of ${p}SHORT on the cluster bridge.
bridged() {
  veth "$1" eth0 sw "$1"
  nsx "${p}sw" ip link set "$1" master br0
}

router_conf() {
  cat <<EOF
router id 198.18.1.1;
log "$run/rt.log" all;
protocol device { scan time 1; }
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on; }
protocol bfd {
  interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 5; };
}
template bgp xlb4 {
  local 198.18.1.1 as 65000;
  bfd on;
  ipv4 { import where net ~ [198.18.100.0/22{32,32}]; export none; };
}
template bgp xlb6 {
  local 2001:db8:1::1 as 65000;
  bfd on;
  ipv6 { import where net ~ [2001:db8:100::/48{128,128}]; export none; };
}
EOF
  for n in 1 2 3; do
    echo "protocol bgp n${n}v4 from xlb4 { neighbor 198.18.1.2$n as 65001; }"
    echo "protocol bgp n${n}v6 from xlb6 { neighbor 2001:db8:1::2$n as 65001; }"
  done
}

node_conf() {
  local n=$1
  cat <<EOF
router id 198.18.1.2$n;
log "$run/n$n.log" all;
protocol device { scan time 1; }
# The VIPs xlb holds on its announcement device while it can serve them.
protocol direct vips {
  ipv4;
  ipv6;
  interface "xlb-announce";
}
protocol bfd {
  interface "eth0" { min rx interval 100 ms; min tx interval 100 ms; multiplier 5; };
}
protocol bgp uplink4 {
  local 198.18.1.2$n as 65001;
  neighbor 198.18.1.1 as 65000;
  bfd on;
  ipv4 { import none; export where proto = "vips" && net.len = 32; };
}
protocol bgp uplink6 {
  local 2001:db8:1::2$n as 65001;
  neighbor 2001:db8:1::1 as 65000;
  bfd on;
  ipv6 { import none; export where proto = "vips" && net.len = 128; };
}
EOF
}

bird_in() {
  local short=$1
  nsx "${p}$short" bird -c "$run/$short.conf" -s "$run/$short.ctl" -P "$run/$short.pid"
}

up() {
  down
  command -v bird >/dev/null || { echo "cluster: bird not found; run scripts/setup.sh (Debian bird2)" >&2; exit 1; }
  mkdir -p "$run"
  for short in "${NAMESPACES[@]}"; do
    ip netns add "${p}$short"
    nsx "${p}$short" ip link set lo up
  done
  nsx "${p}sw" ip link add br0 type bridge
  nsx "${p}sw" ip link set br0 up
  nsx "${p}sw" sysctl -qw net.ipv6.conf.all.disable_ipv6=1

  veth cl eth0 rt eth1
  for n in 0 1 2 3 4 5 6 7 8 9; do
    nsx "${p}cl" ip addr add "198.18.0.1$n/24" dev eth0
    nsx "${p}cl" ip addr add "2001:db8::1$n/64" dev eth0 nodad
  done
  nsx "${p}cl" ip route add default via 198.18.0.1
  nsx "${p}cl" ip -6 route add default via 2001:db8::1

  bridged rt
  nsx "${p}rt" ip addr add 198.18.0.1/24 dev eth1
  nsx "${p}rt" ip addr add 2001:db8::1/64 dev eth1 nodad
  nsx "${p}rt" ip addr add 198.18.1.1/24 dev eth0
  nsx "${p}rt" ip addr add 2001:db8:1::1/64 dev eth0 nodad
  nsx "${p}rt" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.eth1.rp_filter=0

  for n in 1 2 3; do
    bridged "n$n"
    nsx "${p}n$n" ip addr add "198.18.1.2$n/24" dev eth0
    nsx "${p}n$n" ip addr add "2001:db8:1::2$n/64" dev eth0 nodad
    # The VIPs on xlb-announce are local addresses: never answer ARP for them on eth0
    # (xlb answers ARP for VIPs itself while it runs).
    nsx "${p}n$n" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
  done

  for n in 1 2 3; do
    local ns="${p}b$n"
    bridged "b$n"
    nsx "$ns" ip addr add "198.18.1.1$n/24" dev eth0
    nsx "$ns" ip addr add "2001:db8:1::1$n/64" dev eth0 nodad
    nsx "$ns" ip route add default via 198.18.1.1
    nsx "$ns" ip -6 route add default via 2001:db8:1::1
    nsx "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    nsx "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 net.ipv4.conf.lo.rp_filter=0
    nsx "$ns" ip link add vip0 type veth peer name vip1
    for dev in vip0 vip1; do
      nsx "$ns" ethtool -K "$dev" tx off >/dev/null
      nsx "$ns" ip link set "$dev" up
    done
    nsx "$ns" sysctl -qw net.ipv4.conf.vip0.rp_filter=0 net.ipv4.conf.vip1.rp_filter=0
    for vip in "${VIPS4[@]}"; do nsx "$ns" ip addr add "$vip/32" dev vip0; done
    for vip in "${VIPS6[@]}"; do nsx "$ns" ip addr add "$vip/128" dev vip0 nodad; done
  done

  router_conf >"$run/rt.conf"
  bird_in rt
  for n in 1 2 3; do
    node_conf "$n" >"$run/n$n.conf"
    bird_in "n$n"
  done
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: cluster.sh up|down PREFIX" >&2; exit 2 ;;
esac
