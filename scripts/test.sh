#!/usr/bin/env bash
# Installs what the tests need, then runs every test: unit, property, pipeline
# fixtures, and the network-namespace end-to-end tests (these need root and fail
# loudly without it).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --release --locked
cargo test --release --locked --all-targets
cargo test --release --locked --doc
