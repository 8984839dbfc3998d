#!/usr/bin/env bash
# Installs what the tests need, then runs every test: unit, property, pipeline
# fixtures, and the network-namespace end-to-end tests (these need root and fail
# loudly without it).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

if [[ $(id -u) -ne 0 ]]; then
  echo "test: the netns end-to-end tests need root and will fail without it" >&2
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
# Property tests draw from a fixed seed in CI, so a run is repeatable; set
# PROPTEST_RNG_SEED yourself to explore other inputs.
export PROPTEST_RNG_SEED=${PROPTEST_RNG_SEED:-20261126}
# Benches run once each, as tests. The dev profile is optimised (Cargo.toml).
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --all-targets --no-fail-fast 2>&1 | tee "$log"
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
# A bounded run of every cargo-fuzz target (nightly; scripts/fuzz.sh installs it), from
# the committed seeds: FUZZ_SECONDS each, 20 unless set.
./scripts/fuzz.sh
