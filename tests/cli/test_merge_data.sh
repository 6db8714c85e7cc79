#!/usr/bin/env bash
# CLI tests of the data-driven merges through the real binary (src/cli/cmd_merge.c ->
# lua/amalgam/merge.lua cli_merge_data / cli_diff_data / cli_sweep): `amalgam merge --method
# fisher|regmean|self_positioning ... --data TASK[:ROWS]` on a toy store (two tiny pair datasets,
# one graded), the data spec in the meta and the same merge found again (deterministic), the
# entropy objective, `amalgam diff MODEL --data ...` (gradient conflicts: a task against itself
# is aligned), `amalgam sweep` over a data method's parameters, and bad input (a clear error, a
# non-zero exit, an unchanged store).
# usage: test_merge_data.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_merge_data
V="$T/ref/hf/bert_tiny/vocab.txt" # 100 tokens: small, fast models

for s in 1 2 3; do
  "$AM" init-model --config tiny --vocab "$V" --name "m$s" --seed "$s" >/dev/null 2>"$W/err" || bad "init-model m$s"
done
"$AM" run "$T/cli/toy_datasets.lua" dir="$W" rows=20 >/dev/null 2>"$W/err" || bad "toy datasets"
meta() { "$AM" info "$1" --json | python3 -c "import json,sys; m=json.load(sys.stdin); print($2)"; }

# --- bad input: an error naming the problem, a non-zero exit, the store unchanged
before=$(store_state)
expect_fail "a data method without --data" "fisher merges from data: give --data TASK" "$AM" merge --method fisher m2 m3
expect_fail "--data for a data-free method" "--data is for the data methods" "$AM" merge --method linear m2 m3 --data pa
expect_fail "an unknown task" "no training data for 'nope' \(datasets: gs, pa, pb\)" "$AM" merge --method regmean m2 m3 --data nope
expect_fail "a bad normalize" "normalize must be 'none', 'param', 'model'" "$AM" merge --method fisher m2 m3 --data pa --set normalize=tensor
expect_fail "--rule with a data method" "--rule is for the data-free methods" "$AM" merge --method fisher m2 m3 --data pa --rule weight@1=2
expect_fail "a misspelt data method gets its name suggested" "unknown merge method 'fishr' \(did you mean 'fisher'\?\)" \
  "$AM" merge --method fishr m2 m3 --data pa
expect_fail "sweep: a misspelt data method too" "did you mean 'regmean'" "$AM" sweep --method regmen m2 m3 --data pa --grid alpha=0.5
expect_fail "an unknown method lists the data methods too" "known: linear, .*model_stock, fisher, regmean, lm_cocktail, codiemb_fusion, self_positioning" \
  "$AM" merge --method zzzzzzz m2 m3
expect_fail "three tasks for two models" "data names 3 tasks for 2 models" "$AM" merge --method regmean m2 m3 --data pa --data pb --data gs
expect_fail "self_positioning without a base" "self_positioning needs a base" "$AM" merge --method self_positioning m2 m3 --data pa
expect_fail "diff --data with two models" "give the one model to measure" "$AM" diff m2 m3 --data pa
expect_fail "sweep --data for a data-free method" "--data is for the data methods" "$AM" sweep --method linear m2 m3 --grid weight=0.5 --data pa --no-eval
[ "$(store_state)" = "$before" ] && ok "bad input left the store unchanged" || bad "store changed by a bad call"

# --- Fisher from two tasks (one per model), the data spec in the meta, the same merge found again
expect "fisher --data pa:8 --data gs" 0 "^merged - +id [0-9a-f]{32} +\(fisher of 2 models\)|^data +pa:8 \(8 rows\), gs \(20 rows\); batches of 4, seed 1|stored with its tensors" \
  "$AM" merge --method fisher m2 m3 --data pa:8 --data gs --set batch_size=4
