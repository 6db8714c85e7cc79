#!/usr/bin/env bash
# CLI tests of the datasets registry through the real binary: paths are store-relative, so a
# store copied with `cp -a` trains and evaluates on its own files once the original is gone;
# entries written with absolute paths (stores from before) resolve to the moved store's files;
# an unknown dataset names the registered ones (am.train, amalgam eval --task); InfoNCE on
# graded (STS) data is refused unless a threshold says which pairs are positives.
# usage: test_datasets.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_datasets

# --- fixture: a tiny model and three imported datasets in $W/orig/store
export AMALGAM_STORE="$W/orig/store"
"$AM" init-model --config tiny --name base --seed 7 >/dev/null 2>"$W/err" || bad "init-model for the fixture store"
for spec in "pairs:$T/ref/data/pairs.jsonl tp id" "sts:$T/ref/data/sts.jsonl ts id" "beir:$T/ref/data/beir tb ood"; do
  set -- $spec
  "$AM" prepare --import "$1" --name "$2" --tag "$3" >"$W/out" 2>"$W/err" || bad "import $2"
done
expect "registry paths are store-relative" 0 '"path":[[:space:]]*"datasets/tp"' "$AM" ls datasets --json
if grep -q "$W" "$W/out"; then bad "no absolute path in the registry"; else ok "no absolute path in the registry"; fi

cat >"$W/train.lua" <<'LUA'
local am = require "amalgam"
local loss
if args.loss == "infonce" then loss = am.loss.infonce { threshold = tonumber(args.threshold) } end
local run = assert(am.train { name = args.name, init = "base", steps = 2, lr = 1e-3, seed = 3, progress = false,
  tasks = { { data = args.data, batch = 2, loss = loss } } })
print(("trained %s %s %s"):format(run.id, run.status, tostring(run.losses[#run.losses])))
LUA

# --- copy the store, delete the original: training and evaluation read the copy's files
cp -a "$W/orig" "$W/copy" && rm -rf "$W/orig"
export AMALGAM_STORE="$W/copy/store"
expect "train in a copied store" 0 "trained .* done" "$AM" run "$W/train.lua" name=c1 data=tp
run_id=$(awk '/^trained/ {print $2}' "$W/out")
expect "eval --task in a copied store" 0 "tb" "$AM" eval base --task tb --no-store
expect "eval of an imported STS set in a copied store" 0 "ts" "$AM" eval base --task ts --no-store
expect "the run's data manifest is store-relative" 0 '"datasets/tp/pairs.jsonl"' "$AM" info "${run_id:-none}" --json
if grep -q "$W/copy" "$W/out"; then bad "no absolute data path in the run"; else ok "no absolute data path in the run"; fi

# --- a store written before (absolute paths into its own datasets/), then moved
cat >"$W/absolutize.lua" <<'LUA'
local am = require "amalgam"
local st = am.store.default()
for _, name in ipairs(st:keys("datasets")) do
  local e = am.json.decode(st:get("datasets", name))
  e.path = args.old .. "/datasets/" .. name
  assert(st:put("datasets", name, am.json.encode(e)))
end
LUA
"$AM" run "$W/absolutize.lua" old="$W/copy/store" >/dev/null 2>"$W/err" || bad "write absolute registry paths"
cp -a "$W/copy" "$W/moved"
# the original still exists but its files are broken: the moved store must not read them
for f in "$W/copy/store/datasets/tp/pairs.jsonl" "$W/copy/store/datasets/tb/beir/corpus.jsonl"; do
  [ -f "$f" ] && echo "not json" >"$f" || bad "fixture file $f"
done
export AMALGAM_STORE="$W/moved/store"
expect "old absolute paths: train reads the moved store" 0 "trained .* done" "$AM" run "$W/train.lua" name=m1 data=tp
expect "old absolute paths: eval reads the moved store" 0 "tb" "$AM" eval base --task tb --no-store
rm -rf "$W/copy"
expect "old absolute paths, original gone: train" 0 "trained .* done" "$AM" run "$W/train.lua" name=m2 data=tp
expect "old absolute paths, original gone: eval" 0 "tb" "$AM" eval base --task tb --no-store

# a store named relative to the working directory: the run still records store-relative paths
(cd "$W" && AMALGAM_STORE=moved/store "$AM" run "$W/train.lua" name=r1 data=tp) >"$W/out" 2>"$W/err" || bad "train with a relative store"
run_id=$(awk '/^trained/ {print $2}' "$W/out")
expect "relative --store: the run's data path is store-relative" 0 '"datasets/tp/pairs.jsonl"' \
  "$AM" info "${run_id:-none}" --json

# --- an unknown dataset lists the registered ones
expect_fail "am.train: unknown dataset lists the known ones" "unknown dataset 'tpx'.*tb, tp, ts" \
  "$AM" run "$W/train.lua" name=u1 data=tpx
expect_fail "eval --task: unknown task lists the registered datasets" "unknown task 'tbx'.*registered datasets: tb" \
  "$AM" eval base --task tbx --no-store

# --- InfoNCE on graded pairs: refused without a threshold, trains with one
expect_fail "infonce on graded data is refused" "InfoNCE on graded pairs" \
  "$AM" run "$W/train.lua" name=g1 data=ts loss=infonce
if grep -q "infonce{threshold = T}" "$W/err"; then ok "the refusal names the threshold option"; else bad "the refusal names the threshold option"; fi
expect "a refused InfoNCE task leaves no run behind" 0 "." "$AM" ls runs
if grep -q "^g1-" "$W/out"; then bad "no run g1"; else ok "no run g1"; fi
cat >"$W/step.lua" <<'LUA'
local am = require "amalgam"
local tr = assert(am.raw_trainer(am.model "base", { lr = 1e-4, steps = 2 }))
local b = { sentence1 = { "a cat", "a dog" }, sentence2 = { "a kitten", "a car" }, scores = { 5, 0 } }
local s, msg = tr:step(b, am.loss.matryoshka { dims = { 32, 64 }, inner = am.loss.infonce {} })
print("unthresholded", s and "trained" or msg)
print("thresholded", assert(tr:step(b, am.loss.infonce { threshold = 2.5 })) and "trained")
LUA
expect "tr:step refuses unthresholded InfoNCE (nested too) on graded batches" 0 \
  "unthresholded.*graded pairs|thresholded.*trained" "$AM" run "$W/step.lua"
expect "infonce on graded data with a threshold trains" 0 "trained .* done" \
  "$AM" run "$W/train.lua" name=g2 data=ts loss=infonce threshold=1
expect "graded data trains with its default loss (cosent)" 0 "trained .* done" "$AM" run "$W/train.lua" name=g3 data=ts

am_test_finish
