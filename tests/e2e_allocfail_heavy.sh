#!/usr/bin/env bash
# End-to-end: allocation-failure injection over every allocation of every
# command (tests/alloc_sweep.sh full; some 7900 runs, about 4 minutes in the
# release build). Heavy: the sanitizer pass runs the short form
# (tests/e2e_allocfail.sh); docs/testing.md gives the full sweep under ASan.
set -euo pipefail
exec bash "$(dirname "$0")/alloc_sweep.sh" full
