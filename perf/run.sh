#!/usr/bin/env bash
# The perf harness: generator -> device under test -> sink, each in its own network
# namespace, joined by veth pairs; xlb pipelines and the kernel/DPDK peers in one run.
#
#   perf/run.sh [--smoke] [--reps N] [--duration SECONDS] [--out DIR] [--cases REGEX]
#
# Topology (only 198.18.0.0/15):
#   ${P}gen  g0 198.18.0.1/24  02:00:00:00:10:01 --- d0 198.18.0.254/24 02:00:00:00:10:02  ${P}dut
#   ${P}dut  d1 198.18.2.254/24 02:00:00:00:10:03 --- s0 198.18.2.1/24 (+ .11 .12 .13, the
#            backends) 02:00:00:00:10:04  ${P}sink
# Each veth has 2 queues. The generator is `xlb pktgen` on g0, the sink `xlb pktgen
# --receive` on s0 (for xlb macswap, which bounces frames back, the generator receives
# on g0 itself). Devices under test on d0/d1: xlb (rxdrop, macswap, l4lb dsr, l4lb nat;
# 1 and 2 workers), the kernel with iptables DNAT and with nftables DNAT (kube-proxy's
# two modes), and DPDK testpmd macswap over its AF_XDP driver (d0 -> d1; the sink steers
# on the VIP, not the MAC, so macswap's frames, sent to the generator's MAC, count there
# as l4lb dsr's do). testpmd runs interactive on a FIFO, its main lcore idling at the
# prompt on core 0, one forwarding lcore on core 1 (where xlb's single worker runs). It
# has w1 cases only: DPDK 22.11's AF_XDP driver takes its queue count from the combined
# channels ethtool reports, which veth has none of, so it binds queue 0 alone.
# Traffic: udp 64 B over 100k flows, tcp-syn, tcp-est, sctp (INIT + COOKIE-ECHO, DATA).
# xlb-l4lb-dsr-reload100: l4lb dsr with 100 SIGHUP reloads during the run (b1's weight
# flips each time, so Maglev changes while tracked flows must stay put).
# Generator comparison (pipeline txonly): the thing measured is the generator on g0,
# `xlb pktgen` (pktgen-tx) or testpmd --forward-mode=txonly (testpmd-txonly), one 64 B
# UDP flow each on one core (core 0) into xlb rxdrop on d0 (core 1), so both meet the
# same receiver; rate = the generator's own TX count over its own clock (testpmd: its
# port statistics: Tx-pps between the statistics taken right after `start` and right
# before `stop`).
# Each case runs --reps times, in list order on odd repetitions and reversed on even
# ones; perf/summarize.py writes results.json, results.md and
# mpps.svg (median and spread, ratios within this run) under --out.
# --smoke: one short repetition per case; fails unless every case moves packets and
# the result files are well formed. --cases REGEX: only the cases whose name matches the
# extended regular expression (e.g. 'testpmd|xlb-.*/udp/w1'). XLB_BIN=path uses that
# binary instead of building.
# Needs dpdk-testpmd (scripts/setup.sh installs it) unless --cases leaves testpmd out.
set -euo pipefail
cd "$(dirname "$0")/.."

SMOKE=0 REPS=5 DURATION=5 OUT=perf/results CASES_RE=
while [[ $# -gt 0 ]]; do
  case $1 in
    --smoke) SMOKE=1; REPS=1; DURATION=1; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --cases) CASES_RE=$2; shift 2 ;;
    *) echo "usage: perf/run.sh [--smoke] [--reps N] [--duration SECONDS] [--out DIR] [--cases REGEX]" >&2
      exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "perf: needs root (network namespaces, XDP, AF_XDP); run: sudo $0" >&2
  exit 1
fi
if [[ -z ${XLB_BIN:-} ]]; then
  cargo build --release --locked --bin xlb
  XLB_BIN=$PWD/target/release/xlb
