#!/usr/bin/env bash
# CLI tests of `amalgam merge` through the real binary: recipe-only merges, the same merge found
# again (same id, nothing computed), --name storing the tensors, lineage in `info`, merges of
# merges, export of a merge (a loadable sentence-transformers directory), rm of a parent refused,
# and every bad input: a clear error, a non-zero exit and an unchanged store (mdb_dump).
# usage: test_merge.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_merge
V="$T/ref/hf/bert_tiny/vocab.txt" # 100 tokens: small, fast models

"$AM" init-model --config tiny --vocab "$V" --name a --seed 1 >/dev/null &&
  "$AM" init-model --config tiny --vocab "$V" --name b --seed 2 >/dev/null &&
  "$AM" init-model --config tiny --vocab "$V" --name c --seed 3 >/dev/null &&
  "$AM" init-model --config mini --vocab "$V" --name wide --seed 1 >/dev/null || { bad "init-model"; am_test_finish; exit 1; }
id_of() { "$AM" info "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }
meta() { "$AM" info "$1" --json | python3 -c "import json,sys; m=json.load(sys.stdin); print($2)"; }

# --- a recipe-only merge
expect "merge without --name: the recipe" 0 "^merged - +id [0-9a-f]{32}|recipe only" \
  "$AM" merge --method linear a:0.25 b:0.75
R=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
[ "$(meta "$R" 'm["kind"], m.get("recipe_only")')" = "merged True" ] && ok "kind merged, recipe_only" || bad "recipe meta"
[ "$(meta "$R" '[(p["id"][:4], p["weight"]) for p in m["parents"]]')" = "[('$(id_of a | cut -c1-4)', 0.25), ('$(id_of b | cut -c1-4)', 0.75)]" ] &&
  ok "parents with their weights" || bad "parents: $(meta "$R" 'm["parents"]')"
expect "ls models lists the recipe (about a kB)" 0 "${R:0:12} +merged .* [0-9.]+ kB " "$AM" ls models
expect "info: method, storage, lineage with weights" 0 "^kind +merged|^merge +linear|^stored +recipe only|a \(weight 0.25\)|b \(weight 0.75\)" \
  "$AM" info "$R"
expect "info --tensors computes a recipe" 0 "embeddings.word_embeddings.weight +\(100, 128\)" "$AM" info "$R" --tensors

# --- the same merge again: same id, nothing computed; JSON output
expect "the same merge is found" 0 "found - +id $R|nothing computed" "$AM" merge --method linear a:0.25 b:0.75
"$AM" merge --method linear a:0.25 b:0.75 --json >"$W/out" 2>"$W/err" &&
  python3 -c "import json,sys; j=json.load(open('$W/out')); assert j['id']=='$R' and j['found'] and not j['stored_tensors']" &&
  ok "merge --json" || bad "merge --json"
expect "weights default to 1" 0 "merged" "$AM" merge --method linear a b
D1=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
expect "explicit weights 1 give the same id" 0 "found - +id $D1" "$AM" merge --method linear a:1 b:1

expect "ties: the full spec, what it kept" 0 "^merged|kept 100\.0% of the task-vector entries" "$AM" merge --method ties --base a b c
TI=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
expect "info: the effect of a sparsifying merge" 0 "^effect +kept 30\.[0-9]% of [0-9]+ task-vector entries" \
  "$AM" info "$("$AM" merge --method ties --base a b c --set density=0.3 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
[ "$(meta "$TI" 'sorted(m["merge"]["params"].items())')" = "[('density', 1), ('lambda', 1)]" ] &&
  ok "the spec holds every parameter the method reads, defaults filled in" || bad "full spec: $(meta "$TI" 'm["merge"]')"
expect "defaults given explicitly: the same id" 0 "found - +id $TI" \
  "$AM" merge --method ties --base a b c --set density=1 --set lambda=1 --set normalize=true --set threads=2
expect "an option off its default: another id" 0 "^merged" "$AM" merge --method ties --base a b c --set normalize=false

expect "--rule: per model and class, per tensor pattern" 0 "^merged" \
  "$AM" merge --method linear a b --rule weight@2:attention=3 --rule "weight:encoder.layer.1.*=0,1"
RU=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
[ "$(meta "$RU" 'm["merge"]["rules"]')" = "[{'classes': ['attention'], 'model': 2, 'param': 'weight', 'value': 3}, {'param': 'weight', 'pattern': 'encoder.layer.1.*', 'value': [0, 1]}]" ] &&
  ok "the rules are in the spec, in order" || bad "rules spec: $(meta "$RU" 'm["merge"]')"

# --- a name stores the tensors under the same id
expect "merge --name stores the tensors" 0 "found ab +id $R|stored with its tensors" \
  "$AM" merge --method linear a:0.25 b:0.75 --name ab
[ "$(id_of ab)" = "$R" ] && ok "the name points at the recipe's id" || bad "name id"
[ "$(meta ab 'm.get("recipe_only"), len(m["content"])')" = "None 32" ] && ok "materialised: content hash, no recipe flag" || bad "materialised meta"
expect "info: stored with its tensors" 0 "^stored +with its tensors" "$AM" info ab

# --- merges of merges, a base, parameters
expect "task_arithmetic with a base and --set" 0 "merged tm" \
  "$AM" merge --method task_arithmetic --base a ab:0.5 "$D1":0.5 c --set lambda=0.5 --name tm
expect "info of a merge of merges: base, params, nested lineage" 0 \
  "^merge +task_arithmetic lambda=0.5|^base +[0-9a-f]{12} a$|└─ ${R:0:12} ab \(weight 0.5\)|    └─ [0-9a-f]{12} a \(weight 0.25\)|└─ ${D1:0:12} +\(weight 0.5\)" \
  "$AM" info tm
expect "a gradient parameter" 0 "merged" "$AM" merge --method task_arithmetic --base a b c --set lambda=0.2,1
[ "$(meta "$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)" 'm["merge"]["params"]')" = "{'lambda': [0.2, 1]}" ] &&
  ok "the gradient is in the spec" || bad "gradient spec"

