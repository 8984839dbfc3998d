#!/usr/bin/env bash
# The lab: installs what it needs, builds xlb, builds a namespace network (client,
# xlb node, three backends; scripts/netns.sh), runs `xlb run -c config/lab.yaml`,
# drives real traffic through it and shows where it went. Tears everything down.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "lab: needs root (network namespaces, XDP, AF_XDP); run: sudo $0" >&2
  exit 1
fi
./scripts/setup.sh
cargo build --release --locked
XLB=$PWD/target/release/xlb
PY=/usr/bin/python3
P=lab
WORK=$(mktemp -d /tmp/xlb-lab.XXXXXX)

cleanup() {
  [[ -n ${XLB_PID:-} ]] && kill -TERM "$XLB_PID" 2>/dev/null && wait "$XLB_PID" 2>/dev/null || true
  ./scripts/netns.sh down "$P"
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building the namespace lab (2 queues on xlb's interface)"
./scripts/netns.sh up "$P" 2
for n in 1 2 3; do
  # Subshells keep these out of job control: netns.sh down kills them quietly.
  (ip netns exec "${P}b$n" $PY tests/support/backend.py "b$n" 80 8080 -- 53 >/dev/null 2>&1 &)
  (ip netns exec "${P}b$n" tcpdump -i eth0 -n -U -w "$WORK/b$n.pcap" sctp >/dev/null 2>&1 &)
done

echo "== starting xlb"
$XLB check -c config/lab.yaml
ip netns exec "${P}lb" "$XLB" run -c config/lab.yaml >"$WORK/xlb.log" 2>&1 &
XLB_PID=$!
for _ in $(seq 50); do
  ip netns exec "${P}cl" $PY tests/support/client.py tcp 198.18.100.10 80 1 198.18.0.10 --timeout 0.2 2>/dev/null | grep -q '"failed": 0' && break
  kill -0 "$XLB_PID" 2>/dev/null || { cat "$WORK/xlb.log"; exit 1; }
  sleep 0.2
done
sed -n '1,40p' "$WORK/xlb.log"

sources4=$(seq -f "198.18.0.1%g" 0 9 | paste -sd,)
sources6=$(seq -f "2001:db8::1%g" 0 9 | paste -sd,)
run() { echo "-- $1"; shift; ip netns exec "${P}cl" $PY tests/support/client.py "$@"; }
echo "== traffic (answers per backend; web weights are b1:b2:b3 = 1:1:2)"
run "HTTP over TCP to the IPv4 VIP, DSR, 400 connections" tcp 198.18.100.10 80 400 "$sources4"
run "HTTP over TCP to the IPv6 VIP, DSR, 400 connections" tcp 2001:db8:100::10 80 400 "$sources6"
run "UDP to the IPv4 VIP, DSR, 300 exchanges" udp 198.18.100.10 53 300 "$sources4"
run "HTTP over TCP through full NAT, 200 connections" tcp 198.18.100.30 8080 200 "$sources4"

echo "== multihomed SCTP (scapy): INIT from 198.18.0.10 listing 198.18.0.11, then the"
echo "   second address talks to the second VIP under the backend's tag"
ip netns exec "${P}cl" $PY tests/support/sctp_peer.py eth0 02:00:00:00:00:02 \
  init,198.18.0.10,5000,198.18.100.20,38412,0x11111111,198.18.0.11 \
  cookie,198.18.0.10,5000,198.18.100.20,38412,0xb0b0b0b0 \
  data,198.18.0.10,5000,198.18.100.20,38412,0xb0b0b0b0,first-path \
  heartbeat,198.18.0.11,5000,198.18.101.20,38412,0xb0b0b0b0 \
  data,198.18.0.11,5000,198.18.101.20,38412,0xb0b0b0b0,second-path
for port in 6001 6002 6003 6004 6005 6006; do
  ip netns exec "${P}cl" $PY tests/support/sctp_peer.py eth0 02:00:00:00:00:02 \
    "init,198.18.0.12,$port,198.18.100.20,38412,0x2222$port" \
    "cookie,198.18.0.12,$port,198.18.100.20,38412,0xc0c0$port"
done
sleep 1
for n in 1 2 3; do
  pkill -INT -f "tcpdump -i eth0 -n -U -w $WORK/b$n.pcap" 2>/dev/null || true
done
sleep 0.5
echo "-- SCTP packets captured per backend (source > destination: chunk)"
for n in 1 2 3; do
  echo "b$n:"
  tcpdump -n -r "$WORK/b$n.pcap" 2>/dev/null | sed -E 's/^[0-9:.]+ IP //; s/, length.*//' | sort | uniq -c | sed 's/^/   /' || true
done

echo "== xlb's metrics endpoint (per backend, non-zero drops)"
ip netns exec "${P}lb" curl -sf http://127.0.0.1:9781/metrics |
  grep -E '^xlb_(backend_packets_total|drops_total|sctp_associations|nat_sessions|reloads_total)' | grep -v ' 0$' || true
echo "== xlb stats (the live view, one refresh)"
ip netns exec "${P}lb" "$XLB" stats --interval 0.5 --count 2 | awk 'BEGIN { RS = "" } END { print }'

echo "== xlb counters at shutdown"
kill -TERM "$XLB_PID"
wait "$XLB_PID" && echo "xlb exited 0"
XLB_PID=
grep -E "counters|drop" "$WORK/xlb.log" || true
if ip -n "${P}lb" link show eth0 | grep -q xdp; then
  echo "XDP program still attached after exit" >&2
  exit 1
fi
echo "XDP program detached"
