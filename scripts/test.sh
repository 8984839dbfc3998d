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
# Release: the tests drive the binary that ships. Benches run once each, as tests.
cargo test --release --locked --all-targets
cargo test --release --locked --doc