fi
XLB=$XLB_BIN
P=${PERF_PREFIX:-xperf$$}
WORK=$(mktemp -d /tmp/xlb-perf.XXXXXX)
mkdir -p "$OUT"
RUNS=$WORK/runs.jsonl
: >"$RUNS"

G_MAC=02:00:00:00:10:01 D0_MAC=02:00:00:00:10:02 D1_MAC=02:00:00:00:10:03 S_MAC=02:00:00:00:10:04
VIP=198.18.100.10 VIP_SCTP=198.18.100.20 BACKENDS=198.18.2.11,198.18.2.12,198.18.2.13
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

down() {
  for ns in gen dut sink; do
    ip netns pids "$P$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$P$ns" 2>/dev/null || true
  done
}
cleanup() { down; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

up() {
  for ns in gen dut sink; do ip netns add "$P$ns"; nsx "$P$ns" ip link set lo up; done
  ip -n "${P}gen" link add g0 address $G_MAC numtxqueues 2 numrxqueues 2 type veth \
    peer name d0 netns "${P}dut" address $D0_MAC numtxqueues 2 numrxqueues 2
  ip -n "${P}dut" link add d1 address $D1_MAC numtxqueues 2 numrxqueues 2 type veth \
    peer name s0 netns "${P}sink" address $S_MAC numtxqueues 2 numrxqueues 2
  for pair in gen:g0 dut:d0 dut:d1 sink:s0; do
    local ns=${pair%%:*} dev=${pair##*:}
    # AF_XDP frames carry no checksum offload state; finish checksums in software.
    nsx "$P$ns" ethtool -K "$dev" tx off >/dev/null
    nsx "$P$ns" ip link set "$dev" up
  done
  nsx "${P}gen" ip addr add 198.18.0.1/24 dev g0
  nsx "${P}dut" ip addr add 198.18.0.254/24 dev d0
  nsx "${P}dut" ip addr add 198.18.2.254/24 dev d1
  nsx "${P}sink" ip addr add 198.18.2.1/24 dev s0
  for b in ${BACKENDS//,/ }; do
    nsx "${P}sink" ip addr add "$b/24" dev s0
    # The sink's AF_XDP socket takes the backends' traffic, ARP included: pin them.
    nsx "${P}dut" ip neigh replace "$b" lladdr $S_MAC dev d1 nud permanent
  done
  nsx "${P}dut" ip neigh replace 198.18.0.1 lladdr $G_MAC dev d0 nud permanent
  nsx "${P}dut" ip route add 198.18.100.0/24 dev d1 2>/dev/null || true
}

# xlb_config PIPELINE FORWARDING WORKERS -> path of a service table for the dut.
xlb_config() {
  local pipeline=$1 forwarding=$2 workers=$3 file=$WORK/xlb-$1-$2-$3.yaml
  cat >"$file" <<YAML
version: 1
dataplane:
  interfaces:
    - { name: d0, queues: all, xdp_mode: auto, zero_copy: auto }
    - { name: d1, queues: all, xdp_mode: auto, zero_copy: auto }
  workers: $workers
  pipeline: $pipeline
  batch_size: 64
  ring_size: 2048
  flow_table: { capacity: 1048576, tcp_idle: 300s, udp_idle: 30s, sctp_idle: 300s }
  sctp: { capacity: 4096, max_addresses: 8, linger: 2s }
  nat: { addresses: [198.18.2.254], port_range: [1024, 65535] }
  metrics_listen: 127.0.0.1:9781
services:
  - name: udp
    vips: [$VIP]
    protocol: udp
    ports: [9]
    forwarding: $forwarding
    backends: [{ name: b1, address: 198.18.2.11 }, { name: b2, address: 198.18.2.12 }, { name: b3, address: 198.18.2.13 }]
  - name: tcp
    vips: [$VIP]
    protocol: tcp
    ports: [80]
    forwarding: $forwarding
    backends: [{ name: b1, address: 198.18.2.11 }, { name: b2, address: 198.18.2.12 }, { name: b3, address: 198.18.2.13 }]
YAML
  if [[ $forwarding != nat ]]; then
    cat >>"$file" <<YAML
  - name: sctp
    vips: [$VIP_SCTP]
    protocol: sctp
    ports: [38412]
    forwarding: $forwarding
    backends: [{ name: b1, address: 198.18.2.11 }, { name: b2, address: 198.18.2.12 }, { name: b3, address: 198.18.2.13 }]
YAML
  fi
  echo "$file"
}

# traffic_args NAME -> generator arguments.
traffic_args() {
  case $1 in
    udp) echo "--proto udp --size 64 --flows 100000 --dst $VIP --dst-port 9" ;;
    udp-1flow) echo "--proto udp --size 64 --dst $VIP --dst-port 9" ;;
    tcp-syn) echo "--proto tcp-syn --dst $VIP --dst-port 80" ;;
    tcp-est) echo "--proto tcp-est --flows 10000 --dst $VIP --dst-port 80" ;;
    sctp) echo "--proto sctp --flows 1000 --second-src 198.18.0.9 --dst $VIP_SCTP --dst-port 38412" ;;
  esac
}

