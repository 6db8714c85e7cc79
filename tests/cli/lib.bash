# lib.bash - shared helpers of the CLI test scripts (sourced; not a test itself: the CMake loop
# registers tests/cli/*.sh only).
#   am_test_init PREFIX   temp dir $W (removed on exit), a fresh store in $W/store, counters
#   ok NAME / bad NAME    count a pass / a failure (a failure prints $W/out and $W/err)
#   expect NAME CODE PATTERNS CMD...   exit code CODE and output matching every |-separated ERE
#   expect_fail NAME PATTERN CMD...    non-zero exit and stderr matching PATTERN
#                                      (case-insensitive unless EXPECT_FAIL_FLAGS is set to "")
#   store_state           checksum of the whole store (mdb_dump), to show it did not change
#   am_test_finish        prints "N passed, N failed"; the script's exit status
am_test_init() {
  W=$(mktemp -d "/tmp/$1_XXXXXX")
  trap 'rm -rf "$W"' EXIT
  export AMALGAM_STORE="$W/store"
  unset AMALGAM_LUA_PATH
  pass=0; fail=0
}
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; for f in "$W/out" "$W/err"; do [ -f "$f" ] && sed 's/^/    /' "$f" | head -20; done; }
store_state() { mdb_dump -a "$AMALGAM_STORE" 2>/dev/null | md5sum; }
expect() {
  local name="$1" code="$2" pats="$3"; shift 3
  "$@" >"$W/out" 2>"$W/err"; local rc=$?
  if [ "$rc" != "$code" ]; then bad "$name (exit $rc, want $code)"; return; fi
  local IFS='|'
  for p in $pats; do
    if ! cat "$W/out" "$W/err" | grep -qE -- "$p"; then bad "$name (output lacks /$p/)"; return; fi
  done
  ok "$name"
}
expect_fail() {
  local name="$1" pat="$2"; shift 2
  if "$@" >"$W/out" 2>"$W/err"; then bad "$name (exit 0)"; return; fi
  # shellcheck disable=SC2086 # the flags are words
  if grep -qE ${EXPECT_FAIL_FLAGS--i} -- "$pat" "$W/err"; then ok "$name"; else bad "$name (message lacks /$pat/)"; fi
}
am_test_finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
}
