"""The perf harness's bookkeeping, imported by perf/harness.py: one record per repetition,
and the result files of a run.

`record` turns what one repetition measured (the generator's and the sink's `xlb pktgen
--json` reports, the packets the device under test took in) into one flat dict; `report`
writes OUT/results.json, results.md and mpps.svg from all of them: per case the median and
spread (min..max) over repetitions, and ratios computed within this run, because this
project's shared 2-core machine moves absolute figures from hour to hour far more than it
moves ratios taken minutes apart.

A case's rate is what its subject achieved: packets/s the sink received from the device
under test, packets/s xlb took in (rxdrop; the SCTP INIT flood, whose backends drop the
flood at their ingress so no sink counts it), or packets/s the generator sent (txonly, the
generator comparison: xlb pktgen against DPDK testpmd's txonly).

The schema of results.json (machine, runs, cases, ratios) is what consumers read; the SCTP
flood case adds a top-level `sctp_flood` list and never changes the other keys.
"""
import json
import statistics
import sys
import xml.dom.minidom
from pathlib import Path


def rate_source(pipeline, traffic):
    """Which count is a case's rate: "generator", "dut" or "sink" (see the module doc)."""
    if pipeline == "txonly":
        return "generator"
    if pipeline == "rxdrop" or traffic == "sctp-init":
        return "dut"
    return "sink"


def record(case, dut, pipeline, mode, traffic, workers, rep, gen, sink, dut_rx, duration,
           extra=None):
    """One repetition as one dict; prints a progress line on stderr.

    gen and sink are the parsed `--json` reports (an empty dict when there is none), dut_rx
    the packets the device under test took in over `duration` seconds. `extra` adds keys
    (the SCTP flood case's figures under `sctp_flood`).
    """
    tx = gen.get("tx") or {}
    rx = sink.get("rx") or {}
    latency = rx.get("latency_ns") or {}
    tx_packets, rx_packets = tx.get("packets", 0), rx.get("packets", 0)
    dut_rx_pps = int(dut_rx or 0) / float(duration) if duration else 0.0
    source = rate_source(pipeline, traffic)
    forwarded = source == "sink"
    line = {
        "case": case, "dut": dut, "pipeline": pipeline, "mode": mode, "traffic": traffic,
        "workers": int(workers), "rep": int(rep),
        "tx_pps": tx.get("pps", 0.0),
        "rx_pps": rx.get("pps", 0.0),
        "dut_rx_pps": dut_rx_pps,
        "rate_pps": {"sink": rx.get("pps", 0.0), "generator": tx.get("pps", 0.0),
                     "dut": dut_rx_pps}[source],
        "loss_ratio": (1 - rx_packets / tx_packets) if forwarded and tx_packets else None,
        "p50_us": latency.get("p50", 0) / 1000 if latency else None,
        "p99_us": latency.get("p99", 0) / 1000 if latency else None,
    }
    line.update(extra or {})
    print(f'  {case:<34} rep {rep}: generator {line["tx_pps"] / 1e6:.3f} Mpps, '
          f'device under test {line["rate_pps"] / 1e6:.3f} Mpps', file=sys.stderr)
    return line


def spread(values):
    """Median, min, max and count of the values that are not None; None if there are none."""
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
    """A spread as `median (min..max)`, divided by scale; `-` for None."""
    if value is None:
        return "-"
    return (f'{value["median"] / scale:.{digits}f} '
            f'({value["min"] / scale:.{digits}f}..{value["max"] / scale:.{digits}f})')


