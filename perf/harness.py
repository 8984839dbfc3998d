#!/usr/bin/python3
"""xlb's whole-system perf harness: generator -> device under test -> sink, each in its own
network namespace, joined by veth pairs; xlb pipelines and the kernel/DPDK peers in one run.

  perf/harness.py [--smoke] [--reps N] [--duration SECONDS] [--out DIR] [--cases REGEX]
  perf/harness.py --zero-loss [--trial SECONDS] [--resolution %] [--max-loss %] [--max-trials N]

--zero-loss: RFC 2544 zero-loss throughput and cycles per packet instead of maximum-rate
snapshots (measure_zero_loss, search_zero_loss; perf/NOTES.md has the method): xlb l4lb dsr
and nat, xlb macswap, testpmd macswap, iptables and nftables DNAT and xdp-fwd (perf/xdp_fwd.c,
the in-kernel limit), udp 64 B over 100k flows; writes zero-loss.json, .md and .svg.

Topology (only 198.18.0.0/15):
  {P}gen  g0 198.18.0.1/24  02:00:00:00:10:01 --- d0 198.18.0.254/24 02:00:00:00:10:02  {P}dut
  {P}dut  d1 198.18.2.254/24 02:00:00:00:10:03 --- s0 198.18.2.1/24 (+ .11 .12 .13, the
          backends) 02:00:00:00:10:04  {P}sink
Each veth has 2 queues. The generator is `xlb pktgen` on g0, the sink `xlb pktgen --receive`
on s0, or for --zero-loss perf/xdp_sink.c, which counts and drops in s0's driver (for xlb
macswap, which bounces frames back, the generator receives on g0 itself).
Devices under test on d0/d1: xlb (rxdrop, macswap, l4lb dsr, l4lb nat; 1 and 2 workers), the
kernel with iptables DNAT and with nftables DNAT (kube-proxy's two modes), and DPDK testpmd
macswap over its AF_XDP driver (d0 -> d1; the sink steers on the VIP, not the MAC, so
macswap's frames, sent to the generator's MAC, count there as l4lb dsr's do). testpmd runs
interactive on a pipe, its main lcore idling at the prompt on core 0, one forwarding lcore on
core 1 (where xlb's single worker runs). It has w1 cases only: DPDK 22.11's AF_XDP driver
takes its queue count from the combined channels ethtool reports, which veth has none of, so
it binds queue 0 alone.
Traffic: udp 64 B over 100k flows, tcp-syn, tcp-est, sctp (INIT + COOKIE-ECHO, DATA).
xlb-l4lb-dsr-reload100: l4lb dsr with 100 SIGHUP reloads during the run (b1's weight flips
each time, so Maglev changes while tracked flows must stay put).
Generator comparison (pipeline txonly): the thing measured is the generator on g0, `xlb
pktgen` (pktgen-tx) or testpmd --forward-mode=txonly (testpmd-txonly), one 64 B UDP flow each
on one core (core 0) into xlb rxdrop on d0 (core 1), so both meet the same receiver; rate =
the generator's own TX count over its own clock (testpmd: its port statistics: Tx-pps between
the statistics taken right after `start` and right before `stop`).
SCTP INIT flood (xlb-l4lb-dsr-sctp-flood): see run_sctp_flood.

Where the figures come from: xlb's from its Prometheus endpoint (`dataplane.metrics_listen`,
scraped inside the device under test's namespace), the generator's and the sink's from `xlb
pktgen --json` reports, testpmd's from its `show port stats`, tsctp's from its result lines.
Log text only tells when a peer is ready.

Each case runs --reps times, in list order on odd repetitions and reversed on even ones;
perf/summarize.py writes results.json, results.md and mpps.svg (median and spread, ratios
within this run) under --out (perf/results; a smoke run's go to perf/results/tmp).
--smoke: one short repetition per case; fails unless every case moves packets, the SCTP flood
case's two transfers complete, and the result files are well formed. --cases REGEX: only the
cases whose name matches the regular expression (searched, as bash's =~ did: e.g.
'testpmd|xlb-.*/udp/w1'). XLB_BIN=path uses that binary instead of building; PERF_PREFIX
names the namespaces (default xperf<pid>).
Needs root, dpdk-testpmd unless --cases leaves testpmd out, and usrsctp's tsctp and a C
compiler unless --cases leaves the SCTP flood out (scripts/setup.sh installs all three).
"""
import argparse
import contextlib
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import summarize  # noqa: E402 (after the line above)

ROOT = Path(__file__).resolve().parent.parent

G_MAC, D0_MAC, D1_MAC, S_MAC = ("02:00:00:00:10:01", "02:00:00:00:10:02", "02:00:00:00:10:03",
                                "02:00:00:00:10:04")
VIP, VIP_SCTP = "198.18.100.10", "198.18.100.20"
BACKENDS = ["198.18.2.11", "198.18.2.12", "198.18.2.13"]
# The SCTP service's ports: pktgen's sctp traffic and the flood go to the first, and so does
# the flood case's existing association; its new associations use the second, so that each
# tsctp server reports one kind of association.
SCTP_PORT, SCTP_NEW_PORT = 38412, 38413
METRICS_LISTEN = "127.0.0.1:9781"
METRICS_URL = f"http://{METRICS_LISTEN}/metrics"
TSCTP = "/usr/lib/usrsctp/tsctp"
# The flood case's real SCTP clients, each stack in a namespace of its own on a macvlan of
# g0 (see sctp_lab): the existing association's in {P}ce, the new ones' in {P}cn.
CE_MAC, CN_MAC = "02:00:00:00:10:11", "02:00:00:00:10:12"
CLIENT_EXISTING, CLIENT_BASELINE, CLIENT_NEW = "198.18.0.2", "198.18.0.3", "198.18.0.4"
# The flood's spoofed sources: pktgen sctp-init counts 65536 addresses up from --src,
# so 198.19.0.0/16, clear of everything else.
FLOOD_SRC, FLOOD_NET = "198.19.0.0", "198.19.0.0/16"
FLOOD_MESSAGE_LENGTH = 1000
# xlb's receive rate that says the flood has arrived: well above what one tsctp association
# sends through it here (about 10k packets/s), well below what pktgen floods with.
FLOOD_DETECT_PPS = 100_000
# How long a new association (and the existing one's close) may take before it counts as
# not completed: SCTP backs off to seconds-long retransmission timeouts under heavy loss.
NEW_TIMEOUT = 120.0
# How long the flood keeps running, past --duration, for a new association that started in
# it and is not done yet (usrsctp retransmits a lost INIT after 3 s, then 6, 12, ...).
FLOOD_WAITS_FOR_NEW, SMOKE_FLOOD_WAITS_FOR_NEW = 30.0, 10.0


class HarnessError(Exception):
    """A step failed; the message says which and shows the peer's output."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One measured configuration; `name` is what --cases matches and results list."""
    name: str
    dut: str
    pipeline: str
    mode: str
    traffic: str
    workers: int
    # xlb's `dataplane.idle`: adaptive (the default) or poll.
    idle: str = "adaptive"


@dataclasses.dataclass
class Lab:
    """The run's settings and its namespaces: {P}gen, {P}dut and {P}sink, and in the SCTP
    flood case {P}ce and {P}cn (sctp_lab)."""
    xlb: str
    prefix: str
    work: Path
    duration: float
    smoke: bool

    def ns(self, short):
        return self.prefix + short

    def cmd(self, short, *argv):
        """argv run inside namespace `short` (gen, dut, sink, ce or cn)."""
        return ["ip", "netns", "exec", self.ns(short), *map(str, argv)]

    def run(self, short, *argv, stdin=None, check=True):
        """Runs argv in namespace `short` to completion; its stdout, or HarnessError."""
        return sh(self.cmd(short, *argv), stdin=stdin, check=check)

    def spawn(self, short, argv, name, stamped=False, stdin=None):
        """Starts argv in namespace `short` in the background (see Proc)."""
        return Proc(self.cmd(short, *argv), self.work / f"{name}.log", name, stamped, stdin)


