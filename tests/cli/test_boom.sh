#!/usr/bin/env bash
# CLI tests of the BOOM recipes (recipes/boom_bagging.lua, recipes/boom_incremental.lua), of
# recipes/self_positioning.lua, and
# am.train's per-task `sample` option, on a toy store (two tiny pair datasets and one graded one,
# a few steps): each recipe runs end to end, the samples' provenance is in the run records, a
# rerun keeps the members (and the cached core subset), bad parameters fail up front (exit 2,
# store unchanged).
# usage: test_boom.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
R="$T/../recipes"
source "$(dirname "$0")/lib.bash"
am_test_init am_boom

"$AM" init-model --config tiny --name base --seed 7 >/dev/null 2>"$W/err" || bad "init-model for the toy store"
"$AM" run "$T/cli/toy_datasets.lua" dir="$W" rows=40 >/dev/null 2>"$W/err" || bad "toy datasets"
EV="eval=sts:$W/gs.jsonl"
bag() { "$AM" run "$R/boom_bagging.lua" base=base tasks=pa,pb,gs steps=4 batch=8 max_len=16 "$EV" "$@"; }
inc() { "$AM" run "$R/boom_incremental.lua" base=base old=pa,pb new=gs steps=4 batch=8 max_len=16 "$EV" "$@"; }

# --- bad parameters: exit 2 before anything is written
before=$(store_state)
expect "bagging: a ratio above 1" 2 "ratios: '1.5' is not a ratio" bag ratios=0.8,1.5
expect "bagging: rest first" 2 "'rest' \(the complement\) must follow" bag ratios=rest,0.5
expect "bagging: one member" 2 "at least two members" bag ratios=0.8
expect "bagging: unknown method" 2 "method must be multislerp, ties, task_arithmetic or linear" bag method=karcher
expect "bagging: unknown weighting" 2 "weighting must be equal or size" bag weighting=rows
expect "bagging: unknown dataset" 2 "no training data for 'nope' \(datasets: .*pa" bag tasks=pa,nope
expect "bagging: mixed over different kinds" 2 "mixed=true is one loss over every task's rows" bag mixed=true
expect "bagging: a parameter the method does not read" 2 "density: method multislerp does not read it" bag density=0.5
expect "bagging: unknown base" 2 "unknown base model 'nobase'" bag base=nobase
expect "bagging: unknown argument" 2 "unknown argument 'ratio' \(known: .*ratios" bag ratio=0.5
expect "incremental: core 0" 2 "core must be in \(0, 1\]" inc core=0
expect "incremental: weight 1" 2 "weight \(of the update model\) must be in \(0, 1\)" inc weight=1
expect "incremental: from" 2 "from must be base or current" inc from=scratch
expect "incremental: method" 2 "method must be multislerp or linear" inc method=ties
expect "incremental: a dataset both old and new" 2 "'pa' is in both old and new" inc new=pa
expect "incremental: unknown current" 2 "unknown current model 'nocur'" inc current=nocur
[ "$(store_state)" = "$before" ] && ok "bad parameters left the store unchanged" || bad "store changed by a bad call"

# --- bagging end to end: members, the merge, the table; provenance in the run records
expect "bagging 0.8,1.0: runs end to end" 0 "^member 1 .*-r0\.8-s1001 .*pa 32/40 ids|^member 2 .*-r1 .*pa 40 \(all\)|^merge +multislerp of 2 members|^merge multislerp equal|Δ member 2 r1 = joint" bag
cat >"$W/prov.lua" <<'LUA'
-- prints one line per sampled task of the runs named like args.pat: name ratio seed complement rows of_rows ids_hash
local n = 0
for _, r in ipairs(am.runs()) do
  if r.name:match(args.pat) then
    for _, d in ipairs(r.data.tasks) do
      local s = d.sample
      if s then
        n = n + 1
        print(("prov %s %s %g %d %s %d %d %s %s"):format(r.name, d.source, s.ratio, s.seed, tostring(s.complement),
          d.rows, s.of_rows, s.ids_hash, s.of_hash))
      end
    end
  end
