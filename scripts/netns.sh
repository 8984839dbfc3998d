#!/usr/bin/env bash
# The namespace lab: one L2 segment (a bridge in its own namespace) joining a client,
# the xlb node and three backends. Only 198.18.0.0/15 and 2001:db8::/32 are used.
#
#   netns.sh up PREFIX [QUEUES] [split]   build it (QUEUES: rx/tx queues of xlb's veths,
#                                         default 1; split: see below)
#   netns.sh down PREFIX                  remove it
#
# Namespaces: ${PREFIX}sw (bridge), ${PREFIX}cl (client), ${PREFIX}lb (xlb node, eth0),
# ${PREFIX}b1..b3 (backends). Addresses:
#   client   198.18.0.10-19/16               2001:db8::10-19/64
#   xlb      198.18.0.2/16                   2001:db8::2/64
#   backend  198.18.1.1N/16                  2001:db8::1:1N/64   (N = 1..3)
# IPv4 VIPs 198.18.100.0/22 are on-link (xlb answers ARP for them); IPv6 VIPs
# 2001:db8:100::/48 are routed via xlb. DSR backends hold every VIP on vip0, one end of
# a veth pair (vip0/vip1) of their own, and never answer ARP/NDP for it (arp_ignore=1,
# arp_announce=2). Not on lo: usrsctp, the real SCTP stack of tests/sctp_e2e.rs, never
# sources packets from an address on a loopback interface. Interface MACs are fixed so
# tests can name them: xlb 02:00:00:00:00:02, client 02:00:00:00:00:10, backend N
# 02:00:00:00:01:1N.
#
# split: two segments, client-facing and backend-facing. The backends sit on a second
# bridge (br1) at 198.19.1.1N/16 with no route to the clients, and xlb has a second
# interface there, eth1 198.19.0.2/16 (02:00:00:00:00:03): frames cross xlb's two
# interfaces in both directions (NAT).
set -euo pipefail

cmd=${1:?usage: netns.sh up|down PREFIX [QUEUES] [split]}
p=${2:?usage: netns.sh up|down PREFIX [QUEUES] [split]}
queues=${3:-1}
split=${4:-}

VIPS4=(198.18.100.10 198.18.100.20 198.18.101.20)
VIPS6=(2001:db8:100::10 2001:db8:100::20)

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

down() {
  for ns in "${p}cl" "${p}lb" "${p}b1" "${p}b2" "${p}b3" "${p}sw"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

# attach SHORT MAC [ip-link args]: eth0 of namespace ${p}SHORT, cabled to bridge $BRIDGE
# (br0 unless set); IF names the interface (eth0 unless set).
attach() {
  local short=$1 mac=$2; shift 2
  local ifname=${IF:-eth0} bridge=${BRIDGE:-br0} peer="$short${IF:+-$IF}"
  ip link add "$ifname" netns "${p}$short" address "$mac" "$@" type veth peer name "$peer" netns "${p}sw" "$@"
  nsx "${p}sw" ip link set "$peer" master "$bridge" up
  # A veth hands AF_XDP frames with checksums left to offload; finish them in software.
  nsx "${p}$short" ethtool -K "$ifname" tx off >/dev/null
  nsx "${p}$short" ip link set "$ifname" up
  nsx "${p}$short" ip link set lo up
}

up() {
  down
  for ns in sw cl lb b1 b2 b3; do ip netns add "${p}$ns"; done
  nsx "${p}sw" ip link add br0 type bridge
  nsx "${p}sw" ip link set br0 up
  nsx "${p}sw" ip link add br1 type bridge
  nsx "${p}sw" ip link set br1 up
  nsx "${p}sw" sysctl -qw net.ipv6.conf.all.disable_ipv6=1

  attach cl 02:00:00:00:00:10
  for n in 0 1 2 3 4 5 6 7 8 9; do
    nsx "${p}cl" ip addr add "198.18.0.1$n/16" dev eth0
    nsx "${p}cl" ip addr add "2001:db8::1$n/64" dev eth0 nodad
  done
  nsx "${p}cl" ip -6 route add 2001:db8:100::/48 via 2001:db8::2

  attach lb 02:00:00:00:00:02 numrxqueues "$queues" numtxqueues "$queues"
  nsx "${p}lb" ip addr add 198.18.0.2/16 dev eth0
  nsx "${p}lb" ip addr add 2001:db8::2/64 dev eth0 nodad
  if [[ $split == split ]]; then
    IF=eth1 BRIDGE=br1 attach lb 02:00:00:00:00:03 numrxqueues "$queues" numtxqueues "$queues"
    nsx "${p}lb" ip addr add 198.19.0.2/16 dev eth1
  fi

  for n in 1 2 3; do
    local ns="${p}b$n"
    if [[ $split == split ]]; then
      BRIDGE=br1 attach "b$n" "02:00:00:00:01:1$n"
      nsx "$ns" ip addr add "198.19.1.1$n/16" dev eth0
      continue
    fi
    attach "b$n" "02:00:00:00:01:1$n"
    nsx "$ns" ip addr add "198.18.1.1$n/16" dev eth0
    nsx "$ns" ip addr add "2001:db8::1:1$n/64" dev eth0 nodad
    nsx "$ns" ip -6 route add 2001:db8:100::/48 via 2001:db8::2
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
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: netns.sh up|down PREFIX [QUEUES] [split]" >&2; exit 2 ;;
esac