def sh(argv, stdin=None, check=True, timeout=60):
    """Runs argv to completion and returns its stdout; raises HarnessError with its output
    when it fails and check is set."""
    done = subprocess.run([str(a) for a in argv], input=stdin, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        raise HarnessError(f"`{' '.join(map(str, argv))}` failed ({done.returncode}):\n"
                           f"{done.stdout}{done.stderr}")
    return done.stdout


class Proc:
    """A background process with its output in a log file under the work directory.

    With `stamped`, a reader thread also records when each line arrived (time.monotonic()),
    for peers whose lines are figures in time (tsctp's throughput rounds)."""

    def __init__(self, argv, log, name, stamped=False, stdin=None):
        self.name, self.log = name, log
        self.lines = []
        out = open(log, "w")
        self.popen = subprocess.Popen(argv, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                      stdout=subprocess.PIPE if stamped else out,
                                      stderr=out if stamped else subprocess.STDOUT,
                                      text=True if stamped else None)
        self.reader = None
        if stamped:
            def read():
                for line in self.popen.stdout:
                    self.lines.append((time.monotonic(), line.rstrip("\n")))
                    out.write(line)
                    out.flush()
                out.close()
            self.reader = threading.Thread(target=read, daemon=True)
            self.reader.start()
        else:
            out.close()

    def text(self):
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")
        return ""

    def alive(self):
        return self.popen.poll() is None

    def wait_for(self, pattern, timeout, what):
        """Waits until the output has a line matching `pattern` (a regex); returns the match.
        Fails after `timeout` seconds, or at once if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.text(), re.M)
            if found:
                return found
            if not self.alive():
                raise HarnessError(f"{self.name} exited before {what}:\n{self.text()}")
            if time.monotonic() > deadline:
                raise HarnessError(f"timed out waiting for {what} ({self.name}):\n{self.text()}")
            time.sleep(0.1)

    def signal(self, sig):
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """The exit code, or None if the process is still running after `timeout` seconds."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self.reader:
            self.reader.join(5)
        return code

    def stop(self, sig, timeout):
        """Sends sig and waits; past timeout, kills the process and fails."""
        self.signal(sig)
        code = self.wait(timeout)
        if code is None:
            self.kill()
            raise HarnessError(f"{self.name} did not exit within {timeout} s; killed it:\n{self.text()}")
        return code

    def kill(self):
        if self.alive():
            self.popen.kill()
            self.wait(10)


# --- xlb's metrics --------------------------------------------------------------------------

# Fetches a URL and writes the body to stdout; run inside a namespace, where the endpoint is.
SCRAPE = ("import sys, urllib.request\n"
          "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One scrape of xlb's endpoint: every sample as (name, labels, value), and when it was
    taken. Counters carry OpenMetrics' `_total` suffix (xlb_rx_packets_total)."""

    def __init__(self, text, taken):
        self.taken = taken
        self.samples = []
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            sample = SAMPLE.match(line)
            if sample:
                labels = dict(LABEL.findall(sample.group(2) or ""))
                self.samples.append((sample.group(1), labels, float(sample.group(3))))

    def total(self, name, **labels):
        """The sum of `name` over the series whose labels include `labels`."""
        return sum(value for n, l, value in self.samples
                   if n == name and all(l.get(k) == v for k, v in labels.items()))

    def count(self, name):
        """How many series `name` has."""
        return sum(1 for n, _, _ in self.samples if n == name)

    def by_label(self, name, label):
        """{label value: sum of name's series with it}."""
        out = {}
        for n, l, value in self.samples:
            if n == name and label in l:
                out[l[label]] = out.get(l[label], 0) + value
        return out


class Xlb:
    """`xlb run` in the device under test's namespace, seen through its metrics endpoint."""

    def __init__(self, lab, config):
        self.lab, self.config = lab, config
        self.proc = lab.spawn("dut", [lab.xlb, "run", "-c", config], "dut")
        self.wait_ready()

    def scrape(self):
        """Metrics, or None when the endpoint does not answer. A scrape starts a Python in
        the namespace, which takes a tenth of a second or more on a loaded machine, so it is
        stamped with the middle of that time."""
        started = time.monotonic()
        try:
            text = sh(self.lab.cmd("dut", sys.executable, "-c", SCRAPE, METRICS_URL), timeout=15)
        except (HarnessError, subprocess.TimeoutExpired):
            return None
        return Metrics(text, (started + time.monotonic()) / 2)

    def must_scrape(self):
        """Metrics, or HarnessError when the endpoint does not answer."""
        metrics = self.scrape()
        if metrics is None:
            raise HarnessError(f"xlb's metrics endpoint {METRICS_URL} did not answer:\n{self.proc.text()}")
        return metrics

    def wait_ready(self, timeout=60):
        """Waits until the endpoint serves: xlb starts it after every AF_XDP socket is bound,
        so from then on frames reach the workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise HarnessError(f"xlb exited before serving metrics:\n{self.proc.text()}")
            metrics = self.scrape()
            if metrics and metrics.count("xlb_worker_queue_info"):
                return
            time.sleep(0.2)
        raise HarnessError(f"xlb did not serve metrics within {timeout} s:\n{self.proc.text()}")

    def settled(self, timeout=3.0):
        """Metrics once the workers' published counters stop moving: a worker publishes every
        50 ms while busy and again when it goes idle, so after the traffic ends two scrapes
        in a row agree."""
        last = self.must_scrape()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.must_scrape()
            if now.total("xlb_rx_packets_total") == last.total("xlb_rx_packets_total"):
                return now
            last = now
        return last

    def stop(self):
        self.proc.stop(signal.SIGINT, 30)

    def kill(self):
        self.proc.kill()


# --- topology -------------------------------------------------------------------------------

def down(lab):
    """Kills whatever runs in the run's namespaces and deletes them."""
    for short in ("gen", "dut", "sink", "ce", "cn"):
        pids = sh(["ip", "netns", "pids", lab.ns(short)], check=False).split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        sh(["ip", "netns", "del", lab.ns(short)], check=False)


def up(lab):
    """The three namespaces and the two veth pairs (see the module doc)."""
    for short in ("gen", "dut", "sink"):
        sh(["ip", "netns", "add", lab.ns(short)])
        lab.run(short, "ip", "link", "set", "lo", "up")
    sh(["ip", "-n", lab.ns("gen"), "link", "add", "g0", "address", G_MAC, "numtxqueues", 2,
        "numrxqueues", 2, "type", "veth", "peer", "name", "d0", "netns", lab.ns("dut"),
        "address", D0_MAC, "numtxqueues", 2, "numrxqueues", 2])
    sh(["ip", "-n", lab.ns("dut"), "link", "add", "d1", "address", D1_MAC, "numtxqueues", 2,
        "numrxqueues", 2, "type", "veth", "peer", "name", "s0", "netns", lab.ns("sink"),
        "address", S_MAC, "numtxqueues", 2, "numrxqueues", 2])
    for short, dev in (("gen", "g0"), ("dut", "d0"), ("dut", "d1"), ("sink", "s0")):
        # AF_XDP frames carry no checksum offload state; finish checksums in software.
        lab.run(short, "ethtool", "-K", dev, "tx", "off")
        lab.run(short, "ip", "link", "set", dev, "up")
    lab.run("gen", "ip", "addr", "add", "198.18.0.1/24", "dev", "g0")
    lab.run("dut", "ip", "addr", "add", "198.18.0.254/24", "dev", "d0")
    lab.run("dut", "ip", "addr", "add", "198.18.2.254/24", "dev", "d1")
    lab.run("sink", "ip", "addr", "add", "198.18.2.1/24", "dev", "s0")
    for backend in BACKENDS:
        lab.run("sink", "ip", "addr", "add", f"{backend}/24", "dev", "s0")
        # The sink's AF_XDP socket takes the backends' traffic, ARP included: pin them.
        lab.run("dut", "ip", "neigh", "replace", backend, "lladdr", S_MAC, "dev", "d1", "nud", "permanent")
    lab.run("dut", "ip", "neigh", "replace", "198.18.0.1", "lladdr", G_MAC, "dev", "d0", "nud", "permanent")
    lab.run("dut", "ip", "route", "add", "198.18.100.0/24", "dev", "d1", check=False)


def xlb_config(lab, pipeline, forwarding, cores, idle="adaptive"):
    """A service table for the device under test; returns its path."""
    backends = ("[{ name: b1, address: 198.18.2.11 }, { name: b2, address: 198.18.2.12 }, "
                "{ name: b3, address: 198.18.2.13 }]")
    path = lab.work / f"xlb-{pipeline}-{forwarding}-{len(cores)}-{idle}.yaml"
    text = f"""version: 1
dataplane:
  interfaces:
    - {{ name: d0, queues: all, xdp_mode: auto, zero_copy: auto }}
    - {{ name: d1, queues: all, xdp_mode: auto, zero_copy: auto }}
  workers: {json.dumps(cores).replace(",", ", ")}
  idle: {idle}
  pipeline: {pipeline}
  batch_size: 64
  ring_size: 2048
  flow_table: {{ capacity: 1048576, tcp_idle: 300s, udp_idle: 30s, sctp_idle: 300s }}
  sctp: {{ capacity: 4096, max_addresses: 8, linger: 2s }}
  nat: {{ addresses: [198.18.2.254], port_range: [1024, 65535] }}
  metrics_listen: {METRICS_LISTEN}
services:
  - name: udp
    vips: [{VIP}]
    protocol: udp
    ports: [9]
    forwarding: {forwarding}
    backends: {backends}
  - name: tcp
    vips: [{VIP}]
    protocol: tcp
    ports: [80]
    forwarding: {forwarding}
    backends: {backends}
"""
    if forwarding != "nat":
        text += f"""  - name: sctp
    vips: [{VIP_SCTP}]
    protocol: sctp
    ports: [{SCTP_PORT}, {SCTP_NEW_PORT}]
    forwarding: {forwarding}
    backends: {backends}
"""
    path.write_text(text)
    return path


def traffic_args(traffic):
    """The generator's arguments for a traffic name."""
    return {
        "udp": ["--proto", "udp", "--size", 64, "--flows", 100000, "--dst", VIP, "--dst-port", 9],
        "udp-1flow": ["--proto", "udp", "--size", 64, "--dst", VIP, "--dst-port", 9],
        "tcp-syn": ["--proto", "tcp-syn", "--dst", VIP, "--dst-port", 80],
        "tcp-est": ["--proto", "tcp-est", "--flows", 10000, "--dst", VIP, "--dst-port", 80],
        "sctp": ["--proto", "sctp", "--flows", 1000, "--second-src", "198.18.0.9", "--dst", VIP_SCTP,
                 "--dst-port", SCTP_PORT],
    }[traffic]


def read_json(path):
    """A pktgen --json report, or {} when there is none."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# --- the peers: sink, testpmd, kernel DNAT --------------------------------------------------

class Sink:
    """`xlb pktgen --receive` on s0, steering the given addresses to its AF_XDP sockets."""

    def __init__(self, lab, steer):
        self.json = lab.work / "sink.json"
        self.json.unlink(missing_ok=True)
        self.proc = lab.spawn("sink", [lab.xlb, "pktgen", "--iface", "s0", "--receive", "--rx-queues", 2,
                                       "--quiet", "--cores", 1, "--steer", ",".join(steer),
                                       "--json", self.json], "sink")
        # Readiness only (its sockets are registered); the figures come from --json.
        self.proc.wait_for("pktgen receiver ready", 20, "the sink got ready")

    def stop(self, drain=0.3):
        """Waits `drain` seconds for frames still on their way, then stops the sink; returns
        its --json report."""
        time.sleep(drain)
        self.proc.stop(signal.SIGINT, 10)
        return read_json(self.json)


class Testpmd:
    """DPDK testpmd in a namespace with one AF_XDP port per interface, on queue 0.

    It runs interactive, reading commands from a pipe this process holds open, so it never
    reads EOF and quits only when told; its stdout is line-buffered, else its log stays at
    "Checking link statuses..." until it exits. The `show port stats all` right after `start`
    is the baseline of the Tx-pps and Rx-pps that the statistics taken at stop report."""

    def __init__(self, lab, short, name, lcores, ifaces, args):
        vdevs = []
        for port, iface in enumerate(ifaces):
            vdevs += ["--vdev", f"net_af_xdp{port},iface={iface},start_queue=0,queue_count=1"]
        self.proc = lab.spawn(short, ["stdbuf", "-oL", "dpdk-testpmd", "--lcores", lcores, "--no-pci",
                                      "--no-huge", "-m", 1024, "--no-shconf", "--no-telemetry", *vdevs,
                                      "--", "-i", *args], name, stdin=subprocess.PIPE)
        self.command("start", "show port stats all")
        self.proc.wait_for("packet forwarding - ports=", 30, "testpmd started forwarding")

    def command(self, *lines):
        """Types lines at testpmd's prompt."""
        stdin = self.proc.popen.stdin
        stdin.write("".join(f"{line}\n" for line in lines).encode())
        stdin.flush()

    def stop(self):
        """Port statistics into its log, then stop forwarding and quit."""
        self.command("show port stats all", "stop", "quit")
        code = self.proc.wait(30)
        if code is None:
            self.proc.kill()
            raise HarnessError(f"testpmd did not exit within 30 s; killed it:\n{self.proc.text()}")
        self.proc.popen.stdin.close()

    def stat(self, port, field):
        """FIELD (RX-packets, TX-packets, Tx-pps, ...) from PORT's last `show port stats`."""
        value, inside = 0, False
        for line in self.proc.text().splitlines():
            if f"NIC statistics for port {port} " in line:
                inside = True
                continue
            if inside and re.fullmatch(r" *#+ *", line):
                inside = False
            if inside:
                words = line.split()
                for i, word in enumerate(words[:-1]):
                    if word == f"{field}:":
                        value = words[i + 1]
        try:
            return int(float(value))
        except ValueError:
            return 0


def kernel_dnat(lab, dut):
    """The kernel as the device under test: forwarding on, and the VIP DNATed to the
    backends the way kube-proxy's iptables (one rule per backend, picked at random) or
    nftables (a numgen vmap) mode does it."""
    lab.run("dut", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    if dut == "iptables":
        for proto, port in (("udp", 9), ("tcp", 80)):
            match = ["-d", VIP, "-p", proto, "--dport", port]
            lab.run("dut", "iptables", "-t", "nat", "-A", "PREROUTING", *match, "-m", "statistic", "--mode",
                    "random", "--probability", "0.33333", "-j", "DNAT", "--to-destination", BACKENDS[0])
            lab.run("dut", "iptables", "-t", "nat", "-A", "PREROUTING", *match, "-m", "statistic", "--mode",
                    "random", "--probability", "0.5", "-j", "DNAT", "--to-destination", BACKENDS[1])
            lab.run("dut", "iptables", "-t", "nat", "-A", "PREROUTING", *match, "-j", "DNAT",
                    "--to-destination", BACKENDS[2])
    else:
        lab.run("dut", "nft", "-f", "-", stdin=f"""table ip xlbperf {{
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr {VIP} meta l4proto {{ tcp, udp }} th dport {{ 9, 80 }} dnat to numgen random mod 3 map {{ 0 : {BACKENDS[0]}, 1 : {BACKENDS[1]}, 2 : {BACKENDS[2]} }}
  }}
}}
""")


def kernel_reset(lab):
    """Undoes kernel_dnat (and the forwarding the SCTP flood case turns on)."""
    lab.run("dut", "iptables", "-t", "nat", "-F", check=False)
    lab.run("dut", "nft", "delete", "table", "ip", "xlbperf", check=False)
    lab.run("dut", "sysctl", "-qw", "net.ipv4.ip_forward=0")


class Reloader(threading.Thread):
    """SIGHUPs xlb `count` times over the run, flipping b1's weight between the default and
    300 in its config each time, so every reload changes Maglev while tracked flows must
    stay put."""

    def __init__(self, lab, xlb, count):
        super().__init__(daemon=True)
        self.lab, self.xlb, self.count = lab, xlb, count

    def run(self):
        time.sleep(0.5)
        pause = max(self.lab.duration - 1, 1) / self.count
        for _ in range(self.count):
            text = self.xlb.config.read_text()
            if "198.18.2.11, weight: 300 }" in text:
                text = text.replace("198.18.2.11, weight: 300 }", "198.18.2.11 }")
            else:
                text = text.replace("198.18.2.11 }", "198.18.2.11, weight: 300 }")
            # Replaced whole, so a reload never reads a half-written file.
            staged = self.xlb.config.with_suffix(".new")
            staged.write_text(text)
            os.replace(staged, self.xlb.config)
            self.xlb.proc.signal(signal.SIGHUP)
            time.sleep(pause)


def pktgen(lab, args, duration):
    """`xlb pktgen` on g0 for `duration` seconds (gen.log); returns its --json report."""
    report, log_path = lab.work / "gen.json", lab.work / "gen.log"
    argv = lab.cmd("gen", lab.xlb, "pktgen", "--iface", "g0", "--quiet", "--dst-mac", D0_MAC,
                   "--duration", duration, "--json", report, *args)
    with open(log_path, "w") as log:
        try:
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=duration + 30).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    if code != 0:
        raise HarnessError(f"xlb pktgen failed ({code}):\n{log_path.read_text()}")
    return read_json(report)


def build_xdp(lab, source, defines=()):
    """perf/<source> compiled for BPF with the given -D definitions; the object's path."""
    obj = lab.work / Path(source).with_suffix(".o").name
    includes = [f"-I{d}" for d in ("/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu")
                if Path(d).is_dir()]
    sh(["clang", "-target", "bpf", "-O2", "-g", "-Wall", "-Werror", *includes, *defines, "-c",
        ROOT / "perf" / source, "-o", obj])
    return obj


def xdp_forwarder(lab):
    """perf/xdp_fwd.c compiled for this topology (d1's ifindex, d1's and the sink's MACs) and
    attached to d0 in native mode: the in-kernel forwarder case."""
    ifindex = int(lab.run("dut", "cat", "/sys/class/net/d1/ifindex"))

    def octets(mac):
        return ",".join(f"0x{octet}" for octet in mac.split(":"))

    obj = build_xdp(lab, "xdp_fwd.c", [f"-DOUT_IFINDEX={ifindex}", f"-DSRC_MAC={octets(D1_MAC)}",
                                       f"-DDST_MAC={octets(S_MAC)}"])
    lab.run("dut", "ip", "link", "set", "dev", "d0", "xdpdrv", "obj", obj, "sec", "xdp")


class XdpSink:
    """The zero-loss sink: perf/xdp_sink.c on s0, dropping UDP in the driver; arrivals are
    veth's per-queue XDP drop counters. Nothing of it runs outside s0's NAPI."""

    def __init__(self, lab):
        self.lab = lab
        lab.run("sink", "ip", "link", "set", "dev", "s0", "xdpdrv", "obj", build_xdp(lab, "xdp_sink.c"),
                "sec", "xdp")

    def arrived(self):
        """UDP frames the program has dropped so far, summed over s0's queues."""
        return sum(int(value) for name, _, value in
                   (line.strip().partition(": ") for line in self.lab.run("sink", "ethtool", "-S", "s0").splitlines())
                   if re.fullmatch(r"rx_queue_\d+_xdp_drops", name))


def start_dut(lab, case, mode, cleanup):
    """Starts the device under test of `case` (xlb, or for txonly the xlb rxdrop receiver;
    testpmd macswap; kernel DNAT; the XDP forwarder) and registers its teardown with
    `cleanup`; returns (xlb, testpmd), None for the one that does not run."""
    xlb = testpmd = None
    cleanup.callback(kernel_reset, lab)
    if case.dut == "xlb" or case.pipeline == "txonly":
        pipeline = "rxdrop" if case.pipeline == "txonly" else case.pipeline
        cores = [0, 1] if case.workers == 2 else [1]
        xlb = Xlb(lab, xlb_config(lab, pipeline, mode, cores, case.idle))
        cleanup.callback(xlb.kill)
        time.sleep(1)
    elif case.dut in ("iptables", "nftables"):
        kernel_dnat(lab, case.dut)
    elif case.dut == "testpmd" and case.pipeline == "macswap":
        # Port 0 (d0) -> port 1 (d1), MACs swapped.
        testpmd = Testpmd(lab, "dut", "dut", "0@0,1@1", ["d0", "d1"], ["--forward-mode=macswap"])
        cleanup.callback(testpmd.proc.kill)
    elif case.dut == "xdp-fwd":
        cleanup.callback(lab.run, "dut", "ip", "link", "set", "dev", "d0", "xdpdrv", "off", check=False)
        xdp_forwarder(lab)
    return xlb, testpmd


def sink_steer(case, mode):
    """Where a case's frames end up: (the addresses the sink steers, the generator's extra
    arguments). xlb macswap bounces frames back to the generator, which receives them
    itself (extra arguments set); the others forward to the sink, to the backends' addresses
    when they rewrite the destination (NAT, DNAT), else to the VIP."""
    nat_like = (case.dut == "xlb" and mode == "nat") or case.dut in ("iptables", "nftables")
    steer = BACKENDS if nat_like else [VIP, VIP_SCTP]
    if case.pipeline == "macswap" and case.dut == "xlb":
        return steer, ["--rx", "g0", "--steer", f"{VIP},{VIP_SCTP}"]
    return steer, []


# --- one repetition of a case ---------------------------------------------------------------

def run_case(lab, case, rep):
    """One repetition of `case`; returns its record (summarize.record)."""
    if case.traffic == "sctp-init":
        return run_sctp_flood(lab, case, rep)
    mode, reloads = case.mode, 0
    if mode == "dsr-reload":
        mode, reloads = "dsr", 100
    xlb_pipeline = "rxdrop" if case.pipeline == "txonly" else case.pipeline
    for stale in ("gen.json", "sink.json"):
        (lab.work / stale).unlink(missing_ok=True)
    sink = None
    gen, dut_rx = {}, 0
    with contextlib.ExitStack() as cleanup:
        xlb, testpmd_dut = start_dut(lab, case, mode, cleanup)
        steer, extra = sink_steer(case, mode)
        if not extra and xlb_pipeline != "rxdrop":
            sink = Sink(lab, steer)
            cleanup.callback(sink.proc.kill)
        reloader = None
        if reloads:
            reloader = Reloader(lab, xlb, reloads)
            reloader.start()
        if case.dut == "testpmd" and case.pipeline == "txonly":
            # What `pktgen --proto udp --size 64` sends: one flow, 64 B frames to the VIP, from
            # one forwarding lcore on core 0 (the main lcore idles there too).
            generator = Testpmd(lab, "gen", "gen", "0@0,1@0", ["g0"], [
                "--forward-mode=txonly", "--port-topology=loop", f"--eth-peer=0,{D0_MAC}",
                f"--tx-ip=198.18.0.1,{VIP}", "--tx-udp=1024,9", "--txpkts=64"])
            cleanup.callback(generator.proc.kill)
            time.sleep(lab.duration)
            generator.stop()
            gen = {"tx": {"packets": generator.stat(0, "TX-packets"), "pps": generator.stat(0, "Tx-pps")}}
        else:
            gen = pktgen(lab, ["--queues", case.workers, "--cores", 0, "--src", "198.18.0.1",
                               *traffic_args(case.traffic), *extra], lab.duration)
        if reloader:
            reloader.join(30)
            if reloader.is_alive():
                raise HarnessError("the reloader did not finish within 30 s")
            applied = xlb.must_scrape().total("xlb_reloads_total", result="ok")
            print(f"  {case.name}: {int(applied)} reloads applied under load")
        sink_report = sink.stop() if sink else {}
        if testpmd_dut:
            testpmd_dut.stop()
            dut_rx = testpmd_dut.stat(0, "RX-packets")
        elif xlb:
            dut_rx = xlb.settled().total("xlb_rx_packets_total")
            xlb.stop()
    if extra:
        sink_report = gen
    return summarize.record(case.name, case.dut, case.pipeline, case.mode, case.traffic, case.workers,
                            rep, gen, sink_report, dut_rx, lab.duration)


# --- the SCTP INIT flood --------------------------------------------------------------------

def shim(lab):
    """scripts/usrsctp_shim.c built once per run (see its header); its path."""
    built = lab.work / "usrsctp_shim.so"
    if not built.exists():
        sh(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", built, ROOT / "scripts" / "usrsctp_shim.c"])
    return built


def tsctp(lab, short, name, args, stamped=True):
    """usrsctp's tsctp in namespace `short`, raw SCTP over IP (no UDP encapsulation)."""
    return lab.spawn(short, ["env", f"LD_PRELOAD={shim(lab)}", TSCTP, "-E", 0, "-U", 0, *args], name,
                     stamped=stamped)


@contextlib.contextmanager
def sctp_lab(lab):
    """Adds the SCTP flood case's real stacks to the topology for the case, and takes them
    away after it.

    Clients: a stack's raw socket sees every SCTP packet of its namespace, and a freshly
    started usrsctp answers other stacks' packets with ABORT until tsctp tells it not to
    (blackhole), which kills a live association nearby. So each client namespace holds one
    live stack at a time: {P}ce the existing association's, {P}cn the new ones', one after
    the other; each has a macvlan of g0, so its packets take the generator's wire to xlb.
    Backend: usrsctp speaks raw SCTP over IP and will not send from an address on lo, so
    the VIP sits on a veth pair of its own inside the sink (arp_ignore=1: s0 never answers
    ARP for it). xlb forwards the flood's INITs to the backends like any INIT (that is DSR);
    a netdev ingress rule on s0 drops them, counted, before they reach the usrsctp servers,
    which would otherwise answer hundreds of thousands of INITs a second on this machine's
    two cores and measure themselves, not xlb. Replies go back through the device under
    test's kernel (forwarding on: xlb's XDP program passes them, as they are not to a VIP)."""
    def run(short, *argv, **kw):
        return lab.run(short, *argv, **kw)
    try:
        for short, mac, clients in (("ce", CE_MAC, [CLIENT_EXISTING]),
                                    ("cn", CN_MAC, [CLIENT_BASELINE, CLIENT_NEW])):
            sh(["ip", "netns", "add", lab.ns(short)])
            run(short, "ip", "link", "set", "lo", "up")
            sh(["ip", "-n", lab.ns("gen"), "link", "add", "link", "g0", "name", short, "address", mac,
                "type", "macvlan", "mode", "bridge"])
            sh(["ip", "-n", lab.ns("gen"), "link", "set", short, "netns", lab.ns(short)])
            run(short, "ethtool", "-K", short, "tx", "off")
            run(short, "ip", "link", "set", short, "up")
            for client in clients:
                run(short, "ip", "addr", "add", f"{client}/24", "dev", short)
                run("dut", "ip", "neigh", "replace", client, "lladdr", mac, "dev", "d0", "nud", "permanent")
            run(short, "ip", "neigh", "replace", "198.18.0.254", "lladdr", D0_MAC, "dev", short, "nud",
                "permanent")
            run(short, "ip", "route", "add", "198.18.100.0/24", "via", "198.18.0.254", "dev", short)
        run("sink", "ip", "link", "add", "vip0", "type", "veth", "peer", "name", "vip1")
        run("sink", "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1")
        for dev in ("vip0", "vip1"):
            run("sink", "ethtool", "-K", dev, "tx", "off")
            run("sink", "ip", "link", "set", dev, "up")
        run("sink", "ip", "addr", "add", f"{VIP_SCTP}/32", "dev", "vip0")
        run("sink", "ip", "neigh", "replace", "198.18.2.254", "lladdr", D1_MAC, "dev", "s0", "nud", "permanent")
        run("sink", "ip", "route", "add", "198.18.0.0/24", "via", "198.18.2.254", "dev", "s0")
        run("sink", "nft", "-f", "-", stdin=f"""table netdev xlbperf_flood {{
  chain ingress {{
    type filter hook ingress device "s0" priority -500; policy accept;
    ip saddr {FLOOD_NET} counter drop comment "flood"
    ip saddr 198.18.0.0/24 ip protocol sctp counter comment "clients"
  }}
}}
""")
        run("dut", "sysctl", "-qw", "net.ipv4.ip_forward=1")
        yield
    finally:
        run("dut", "sysctl", "-qw", "net.ipv4.ip_forward=0", check=False)
        run("sink", "nft", "delete", "table", "netdev", "xlbperf_flood", check=False)
        run("sink", "ip", "route", "del", "198.18.0.0/24", check=False)
        run("sink", "ip", "link", "del", "vip0", check=False)
        for short in ("ce", "cn"):
            for pid in sh(["ip", "netns", "pids", lab.ns(short)], check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh(["ip", "netns", "del", lab.ns(short)], check=False)


def nft_counters(lab):
    """{comment: packets} of the flood case's ingress rules in the sink."""
    ruleset = json.loads(lab.run("sink", "nft", "-j", "list", "table", "netdev", "xlbperf_flood"))
    counters = {}
    for item in ruleset.get("nftables", []):
        rule = item.get("rule")
        if rule and "comment" in rule:
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    counters[rule["comment"]] = expr["counter"]["packets"]
    return counters


SERVER_SUMMARY = re.compile(r"^(\d+), (\d+), (\d+), (\d+), ([\d.]+), ([\d.]+), (\d+)$")
SERVER_ROUND = re.compile(r"^throughput for the last ([\d.]+) seconds: ([\d.]+) B/s$")
CLIENT_SUMMARY = re.compile(r"^Sending of (\d+) messages of length (\d+) took ([\d.]+) seconds\.$", re.M)


def server_summaries(server):
    """Every association a tsctp server saw end: (when, messages, bytes, seconds)."""
    out = []
    for when, line in list(server.lines):
        found = SERVER_SUMMARY.match(line)
        if found:
            out.append((when, int(found.group(2)), int(found.group(4)), float(found.group(5))))
    return out


def wait_summary(server, index, timeout):
    """The index-th association summary of a server, waiting for it up to timeout; or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summaries = server_summaries(server)
        if len(summaries) > index:
            return summaries[index]
        time.sleep(0.05)
    return None


def window_rate(server, start, end):
    """Bytes/s a tsctp server received from its one association over [start, end].

    Its per-second rounds ("throughput for the last S seconds: R B/s", stamped on arrival)
    and, for the stretch after the last round, its summary line cut the association's life
    into segments of known bytes; each segment is taken as uniform and counted for the part
    of it inside the window. A stall shows as one long round with few bytes, so it is
    counted too. None if no segment overlaps the window."""
    segments, last, counted = [], None, 0.0
    for when, line in list(server.lines):
        found = SERVER_ROUND.match(line)
        if found:
            seconds, rate = float(found.group(1)), float(found.group(2))
            segments.append((when - seconds, when, seconds * rate))
            counted += seconds * rate
            last = when
    summaries = server_summaries(server)
    if summaries and last is not None and summaries[0][0] > last:
        segments.append((last, summaries[0][0], max(summaries[0][2] - counted, 0)))
    got = covered = 0.0
    for seg_start, seg_end, seg_bytes in segments:
        overlap = min(seg_end, end) - max(seg_start, start)
        if overlap > 0 and seg_end > seg_start:
            got += seg_bytes * overlap / (seg_end - seg_start)
            covered += overlap
    return got / covered if covered > 0 else None


class NewAssociation:
    """One new association from `client` in {P}cn to the new-association server:
    `messages` messages, then shutdown. Done when the server reports the association's end
    (its index-th summary); completed when that summary counts every message."""

    def __init__(self, lab, name, client, server, index, messages):
        self.server, self.index, self.messages = server, index, messages
        self.started = time.monotonic()
        self.proc = tsctp(lab, "cn", name, ["-L", client, "-n", messages, "-l", FLOOD_MESSAGE_LENGTH, "-p",
                                            SCTP_NEW_PORT, VIP_SCTP], stamped=False)

    def summary(self):
        """The server's summary of this association once it has ended, else None."""
        summaries = server_summaries(self.server)
        return summaries[self.index] if len(summaries) > self.index else None

    def finish(self, timeout):
        """Waits up to `timeout` seconds from its start for the end of the association.
        Returns (completed, INIT-to-last-byte seconds, first-to-last-byte seconds, when it
        ended) and stops the client."""
        summary = self.summary()
        while summary is None and time.monotonic() < self.started + timeout:
            time.sleep(0.25)
            summary = self.summary()
        if summary:
            self.proc.wait(10)  # it exits once usrsctp has freed the association
        self.proc.kill()
        if summary is None:
            print(f"  {self.proc.name}: no complete transfer within {timeout:g} s:\n{self.proc.text()}",
                  file=sys.stderr)
            return False, None, None, None
        when, received, _, seconds = summary
        return received == self.messages, when - self.started, seconds, when


def run_sctp_flood(lab, case, rep):
    """The SCTP INIT flood: while spoofed INITs arrive at the highest rate `xlb pktgen`
    makes, does a new real association complete, and do existing ones keep flowing?

    xlb l4lb dsr (one worker, core 1) serves the SCTP VIP with a small association table
    (`sctp.capacity` 4096, so the flood fills it at once and every INIT after that evicts the
    oldest embryonic record). Real usrsctp stacks (tsctp) run through it: clients behind g0,
    servers on the VIP in the sink (sctp_lab). In one run:
      1. the existing association connects and transfers without end; meanwhile a baseline
         new association makes the transfer step 3 makes, without flood;
      2. after at least --duration seconds, the flood starts for --duration seconds: `xlb
         pktgen --proto sctp-init --rate 0` on core 0 over both queues (a real NIC's RSS
         spreads spoofed sources over every queue, so real packets meet the flood whichever
         queue they hash to), an INIT from a new source (198.19.0.0/16) every packet, at the
         VIP's port;
      3. --duration / 2 seconds into the flood, a new association starts; the flood runs on
         until it is done, but at most FLOOD_WAITS_FOR_NEW seconds from its start (10 in a
         smoke run); one still not done then may complete after the flood ("completed",
         not "completed during the flood"), and is given up NEW_TIMEOUT seconds after its
         start;
      4. once it is done and the flood is over, the existing association stops.
    Figures: (a) the existing association's bytes/s before and during the flood (its
    server's per-second rounds) and their ratio; (b) whether the new association completed,
    whether within the flood, and how long it took from INIT to its last byte (against the
    baseline's); (c) xlb's counters over the flood from the metrics endpoint: the embryonic
    records (highest sample), evictions, table-full refusals and drops by reason. The case's
    rate is the packets/s xlb took in while flooded.
    Generator, xlb, the four usrsctp stacks and the kernels share two cores, so the real
    associations compete for CPU as well as for xlb's receive rings."""
    d = lab.duration
    messages = 200 if lab.smoke else 1000
    samples = []
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(sctp_lab(lab))
        xlb = Xlb(lab, xlb_config(lab, "l4lb", "dsr", [1]))
        cleanup.callback(xlb.kill)
        existing_server = tsctp(lab, "sink", "existing-server", ["-v", "-d", 1, "-L", VIP_SCTP, "-p", SCTP_PORT])
        new_server = tsctp(lab, "sink", "new-server", ["-v", "-L", VIP_SCTP, "-p", SCTP_NEW_PORT])
        cleanup.callback(existing_server.kill)
        cleanup.callback(new_server.kill)
        for server in (existing_server, new_server):
            # Printed just before listen().
            server.wait_for("^Receive buffer size", 10, "the tsctp server started")
        time.sleep(0.2)

        existing = tsctp(lab, "ce", "existing-client", ["-L", CLIENT_EXISTING, "-T", 3600, "-l",
                                                         FLOOD_MESSAGE_LENGTH, "-p", SCTP_PORT, VIP_SCTP],
                         stamped=False)
        cleanup.callback(existing.kill)
        existing_server.wait_for(f"^Connection accepted from {re.escape(CLIENT_EXISTING)}:", 20,
                                 "the existing association was accepted")
        established = time.monotonic()
        baseline = NewAssociation(lab, "baseline-client", CLIENT_BASELINE, new_server, 0, messages
                                  ).finish(NEW_TIMEOUT)
        time.sleep(max(0.0, established + d - time.monotonic()))

        before = xlb.must_scrape()
        flood_json = lab.work / "flood.json"
        flood_json.unlink(missing_ok=True)
        flood = lab.spawn("gen", [lab.xlb, "pktgen", "--iface", "g0", "--queues", 2, "--cores", 0, "--quiet",
                                  "--dst-mac", D0_MAC, "--proto", "sctp-init", "--rate", 0, "--src", FLOOD_SRC,
                                  "--dst", VIP_SCTP, "--dst-port", SCTP_PORT, "--duration", 3600,
                                  "--json", flood_json], "flood")
        cleanup.callback(flood.kill)
        # The flood has started when xlb's receive rate jumps past anything the real
        # associations send (pktgen takes a moment to bind its sockets); its window starts
        # there, and it runs at least --duration seconds (step 3 of the docstring).
        deadline, last = time.monotonic() + 30, before
        while True:
            metrics = xlb.must_scrape()
            taken_in = metrics.total("xlb_rx_packets_total") - last.total("xlb_rx_packets_total")
            if taken_in > FLOOD_DETECT_PPS * (metrics.taken - last.taken):
                break
            if not flood.alive() or time.monotonic() > deadline:
                raise HarnessError(f"the flood never reached xlb:\n{flood.text()}")
            last = metrics
            time.sleep(0.1)
        flooding, flood_start = metrics, metrics.taken

        def sample(until):
            while time.monotonic() < until:
                samples.append(xlb.must_scrape())
                time.sleep(0.25)

        sample(flood_start + d / 2)
        new_client = NewAssociation(lab, "new-client", CLIENT_NEW, new_server, 1, messages)
        cleanup.callback(new_client.proc.kill)
        sample(flood_start + d)
        waits = SMOKE_FLOOD_WAITS_FOR_NEW if lab.smoke else FLOOD_WAITS_FOR_NEW
        while new_client.summary() is None and time.monotonic() < new_client.started + waits:
            sample(time.monotonic() + 0.25)
        during = xlb.must_scrape()
        samples.append(during)
        flood.signal(signal.SIGINT)
        flood_end = time.monotonic()
        if flood.wait(30) is None:
            raise HarnessError(f"the flood generator did not stop within 30 s:\n{flood.text()}")
        flood_report = read_json(flood_json)
        new = new_client.finish(NEW_TIMEOUT)

        time.sleep(0.5)
        existing.signal(signal.SIGALRM)  # tsctp -T's timer: it sends its last message and closes
        sent = None
        if existing.wait(NEW_TIMEOUT) == 0:
            sent = CLIENT_SUMMARY.search(existing.text())
        received = wait_summary(existing_server, 0, 10)
        after = xlb.settled()
        counters = nft_counters(lab)
        xlb.stop()

    def delta(name):
        return after.total(name) - before.total(name)

    def flooded(name):
        return during.total(name) - flooding.total(name)

    existing_before = window_rate(existing_server, established, flood_start)
    existing_during = window_rate(existing_server, flood_start, flood_end)
    flood_seconds = flood_report.get("duration_s") or (flood_end - flood_start)
    drops_before = before.by_label("xlb_drops_total", "reason")
    drops = {reason: value - drops_before.get(reason, 0)
             for reason, value in after.by_label("xlb_drops_total", "reason").items()
             if value - drops_before.get(reason, 0) > 0}
    flood_rx = during.total("xlb_rx_packets_total") - flooding.total("xlb_rx_packets_total")
    flood_rx_seconds = during.taken - flooding.taken
    figures = {
        "flood_tx_pps": (flood_report.get("tx") or {}).get("pps", 0.0),
        "flood_tx_packets": (flood_report.get("tx") or {}).get("packets", 0),
        "flood_seconds": flood_seconds,
        "xlb_rx_pps": flood_rx / flood_rx_seconds if flood_rx_seconds > 0 else 0.0,
        "flood_at_backends_pps": counters.get("flood", 0) / flood_seconds if flood_seconds else 0.0,
        "existing_before_Bps": existing_before,
        "existing_during_Bps": existing_during,
        "existing_ratio": existing_during / existing_before if existing_before and existing_during is not None
        else None,
        "existing_completed": bool(sent and received and received[1] == int(sent.group(1))),
        "existing_messages": received[1] if received else None,
        "new_baseline_completed": baseline[0],
        "new_baseline_seconds": baseline[1],
        "new_completed": new[0],
        "new_completed_during_flood": bool(new[0] and new[3] is not None and new[3] <= flood_end),
        # Its first message reached the server while the flood ran: the handshake got
        # through it, whenever the transfer ended.
        "new_established_during_flood": bool(new[3] is not None and new[3] - new[2] <= flood_end),
        "new_handshake_seconds": new[1] - new[2] if new[1] is not None else None,
        "new_seconds": new[1],
        "new_transfer_seconds": new[2],
        "new_messages": messages,
        "message_length": FLOOD_MESSAGE_LENGTH,
        "xlb_sctp_embryonic_max": max(m.total("xlb_sctp_embryonic") for m in samples),
        "xlb_sctp_embryonic_during": during.total("xlb_sctp_embryonic"),
        "xlb_sctp_associations_during": during.total("xlb_sctp_associations"),
        "xlb_sctp_embryonic_evicted": delta("xlb_sctp_embryonic_evicted_total"),
        "xlb_sctp_embryonic_expired": delta("xlb_sctp_embryonic_expired_total"),
        "xlb_sctp_table_full": delta("xlb_sctp_table_full_total"),
        "xlb_sctp_associations_created": delta("xlb_sctp_associations_created_total"),
        # Where the flood's packets that xlb never saw were lost: a worker that still
        # sleeps, with frames in its fill ring, is not what drops them.
        "xlb_idle_sleeps_flooded": flooded("xlb_idle_sleeps_total"),
        "xlb_fill_ring_empty_flooded": flooded("xlb_fill_ring_empty_total"),
        "xlb_tx_ring_full_flooded": flooded("xlb_tx_ring_full_total"),
        "drops": drops,
    }
    print(f"  {case.name} rep {rep}: existing association {fmt_rate(existing_before)} before, "
          f"{fmt_rate(existing_during)} during the flood; new association "
          f"{'completed' if new[0] else 'did NOT complete'}"
          f"{f' in {new[1]:.2f} s' if new[1] is not None else ''} (baseline "
          f"{f'{baseline[1]:.2f} s' if baseline[1] is not None else 'did NOT complete'})", file=sys.stderr)
    return summarize.record(case.name, case.dut, case.pipeline, case.mode, case.traffic, case.workers, rep,
                            flood_report, {}, flood_rx, flood_rx_seconds, extra={"sctp_flood": figures})


def fmt_rate(value):
    """Bytes/s as MB/s for the progress line."""
    return "-" if value is None else f"{value / 1e6:.2f} MB/s"


# --- zero-loss throughput (RFC 2544 §26.1) and cycles per packet ----------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The NAPI threads' real-time priority (pin_napi): above every ordinary thread, below the
# kernel's own (ksoftirqd and the like run SCHED_OTHER; migration and watchdogs at 99).
NAPI_PRIORITY = 10
# How long after the generator stops the sink keeps counting: frames still in a ring or in
# a veth's queue arrive within microseconds; this is ample on a loaded machine too.
DRAIN_SECONDS = 0.5
# A trial whose generator sent less than this share of the rate asked for did not offer it.
OFFERED_SHORTFALL = 0.97


@dataclasses.dataclass(frozen=True)
class Search:
    """The zero-loss search's settings: trial seconds, the bracket width it stops at (a
    share of its upper end), the loss a trial may have (a share of the offered packets), and
    the most trials per case."""
    trial: float
    resolution: float
    max_loss: float
    max_trials: int


def zero_loss_cases(smoke):
    """The zero-loss run's cases: every device under test forwarding udp 64 B over 100k
    flows, 1 worker (own core), then the 2-worker cases (cores shared with the generator and
    the sink: contention); the smoke run's one short case."""
    def case(name, dut, pipeline, mode, workers, idle="adaptive"):
        return Case(f"{name}/udp/w{workers}", dut, pipeline, mode, "udp", workers, idle)

    if smoke:
        return [case("xlb-l4lb-dsr", "xlb", "l4lb", "dsr", 1)]
    return [case("xlb-l4lb-dsr", "xlb", "l4lb", "dsr", 1),
            case("xlb-l4lb-dsr-poll", "xlb", "l4lb", "dsr", 1, "poll"),
            case("xlb-l4lb-nat", "xlb", "l4lb", "nat", 1),
            case("xlb-macswap", "xlb", "macswap", "dsr", 1),
            case("testpmd-macswap", "testpmd", "macswap", "macswap", 1),
            case("xdp-fwd", "xdp-fwd", "redirect", "dsr", 1),
            case("iptables-dnat", "iptables", "dnat", "dnat", 1),
            case("nftables-dnat", "nftables", "dnat", "dnat", 1),
            case("xlb-l4lb-dsr", "xlb", "l4lb", "dsr", 2),
            case("xlb-l4lb-nat", "xlb", "l4lb", "nat", 2),
            case("iptables-dnat", "iptables", "dnat", "dnat", 2)]


def kernel_threads():
    """{pid: name} of the kernel's NAPI threads (napi/<device>-<napi id>)."""
    threads = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                name = Path(f"/proc/{entry}/comm").read_text().strip()
                if name.startswith("napi/"):
                    threads[int(entry)] = name
    return threads


def threaded_napi(lab, coalesce_us):
    """Turns on GRO (so veth keeps its NAPI instances whether or not an XDP program is
    attached), threaded NAPI and, unless `coalesce_us` is 0, interrupt coalescing on the
    four veth ends; returns {device: [thread pid, ...]}.

    On veth, a frame's receive work (the receiver's XDP program, its copy into an AF_XDP
    ring, the kernel's forwarding) otherwise runs in the softirq of the core that sent it:
    the generator's core does the device under test's receiving, and the device under
    test's core the sink's. With a thread per receive queue, pinned (pin_napi), the work
    lands on the side it belongs to and is counted in that thread's CPU time. The threads
    are told apart from other namespaces' by being new: each write of `threaded` starts
    them.

    veth has no interrupt moderation: every frame a peer sends wakes the receiver's NAPI
    thread, and in this VM a wakeup costs microseconds (d0's thread spent 5.5 µs per frame
    at 0.15 Mpps). Coalescing does what a NIC's does by default (ethtool rx-usecs): after a
    poll that found frames the queue stays masked and a timer of `coalesce_us` polls it
    again (`gro_flush_timeout`), until two polls in a row find nothing
    (`napi_defer_hard_irqs`)."""
    before = kernel_threads()
    for short, dev in (("gen", "g0"), ("dut", "d0"), ("dut", "d1"), ("sink", "s0")):
        lab.run(short, "ethtool", "-K", dev, "gro", "on")
        lab.run(short, "sh", "-c", f"echo 1 > /sys/class/net/{dev}/threaded && "
                                   f"echo {2 if coalesce_us else 0} > /sys/class/net/{dev}/napi_defer_hard_irqs && "
                                   f"echo {coalesce_us * 1000} > /sys/class/net/{dev}/gro_flush_timeout")
    napi = {}
    for pid, name in kernel_threads().items():
        if pid not in before:
            napi.setdefault(name[len("napi/"):].rsplit("-", 1)[0], []).append(pid)
    missing = [dev for dev in ("g0", "d0", "d1", "s0") if not napi.get(dev)]
    if missing:
        raise HarnessError(f"no threaded NAPI kernel thread appeared for {', '.join(missing)}")
    return napi


def pin_napi(napi, dut_cores):
    """d0's and d1's NAPI threads (the device under test's receiving) on its cores; g0's
    and s0's (the generator's and the sink's) on core 0, where those run. All of them run
    SCHED_FIFO, above every ordinary thread, as softirqs run above them on a real NIC's
    interrupt core: else a spinning generator or poller holds its core for a whole
    scheduler slice while the 256-frame queue of a veth behind it overflows."""
    for dev, pids in napi.items():
        cores = ",".join(map(str, dut_cores)) if dev in ("d0", "d1") else "0"
        for pid in pids:
            sh(["taskset", "-pc", cores, pid])
            sh(["chrt", "-f", "-p", NAPI_PRIORITY, pid])


def cpu_seconds(pids):
    """User plus system CPU seconds of the given processes (all their threads, exited ones
    included) and kernel threads, from /proc/<pid>/stat; a pid that is gone counts 0."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15
    return total / CLK_TCK


def cores_busy(cores):
    """Seconds the given cores spent on anything but idle (user, nice, system, irq,
    softirq: /proc/stat), summed; minus the device under test's own, this is what else ran
    on its cores (on this shared machine, other people's builds)."""
    busy = 0
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields[0] in {f"cpu{c}" for c in cores}:
                user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
                busy += user + nice + system + irq + softirq
    return busy / CLK_TCK


def softirq_seconds(cores):
    """Seconds the given cores spent in softirqs (/proc/stat), summed. Every veth end's NAPI
    runs in a thread (threaded_napi), so softirq time on a core outside the device under
    test's is receive work of the device that ran where the generator's transmit woke it:
    it counts as the device's, and should be nil."""
    seconds = 0
    with open("/proc/stat") as stat:
        for line in stat:
            fields = line.split()
            if fields[0] in {f"cpu{c}" for c in cores}:
                seconds += int(fields[7])
    return seconds / CLK_TCK


def cpu_hz():
    """The cores' clock in Hz, from /proc/cpuinfo's first `cpu MHz` (in a VM: the host's
    nominal clock, which turbo and frequency scaling move)."""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1e6
    raise HarnessError("no `cpu MHz` in /proc/cpuinfo")


def cycles_source():
    """How cycles per packet are counted, as the results say it. This VM's perf has no
    hardware cycle counter (`perf stat -e cycles` reports <not supported>), so it is CPU
    time times the clock; where perf does count cycles the line says so, and the figures
    are still CPU time times the clock, comparable across machines with and without."""
    mhz = cpu_hz() / 1e6
    probe = "perf not installed"
    if shutil.which("perf"):
        done = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True, text=True)
        probe = ("perf stat -e cycles: <not supported>" if "not supported" in done.stderr or done.returncode
                 else "perf counts cycles here, unused")
    return f"CPU time (utime+stime, /proc) x {mhz:.0f} MHz (/proc/cpuinfo); {probe}"


def tx_packets_now(pid, dev):
    """Packets `dev` has sent, from /proc/<pid>/net/dev: the counters of the namespace that
    process `pid` runs in, read without entering it."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines():
            name, _, counters = line.partition(":")
            if name.strip() == dev:
                return int(counters.split()[9])
    return None


def trial(lab, case, dut_pids, sink, extra, rate, search):
    """One trial of `search.trial` seconds at `rate` packets/s (0: as fast as the generator
    goes); returns its figures.

    Loss is the generator's TX count minus what arrived (at the XDP sink, or back at the
    generator for xlb macswap), over its TX count: the generator drains its TX ring before
    it reports, and the sink's counters are read DRAIN_SECONDS after it stopped, so frames
    in flight at the end are not counted as lost. CPU use is taken over the trial's steady
    middle: from a tenth of the trial after the generator's first frames left g0 (read from
    its namespace's counters) to a tenth before its end."""
    elsewhere = [c for c in range(os.cpu_count()) if c not in dut_cores(case)]

    def sample():
        """(time, the device's CPU seconds, its cores' busy seconds, softirq seconds on
        the other cores)."""
        return (time.monotonic(), cpu_seconds(dut_pids), cores_busy(dut_cores(case)),
                softirq_seconds(elsewhere))

    gen_json = lab.work / "gen.json"
    gen_json.unlink(missing_ok=True)
    arrived_before = sink.arrived()
    gen = lab.spawn("gen", [lab.xlb, "pktgen", "--iface", "g0", "--quiet", "--dst-mac", D0_MAC,
                            "--duration", search.trial, "--json", gen_json, "--queues", case.workers,
                            "--cores", 0, "--src", "198.18.0.1", "--rate", int(rate),
                            *traffic_args(case.traffic), *extra, "--linger", DRAIN_SECONDS], "gen")
    try:
        before = tx_packets_now(gen.popen.pid, "g0")
        deadline = time.monotonic() + 30
        while tx_packets_now(gen.popen.pid, "g0") == before:
            if not gen.alive() or time.monotonic() > deadline:
                raise HarnessError(f"the generator sent nothing:\n{gen.text()}")
            time.sleep(0.01)
        started = time.monotonic()
        margin = search.trial / 10
        time.sleep(max(0.0, started + margin - time.monotonic()))
        first = sample()
        time.sleep(max(0.0, started + search.trial - margin - time.monotonic()))
        last = sample()
        code = gen.wait(search.trial + 30)
        if code != 0:
            raise HarnessError(f"xlb pktgen failed ({code}):\n{gen.text()}")
    finally:
        gen.kill()
    report = read_json(gen_json)
    if extra:
        received = (report.get("rx") or {}).get("packets", 0)
    else:
        time.sleep(DRAIN_SECONDS)
        received = sink.arrived() - arrived_before
    tx = report.get("tx") or {}
    sent, seconds = tx.get("packets", 0), report.get("duration_s", 0)
    window = last[0] - first[0]
    forwarded_pps = received / seconds if seconds else 0.0
    own = (last[1] - first[1]) / window if window > 0 else 0.0
    dut_elsewhere = (last[3] - first[3]) / window if window > 0 else 0.0
    dut_util = own + dut_elsewhere
    figures = {
        "rate_pps": rate, "tx_packets": sent, "tx_pps": tx.get("pps", 0.0), "rx_packets": received,
        "forwarded_pps": forwarded_pps,
        "loss_ratio": (sent - received) / sent if sent else None,
        "dut_cpu": dut_util,
        "dut_cpu_elsewhere": dut_elsewhere,
        "others_cpu": max(0.0, (last[2] - first[2]) / window - own) if window > 0 else None,
        "cycles_per_packet": dut_util * cpu_hz() / forwarded_pps if forwarded_pps else None,
    }
    figures["offered"] = rate == 0 or figures["tx_pps"] >= OFFERED_SHORTFALL * rate
    figures["passed"] = figures["loss_ratio"] is not None and figures["loss_ratio"] <= search.max_loss
    print(f"    {'max' if not rate else f'{rate / 1e6:.3f} Mpps'}: sent {figures['tx_pps'] / 1e6:.3f} Mpps, "
          f"loss {100 * (figures['loss_ratio'] or 0):.4f} %, {'pass' if figures['passed'] else 'fail'}"
          f"{'' if figures['offered'] else ' (the generator fell short of the rate)'}; "
          f"device under test {100 * dut_util:.0f} % of a core "
          f"({100 * dut_elsewhere:.0f} % on the generator's), "
          f"{figures['cycles_per_packet'] or 0:.0f} cycles/packet", file=sys.stderr, flush=True)
    return figures


def search_zero_loss(lab, case, dut_pids, sink, extra, search):
    """RFC 2544 §26.1's throughput for one case: the highest offered rate whose trial loses
    at most search.max_loss of its packets, by binary search.

    The first trial runs unpaced: what the generator offers flat out is the top of the
    bracket, and if that loses nothing the case is generator-bound (its rate is the
    generator's, a lower bound of the device's). Else the next trial runs just under what
    the device forwarded while overloaded, where zero loss usually is, and then each trial
    halves the bracket [highest pass, lowest fail] until it is narrower than
    search.resolution of its top, or search.max_trials trials ran. A trial whose generator
    fell short of its rate cannot pass at that rate: the bracket's top comes down to it, and
    the rate the generator did send counts if nothing was lost. The result is the best
    passing trial's offered rate and its cycles per packet, with every trial."""
    trials = [trial(lab, case, dut_pids, sink, extra, 0, search)]
    flat_out = trials[0]
    best = flat_out if flat_out["passed"] else None
    low, high = 0.0, flat_out["tx_pps"]
    if not flat_out["forwarded_pps"]:
        raise HarnessError(f"{case.name}: nothing arrived in the unpaced trial")
    rate = min(0.98 * flat_out["forwarded_pps"], 0.98 * high)
    while best is not flat_out and len(trials) < search.max_trials:
        t = trial(lab, case, dut_pids, sink, extra, rate, search)
        trials.append(t)
        if t["passed"]:
            if best is None or t["tx_pps"] > best["tx_pps"]:
                best = t
            low = max(low, min(t["tx_pps"], rate))
        if not t["passed"] or not t["offered"]:
            high = min(high, rate)
        if high - low <= search.resolution * high:
            break
        rate = (low + high) / 2
    return {
        "zero_loss_pps": best["tx_pps"] if best else 0.0,
        "cycles_per_packet": best["cycles_per_packet"] if best else None,
        "dut_cpu": best["dut_cpu"] if best else None,
        "generator_bound": best is flat_out,
        "bracket_pps": [low, high],
        "flat_out_tx_pps": flat_out["tx_pps"],
        "flat_out_forwarded_pps": flat_out["forwarded_pps"],
        "flat_out_cycles_per_packet": flat_out["cycles_per_packet"],
        "trials": trials,
    }


def dut_cores(case):
    """The cores the device under test runs on: core 1 with one worker (the generator and
    the sink keep core 0), both with two."""
    return [0, 1] if case.workers == 2 else [1]


def run_zero_loss_case(lab, case, napi, sink, search):
    """Starts the case's device under test, pins its NAPI threads to its cores, and runs the
    zero-loss search; returns summarize.zero_loss_record's record."""
    print(f"  {case.name}", file=sys.stderr, flush=True)
    with contextlib.ExitStack() as cleanup:
        xlb, testpmd = start_dut(lab, case, case.mode, cleanup)
        pin_napi(napi, dut_cores(case))
        # Its cost: its receive queues' NAPI threads (XDP program, copy into AF_XDP rings,
        # kernel forwarding) and its process, if it has one.
        dut_pids = napi["d0"] + napi["d1"] + [p.proc.popen.pid for p in (xlb, testpmd) if p]
        _, extra = sink_steer(case, case.mode)
        found = search_zero_loss(lab, case, dut_pids, sink, extra, search)
        if testpmd:
            testpmd.stop()
        elif xlb:
            xlb.stop()
    return summarize.zero_loss_record(case.name, case.dut, case.pipeline, case.mode, case.traffic,
                                      case.workers, found)


def measure_zero_loss(lab, cases, args):
    """The zero-loss run: every case's search, then the result files (zero-loss.json, .md,
    .svg); returns the exit code (a smoke run fails when a trial moved nothing)."""
    search = Search(args.trial, args.resolution / 100, args.max_loss / 100, args.max_trials)
    print("== topology (threaded NAPI)", flush=True)
    down(lab)
    up(lab)
    napi = threaded_napi(lab, args.coalesce)
    sink = XdpSink(lab)
    source = cycles_source()
    print(f"== zero-loss search: {len(cases)} cases, {search.trial:g} s trials, loss <= {args.max_loss:g} %, "
          f"resolution {100 * search.resolution:g} %, at most {search.max_trials} trials; cycles: {source}",
          flush=True)
    started = time.monotonic()
    records = [run_zero_loss_case(lab, case, napi, sink, search) for case in cases]
    settings = {"trial_s": search.trial, "resolution": search.resolution, "max_loss": search.max_loss,
                "max_trials": search.max_trials, "cycles": source, "coalesce_us": args.coalesce,
                "minutes": round((time.monotonic() - started) / 60, 1)}
    result = summarize.zero_loss_report(records, args.out, machine(), settings)
    if not args.smoke:
        return 0
    idle = [r["case"] for r in result["cases"] if not any(t["rx_packets"] for t in r["trials"])]
    if idle:
        print(f"perf smoke: these cases moved no packets in the zero-loss search: {', '.join(idle)}",
              file=sys.stderr)
        return 1
    print(f"perf smoke: the zero-loss search ran {sum(len(r['trials']) for r in result['cases'])} trials "
          "that moved packets; result files are well formed")
    return 0


# --- the run --------------------------------------------------------------------------------

def all_cases(smoke):
    """Every case of a full run, or the smoke run's few, in run order."""
    def case(name, dut, pipeline, mode, traffic, workers):
        return Case(f"{name}/{traffic}/w{workers}", dut, pipeline, mode, traffic, workers)

    testpmd = [case("testpmd-macswap", "testpmd", "macswap", "macswap", "udp", 1),
               case("pktgen-tx", "pktgen", "txonly", "dsr", "udp-1flow", 1),
               case("testpmd-txonly", "testpmd", "txonly", "dsr", "udp-1flow", 1)]
    flood = case("xlb-l4lb-dsr-sctp-flood", "xlb", "l4lb", "dsr", "sctp-init", 1)
    if smoke:
        return [case("xlb-rxdrop", "xlb", "rxdrop", "dsr", "udp", 1),
                case("xlb-macswap", "xlb", "macswap", "dsr", "udp", 1),
                case("xlb-l4lb-dsr", "xlb", "l4lb", "dsr", "udp", 1),
                case("xlb-l4lb-dsr", "xlb", "l4lb", "dsr", "sctp", 1),
                case("xlb-l4lb-dsr-reload100", "xlb", "l4lb", "dsr-reload", "udp", 1),
                case("xlb-l4lb-nat", "xlb", "l4lb", "nat", "tcp-syn", 1),
                case("iptables-dnat", "iptables", "dnat", "dnat", "udp", 1),
                case("nftables-dnat", "nftables", "dnat", "dnat", "udp", 1),
                flood, *testpmd]
    cases = []
    for workers in (1, 2):
        for traffic in ("udp", "tcp-syn", "tcp-est", "sctp"):
            cases.append(case("xlb-rxdrop", "xlb", "rxdrop", "dsr", traffic, workers))
            cases.append(case("xlb-macswap", "xlb", "macswap", "dsr", traffic, workers))
            cases.append(case("xlb-l4lb-dsr", "xlb", "l4lb", "dsr", traffic, workers))
            if traffic == "udp":
                cases.append(case("xlb-l4lb-dsr-reload100", "xlb", "l4lb", "dsr-reload", traffic, workers))
            if traffic != "sctp":
                cases.append(case("xlb-l4lb-nat", "xlb", "l4lb", "nat", traffic, workers))
        for traffic in ("udp", "tcp-syn", "tcp-est"):
            cases.append(case("iptables-dnat", "iptables", "dnat", "dnat", traffic, workers))
            cases.append(case("nftables-dnat", "nftables", "dnat", "dnat", traffic, workers))
    return cases + [flood] + testpmd


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="perf/harness.py", description=__doc__.split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="one short repetition of a few cases; fails unless each moves packets")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per case (default 5; smoke 1)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of traffic per case (default 5; smoke 1)")
    parser.add_argument("--out", default=None,
                        help="where results.json, results.md and mpps.svg go (default perf/results; "
                             "smoke: perf/results/tmp, which git ignores, so a smoke run never "
                             "overwrites a full run's results)")
    parser.add_argument("--cases", default=None, metavar="REGEX",
                        help="only the cases whose name matches REGEX (e.g. 'testpmd|xlb-.*/udp/w1')")
    zero_loss = parser.add_argument_group(
        "zero-loss throughput", "RFC 2544 §26.1: per case, a binary search for the highest rate a trial "
        "carries with loss at most --max-loss, and the device under test's cycles per packet there; "
        "writes zero-loss.json, .md and .svg under --out")
    zero_loss.add_argument("--zero-loss", action="store_true", help="run the zero-loss search instead")
    zero_loss.add_argument("--trial", type=float, default=None, help="seconds per trial (default 5; smoke 0.5)")
    zero_loss.add_argument("--resolution", type=float, default=3.0,
                           help="stop when the bracket is narrower than this %% of its top (default 3)")
    zero_loss.add_argument("--max-loss", type=float, default=0.01,
                           help="the %% of offered packets a passing trial may lose (default 0.01)")
    zero_loss.add_argument("--max-trials", type=int, default=None,
                           help="trials per case at most, the unpaced first one included (default 8; smoke 3)")
    zero_loss.add_argument("--coalesce", type=int, default=0, metavar="USECS",
                           help="veth interrupt coalescing: re-poll a busy queue after USECS µs instead of "
                                "waking its NAPI per frame (default 0: off)")
    args = parser.parse_args(argv)
    if args.trial is None:
        args.trial = 0.5 if args.smoke else 5.0
    if args.max_trials is None:
        args.max_trials = 3 if args.smoke else 8
    if args.trial <= 0 or args.max_trials < 1 or not 0 < args.resolution < 100 or args.max_loss < 0:
        parser.error("--trial must be positive, --max-trials at least 1, --resolution within 0..100 "
                     "and --max-loss not negative")
    if args.reps is None:
        args.reps = 1 if args.smoke else 5
    if args.duration is None:
        args.duration = 1.0 if args.smoke else 5.0
    if args.out is None:
        args.out = str(ROOT / "perf" / "results" / ("tmp" if args.smoke else ""))
    if args.reps < 1 or args.duration <= 0:
        parser.error("--reps must be at least 1 and --duration positive")
    return args


def select(cases, regex):
    """The cases --cases REGEX keeps; exits 2 when it keeps none."""
    if not regex:
        return cases
    try:
        pattern = re.compile(regex)
    except re.error as error:
        sys.exit(f"perf: --cases '{regex}' is not a regular expression: {error}")
    kept = [c for c in cases if pattern.search(c.name)]
    if not kept:
        print(f"perf: no case matches --cases '{regex}'", file=sys.stderr)
        sys.exit(2)
    return kept


def check_tools(cases):
    """Fails early, saying what to install, when a selected case needs a missing tool."""
    if any(c.dut == "xdp-fwd" for c in cases) and not shutil.which("clang"):
        sys.exit("perf: clang not found to build perf/xdp_fwd.c; run scripts/setup.sh as root, or leave "
                 "xdp-fwd out with --cases")
    if any(c.name.startswith("testpmd-") for c in cases) and not shutil.which("dpdk-testpmd"):
        sys.exit("perf: dpdk-testpmd not found; run scripts/setup.sh as root (Debian packages dpdk-dev and "
                 "librte-net-af-xdp23), or leave the testpmd cases out with --cases")
    if any(c.traffic == "sctp-init" for c in cases):
        if not os.access(TSCTP, os.X_OK):
            sys.exit(f"perf: {TSCTP} not found; run scripts/setup.sh as root (Debian package "
                     "libusrsctp-examples), or leave the SCTP flood out with --cases")
        if not shutil.which("cc"):
            sys.exit("perf: no C compiler (cc) to build scripts/usrsctp_shim.c; run scripts/setup.sh as root, "
                     "or leave the SCTP flood out with --cases")


def smoke_problems(result):
    """What a smoke run must not have: idle cases, and an SCTP flood that moved nothing or
    whose transfers did not complete."""
    problems = []
    idle = [c["case"] for c in result["cases"] if not c["rate_pps"] or c["rate_pps"]["median"] <= 0]
    if idle:
        problems.append(f"these cases moved no packets: {', '.join(idle)}")
    for flood in result.get("sctp_flood", []):
        for rep in flood["reps"]:
            if not rep["flood_tx_packets"] or not rep["xlb_rx_pps"]:
                problems.append(f'{flood["case"]}: the flood moved no packets')
            if not rep["existing_completed"]:
                problems.append(f'{flood["case"]}: the existing association did not complete its transfer')
            if not rep["new_completed"]:
                problems.append(f'{flood["case"]}: the new association started mid-flood did not complete')
    return problems


def main(argv):
    args = parse_args(argv)
    if os.geteuid() != 0:
        sys.exit(f"perf: needs root (network namespaces, XDP, AF_XDP); run: sudo {sys.argv[0]}")
    cases = select(zero_loss_cases(args.smoke) if args.zero_loss else all_cases(args.smoke), args.cases)
    check_tools(cases)
    xlb = os.environ.get("XLB_BIN")
    if not xlb:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "xlb"], cwd=ROOT, check=True)
        xlb = str(ROOT / "target" / "release" / "xlb")
    # SIGTERM unwinds like Ctrl-C, so the namespaces and the work directory are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="xlb-perf."))
    lab = Lab(xlb=str(Path(xlb).resolve()), prefix=os.environ.get("PERF_PREFIX") or f"xperf{os.getpid()}",
              work=work, duration=args.duration, smoke=args.smoke)
    code = 1
    try:
        code = (measure_zero_loss if args.zero_loss else measure)(lab, cases, args)
    except HarnessError as error:
        print(f"perf: {error}", file=sys.stderr)
    finally:
        down(lab)
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"perf: the peers' logs and configs are kept in {work}", file=sys.stderr)
    return code


