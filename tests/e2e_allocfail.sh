#!/usr/bin/env bash
# End-to-end: allocation-failure injection, the short form (about 40 failing
# allocations per command, spread over its range; tests/alloc_sweep.sh says
# what is checked). tests/e2e_allocfail_heavy.sh sweeps every allocation.
set -euo pipefail
exec bash "$(dirname "$0")/alloc_sweep.sh" short
