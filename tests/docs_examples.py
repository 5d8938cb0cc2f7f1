#!/usr/bin/env python3
"""Runs the shell examples of Markdown files and compares their output with
the output the files show (tests/e2e_docs_heavy.sh runs it on README.md and
docs/*.md).

The convention (docs/cli.md, "Examples in these docs"): a fenced code block
right after a line `<!-- example -->` is an example. In it, a line starting
with `$ ` is a command (continued by a line ending in `\\`, or by lines that
start with the shell's continuation prompt `> `); the lines after a
command, up to the next one, are its expected output, stdout and stderr
together, as a terminal shows them. In an expected line, `...` matches any
text; a line that is only `...` matches any number of lines. A command must
exit with status 0 unless the block's marker is `<!-- example: fails -->`, in
which case its last command must fail.

The commands of one file run in order in one bash process (so `cd` and
`export` carry over), and the files one after the other, in one scratch
folder holding the links `build`, `models`, `examples`, `python`, `scripts`,
`docs` to the tree and `data` (with `data/ml-100k`).

    docs_examples.py SRC_DIR BUILD_DIR FILE.md...
"""

import os
import re
import subprocess
import sys
import tempfile

MARK = re.compile(r"^<!--\s*example(:\s*fails)?\s*-->\s*$")


def parse(path):
    """Yields (line number, commands [(cmd, expected lines)], fails)."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        fails = bool(m.group(1))
        i += 1
        if i >= len(lines) or not lines[i].startswith("```"):
            raise SystemExit("%s:%d: an example marker must be followed by a code block"
                             % (path, i))
        start = i + 1
        i += 1
        cmds = []
        while i < len(lines) and not lines[i].startswith("```"):
            line = lines[i]
            if line.startswith("$ "):
                cmd = line[2:]
                while cmd.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    cmd = cmd + "\n" + lines[i]
                cmds.append((cmd, [], i + 1))
            elif cmds and not cmds[-1][1] and line.startswith("> "):
                # the shell's continuation prompt: a command over several lines
                c, out, ln = cmds[-1]
                cmds[-1] = (c + "\n" + line[2:], out, ln)
            elif cmds:
                cmds[-1][1].append(line)
            elif line.strip():
                raise SystemExit("%s:%d: output before any command" % (path, i + 1))
            i += 1
        if not cmds:
            raise SystemExit("%s:%d: an example without a command" % (path, start))
        yield start, cmds, fails
        i += 1


def matches(expected, got):
    """Does got (a list of lines) match the expected lines, with ... wildcards?"""
    def line_re(e):
        return re.compile("^" + ".*".join(re.escape(p) for p in e.split("...")) + "$")

    memo = {}

    def go(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(expected):
            r = j == len(got)
        elif expected[i] == "...":
            r = any(go(i + 1, k) for k in range(j, len(got) + 1))
        else:
            r = j < len(got) and bool(line_re(expected[i]).match(got[j])) and go(i + 1, j + 1)
        memo[(i, j)] = r
        return r

    return go(0, 0)


def run_file(src, build, path, work):
    blocks = list(parse(path))
    if not blocks:
        print("%s: no examples (a file named to the test must have some)" % path)
        return 1, 0
    script = ["set -u", "cd %s" % sh(work)]
    n = 0
    for _, cmds, _ in blocks:
        for cmd, _, _ in cmds:
            script.append("{\n%s\n} >%s/out.%d 2>&1 </dev/null; echo $? >%s/rc.%d"
                          % (cmd, sh(work), n, sh(work), n))
            n += 1
    res = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True)
    if res.returncode != 0:
        print("%s: the examples' shell failed: %s" % (path, res.stderr))
        return 1, n
    failures = 0
    n = 0
    for start, cmds, fails in blocks:
        for k, (cmd, expected, line) in enumerate(cmds):
            out = open(os.path.join(work, "out.%d" % n), encoding="utf-8",
                       errors="replace").read()
            rc = int(open(os.path.join(work, "rc.%d" % n)).read())
            n += 1
            got = out.split("\n")
            if got and got[-1] == "":
                got.pop()
            while expected and expected[-1] == "":
                expected = expected[:-1]
            want_fail = fails and k == len(cmds) - 1
            problem = None
            if want_fail and rc == 0:
                problem = "exited 0, the example says it fails"
            elif not want_fail and rc != 0:
                problem = "exited %d" % rc
            elif expected and not matches(expected, got):
                problem = "output differs"
            if problem:
                failures += 1
                print("%s:%d: $ %s\n  %s; expected:\n%s\n  got:\n%s" % (
                    os.path.relpath(path, src), line, cmd, problem,
                    "\n".join("    " + e for e in expected),
                    "\n".join("    " + g for g in got)))
    return failures, n


def sh(s):
    return "'" + s.replace("'", "'\\''") + "'"


def main(argv):
    src, build, files = argv[0], argv[1], argv[2:]
    work = tempfile.mkdtemp(prefix="mtr-docs.")
    for name, target in [("build", build), ("models", "models"), ("examples", "examples"),
                         ("python", "python"), ("scripts", "scripts"), ("docs", "docs")]:
        os.symlink(os.path.join(src, target), os.path.join(work, name))
    if os.environ.get("MTR_DOCS_DATA"):  # data/ml-100k, as scripts/get-data leaves it
        os.symlink(os.environ["MTR_DOCS_DATA"], os.path.join(work, "data"))
    total_fail = total = 0
    try:
        for f in files:
            failed, n = run_file(src, build, f, work)
            print("%s: %d example commands, %d failed" % (os.path.relpath(f, src), n, failed))
            total_fail += failed
            total += n
    finally:
        subprocess.run(["rm", "-rf", work])
    print("docs examples: %d commands, %d failed" % (total, total_fail))
    return 1 if total_fail or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
