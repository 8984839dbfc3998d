#!/usr/bin/env python3
"""The perf harness's bookkeeping (called by perf/run.sh).

  summarize.py record CASE DUT PIPELINE MODE TRAFFIC WORKERS REP GEN_JSON SINK_JSON DUT_RX DURATION
      prints one JSON line for one repetition, from the generator's and sink's reports.
  summarize.py report RUNS_JSONL OUT_DIR SMOKE MACHINE
      writes OUT_DIR/results.json, results.md and mpps.svg: per case the median and
      spread (min..max) over repetitions, and ratios computed within this run. With
      SMOKE=1, fails unless every case moved packets and the files read back.

A case's rate is what its subject achieved: packets/s the sink received from the device
under test, packets/s xlb took in (rxdrop), or packets/s the generator sent (txonly, the
generator comparison: xlb pktgen against DPDK testpmd's txonly).
"""
import json
import statistics
import sys
from pathlib import Path


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def record(args):
    case, dut, pipeline, mode, traffic, workers, rep, gen_path, sink_path, dut_rx, duration = args
    gen, sink = load(gen_path) or {}, load(sink_path) or {}
    tx = gen.get("tx") or {}
    rx = sink.get("rx") or {}
    latency = rx.get("latency_ns") or {}
    tx_packets, rx_packets = tx.get("packets", 0), rx.get("packets", 0)
    dut_rx_pps = int(dut_rx or 0) / float(duration)
    forwarded = pipeline not in ("rxdrop", "txonly")
    line = {
        "case": case, "dut": dut, "pipeline": pipeline, "mode": mode, "traffic": traffic,
        "workers": int(workers), "rep": int(rep),
        "tx_pps": tx.get("pps", 0.0),
        "rx_pps": rx.get("pps", 0.0),
        "dut_rx_pps": dut_rx_pps,
        "rate_pps": (rx.get("pps", 0.0) if forwarded
                     else tx.get("pps", 0.0) if pipeline == "txonly" else dut_rx_pps),
        "loss_ratio": (1 - rx_packets / tx_packets) if forwarded and tx_packets else None,
        "p50_us": latency.get("p50", 0) / 1000 if latency else None,
        "p99_us": latency.get("p99", 0) / 1000 if latency else None,
    }
    print(json.dumps(line))
    print(f'  {case:<34} rep {rep}: generator {line["tx_pps"] / 1e6:.3f} Mpps, '
          f'device under test {line["rate_pps"] / 1e6:.3f} Mpps', file=sys.stderr)


def spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def svg(cases, path):
    """A horizontal bar chart of median Mpps per case with min..max whiskers."""
    rows = [c for c in cases if c["rate_pps"]]
    top = max((c["rate_pps"]["max"] for c in rows), default=1) / 1e6 or 1
    width, left, bar, gap = 900, 260, 14, 6
    height = 50 + len(rows) * (bar + gap)
    scale = (width - left - 60) / top
    colors = {"xlb": "#2b7bb9", "pktgen": "#7570b3", "iptables": "#d95f02", "nftables": "#e6ab02",
              "testpmd": "#1b9e77"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13">Mpps per case (median, whiskers min..max)</text>']
    for i, c in enumerate(rows):
        y = 34 + i * (bar + gap)
        r = c["rate_pps"]
        med, lo, hi = r["median"] / 1e6, r["min"] / 1e6, r["max"] / 1e6
        out.append(f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">{c["case"]}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{med * scale:.1f}" height="{bar}" '
                   f'fill="{colors.get(c["dut"], "#777")}"/>')
        out.append(f'<line x1="{left + lo * scale:.1f}" x2="{left + hi * scale:.1f}" '
                   f'y1="{y + bar / 2}" y2="{y + bar / 2}" stroke="black"/>')
        out.append(f'<text x="{left + hi * scale + 4:.1f}" y="{y + bar - 3}">{med:.3f}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def fmt(value, scale=1.0, digits=3):
    if value is None:
        return "-"
    return f'{value["median"] / scale:.{digits}f} ({value["min"] / scale:.{digits}f}..{value["max"] / scale:.{digits}f})'


def report(args):
    runs_path, out_dir, smoke, machine = args
    runs = [json.loads(line) for line in Path(runs_path).read_text().splitlines() if line.strip()]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(r["case"] for r in runs))
    cases = []
    for name in names:
        rs = [r for r in runs if r["case"] == name]
        first = rs[0]
        cases.append({
            "case": name, "dut": first["dut"], "pipeline": first["pipeline"], "mode": first["mode"],
            "traffic": first["traffic"], "workers": first["workers"],
            "tx_pps": spread([r["tx_pps"] for r in rs]),
            "rate_pps": spread([r["rate_pps"] for r in rs]),
            "dut_rx_pps": spread([r["dut_rx_pps"] for r in rs]),
            "loss_ratio": spread([r["loss_ratio"] for r in rs]),
            "p50_us": spread([r["p50_us"] for r in rs]),
            "p99_us": spread([r["p99_us"] for r in rs]),
        })
    by_name = {c["case"]: c for c in cases}

    def median(name):
        c = by_name.get(name)
        return c["rate_pps"]["median"] if c and c["rate_pps"] else None

    ratios = {}
    for workers in (1, 2):
        for traffic in ("udp", "tcp-syn", "tcp-est", "sctp"):
            l4lb = median(f"xlb-l4lb-dsr/{traffic}/w{workers}")
            for label, other in (("l4lb/xlb-macswap", "xlb-macswap"), ("l4lb/testpmd-macswap", "testpmd-macswap"),
                                 ("l4lb/iptables-dnat", "iptables-dnat"), ("l4lb/nftables-dnat", "nftables-dnat")):
                base = median(f"{other}/{traffic}/w{workers}")
                if l4lb is not None and base:
                    ratios[f"{label} {traffic} w{workers}"] = l4lb / base
        xlb_macswap = median(f"xlb-macswap/udp/w{workers}")
        testpmd_macswap = median(f"testpmd-macswap/udp/w{workers}")
        if xlb_macswap is not None and testpmd_macswap:
            ratios[f"xlb-macswap/testpmd-macswap udp w{workers}"] = xlb_macswap / testpmd_macswap
    pktgen_tx, testpmd_tx = median("pktgen-tx/udp-1flow/w1"), median("testpmd-txonly/udp-1flow/w1")
    if pktgen_tx is not None and testpmd_tx:
        ratios["pktgen/testpmd-txonly tx"] = pktgen_tx / testpmd_tx
    result = {"machine": machine, "runs": len(runs), "cases": cases, "ratios": ratios}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")

    lines = [f"Machine: {machine}. Median (min..max) over repetitions; rate = packets/s the sink "
             "received (rxdrop: packets xlb took in; txonly: packets the generator sent). "
             "Ratios use medians of this run.", "",
             "| case | generator TX Mpps | rate Mpps | loss | p50 µs | p99 µs |",
             "|---|---|---|---|---|---|"]
    for c in cases:
        loss = "-" if c["loss_ratio"] is None else "%.2f %%" % (c["loss_ratio"]["median"] * 100)
        lines.append(f'| {c["case"]} | {fmt(c["tx_pps"], 1e6)} | {fmt(c["rate_pps"], 1e6)} | {loss} | '
                     f'{fmt(c["p50_us"], 1, 1)} | {fmt(c["p99_us"], 1, 1)} |')
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    svg(cases, out / "mpps.svg")

    # Read everything back: the files must be well formed.
    json.loads((out / "results.json").read_text())
    import xml.dom.minidom
    xml.dom.minidom.parse(str(out / "mpps.svg"))
    print((out / "results.md").read_text())
    if smoke == "1":
        idle = [c["case"] for c in cases if not c["rate_pps"] or c["rate_pps"]["median"] <= 0]
        if idle:
            print(f"perf smoke: these cases moved no packets: {', '.join(idle)}", file=sys.stderr)
            sys.exit(1)
        print(f"perf smoke: {len(cases)} cases moved packets; result files are well formed")


if __name__ == "__main__":
    {"record": record, "report": report}[sys.argv[1]](sys.argv[2:])