# wait_for FILE PATTERN SECONDS [PID]: waits until FILE shows PATTERN; fails after SECONDS
# or as soon as PID has exited.
wait_for() {
  for _ in $(seq $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    if [[ -n ${4:-} ]] && ! kill -0 "$4" 2>/dev/null; then
      echo "perf: exited before '$2' showed in $1:" >&2; cat "$1" >&2; return 1
    fi
    sleep 0.1
  done
  echo "perf: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

# wait_exit PID SECONDS NAME: waits for PID to exit; past SECONDS, kills it and fails.
wait_exit() {
  for _ in $(seq $(($2 * 10))); do
    if ! kill -0 "$1" 2>/dev/null; then wait "$1" || true; return 0; fi
    sleep 0.1
  done
  echo "perf: $3 did not exit within $2 s; killed it" >&2
  kill -9 "$1" 2>/dev/null || true
  wait "$1" || true
  return 1
}

# start_sink STEER: xlb pktgen --receive on s0, steering STEER; waits until it is ready.
start_sink() {
  ip netns exec "${P}sink" "$XLB" pktgen --iface s0 --receive --rx-queues 2 --quiet --cores 1 \
    --steer "$1" --json "$WORK/sink.json" >"$WORK/sink.log" 2>&1 &
  SINK_PID=$!
  wait_for "$WORK/sink.log" "pktgen receiver ready" 20 "$SINK_PID"
}
stop_sink() { sleep 0.3; kill -INT "$SINK_PID"; wait_exit "$SINK_PID" 10 "the sink"; SINK_PID=; }

# start_testpmd NS LOG LCORES IFACES TESTPMD_ARGS...: DPDK testpmd in NS with one AF_XDP
# port per interface in IFACES (comma-separated), on queue 0. It runs interactive, reading
# commands from a FIFO this shell holds open, so it never reads EOF
# and quits only when told; its stdout is line-buffered, else LOG stays at "Checking link
# statuses..." until it exits. Returns once the ports are up and forwarding has started.
# The `show port stats all` right after `start` is the baseline of the Tx-pps and Rx-pps
# that stop_testpmd's statistics report.
start_testpmd() {
  local ns=$1 log=$2 lcores=$3 ifaces=$4 vdevs=() port=0; shift 4
  for iface in ${ifaces//,/ }; do
    vdevs+=(--vdev "net_af_xdp$port,iface=$iface,start_queue=0,queue_count=1")
    port=$((port + 1))
  done
  rm -f "$WORK/testpmd.in"
  mkfifo "$WORK/testpmd.in"
  exec {TESTPMD_IN}<>"$WORK/testpmd.in"
  ip netns exec "$ns" stdbuf -oL dpdk-testpmd --lcores "$lcores" --no-pci --no-huge -m 1024 \
    --no-shconf --no-telemetry "${vdevs[@]}" -- -i "$@" \
    <"$WORK/testpmd.in" >"$log" 2>&1 {TESTPMD_IN}>&- &
  TESTPMD_PID=$! TESTPMD_LOG=$log
  printf 'start\nshow port stats all\n' >&"$TESTPMD_IN"
  wait_for "$log" "packet forwarding - ports=" 30 "$TESTPMD_PID"
}

# stop_testpmd: port statistics into its log, then stop forwarding and quit.
stop_testpmd() {
  printf 'show port stats all\nstop\nquit\n' >&"$TESTPMD_IN"
  wait_exit "$TESTPMD_PID" 30 testpmd || { cat "$TESTPMD_LOG" >&2; return 1; }
  exec {TESTPMD_IN}>&-
  TESTPMD_PID=
}

# testpmd_stat LOG PORT FIELD -> FIELD (RX-packets, TX-packets, Tx-pps, ...) from PORT's
# last `show port stats` in LOG.
testpmd_stat() {
  awk -v head="NIC statistics for port $2 " -v field="$3:" '
    index($0, head) { inside = 1; next }
    inside && /^ *#+ *$/ { inside = 0 }
    inside { for (i = 1; i < NF; i++) if ($i == field) value = $(i + 1) }
    END { print value + 0 }' "$1"
}

# run_case CASE DUT PIPELINE MODE TRAFFIC WORKERS REP: one repetition, one JSON line.
# Pipeline txonly: DUT is the generator measured (pktgen or testpmd), xlb rxdrop receives.
run_case() {
  local case=$1 dut=$2 pipeline=$3 mode=$4 traffic=$5 workers=$6 rep=$7
  local queues=$workers steer dut_pid= dut_rx=0 extra=() reloads=0 config reloader= xlb_pipeline=$3
  # dsr-reload: dsr while SIGHUP reloads 100 times, b1's weight flipping each time.
  if [[ $mode == dsr-reload ]]; then mode=dsr; reloads=100; fi
  if [[ $pipeline == txonly ]]; then xlb_pipeline=rxdrop; fi
  rm -f "$WORK"/gen.json "$WORK"/gen.log "$WORK"/sink.json "$WORK"/dut.log
  case $dut/$pipeline in
    xlb/* | */txonly)
      local cores="[1]"
      if [[ $workers == 2 ]]; then cores="[0, 1]"; fi
      config=$(xlb_config "$xlb_pipeline" "$mode" "$cores")
      ip netns exec "${P}dut" "$XLB" run -c "$config" >"$WORK/dut.log" 2>&1 &
      dut_pid=$!
      wait_for "$WORK/dut.log" "AF_XDP socket bound" 30 "$dut_pid"
      sleep 1 ;;
    iptables/* | nftables/*)
      nsx "${P}dut" sysctl -qw net.ipv4.ip_forward=1
      if [[ $dut == iptables ]]; then
        # kube-proxy iptables mode: one DNAT per backend, picked at random.
        for proto in udp:9 tcp:80; do
          nsx "${P}dut" iptables -t nat -A PREROUTING -d $VIP -p "${proto%%:*}" --dport "${proto##*:}" \
            -m statistic --mode random --probability 0.33333 -j DNAT --to-destination 198.18.2.11
          nsx "${P}dut" iptables -t nat -A PREROUTING -d $VIP -p "${proto%%:*}" --dport "${proto##*:}" \
            -m statistic --mode random --probability 0.5 -j DNAT --to-destination 198.18.2.12
          nsx "${P}dut" iptables -t nat -A PREROUTING -d $VIP -p "${proto%%:*}" --dport "${proto##*:}" \
            -j DNAT --to-destination 198.18.2.13
        done
      else
        # kube-proxy nftables mode: a numgen vmap over the backends.
        nsx "${P}dut" nft -f - <<NFT
table ip xlbperf {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP meta l4proto { tcp, udp } th dport { 9, 80 } dnat to numgen random mod 3 map { 0 : 198.18.2.11, 1 : 198.18.2.12, 2 : 198.18.2.13 }
  }
}
NFT
      fi ;;
    testpmd/macswap)
      # Port 0 (d0) -> port 1 (d1), MACs swapped.
      start_testpmd "${P}dut" "$WORK/dut.log" 0@0,1@1 d0,d1 --forward-mode=macswap ;;
  esac

  # Where the frames end up and what the sink steers.
  case "$dut/$mode" in
    xlb/nat | iptables/* | nftables/*) steer=$BACKENDS ;;
    *) steer=$VIP,$VIP_SCTP ;;
  esac
  if [[ $pipeline == macswap && $dut == xlb ]]; then
    extra=(--rx g0 --steer "$VIP,$VIP_SCTP")
  elif [[ $xlb_pipeline != rxdrop ]]; then
    start_sink "$steer"
  fi
  if ((reloads)); then
    (
      sleep 0.5
      for _ in $(seq "$reloads"); do
        if grep -q "198.18.2.11, weight: 300" "$config"; then
          sed -i "s/198.18.2.11, weight: 300 }/198.18.2.11 }/" "$config"
        else
          sed -i "s/198.18.2.11 }/198.18.2.11, weight: 300 }/" "$config"
        fi
        kill -HUP "$dut_pid"
        sleep "$(python3 -c "print(max($DURATION - 1, 1) / $reloads)")"
      done
    ) &
    reloader=$!
  fi
  if [[ $dut/$pipeline == testpmd/txonly ]]; then
    # What `pktgen --proto udp --size 64` sends: one flow, 64 B frames to the VIP, from
    # one forwarding lcore on core 0 (the main lcore idles there too).
    start_testpmd "${P}gen" "$WORK/gen.log" 0@0,1@0 g0 --forward-mode=txonly \
      --port-topology=loop --eth-peer=0,$D0_MAC --tx-ip=198.18.0.1,$VIP --tx-udp=1024,9 --txpkts=64
    sleep "$DURATION"
    stop_testpmd
    printf '{"tx": {"packets": %d, "pps": %d}}\n' "$(testpmd_stat "$WORK/gen.log" 0 TX-packets)" \
      "$(testpmd_stat "$WORK/gen.log" 0 Tx-pps)" >"$WORK/gen.json"
  else
    # shellcheck disable=SC2046
    timeout $((DURATION + 30)) ip netns exec "${P}gen" "$XLB" pktgen --iface g0 --queues "$queues" \
      --cores 0 --quiet --dst-mac $D0_MAC --src 198.18.0.1 --duration "$DURATION" \
      --json "$WORK/gen.json" $(traffic_args "$traffic") "${extra[@]}" >"$WORK/gen.log" 2>&1 ||
      { cat "$WORK/gen.log" >&2; return 1; }
  fi
  if [[ -n $reloader ]]; then
    wait_exit "$reloader" 30 "the reloader"
    echo "  $case: $(grep -c "reload applied" "$WORK/dut.log") reloads applied under load"
  fi
  if [[ -n ${SINK_PID:-} ]]; then stop_sink; fi
  if [[ $dut/$pipeline == testpmd/macswap ]]; then
    stop_testpmd
    dut_rx=$(testpmd_stat "$WORK/dut.log" 0 RX-packets)
  elif [[ -n $dut_pid ]]; then
    kill -INT "$dut_pid" 2>/dev/null || true
    wait_exit "$dut_pid" 30 xlb
    dut_rx=$(sed -n 's/.*total counters: rx_packets=\([0-9]*\).*/\1/p' "$WORK/dut.log" | tail -1)
  fi
  nsx "${P}dut" iptables -t nat -F 2>/dev/null || true
  nsx "${P}dut" nft delete table ip xlbperf 2>/dev/null || true
  nsx "${P}dut" sysctl -qw net.ipv4.ip_forward=0
  local sink=$WORK/sink.json
  if [[ ${#extra[@]} -gt 0 ]]; then sink=$WORK/gen.json; fi
  if [[ ! -f $sink ]]; then sink=/dev/null; fi
  python3 perf/summarize.py record "$case" "$dut" "$pipeline" "$mode" "$traffic" "$workers" "$rep" \
    "$WORK/gen.json" "$sink" "${dut_rx:-0}" "$DURATION" >>"$RUNS"
}

CASES=()
for workers in 1 2; do
  for traffic in udp tcp-syn tcp-est sctp; do
    CASES+=("xlb-rxdrop/$traffic/w$workers xlb rxdrop dsr $traffic $workers")
    CASES+=("xlb-macswap/$traffic/w$workers xlb macswap dsr $traffic $workers")
    CASES+=("xlb-l4lb-dsr/$traffic/w$workers xlb l4lb dsr $traffic $workers")
    if [[ $traffic == udp ]]; then
      CASES+=("xlb-l4lb-dsr-reload100/$traffic/w$workers xlb l4lb dsr-reload $traffic $workers")
    fi
    if [[ $traffic != sctp ]]; then
      CASES+=("xlb-l4lb-nat/$traffic/w$workers xlb l4lb nat $traffic $workers")
    fi
  done
  for traffic in udp tcp-syn tcp-est; do
    CASES+=("iptables-dnat/$traffic/w$workers iptables dnat dnat $traffic $workers")
    CASES+=("nftables-dnat/$traffic/w$workers nftables dnat dnat $traffic $workers")
  done
done
TESTPMD=("testpmd-macswap/udp/w1 testpmd macswap macswap udp 1"
  "pktgen-tx/udp-1flow/w1 pktgen txonly dsr udp-1flow 1"
  "testpmd-txonly/udp-1flow/w1 testpmd txonly dsr udp-1flow 1")
CASES+=("${TESTPMD[@]}")
if [[ $SMOKE == 1 ]]; then
  CASES=("xlb-rxdrop/udp/w1 xlb rxdrop dsr udp 1" "xlb-macswap/udp/w1 xlb macswap dsr udp 1"
    "xlb-l4lb-dsr/udp/w1 xlb l4lb dsr udp 1" "xlb-l4lb-dsr/sctp/w1 xlb l4lb dsr sctp 1"
    "xlb-l4lb-dsr-reload100/udp/w1 xlb l4lb dsr-reload udp 1"
    "xlb-l4lb-nat/tcp-syn/w1 xlb l4lb nat tcp-syn 1" "iptables-dnat/udp/w1 iptables dnat dnat udp 1"
    "nftables-dnat/udp/w1 nftables dnat dnat udp 1" "${TESTPMD[@]}")
fi
if [[ -n $CASES_RE ]]; then
  selected=()
  for c in "${CASES[@]}"; do
    if [[ ${c%% *} =~ $CASES_RE ]]; then selected+=("$c"); fi
  done
  if ((${#selected[@]} == 0)); then echo "perf: no case matches --cases '$CASES_RE'" >&2; exit 2; fi
  CASES=("${selected[@]}")
fi
if [[ " ${CASES[*]}" == *" testpmd-"* ]] && ! command -v dpdk-testpmd >/dev/null; then
  echo "perf: dpdk-testpmd not found; run scripts/setup.sh as root (Debian packages dpdk-dev and" \
    "librte-net-af-xdp23), or leave the testpmd cases out with --cases" >&2
  exit 1
fi

echo "== topology"
down; up
echo "== ${#CASES[@]} cases x $REPS repetitions, ${DURATION}s each"
for rep in $(seq "$REPS"); do
  # Odd repetitions run the cases in list order, even ones in reverse, so neither case of
  # a compared pair always runs first: with pktgen always first, three runs of 9 gave
  # pktgen/testpmd 0.90-0.94; with testpmd always first, 1.06.
  order=("${CASES[@]}")
  if ((rep % 2 == 0)); then
    order=()
    for ((i = ${#CASES[@]} - 1; i >= 0; i--)); do order+=("${CASES[i]}"); done
  fi
  for c in "${order[@]}"; do
    # shellcheck disable=SC2086
    run_case $c "$rep"
  done
done
python3 perf/summarize.py report "$RUNS" "$OUT" "$SMOKE" "$(nproc) cores, $(uname -r)"