# --- export and encode of a recipe-only merge
expect "export of a recipe-only merge" 0 "exported" "$AM" export "$D1" "$W/exp"
miss=""; for f in config.json model.safetensors vocab.txt tokenizer_config.json modules.json 1_Pooling/config.json; do
  [ -s "$W/exp/$f" ] || miss="$miss $f"; done
[ -z "$miss" ] && ok "the export has config, weights, pooling and tokenizer" || bad "export misses:$miss"
printf 'one text\nanother text\n' | "$AM" encode "$D1" --output "$W/e.npy" >"$W/out" 2>"$W/err" && [ -s "$W/e.npy" ] &&
  ok "encode a recipe-only merge" || bad "encode"

# --- diff: task-vector diagnostics
expect "diff: norms, cosines, conflicts per layer" 0 "^base +[0-9a-f]{12} a$|^model 1 +[0-9a-f]{12} b|^cosine|^sign conflicts [0-9.]+%|^embeddings |^layer\.0 |^layer\.1 |^pooler " \
  "$AM" diff --base a b c
expect "diff --tensors" 0 "^encoder\.layer\.1\.output\.dense\.weight " "$AM" diff --base a b c --tensors
"$AM" diff --base a b b --json >"$W/out" 2>"$W/err" && python3 - "$W/out" <<'PYEOF' && ok "diff --json: a model with itself: cosine 1, no conflicts" || bad "diff --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert abs(d['cosine'][0][1] - 1) < 1e-9 and d['sign_conflict'] == 0, d['cosine']
assert [g['name'] for g in d['groups']] == ['embeddings', 'layer.0', 'layer.1', 'pooler'], d['groups']
PYEOF
expect_fail "diff without a shared parent asks for the base" "diff: the models do not start from one model" "$AM" diff b c

# --- sweep: recipes at every grid point, each evaluated
STS="sts:$T/ref/evalrun/sts.tsv"
expect "sweep over 2 models' weight" 0 "^weight +ID +ID AVG|^0 +[0-9a-f]{12} +-?[0-9.]+|^0\.5 +[0-9a-f]{12}|^1 +[0-9a-f]{12}" \
  "$AM" sweep --method linear a b --grid weight=0,0.5,1 --task "$STS" --tag id
"$AM" sweep --method linear a b --grid weight=0,0.5,1 --task "$STS" --tag id --json >"$W/out" 2>"$W/err" && python3 - "$W/out" "$D1" <<'PYEOF' &&
import json, sys
p = json.load(open(sys.argv[1]))
assert len(p) == 3 and all(x['found'] for x in p) and p[1]['weights'] == [0.5, 0.5], p
assert all(isinstance(x['id_avg'], float) for x in p), p
PYEOF
  ok "sweep --json: a repeated sweep finds its points" || bad "sweep --json"
expect "sweep: the Pareto front is printed and its points starred" 0 "^Pareto front \(\*|[-0-9]  \*" \
  "$AM" sweep --method linear a b --grid weight=0,0.5,1 --task "$STS" --tag id
expect "a 2-D sweep without evaluation" 0 "^density +lambda|^0\.3 +0\.5 |^0\.6 +1 " \
  "$AM" sweep --method ties --base a b c --grid density=0.3,0.6 --grid lambda=0.5,1 --no-eval
"$AM" sweep --method linear a b --grid weight=0.25 --rule weight@2:attention=3 --no-eval --json >"$W/out" 2>"$W/err" &&
  [ "$(meta "$(python3 -c "import json; print(json.load(open('$W/out'))[0]['id'])")" 'm["merge"]["rules"][0]["classes"]')" = "['attention']" ] &&
  ok "sweep --rule: the rules go into every point" || bad "sweep --rule"

