#!/usr/bin/env bash
# End-to-end: allocation-failure injection, the short form: every allocation of
# mtrc on models/retrieval_only.mtr, and about 40 failing allocations of each
# other command, spread over its range (tests/alloc_sweep.sh says what is
# checked). tests/e2e_allocfail_heavy.sh sweeps every allocation of every one.
set -euo pipefail
exec bash "$(dirname "$0")/alloc_sweep.sh" short
