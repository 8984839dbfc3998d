//! The perf harness's smoke run, as root: `perf/harness.py --smoke` builds the generator
//! -> device under test -> sink namespaces, runs a second or so per case with this build's
//! `xlb` and with DPDK testpmd (macswap as a device under test, txonly as a generator to
//! compare `xlb pktgen` with), plus a short SCTP INIT flood with real usrsctp associations
//! through xlb, and fails unless every case moves packets, the flood's two transfers
//! complete and the result files are well formed; then `--smoke --zero-loss`, a three-trial
//! zero-loss search on one case (a few seconds), which must move packets in every trial and
//! write its result files. No timing is asserted. Needs `dpdk-testpmd`, usrsctp's `tsctp`
//! and a C compiler (`scripts/setup.sh` installs them).

use std::process::Command;

/// Panics with a clear message unless the test runs as root.
fn require_root() {
    let uid = Command::new("id").arg("-u").output().expect("run `id -u`");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the perf smoke run needs root (network namespaces, XDP, AF_XDP): run it as root, \
         e.g. `sudo -E cargo test --test perf_smoke`"
    );
}

#[test]
fn perf_harness_smoke_run_moves_packets_in_every_case() {
    require_root();
    let out_dir = std::env::temp_dir().join(format!("xlb-perf-smoke-{}", std::process::id()));
    let out = Command::new("perf/harness.py")
        .args(["--smoke", "--out"])
        .arg(&out_dir)
        .env("XLB_BIN", env!("CARGO_BIN_EXE_xlb"))
        .env("PERF_PREFIX", format!("xps{}", std::process::id()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run perf/harness.py (needs /usr/bin/python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "perf/harness.py --smoke failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("moved packets; result files are well formed"),
        "{stdout}"
    );
    let results = std::fs::read_to_string(out_dir.join("results.json")).expect("results.json");
    let results: serde_json::Value = serde_json::from_str(&results).expect("results.json is JSON");
    let cases = results["cases"].as_array().expect("a list of cases");
    for name in [
        "xlb-l4lb-dsr/udp/w1",
        "testpmd-macswap/udp/w1",
        "pktgen-tx/udp-1flow/w1",
        "testpmd-txonly/udp-1flow/w1",
        "xlb-l4lb-dsr-sctp-flood/sctp-init/w1",
    ] {
        assert!(
            cases.iter().any(|case| case["case"] == name),
            "no {name} in {results}"
        );
    }
    for case in cases {
        let rate = case["rate_pps"]["median"].as_f64().unwrap_or(0.0);
        assert!(rate > 0.0, "{} moved no packets", case["case"]);
    }
    for ratio in [
        "l4lb/testpmd-macswap udp w1",
        "xlb-macswap/testpmd-macswap udp w1",
        "pktgen/testpmd-txonly tx",
    ] {
        assert!(
            results["ratios"][ratio].as_f64().is_some(),
            "no ratio {ratio} in {results}"
        );
    }
    let floods = results["sctp_flood"]
        .as_array()
        .expect("an sctp_flood list");
    assert_eq!(floods.len(), 1, "{results}");
    for rep in floods[0]["reps"]
        .as_array()
        .expect("the flood's repetitions")
    {
        assert!(
            rep["flood_tx_packets"].as_u64().unwrap_or(0) > 0,
            "the flood sent nothing: {rep}"
        );
        assert!(
            rep["xlb_rx_pps"].as_f64().unwrap_or(0.0) > 0.0,
            "the flood never reached xlb: {rep}"
        );
        assert_eq!(
            rep["existing_completed"], true,
            "the existing association did not complete: {rep}"
        );
        assert_eq!(
            rep["new_completed"], true,
            "the association started mid-flood did not complete: {rep}"
        );
    }
    let markdown = std::fs::read_to_string(out_dir.join("results.md")).expect("results.md");
    assert!(markdown.contains("| xlb-l4lb-dsr/udp/w1 |"), "{markdown}");
    assert!(markdown.contains("## SCTP INIT flood"), "{markdown}");
    let svg = std::fs::read_to_string(out_dir.join("mpps.svg")).expect("mpps.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_dir_all(&out_dir);

    zero_loss_smoke_run_searches_and_writes_its_results();
}

/// `perf/harness.py --smoke --zero-loss`: the search's trials move packets and its result
/// files are well formed (run after the smoke run above, never beside it: both need the cores).
fn zero_loss_smoke_run_searches_and_writes_its_results() {
    let out_dir = std::env::temp_dir().join(format!("xlb-perf-zero-loss-{}", std::process::id()));
    let out = Command::new("perf/harness.py")
        .args(["--smoke", "--zero-loss", "--out"])
        .arg(&out_dir)
        .env("XLB_BIN", env!("CARGO_BIN_EXE_xlb"))
        .env("PERF_PREFIX", format!("xpz{}", std::process::id()))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run perf/harness.py --zero-loss");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stdout.contains("trials that moved packets; result files are well formed"),
        "perf/harness.py --smoke --zero-loss failed:\n{stdout}\n{stderr}"
    );
    let results = std::fs::read_to_string(out_dir.join("zero-loss.json")).expect("zero-loss.json");
    let results: serde_json::Value =
        serde_json::from_str(&results).expect("zero-loss.json is JSON");
    let case = &results["cases"][0];
    assert_eq!(case["case"], "xlb-l4lb-dsr/udp/w1", "{results}");
    let trials = case["trials"].as_array().expect("a list of trials");
    assert!(!trials.is_empty(), "{results}");
    for trial in trials {
        assert!(
            trial["tx_packets"].as_u64().unwrap_or(0) > 0,
            "a trial sent nothing: {trial}"
        );
    }
    let markdown = std::fs::read_to_string(out_dir.join("zero-loss.md")).expect("zero-loss.md");
    assert!(markdown.contains("| xlb-l4lb-dsr/udp/w1 |"), "{markdown}");
    let svg = std::fs::read_to_string(out_dir.join("zero-loss.svg")).expect("zero-loss.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let _ = std::fs::remove_dir_all(&out_dir);
}
