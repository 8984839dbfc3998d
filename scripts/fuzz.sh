#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time and fails if any crashes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target: the first argument if it is a number, else $FUZZ_SECONDS, else 20.
# TARGETs: the named ones, else every target `cargo fuzz list` knows. Installs the nightly
# toolchain and cargo-fuzz when they are missing. Each target starts from its committed
# seeds (fuzz/corpus/TARGET, never written) plus what earlier runs found
# (fuzz/target/corpus/TARGET, git-ignored); a crash leaves its input in
# fuzz/artifacts/TARGET/ and its log in fuzz/target/logs/TARGET.log. Reproduce one with
# `cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...`, shrink it with
# `cargo +nightly fuzz tmin TARGET fuzz/artifacts/TARGET/crash-...`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-20}
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for every target, so that the timed runs do not compile.
cargo +nightly fuzz build

mkdir -p fuzz/target/logs
failed=0
summary=()
for target in "${targets[@]}"; do
  work=fuzz/target/corpus/$target
  seeds=fuzz/corpus/$target
  log=fuzz/target/logs/$target.log
  mkdir -p "$work"
  corpora=("$work")
  [[ -d $seeds ]] && corpora+=("$seeds")
  echo "fuzz: $target for ${seconds}s" >&2
  # New inputs go to the first corpus directory, so the committed seeds stay as they are.
  # -timeout: one input running this long is a hang, reported like a crash.
  if cargo +nightly fuzz run "$target" "${corpora[@]}" -- \
    -max_total_time="$seconds" -timeout=25 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    artifact=$(sed -n 's/.*Test unit written to \([^ ]*\).*/\1/p' "$log" | head -n 1)
    result="FAILED: ${artifact:-see $log}"
    failed=1
    tail -n 40 "$log" >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  summary+=("$(printf '%-14s %10s execs %8s exec/s  %s' "$target" "${runs:-?}" "${rate:-?}" "$result")")
done

printf 'fuzz: %s\n' "${summary[@]}"
exit "$failed"