end
print("sampled tasks", n)
LUA
expect "bagging: each sampled task's ratio, seed, rows and row-id hash are in the run record" 0 \
  "^prov bag-.*-r0\.8-s1001 pa 0\.8 1001 nil 32 40 [0-9a-f]{16} [0-9a-f]{32}$|^prov bag-.* gs 0\.8 1001 nil 32 40 |^sampled tasks	3$" \
  "$AM" run "$W/prov.lua" pat=r0%.8
expect "bagging: a rerun keeps every member and finds the merge" 0 "^member 1 .*\(kept\)$|^member 2 .*\(kept\)$|^merge .*\(found\)$" bag
[ "$(grep -c '(kept)$' "$W/out")" = 3 ] && ok "bagging rerun: members and joint kept, nothing trained" || bad "bagging rerun trained"
expect "bagging: force=true retrains" 0 "^member 1 .*run bag-" bag force=true
if grep -q "(kept)" "$W/out"; then bad "force=true kept a member"; else ok "force=true: no member kept"; fi

expect "bagging 0.5,rest with TIES and size weights" 0 "^member 1 .*-r0\.5-s1001 .*pa 20/40|^member 2 .*-r0\.5c-s1001 .*pa 20/40|^joint .*-r1 |merge ties size" \
  bag ratios=0.5,rest method=ties weighting=size density=0.5
