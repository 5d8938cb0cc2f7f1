#!/usr/bin/env bash
# End-to-end: e2e_control.sh over every model of models/ (each compiles,
# trains on MovieLens 100K with validation and early stopping, and serves).
set -euo pipefail
src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
MTR_CONTROL_MODELS=all exec bash "$src/tests/e2e_control.sh"