# The SCTP flood figures of one repetition, in the order results.md lists them:
# key, label, scale, digits. Booleans are counted (k of n repetitions) instead.
FLOOD_FIGURES = [
    ("flood_seconds", "flood lasted (the generator's clock), s", 1, 1),
    ("flood_tx_pps", "flood generator TX, Mpps", 1e6, 3),
    ("xlb_rx_pps", "xlb RX while flooded, Mpps", 1e6, 3),
    ("flood_at_backends_pps", "flood INITs xlb forwarded to the backends, Mpps", 1e6, 3),
    ("existing_before_Bps", "existing association before the flood, MB/s", 1e6, 2),
    ("existing_during_Bps", "existing association during the flood, MB/s", 1e6, 2),
    ("existing_ratio", "existing association during / before", 1, 2),
    ("existing_completed", "existing association completed its transfer", None, 0),
    ("new_baseline_seconds", "new association without flood: INIT to last byte, s", 1, 2),
    ("new_completed", "new association started mid-flood completed", None, 0),
    ("new_completed_during_flood", "... and completed while the flood still ran", None, 0),
    ("new_established_during_flood", "... and got its first message through while the flood ran",
     None, 0),
    ("new_handshake_seconds", "new association mid-flood: INIT to first message, s", 1, 2),
    ("new_seconds", "new association mid-flood: INIT to last byte, s", 1, 2),
    ("new_transfer_seconds", "new association mid-flood: first to last byte, s", 1, 2),
    ("xlb_sctp_embryonic_max", "xlb_sctp_embryonic, highest sample", 1, 0),
    ("xlb_sctp_embryonic_evicted", "xlb_sctp_embryonic_evicted_total, increase", 1, 0),
    ("xlb_sctp_embryonic_expired", "xlb_sctp_embryonic_expired_total, increase", 1, 0),
    ("xlb_sctp_table_full", "xlb_sctp_table_full_total, increase", 1, 0),
    ("xlb_sctp_associations_created", "xlb_sctp_associations_created_total, increase", 1, 0),
    ("xlb_idle_sleeps_flooded", "xlb_idle_sleeps_total, increase while flooded", 1, 0),
    ("xlb_fill_ring_empty_flooded", "xlb_fill_ring_empty_total, increase while flooded", 1, 0),
    ("xlb_tx_ring_full_flooded", "xlb_tx_ring_full_total, increase while flooded", 1, 0),
]


def flood_summary(name, runs):
    """The SCTP flood figures of one case over its repetitions: spreads of the numbers,
    counts of the yes/no outcomes, spreads of each drop reason's increase, and every
    repetition's own figures."""
    reps = [r["sctp_flood"] for r in runs]
    figures = {}
    for key, *_ in FLOOD_FIGURES:
        values = [rep.get(key) for rep in reps]
        if any(isinstance(v, bool) for v in values):
            figures[key] = {"true": sum(1 for v in values if v), "n": len(values)}
        else:
            figures[key] = spread(values)
    reasons = sorted({reason for rep in reps for reason in rep.get("drops", {})})
    drops = {reason: spread([rep.get("drops", {}).get(reason, 0) for rep in reps])
             for reason in reasons}
    return {"case": name, "figures": figures, "drops": drops, "reps": reps}


def flood_markdown(floods):
    """The results.md section of the SCTP flood cases."""
    lines = ["", "## SCTP INIT flood", "",
             "`xlb pktgen --proto sctp-init` flat out (an INIT from a new source every packet) at "
             "an SCTP VIP of xlb `l4lb` dsr (`sctp.capacity` 4096), while real usrsctp "
             "associations (`tsctp`) run through xlb to the service's backend. Existing: one "
             "association transferring before and through the flood (its rate from the server's "
             "per-second rounds). New: one association started mid-flood (the flood runs on until "
             "it is done, within a bound), and the same transfer before the flood as its baseline. "
             "Counters from xlb's metrics endpoint, from just before the flood to just after it "
             "(\"while flooded\": over the flood only)."]
    for flood in floods:
        lines += ["", f'| {flood["case"]} | median (min..max) |', "|---|---|"]
        for key, label, scale, digits in FLOOD_FIGURES:
            value = flood["figures"].get(key)
            if value is not None and "true" in value:
                lines.append(f'| {label} | {value["true"]} of {value["n"]} |')
            else:
                lines.append(f"| {label} | {fmt(value, scale, digits)} |")
        for reason, value in flood["drops"].items():
            lines.append(f"| xlb_drops_total{{reason=\"{reason}\"}}, increase | {fmt(value, 1, 0)} |")
    return lines