F=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
[ "$(meta "$F" 'm["kind"], m.get("recipe_only", False), m["merge"]["data"]["tasks"], m["merge"]["data"]["batches"], len(m["merge"]["data"]["hashes"])')" = \
  "merged False ['pa:8', 'gs'] [2, 5] 2" ] && ok "meta: kind merged, tensors, tasks, batches, dataset hashes" || bad "meta: $(meta "$F" 'm["merge"]')"
expect "the same data merge is found (deterministic)" 0 "^found - +id $F|same data, same tensors" \
  "$AM" merge --method fisher m2 m3 --data pa:8 --data gs --set batch_size=4
"$AM" merge --method fisher m2 m3 --data pa:8 --data gs --set batch_size=4 --set seed=2 --set normalize=model --json >"$W/out" 2>"$W/err" &&
  python3 -c "import json; j=json.load(open('$W/out')); assert j['id']!='$F' and not j['found'] and j['stored_tensors'] and j['method']=='fisher'" &&
  ok "merge --json (another seed and normalize: another merge)" || bad "merge --json"
expect "info shows the data merge's parameters" 0 "^merge +fisher .*batch_size=4" "$AM" info "$F"

# --- RegMean named; Self Positioning with AdaMerging's entropy objective (no labels)
expect "regmean --set alpha=0.5 --name rm" 0 "^merged rm +id" "$AM" merge --method regmean m2 m3 --data pa:8 --set alpha=0.5 --name rm
expect "info rm: regmean, alpha 0.5" 0 "^merge +regmean .*alpha=0.5" "$AM" info rm
expect "self_positioning, objective=entropy" 0 "^probe entropy [0-9.]+ -> [0-9.]+ over 3 steps|^lambda +m2 +[-0-9.]+|^lambda +m3 " \
  "$AM" merge --method self_positioning --base m1 m2 m3 --data pa:8 --data pb:8 --set batch_size=4 --set objective=entropy \
  --set steps=3 --set lr=0.01 --name sp-ent
[ "$(meta sp-ent 'len(m["self_positioning"]["trajectory"]), m["merge"]["params"]["objective"]')" = "4 entropy" ] &&
  ok "the λ trajectory and the objective are stored" || bad "sp meta: $(meta sp-ent 'm.get("self_positioning")')"

# --- gradient conflicts: a task against itself is aligned, two tasks are compared per layer
expect "diff --data pa --data pa: aligned" 0 "^task 1 +pa:8 +loss|^1 +1\.0000 +1\.0000|1-2 0\.0%|^layer\.0 " \
  "$AM" diff m1 --data pa:8 --data pa:8 --set batch_size=4
"$AM" diff m1 --data pa:8 --data gs:8 --set batch_size=4 --json >"$W/out" 2>"$W/err" &&
  python3 -c "
import json; g=json.load(open('$W/out'))
assert g['tasks']==['pa:8','gs:8'] and len(g['cosine'])==2 and -1<=g['cosine'][0][1]<=1
assert 0<=g['sign_conflict_pairs'][0][1]<=1 and g['groups'][1]['name']=='layer.0' and g['loss'][0]>0" &&
  ok "diff --data --json: tasks, cosines, pairwise sign conflicts, groups" || bad "diff --data --json"
expect "diff --data --tensors" 0 "^TENSOR|^encoder.layer.1.output.dense.weight " "$AM" diff m1 --data pa:8 --data gs:8 --tensors

# --- sweeps over a data method's parameters: statistics once, one stored merge per point
expect "sweep regmean alpha" 0 "^alpha .*ID|^0 +[0-9a-f]{12}|^0.5 +[0-9a-f]{12}" \
  "$AM" sweep --method regmean m2 m3 --data pa:8 --grid alpha=0,0.5 --no-eval
"$AM" sweep --method fisher m2 m3 --data pa:8 --data gs --set batch_size=4 --grid normalize=none,model --no-eval --json \
  >"$W/out" 2>"$W/err" &&
  python3 -c "
import json; p=json.load(open('$W/out'))
assert [x['params']['normalize'] for x in p]==['none','model'] and p[0]['id']=='$F'" &&
  ok "sweep fisher over normalize (strings): the none point is the merge above" || bad "sweep fisher normalize"
am_test_finish
