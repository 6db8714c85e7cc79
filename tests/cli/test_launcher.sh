#!/usr/bin/env bash
# The ./amalgam launcher on a tiny stand-in project (its own CMakeLists.txt and one C file, so no
# full rebuild): an up-to-date build costs no cmake and no dpkg-query call; any source edit (also one
# with an older mtime, a new file, a failed build) rebuilds; a copied or moved checkout whose build/
# was configured elsewhere reconfigures and builds its own sources.
# usage: test_launcher.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_launcher
LAUNCHER="$T/../amalgam"

# cmake and dpkg-query wrappers that log their calls (dpkg-query answers "installed" for all)
mkdir -p "$W/bin"
real_cmake=$(command -v cmake)
printf '#!/bin/sh\necho "cmake $*" >>"%s/calls"\nexec %s "$@"\n' "$W" "$real_cmake" >"$W/bin/cmake"
printf '#!/bin/sh\necho "dpkg-query $*" >>"%s/calls"\nprintf "install ok installed"\n' "$W" >"$W/bin/dpkg-query"
chmod +x "$W/bin/cmake" "$W/bin/dpkg-query"
export PATH="$W/bin:$PATH"

P="$W/p"
mkdir -p "$P/src" "$P/lua" "$P/tests" "$P/store/cache"
cp "$LAUNCHER" "$P/amalgam"
echo x >"$P/store/cache/bert-base-uncased-vocab.txt"
cat >"$P/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(mini C)
file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/*.c)
add_executable(amalgam ${srcs})
target_compile_definitions(amalgam PRIVATE ROOT="${CMAKE_SOURCE_DIR}")
CM
say() { printf '#include <stdio.h>\nconst char *msg(void);\nint main(void) { printf("%%s %%s\\n", msg(), ROOT); return 0; }\nconst char *msg(void) { return "%s"; }\n' "$1" >"$P/src/main.c"; }
say v1
calls() { cat "$W/calls" 2>/dev/null; }
# run DIR ARGS...: the launcher in DIR with a fresh call log; output in $W/out, $W/err
run() { local d="$1"; shift; rm -f "$W/calls"; "$d/amalgam" "$@" >"$W/out" 2>"$W/err"; }

run "$P"
grep -qx "v1 $P" "$W/out" && ok "first run configures, builds, runs" || bad "first run"
calls | grep -q '^dpkg-query' && ok "first run checks the packages" || bad "first run checks the packages"

run "$P"
grep -qx "v1 $P" "$W/out" && [ -z "$(calls)" ] && ok "up to date: no cmake, no dpkg-query" ||
  bad "up to date: no cmake, no dpkg-query ($(calls | tr '\n' ';'))"

mkdir -p "$P/tests/__pycache__" && touch "$P/tests/__pycache__/gen.cpython-311.pyc"
run "$P"
[ -z "$(calls)" ] && ok "a __pycache__ under tests/ is not a source" || bad "__pycache__ ($(calls | tr '\n' ';'))"

run "$P" bench
[ "$(calls | grep -c '^dpkg-query')" = 2 ] && calls | grep -q 'python3-torch' && ! calls | grep -q '^cmake' &&
  ok "a longer package list checks only the new packages" || bad "new packages ($(calls | tr '\n' ';'))"
run "$P" bench
[ -z "$(calls)" ] && ok "... and remembers them" || bad "... and remembers them ($(calls | tr '\n' ';'))"

say v2
run "$P"
grep -qx "v2 $P" "$W/out" && ok "an edited source is rebuilt" || bad "an edited source is rebuilt"

say v3; touch -d '2001-01-01' "$P/src/main.c"
run "$P"
grep -qx "v3 $P" "$W/out" && ok "an edit with an older mtime is rebuilt" || bad "an edit with an older mtime"

sed -i 's/return "v3"/return other()/; s/^const char \*msg(void);/&\nconst char *other(void);/' "$P/src/main.c"
echo 'const char *other(void); const char *other(void) { return "v4"; }' >"$P/src/other.c"
run "$P"
grep -qx "v4 $P" "$W/out" && ok "a new source file is built" || bad "a new source file is built"

echo 'syntax error' >>"$P/src/other.c"
run "$P"; rc=$?
[ "$rc" != 0 ] && grep -q 'build failed' "$W/err" && ok "a failed build stops" || bad "a failed build stops (exit $rc)"
sed -i '$d' "$P/src/other.c"; touch -d '2001-01-01' "$P/src/other.c"
run "$P"
grep -qx "v4 $P" "$W/out" && ok "after a failed build, the next run builds again" || bad "after a failed build"

rm "$P/build/amalgam"
run "$P"
grep -qx "v4 $P" "$W/out" && ok "a deleted binary is rebuilt" || bad "a deleted binary is rebuilt"

# a copy (cp -a keeps build/ and its CMakeCache.txt pointing at $P)
cp -a "$P" "$W/q"
run "$W/q"
grep -qx "v4 $W/q" "$W/out" && grep -q 'reconfiguring' "$W/err" && ok "a copied checkout reconfigures" ||
  bad "a copied checkout reconfigures"
grep -q "^CMAKE_HOME_DIRECTORY:INTERNAL=$W/q\$" "$W/q/build/CMakeCache.txt" && ok "... for its own root" ||
  bad "... for its own root"
sed -i 's/"v4"/"copy"/' "$W/q/src/other.c"
run "$W/q"
grep -qx "copy $W/q" "$W/out" && ok "... and builds its own sources" || bad "... and builds its own sources"
run "$P"
grep -qx "v4 $P" "$W/out" && [ -z "$(calls)" ] && ok "the original is untouched and up to date" ||
  bad "the original is untouched ($(calls | tr '\n' ';'))"

mv "$W/q" "$W/r"
run "$W/r"
grep -qx "copy $W/r" "$W/out" && grep -q 'reconfiguring' "$W/err" && ok "a moved checkout reconfigures" ||
  bad "a moved checkout reconfigures"

am_test_finish