def report(runs, out_dir, machine):
    """Writes results.json, results.md and mpps.svg under out_dir, reads them back (they
    must be well formed), prints results.md and returns the results.json content."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(r["case"] for r in runs))
    cases, floods = [], []
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
        if "sctp_flood" in first:
            floods.append(flood_summary(name, rs))
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
    for flood in floods:
        existing = flood["figures"].get("existing_ratio")
        if existing is not None:
            ratios[f'sctp-flood existing association during/before {flood["case"].rsplit("/", 1)[-1]}'] = \
                existing["median"]
    result = {"machine": machine, "runs": len(runs), "cases": cases, "ratios": ratios}
    if floods:
        result["sctp_flood"] = floods
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")

    lines = [f"Machine: {machine}. Median (min..max) over repetitions; rate = packets/s the sink "
             "received (rxdrop and the SCTP INIT flood: packets xlb took in; txonly: packets the "
             "generator sent). Ratios use medians of this run.", "",
             "| case | generator TX Mpps | rate Mpps | loss | p50 µs | p99 µs |",
             "|---|---|---|---|---|---|"]
    for c in cases:
        loss = "-" if c["loss_ratio"] is None else "%.2f %%" % (c["loss_ratio"]["median"] * 100)
        lines.append(f'| {c["case"]} | {fmt(c["tx_pps"], 1e6)} | {fmt(c["rate_pps"], 1e6)} | {loss} | '
                     f'{fmt(c["p50_us"], 1, 1)} | {fmt(c["p99_us"], 1, 1)} |')
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    if floods:
        lines += flood_markdown(floods)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    svg(cases, out / "mpps.svg")

    # Read everything back: the files must be well formed.
    result = json.loads((out / "results.json").read_text())
    xml.dom.minidom.parse(str(out / "mpps.svg"))
    print((out / "results.md").read_text())
    return result


# --- the zero-loss run (perf/harness.py --zero-loss) ----------------------------------------

# The issue's targets for l4lb dsr against the others, from one run: (ratio, numerator case,
# denominator case, what is compared, goal, whether the ratio must stay at most the goal).
ZERO_LOSS_TARGETS = [
    ("l4lb dsr / testpmd macswap", "xlb-l4lb-dsr/udp/w1", "testpmd-macswap/udp/w1", "rate", 1.0, False),
    ("l4lb dsr / xdp-fwd", "xlb-l4lb-dsr/udp/w1", "xdp-fwd/udp/w1", "rate", 0.8, False),
    ("l4lb dsr / testpmd macswap, cycles/packet", "xlb-l4lb-dsr/udp/w1", "testpmd-macswap/udp/w1",
     "cycles", 1.2, True),
    ("l4lb dsr, idle: poll / testpmd macswap", "xlb-l4lb-dsr-poll/udp/w1", "testpmd-macswap/udp/w1",
     "rate", None, False),
    ("l4lb dsr, idle: poll / iptables DNAT, 100k flows", "xlb-l4lb-dsr-poll/udp/w1", "iptables-dnat/udp/w1",
     "rate", None, False),
    ("l4lb dsr / iptables DNAT, 100k flows", "xlb-l4lb-dsr/udp/w1", "iptables-dnat/udp/w1", "rate", 2.0,
     False),
    ("l4lb nat / iptables DNAT, 100k flows", "xlb-l4lb-nat/udp/w1", "iptables-dnat/udp/w1", "rate", None,
     False),
    ("xlb macswap / testpmd macswap", "xlb-macswap/udp/w1", "testpmd-macswap/udp/w1", "rate", None, False),
    ("testpmd macswap / xdp-fwd", "testpmd-macswap/udp/w1", "xdp-fwd/udp/w1", "rate", None, False),
    ("l4lb dsr / iptables DNAT, 100k flows, 2 workers (contention)", "xlb-l4lb-dsr/udp/w2",
     "iptables-dnat/udp/w2", "rate", 2.0, False),
    ("l4lb nat / iptables DNAT, 100k flows, 2 workers (contention)", "xlb-l4lb-nat/udp/w2",
     "iptables-dnat/udp/w2", "rate", None, False),
]


def zero_loss_record(case, dut, pipeline, mode, traffic, workers, found):
    """One case of the zero-loss run as one dict: its identity and what the search found
    (harness.search_zero_loss); prints a progress line on stderr."""
    line = {"case": case, "dut": dut, "pipeline": pipeline, "mode": mode, "traffic": traffic,
            "workers": int(workers), **found}
    cycles = found["cycles_per_packet"]
    print(f'  {case:<34} zero loss {found["zero_loss_pps"] / 1e6:.3f} Mpps'
          f'{" (generator-bound)" if found["generator_bound"] else ""}, '
          f'{"-" if cycles is None else f"{cycles:.0f}"} cycles/packet, {len(found["trials"])} trials',
          file=sys.stderr)
    return line


def zero_loss_ratios(cases):
    """The targets' ratios that this run's cases give: {name: {value, goal, met}}."""
    by_name = {c["case"]: c for c in cases}
    ratios = {}
    for name, top, bottom, what, goal, at_most in ZERO_LOSS_TARGETS:
        if top not in by_name or bottom not in by_name:
            continue
        key = "zero_loss_pps" if what == "rate" else "cycles_per_packet"
        a, b = by_name[top][key], by_name[bottom][key]
        if a is None or not b:
            continue
        value = a / b
        met = None if goal is None else (value <= goal if at_most else value >= goal)
        ratios[name] = {"value": value, "goal": goal, "at_most": at_most, "met": met}
    return ratios


def zero_loss_svg(cases, path):
    """Two bar charts side by side, a row per case: Mpps at zero loss (with a tick at the
    rate the case forwarded flat out) and cycles per packet at that rate."""
    width, left, bar, gap, panel = 980, 230, 14, 6, 330
    height = 64 + len(cases) * (bar + gap)
    colors = {"xlb": "#2b7bb9", "iptables": "#d95f02", "nftables": "#e6ab02", "testpmd": "#1b9e77",
              "xdp-fwd": "#7570b3"}
    top_rate = max([c["zero_loss_pps"] for c in cases] + [c["flat_out_forwarded_pps"] for c in cases] + [1]) / 1e6
    top_cycles = max([c["cycles_per_packet"] or 0 for c in cases] + [1])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13">Mpps at zero loss (tick: forwarded flat out)</text>',
           f'<text x="{left + panel + 60}" y="18" font-size="13">cycles per packet at that rate</text>']
    for i, c in enumerate(cases):
        y = 34 + i * (bar + gap)
        color = colors.get(c["dut"], "#777")
        rate, flat = c["zero_loss_pps"] / 1e6, c["flat_out_forwarded_pps"] / 1e6
        label = c["case"] + (" *" if c["workers"] == 2 else "")
        out.append(f'<text x="{left - 6}" y="{y + bar - 3}" text-anchor="end">{label}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{rate / top_rate * panel:.1f}" height="{bar}" fill="{color}"/>')
        x = left + flat / top_rate * panel
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar + 2}" stroke="black"/>')
        out.append(f'<text x="{left + max(rate, flat) / top_rate * panel + 4:.1f}" y="{y + bar - 3}">'
                   f'{rate:.3f}</text>')
        cycles = c["cycles_per_packet"]
        if cycles is not None:
            x0 = left + panel + 60
            out.append(f'<rect x="{x0}" y="{y}" width="{cycles / top_cycles * (panel - 40):.1f}" '
                       f'height="{bar}" fill="{color}"/>')
            out.append(f'<text x="{x0 + cycles / top_cycles * (panel - 40) + 4:.1f}" y="{y + bar - 3}">'
                       f'{cycles:.0f}</text>')
    out.append(f'<text x="{left}" y="{height - 8}">* 2 workers on the cores the generator and the sink '
               f'also use: contention, not scaling</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def number(value, spec, none="-"):
    """value formatted with spec, or `none` for None."""
    return none if value is None else format(value, spec)


def zero_loss_report(records, out_dir, machine, settings):
    """Writes zero-loss.json, zero-loss.md and zero-loss.svg under out_dir, reads them back
    (they must be well formed), prints zero-loss.md and returns the JSON content."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    by_name = {r["case"]: r for r in records}
    ratios = zero_loss_ratios(records)
    result = {"machine": machine, "settings": settings, "cases": records, "ratios": ratios}
    (out / "zero-loss.json").write_text(json.dumps(result, indent=2) + "\n")

    def versus(case, other):
        base = by_name.get(other)
        if not base or not base["zero_loss_pps"]:
            return "-"
        return f'{case["zero_loss_pps"] / base["zero_loss_pps"]:.2f}'

    lines = [f"Machine: {machine}. Zero-loss throughput (RFC 2544 §26.1): the highest offered rate of "
             f"udp 64 B over 100k flows whose {settings['trial_s']:g} s trial lost at most "
             f"{100 * settings['max_loss']:g} % of its packets, by binary search to within "
             f"{100 * settings['resolution']:g} % (at most {settings['max_trials']} trials per case; this "
             f"run took {settings['minutes']:g} minutes). Cycles per packet: the device under test's CPU "
             f"(its process, its receive queues' NAPI threads, and any softirq time on the generator's "
             f"core, which should be nil) over the trial's middle, divided by the packets it forwarded; "
             f"counted as {settings['cycles']}. veth interrupt coalescing: "
             f"{str(settings['coalesce_us']) + ' µs' if settings.get('coalesce_us') else 'off'}. "
             f"Sink: an XDP program on s0 counting and dropping "
             f"(perf/xdp_sink.c). Ratios from this run only.",
             "",
             "| case | zero-loss Mpps | cycles/packet | DUT CPU, cores (of it on the generator's core) | "
             "others on its cores | flat out: sent / forwarded Mpps, cycles/packet | trials | "
             "/ testpmd macswap | / xdp-fwd | / iptables DNAT |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in records:
        best = max((t for t in c["trials"] if t["passed"]), key=lambda t: t["tx_pps"], default=None)
        name = c["case"] + (" (contention)" if c["workers"] == 2 else "")
        rate = f'{c["zero_loss_pps"] / 1e6:.3f}' + (" (generator-bound)" if c["generator_bound"] else "")
        flat_out = (f'{c["flat_out_tx_pps"] / 1e6:.3f} / {c["flat_out_forwarded_pps"] / 1e6:.3f}, '
                    f'{number(c["flat_out_cycles_per_packet"], ".0f")}')
        elsewhere = number(best and best["dut_cpu_elsewhere"], ".2f")
        lines.append(f'| {name} | {rate} | {number(c["cycles_per_packet"], ".0f")} | '
                     f'{number(c["dut_cpu"], ".2f")} ({elsewhere}) | '
                     f'{number(best and best["others_cpu"], ".2f")} | {flat_out} | {len(c["trials"])} | '
                     f'{versus(c, "testpmd-macswap/udp/w1")} | {versus(c, "xdp-fwd/udp/w1")} | '
                     f'{versus(c, "iptables-dnat/udp/w" + str(c["workers"]))} |')
    lines += ["", "| ratio | value | goal |", "|---|---|---|"]
    for name, r in ratios.items():
        goal = "-" if r["goal"] is None else (("≤ " if r["at_most"] else "≥ ") + f'{r["goal"]:g}' +
                                              (" (met)" if r["met"] else " (not met)"))
        lines.append(f'| {name} | {r["value"]:.2f} | {goal} |')
    lines += ["", "Every trial (rate asked; sent, forwarded Mpps; loss; pass; DUT CPU; cycles/packet):", ""]
    for c in records:
        trials = "; ".join(
            f'{number(t["rate_pps"] / 1e6 if t["rate_pps"] else None, ".3f", "max")}: '
            f'{t["tx_pps"] / 1e6:.3f}, {t["forwarded_pps"] / 1e6:.3f}, '
            f'{100 * (t["loss_ratio"] or 0):.3f} %, {"pass" if t["passed"] else "fail"}'
            f'{"" if t["offered"] else " (generator short)"}, {t["dut_cpu"]:.2f}, '
            f'{number(t["cycles_per_packet"], ".0f")}'
            for t in c["trials"])
        lines.append(f'- {c["case"]}: {trials}')
    (out / "zero-loss.md").write_text("\n".join(lines) + "\n")
    zero_loss_svg(records, out / "zero-loss.svg")

    result = json.loads((out / "zero-loss.json").read_text())
    xml.dom.minidom.parse(str(out / "zero-loss.svg"))
    print((out / "zero-loss.md").read_text())
    return result