cat >"$W/rest.lua" <<'LUA'
-- the two halves of 0.5,rest are disjoint and cover every row (the sampler of am.train's `sample`)
local ids = require("amalgam.train").sample_ids
local ds = assert(am.dataset.load("pairs", args.file))
local a, b = ids(ds:n(), ds:hash(), 0.5, 1001), ids(ds:n(), ds:hash(), 0.5, 1001, true)
local seen = {}
for _, i in ipairs(a) do seen[i] = (seen[i] or 0) + 1 end
for _, i in ipairs(b) do seen[i] = (seen[i] or 0) + 1 end
local once = 0
for i = 1, ds:n() do if seen[i] == 1 then once = once + 1 end end
print("halves", #a, #b, once)
local c = ids(ds:n(), ds:hash(), 0.5, 1002)
print("another seed differs", table.concat(a, ",") ~= table.concat(c, ","))
LUA
expect "0.5 and its complement: disjoint, every row once; seeds differ" 0 "^halves	20	20	40$|^another seed differs	true$" \
  "$AM" run "$W/rest.lua" file="$W/pa.jsonl"
expect "bagging 0.6,0.6,0.6 with task arithmetic" 0 "^member 3 .*-r0\.6-s1003 .*pa 24/40|merge task_arithmetic equal" \
  bag ratios=0.6,0.6,0.6 method=task_arithmetic

# --- am.train's sample option: recorded, checked, resumable
cat >"$W/sample.lua" <<'LUA'
local run = assert(am.train { init = "base", steps = 2, max_len = 16, progress = false, stop_after = 1,
  tasks = { { data = "pa", batch = 8, sample = { ratio = 0.25, seed = 5 } } } })
local s = run.rec.data.tasks[1].sample
print("sample", run.rec.data.tasks[1].rows, s.of_rows, s.ratio, s.seed)
local r2 = assert(am.resume(run.id, { progress = false }))
print("resumed", r2.status, r2.rec.data.tasks[1].rows)
local ok, err = pcall(am.train, { init = "base", tasks = { { data = "pa", sample = { ratio = 0 } } } })
print("ratio 0", ok, err)
ok, err = pcall(am.train, { init = "base", tasks = { { data = "pa", sample = { ratoi = 0.5 } } } })
print("typo", ok, err)
print("empty complement", am.train { init = "base", tasks = { { data = "pa", sample = { ratio = 1, complement = true } } } })
LUA
expect "am.train sample: rows recorded, resume re-samples, bad values raise" 0 \
  "^sample	10	40	0.25	5$|^resumed	done	10$|^ratio 0	false	.*sample.ratio must be in \(0, 1\]|^typo	false	.*ratoi|^empty complement	nil	.*sample .* is empty	EINVAL" \
  "$AM" run "$W/sample.lua"

# --- incremental end to end: the core is sampled once and cached in the store
expect "incremental: runs end to end" 0 "core 0\.4 of the old data \(32 rows, sampled now\)|^current +inc-.*-current .* 4 steps on 80 rows|^update +inc-.*-update-c0\.4-base .* 4 steps on 72 rows|^retrain +inc-.*-all .* 6 steps on 120 rows|^merge +multislerp of current and update, weights 0\.5/0\.5|retrain \(old \+ new\)" inc
core="$AMALGAM_STORE/cache/boom-core/r0.4-s1"
if [ -f "$core/pa.jsonl" ] && [ -f "$core/pb.jsonl" ] && [ "$(wc -l <"$core/pa.jsonl")" = 16 ] &&
  grep -q '"ids_hash"' "$core/core.json" && grep -q '"of_hash"' "$core/core.json"; then
  ok "incremental: the core subsets and their provenance are in the store"
else bad "incremental: core cache missing"; fi
sum=$(md5sum "$core"/*)
expect "incremental: a rerun uses the cached core and keeps the models" 0 "\(32 rows, cached\)|^current .*\(kept\)$|^update .*\(kept\)$|^retrain .*\(kept\)$|^merge .*\(found\)$" inc
[ "$(md5sum "$core"/*)" = "$sum" ] && ok "incremental: the cached core is not rewritten" || bad "core rewritten"
expect "incremental: a given current model, update from it, linear merge" 0 "^current +base .*\(given\)|^update +inc-.*-update-c0\.4-current .* on 72 rows|merge linear 0\.7/0\.3" \
  inc current=base from=current method=linear weight=0.3

# --- self_positioning.lua: λ learned on a balanced probe set of the tasks' training data
"$AM" run "$R/train_tasks.lua" base=base tasks=pa,pb steps=2 batch=8 >/dev/null 2>"$W/err" || bad "task models for self_positioning"
sp() { "$AM" run "$R/self_positioning.lua" base=base tasks=pa,pb probe=16 batch=8 steps=3 max_len=16 "$EV" "$@"; }
before=$(store_state)
expect "self_positioning: one task" 2 "at least two tasks" sp tasks=pa
expect "self_positioning: models for the tasks" 2 "models: 1 models for 2 tasks" sp models=base+pa
expect "self_positioning: a task without a model" 2 "no model 'base\+gs' for task 'gs'" sp tasks=pa,gs
expect "self_positioning: optimizer" 2 "optimizer must be adam or sgd" sp optimizer=adm
expect "self_positioning: objective" 2 "objective must be task or entropy, got 'entropie'" sp objective=entropie
expect "self_positioning: batch above the probe set" 2 "batch 32 is larger than the probe set" sp batch=32
expect "self_positioning: probe above the rows" 2 "probe 100 is more than the 40 rows of 'pa'" sp probe=100
[ "$(store_state)" = "$before" ] && ok "self_positioning: bad parameters left the store unchanged" || bad "store changed by a bad call"
expect "self_positioning: runs end to end, prints λ and the table" 0 \
  "^merge +sp-[0-9a-f]{8}-[0-9a-f]{6} +[0-9a-f]{12} +4 probe batches|^probe loss [0-9.]+ -> [0-9.]+ over 3 steps|^lambda +pa +0\.[0-9]{4}$|^lambda +pb +0\.[0-9]{4}$|^uniform \(lambda 1/2\)|^self positioning " sp
grep '^lambda' "$W/out" >"$W/lam1"
expect "self_positioning: a rerun keeps the merge and its λ" 0 "^merge +sp-.*\(kept\)$" sp
grep '^lambda' "$W/out" | cmp -s - "$W/lam1" && ok "self_positioning: the same λ from the stored meta" || bad "λ differs on rerun"
expect "self_positioning: per_layer prints one λ per layer group" 0 "^lambda +pa +0\.[0-9]{4} 0\.[0-9]{4} 0\.[0-9]{4}" sp per_layer=true
expect "self_positioning: objective=entropy (AdaMerging, no labels)" 0 "^probe entropy [0-9.]+ -> [0-9.]+ over 3 steps|^lambda +pa " \
  sp objective=entropy temperature=0.1

am_test_finish
