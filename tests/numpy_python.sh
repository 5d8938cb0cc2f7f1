#!/usr/bin/env bash
# Prints the path of a python3 that has NumPy ("python3" on the PATH, else the
# system's /usr/bin/python3), or prints nothing and exits 1. For the tests
# that need NumPy (e2e_python.sh, e2e_docs_heavy.sh).
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import numpy' 2>/dev/null; then
    command -v "$cand"
    exit 0
  fi
done
exit 1