def machine():
    """The machine in one line: cores, CPU model and clock, kernel, and when (UTC)."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} vCPUs, {model} at {cpu_hz() / 1e6:.0f} MHz, Linux {platform.release()}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def measure(lab, cases, args):
    """Runs every repetition of every case, writes the result files, and returns the exit
    code (a smoke run fails when smoke_problems finds any)."""
    print("== topology", flush=True)
    down(lab)
    up(lab)
    print(f"== {len(cases)} cases x {args.reps} repetitions, {args.duration:g}s each", flush=True)
    runs = []
    for rep in range(1, args.reps + 1):
        # Odd repetitions run the cases in list order, even ones in reverse, so neither case
        # of a compared pair always runs first: with pktgen always first, three runs of 9
        # gave pktgen/testpmd 0.90-0.94; with testpmd always first, 1.06.
        for case in (cases if rep % 2 else cases[::-1]):
            runs.append(run_case(lab, case, rep))
            sys.stdout.flush()
    result = summarize.report(runs, args.out, f"{os.cpu_count()} cores, {platform.release()}")
    if not args.smoke:
        return 0
    problems = smoke_problems(result)
    for problem in problems:
        print(f"perf smoke: {problem}", file=sys.stderr)
    if problems:
        return 1
    floods = "; the SCTP flood moved packets and both of its transfers completed" \
        if result.get("sctp_flood") else ""
    print(f"perf smoke: {len(result['cases'])} cases moved packets; result files are well formed{floods}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
