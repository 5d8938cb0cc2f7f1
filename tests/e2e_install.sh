#!/usr/bin/env bash
# End-to-end: `cmake --install` into a temporary prefix gives what a user of
# the library needs, and a program built against it serves a model as mtrun
# does. Checks: mtrc, mtrun, libmtr.so (with its soname) and libmtr.a, mtr.h,
# mtr.pc and the man pages are installed; examples/c builds with
# `pkg-config --cflags --libs mtr` alone; it recommends the same items with
# the same scores as `mtrun recommend`, and predicts what `mtrun predict`
# prints; the installed mtrun runs; the shared library exports only mtr.h's
# functions.
# Data: the planted set of tests/gen_planted.sh (a few seconds).
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (the build's bin folder).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
build="$(cd "$bin/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
command -v pkg-config >/dev/null || { echo "e2e_install: no pkg-config: skipped"; exit 77; }
failures=0
fail() {
  echo "e2e_install: FAIL: $*" >&2
  failures=$((failures + 1))
}

prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log"
libdir="$(dirname "$(find "$prefix" -name mtr.pc | head -n 1)")/.."
for f in bin/mtrc bin/mtrun include/mtr.h share/man/man1/mtrc.1 share/man/man1/mtrun.1 \
  share/man/man5/mtr.5; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
for f in libmtr.a libmtr.so pkgconfig/mtr.pc; do
  [ -e "$libdir/$f" ] || fail "lib/$f is not installed"
done
soname="$(readelf -d "$libdir/libmtr.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[[ "$soname" =~ ^libmtr\.so\.[0-9]+$ ]] || fail "libmtr.so has soname '$soname'"
[ -e "$libdir/$soname" ] || fail "no $soname beside libmtr.so"
# Only the API is exported: every defined dynamic symbol is declared in mtr.h.
nm -D --defined-only "$libdir/libmtr.so" | awk '$2 == "T" {print $3}' >"$tmp/exported"
[ -s "$tmp/exported" ] || fail "libmtr.so exports nothing"
while read -r sym; do
  grep -q "\b$sym(" "$prefix/include/mtr.h" || fail "libmtr.so exports $sym, which mtr.h does not declare"
done <"$tmp/exported"
for page in man1/mtrc.1 man1/mtrun.1 man5/mtr.5; do
  grep -q '^\.TH' "$prefix/share/man/$page" || fail "$page is not a man page"
  if command -v groff >/dev/null; then
    warnings="$(groff -man -ww -z "$prefix/share/man/$page" 2>&1)"
    [ -z "$warnings" ] || fail "$page: groff warns: $warnings"
  fi
done
# The man pages stay true: every option --help lists is in them.
for tool in mtrc mtrun; do
  for flag in $("$prefix/bin/$tool" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
    grep -qF -- "$(printf '%s' "$flag" | sed 's/-/\\-/g')" "$prefix/share/man/man1/$tool.1" ||
      fail "$tool --help lists $flag, which $tool.1 does not"
  done
done

# Build the example with pkg-config alone (the sanitizer build's library
# needs its runtime in the program too).
export PKG_CONFIG_PATH="$libdir/pkgconfig"
extra=()
if grep -q '^MTR_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  extra=("-fsanitize=address,undefined")
fi
# shellcheck disable=SC2046
cc -std=c17 -Wall -Wextra -Werror "${extra[@]}" "$src/examples/c/recommend.c" \
  $(pkg-config --cflags --libs mtr) -o "$tmp/recommend" || { fail "examples/c does not build"; exit 1; }

# The header stands alone, in strict C99 and in C++.
printf '#include <mtr.h>\nint main(void) { return mtr_version() == 0; }\n' >"$tmp/h.c"
# shellcheck disable=SC2046
cc -std=c99 -pedantic -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags mtr) "$tmp/h.c" ||
  fail "mtr.h is not strict C99"
if command -v c++ >/dev/null; then
  cp "$tmp/h.c" "$tmp/h.cpp"
  # shellcheck disable=SC2046
  c++ -std=c++11 -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags mtr) "$tmp/h.cpp" ||
    fail "mtr.h does not compile as C++"
fi

# And statically: libmtr.a with what `pkg-config --static` adds.
# shellcheck disable=SC2046
cc -std=c17 "${extra[@]}" "$src/examples/c/recommend.c" $(pkg-config --static --cflags mtr) \
  "$libdir/libmtr.a" $(pkg-config --static --libs mtr | sed 's/-lmtr\b//') -o "$tmp/recommend-static" ||
  fail "examples/c does not link statically"

"$src/tests/gen_planted.sh" "$tmp/p" 7 >/dev/null
"$prefix/bin/mtrc" "$tmp/p/planted.mtr" -o "$tmp/model.bin"
"$prefix/bin/mtrun" "$tmp/model.bin" --data "$tmp/p/data" --quiet -o "$tmp/trained.bin" >/dev/null

for user in user_01 user_42; do
  LD_LIBRARY_PATH="$libdir" "$tmp/recommend" "$tmp/trained.bin" "$user" 7 >"$tmp/ex.out" ||
    { fail "examples/c failed for $user"; continue; }
  "$prefix/bin/mtrun" "$tmp/trained.bin" recommend --user "$user" -k 7 >"$tmp/mtrun.out"
  grep -v '^#' "$tmp/ex.out" | head -n 7 >"$tmp/ex.rec"
  cmp -s "$tmp/ex.rec" "$tmp/mtrun.out" || {
    fail "examples/c recommends other items than mtrun for $user:"
    diff "$tmp/ex.rec" "$tmp/mtrun.out" >&2 || true
  }
  top="$(head -n 1 "$tmp/mtrun.out" | cut -f 3)"
  "$prefix/bin/mtrun" "$tmp/trained.bin" predict --user "$user" --item "$top" >"$tmp/mtrun.pred"
  grep -v '^#' "$tmp/ex.out" | tail -n +8 >"$tmp/ex.pred"
  cmp -s "$tmp/ex.pred" "$tmp/mtrun.pred" || {
    fail "examples/c predicts otherwise than mtrun for $user:"
    diff "$tmp/ex.pred" "$tmp/mtrun.pred" >&2 || true
  }
done
if [ -x "$tmp/recommend-static" ]; then
  "$tmp/recommend-static" "$tmp/trained.bin" user_42 7 >"$tmp/static.out" || fail "the static build failed"
  LD_LIBRARY_PATH="$libdir" "$tmp/recommend" "$tmp/trained.bin" user_42 7 >"$tmp/shared.out" || true
  cmp -s "$tmp/static.out" "$tmp/shared.out" || fail "the static and shared builds differ"
fi
# An error is a message and a status, not a crash.
if LD_LIBRARY_PATH="$libdir" "$tmp/recommend" "$tmp/trained.bin" nobody 2>"$tmp/err" >/dev/null; then
  fail "an unknown user is not an error"
fi
grep -q "unknown user_id 'nobody'" "$tmp/err" || fail "unknown user message: $(cat "$tmp/err")"

if [ "$failures" -ne 0 ]; then
  echo "e2e_install: $failures failures" >&2
  exit 1
fi
echo "e2e_install: ok"
