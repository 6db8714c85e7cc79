#!/usr/bin/env bash
# CLI tests of the model commands through the real binary: init-model, import, export, encode,
# ls, info, and bad input (clear error, non-zero exit, store unchanged).
# usage: test_models.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_cli
PY=python3
# npy helper: prints "rows cols" and checks every row's L2 norm if asked
npy_shape() {
  $PY - "$1" "${2:-}" <<'PYEOF'
import struct, sys, ast, math
d = open(sys.argv[1], 'rb').read()
assert d[:6] == b'\x93NUMPY', 'bad magic'
hl = struct.unpack('<H', d[8:10])[0]
h = ast.literal_eval(d[10:10 + hl].decode('latin1'))
assert h['descr'] == '<f4' and not h['fortran_order'], h
assert (10 + hl) % 64 == 0, 'header not 64-aligned'
r, c = h['shape']
v = struct.unpack('<%df' % (r * c), d[10 + hl:])
if sys.argv[2] == 'unit':
    for i in range(r):
        n = math.sqrt(sum(x * x for x in v[i * c:(i + 1) * c]))
        assert abs(n - 1) < 1e-5, 'row %d norm %g' % (i, n)
print(r, c)
PYEOF
}

# --- help lists every command
"$AM" --help >"$W/out" 2>"$W/err"
miss=""; for c in init-model import export encode ls info bench demo test; do grep -q "^  $c " "$W/out" || miss="$miss $c"; done
[ -z "$miss" ] && ok "help lists every command" || bad "help misses:$miss"

# --- bench encode (C side only): header and one timed row
"$AM" bench encode --no-peer --config tiny >"$W/out" 2>"$W/err" && grep -q "^amalgam bench encode: batch 64 x 64 tokens" "$W/out" &&
  grep -Eq "^tiny +[0-9]+\.[0-9]+ +- " "$W/out" && ok "bench encode --no-peer" || bad "bench encode"

# --- init-model + ls + info
if "$AM" init-model --config tiny --name base >"$W/out" 2>"$W/err" && grep -q "id " "$W/out"; then ok "init-model tiny"; else bad "init-model tiny"; fi
"$AM" ls models >"$W/out" 2>"$W/err" && grep -q "^base " "$W/out" && ok "ls models lists base" || bad "ls models"
"$AM" info base >"$W/out" 2>"$W/err" && grep -q "2 layers, hidden 128, 2 heads, FFN 512, vocab 30522" "$W/out" \
  && ok "info shows the config" || bad "info config"
"$AM" info base --tensors >"$W/out" 2>"$W/err" && grep -q "encoder.layer.1.output.LayerNorm.weight" "$W/out" \
  && ok "info --tensors lists HF tensor names" || bad "info --tensors"
id=$("$AM" ls models --json | $PY -c 'import json,sys; print([m["id"] for m in json.load(sys.stdin) if m["names"]=="base"][0])')
"$AM" info "${id:0:8}" >"$W/out" 2>"$W/err" && grep -q "$id" "$W/out" && ok "id prefix resolves" || bad "id prefix"
# same seed -> same content id, stored once
"$AM" init-model --config tiny --name base2 >/dev/null 2>&1
n=$("$AM" ls models --json | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 1 ] && ok "identical model stored once (two names)" || bad "identical model stored $n times"

# --- encode
printf 'Hello world!\nThe quick brown fox jumps over the lazy dog.\nnaïve café — 東京\n\n' >"$W/texts.txt"
if "$AM" encode base --output "$W/e.npy" <"$W/texts.txt" 2>"$W/err" && [ "$(npy_shape "$W/e.npy")" = "4 128" ]; then
  ok "encode writes (4, 128) npy"; else bad "encode npy"; fi
"$AM" encode base <"$W/texts.txt" >"$W/e2.npy" 2>"$W/err"
cmp -s "$W/e.npy" "$W/e2.npy" && ok "encode to stdout equals --output" || bad "encode stdout"
"$AM" encode base --normalize --output "$W/n.npy" <"$W/texts.txt" 2>"$W/err"
npy_shape "$W/n.npy" unit >/dev/null 2>"$W/err" && ok "--normalize gives unit rows" || bad "normalize"
"$AM" encode base --dim 32 --layer 1 --pooling cls --output "$W/d.npy" <"$W/texts.txt" 2>"$W/err"
[ "$(npy_shape "$W/d.npy" 2>/dev/null)" = "4 32" ] && ok "encode --dim 32 --layer 1 --pooling cls" || bad "dim/layer"
"$AM" encode base --pooling max --output "$W/x.npy" <"$W/texts.txt" 2>"$W/err"; rc=$?
[ $rc = 2 ] && grep -q "encode: --pooling must be mean or cls, not 'max'" "$W/err" && ok "encode --pooling max is refused" ||
  bad "--pooling max: rc $rc: $(cat "$W/err")"

# --- export -> import round trip (same content id)
"$AM" export base "$W/st" >"$W/out" 2>"$W/err" && ok "export" || bad "export"
for f in config.json model.safetensors vocab.txt tokenizer_config.json modules.json \
         config_sentence_transformers.json sentence_bert_config.json 1_Pooling/config.json; do
  [ -f "$W/st/$f" ] || { bad "export lacks $f"; }
done
"$AM" import "$W/st" --name back >"$W/out" 2>"$W/err" && grep -q "$id" "$W/out" \
  && ok "import(export(model)) has the same content id" || bad "round trip id"

# --- import of the committed fixtures
for d in bert_tiny bert_mlm_f16 bert_pretrain_bf16 st_cls_norm; do
  "$AM" import "$T/ref/hf/$d" --name "fx-$d" >"$W/out" 2>"$W/err" && ok "import $d" || bad "import $d"
done

# --- bad input: clear error, non-zero exit, store unchanged
before=$(store_state)
expect_fail "unknown model name" "unknown model 'nosuch'" "$AM" encode nosuch --output "$W/x.npy" </dev/null
printf 'fine\nbad \xff\xfe byte\n' >"$W/bad.txt"
expect_fail "non-UTF-8 input names the line" "<stdin>:2: invalid UTF-8" "$AM" encode base --output "$W/x.npy" <"$W/bad.txt"
[ -e "$W/x.npy" ] && bad "no output after a failed encode" || ok "no output after a failed encode"
cp -r "$T/ref/hf/bert_tiny" "$W/trunc"; head -c 5000 "$T/ref/hf/bert_tiny/model.safetensors" >"$W/trunc/model.safetensors"
expect_fail "truncated safetensors" "model.safetensors" "$AM" import "$W/trunc" --name t
cp -r "$T/ref/hf/bert_tiny" "$W/novocab"; rm "$W/novocab/vocab.txt"
expect_fail "missing vocab.txt" "vocab.txt" "$AM" import "$W/novocab" --name t
cp -r "$T/ref/hf/bert_tiny" "$W/shape"; $PY - "$W/shape/config.json" <<'PYEOF'
import json, sys; p = sys.argv[1]; c = json.load(open(p)); c["intermediate_size"] = 96; json.dump(c, open(p, "w"))
PYEOF
expect_fail "shape not matching config.json" "shape" "$AM" import "$W/shape" --name t
expect_fail "missing directory" "nowhere" "$AM" import "$W/nowhere" --name t
expect_fail "unknown command" "unknown command" "$AM" frobnicate
expect_fail "unknown option" "unknown option --bogus" "$AM" ls models --bogus
expect_fail "export to a non-empty dir" "exist|empty" "$AM" export base "$W/st"
[ "$(store_state)" = "$before" ] && ok "store unchanged by failed commands" || bad "store changed by failed commands"

am_test_finish
