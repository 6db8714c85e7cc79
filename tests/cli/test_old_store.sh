#!/usr/bin/env bash
# A store written before the run/metrics keys of src/store/store_keys.h (tests/ref/store/old_store,
# see its README) through the real binary: read-only commands read it as it is (`ls runs`,
# `info RUN`, `ls results`, store unchanged); the first write opens migrate it (meta format 2)
# and am.runs / am.run_info / am.run_metrics, `ls results` and `amalgam resume` of its stopped
# run work on the result.
# usage: test_old_store.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_oldstore
mkdir -p "$AMALGAM_STORE" && cp "$T/ref/store/old_store/data.mdb" "$AMALGAM_STORE/"
cd "$T"   # the runs' task data paths are relative to tests/
done_id=fx-done-20261207000300-5f7de1
stop_id=fx-stopped-20261207000300-06b5a2

before=$(store_state)
expect "ls runs reads the old layout" 0 "^$done_id +done +6/6 .* [0-9a-f]{12}$|^$stop_id +stopped +3/6" "$AM" ls runs
[ "$(grep -c '^fx-' "$W/out")" = 2 ] && ok "ls runs: two runs, no state keys" || bad "ls runs: not two runs"
expect "info RUN summary from the old layout" 0 "^status +done, step 6 of 6|^tasks +1 pairs .* final loss [0-9.]+ \(step 5\)|^ +2 sts .* final loss [0-9.]+ \(step 6\)|^metrics +6 steps stored|fx-done  \(final\)" \
  "$AM" info fx-done-2
expect "info RUN --json: the old record" 0 "\"status\":[[:space:]]*\"done\"|\"steps\":[[:space:]]*6" "$AM" info "$done_id" --json
expect "ls results reads the old store" 0 "^fx-done +[0-9a-f]{12} sts:ref/store/sts.tsv .* cosine_spearman" "$AM" ls results
expect "info MODEL names the run" 0 "^run +$done_id  \(step 6 of its 6; run done" "$AM" info fx-done
[ "$(store_state)" = "$before" ] && ok "read-only commands leave the old store as it is" || bad "a read-only command changed the store"
mdb_dump -p -s meta "$AMALGAM_STORE" | grep -q "format\":1" && ok "still format 1" || bad "not format 1 before a write"

cat >"$W/check.lua" <<'LUA'
local am = require "amalgam"
local runs = am.runs()
assert(#runs == 2, "two runs, got " .. #runs)
local r = assert(am.run_info(args.done))
assert(r.status == "done" and r.step == 6 and r.format == 1 and r.models.final, "the done run's record")
local m = am.run_metrics(args.done)
assert(#m == 6 and m[1].step == 1 and m[6].step == 6 and m[6].loss, "six metrics rows")
assert(#am.run_metrics(args.done, { after = 4 }) == 2, "metrics after step 4")
assert(#am.run_metrics(args.stopped) == 3, "the stopped run's metrics")
assert(am.raw_run_state(am.store.default(), args.stopped, "state"), "the stopped run's trainer state")
print("old runs ok", #runs, #m)
LUA
expect "am.runs / run_info / run_metrics after the migration" 0 "^old runs ok.2.6$|moved to format 2" \
  "$AM" run "$W/check.lua" done="$done_id" stopped="$stop_id"
mdb_dump -p -s meta "$AMALGAM_STORE" | grep -q "format\":2" && ok "migrated to format 2" || bad "not format 2 after a write"
mdb_dump -p -s runs "$AMALGAM_STORE" | grep -q "/state" && bad "an old state key is left" || ok "no old state keys"
expect "ls results after the migration" 0 "^fx-done +[0-9a-f]{12} sts:ref/store/sts.tsv" "$AM" ls results
expect "ls runs after the migration" 0 "^$done_id +done +6/6|^$stop_id +stopped +3/6" "$AM" ls runs
expect "amalgam resume continues the old stopped run" 0 "^run $stop_id done at step 6 of 6; model [0-9a-f]{12}$" \
  "$AM" resume fx-stopped
expect "info RUN after resume" 0 "^status +done, step 6 of 6, resumed 1 time|^metrics +6 steps stored|fx-stopped  \(final\)" \
  "$AM" info "$stop_id"
expect_fail "resume of a done run" "resume: run '$done_id' is already done" "$AM" resume "$done_id"
expect_fail "resume of an unknown run" "unknown run 'nope'" "$AM" resume nope
expect_fail "resume needs a run" "usage: amalgam resume RUN" "$AM" resume
am_test_finish