# a merge keeps the first model's pooling and normalisation: CLS + Normalize
"$AM" import "$T/ref/hf/st_cls_norm" --name stcls >/dev/null || bad "import st_cls_norm"
expect "merge of a CLS + Normalize model" 0 "merged" "$AM" merge --method linear stcls stcls:0.5
SC=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
"$AM" export "$SC" "$W/exp2" >/dev/null && python3 - "$W/exp2" <<'PYEOF' && ok "its export keeps CLS pooling and 2_Normalize" || bad "export pooling"
import json, os, sys
d = sys.argv[1]
p = json.load(open(os.path.join(d, '1_Pooling/config.json')))
assert p['pooling_mode_cls_token'] and not p['pooling_mode_mean_tokens'], p
mods = [m['type'] for m in json.load(open(os.path.join(d, 'modules.json')))]
assert any('Normalize' in t for t in mods), mods
PYEOF

# --- a parent a merge needs is not removed
expect_fail "rm of a merge's parent is refused" "needed by model" "$AM" rm c
"$AM" init-model --config tiny --vocab "$V" --name d --seed 4 >/dev/null &&
  "$AM" merge --method linear a d --json >"$W/out" 2>"$W/err" && "$AM" rm d --force >/dev/null 2>&1 || bad "rm --force d"
RD=$(grep -oE '[0-9a-f]{32}' "$W/out" | head -1)
expect_fail "a recipe whose input was removed says so" "input 2 \([0-9a-f]{12}\) is no longer in the store" "$AM" export "$RD" "$W/exp3"

# --- bad input: a clear error, a non-zero exit, the store unchanged
before=$(store_state)
unchanged() { [ "$(store_state)" = "$before" ] && ok "$1: store unchanged" || bad "$1: store changed"; }
expect_fail "different shapes name the first mismatching tensor" "embeddings\.word_embeddings\.weight of wide" "$AM" merge --method linear a wide
unchanged "shapes"
printf '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n' >"$W/v2.txt"; sed -n '6,100p' "$V" | sort -r >>"$W/v2.txt"
"$AM" init-model --config tiny --vocab "$W/v2.txt" --name other-vocab --seed 1 >/dev/null || bad "init other vocab"
before=$(store_state)
expect_fail "different vocabularies" "vocabulary" "$AM" merge --method linear a other-vocab
unchanged "vocab"
expect_fail "a method that needs a base" "ties: the method needs a base model" "$AM" merge --method ties a b
unchanged "base"
expect_fail "weights all zero" "all weights are zero" "$AM" merge --method linear a:0 b:0
unchanged "zero weights"
expect_fail "unknown method: the closest name" "unknown merge method 'tie' \(did you mean 'ties'\?\)" "$AM" merge --method tie --base a a b
unchanged "method"
expect_fail "unknown parameter: the closest name" "unknown parameter 'densty' \(did you mean 'density'\?\)" \
  "$AM" merge --method ties --base a a b --set densty=0.5
unchanged "parameter"
expect_fail "a parameter the method does not read" "has no parameter 'density'" "$AM" merge --method linear a b --set density=0.5
expect_fail "a bad --set" "--set expects key=value" "$AM" merge --method linear a b --set density
expect_fail "unknown model" "unknown model 'nope'" "$AM" merge --method linear a nope
expect_fail "no method" "--method M is required" "$AM" merge a b
expect_fail "a rule pattern matching no tensor" "pattern 'attenton' matches no tensor \(did you mean the class 'attention'\?\)" \
  "$AM" merge --method linear a b --rule weight:attenton=2
expect_fail "a rule for a model that is not there" "model must be 1\.\.2" "$AM" merge --method linear a b --rule weight@3=2
expect_fail "a bad option value fails before merging" "seed: -1 is negative" "$AM" merge --method dare_ties --base a a b --set seed=-1
expect_fail "sweep: a typo in the grid" "unknown option 'densty' \(did you mean 'density'\?\)" \
  "$AM" sweep --method ties --base a a b --grid densty=0.3,0.6 --no-eval
expect_fail "sweep without a grid" "usage: amalgam sweep" "$AM" sweep --method linear a b
unchanged "usage"
# NaN in a tensor: an exported copy of a with one NaN, imported
"$AM" export a "$W/nan" >/dev/null && python3 - "$W/nan/model.safetensors" <<'PYEOF' && "$AM" import "$W/nan" --name nan >/dev/null || bad "NaN model"
import json, struct, sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', d[:8])[0]
h = json.loads(d[8:8 + n])
name = 'encoder.layer.1.output.dense.weight' if 'encoder.layer.1.output.dense.weight' in h else sorted(k for k in h if k != '__metadata__')[0]
off = 8 + n + h[name]['data_offsets'][0]
d[off + 4 * 7:off + 4 * 8] = struct.pack('<f', float('nan'))
open(p, 'wb').write(bytes(d))
PYEOF
before=$(store_state)
expect_fail "NaN in a tensor: names the model and tensor" "nan \([0-9a-f]{12}\) has a NaN in tensor encoder\.layer\.1\.output\.dense\.weight" \
  "$AM" merge --method linear a nan
unchanged "NaN"
expect_fail "NaN in a tensor a method would trim away" "nan \([0-9a-f]{12}\) has a NaN in tensor" \
  "$AM" merge --method ties --base a b nan --set density=0.2
expect_fail "NaN in the base" "the base nan \([0-9a-f]{12}\) has a NaN in tensor" "$AM" merge --method ties --base nan a b
unchanged "NaN in ties and in the base"
am_test_finish
