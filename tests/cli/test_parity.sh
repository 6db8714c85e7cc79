#!/usr/bin/env bash
# Import a Hugging Face model and encode text with the real binary; compare with PyTorch:
# max |diff| <= 1e-5 and cosine >= 0.99999 per sentence (fixtures: tests/ref/hf/gen_parity.py).
# usage: test_parity.sh PATH/TO/amalgam      prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
W=$(mktemp -d /tmp/am_parity_XXXXXX)
trap 'rm -rf "$W"' EXIT
export AMALGAM_STORE="$W/store"
pass=0; fail=0
for m in bert_tiny st_cls_norm; do
  if ! "$AM" import "$T/ref/hf/$m" --name "$m" >"$W/out" 2>"$W/err"; then
    fail=$((fail + 1)); echo "FAIL import $m"; cat "$W/err"; continue
  fi
  if ! "$AM" encode "$m" --output "$W/$m.npy" <"$T/ref/hf/parity_texts.txt" 2>"$W/err"; then
    fail=$((fail + 1)); echo "FAIL encode $m"; cat "$W/err"; continue
  fi
  if python3 - "$W/$m.npy" "$T/ref/hf/expected/parity_$m.json" <<'PYEOF'; then
import ast, json, math, struct, sys
d = open(sys.argv[1], 'rb').read()
hl = struct.unpack('<H', d[8:10])[0]
r, c = ast.literal_eval(d[10:10 + hl].decode('latin1'))['shape']
v = struct.unpack('<%df' % (r * c), d[10 + hl:])
exp = json.load(open(sys.argv[2]))
E = exp['embeddings']
assert (r, c) == (len(E), len(E[0])), ((r, c), (len(E), len(E[0])))
worst_d, worst_c = 0.0, 1.0
for i in range(r):
    a = v[i * c:(i + 1) * c]; b = E[i]
    dmax = max(abs(x - y) for x, y in zip(a, b))
    cos = sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
    worst_d, worst_c = max(worst_d, dmax), min(worst_c, cos)
    if dmax > 1e-5 or cos < 0.99999:
        print('  text %d %r: max|diff| %.3g cosine %.8f' % (i + 1, exp['texts'][i], dmax, cos))
        sys.exit(1)
print('  %s: %d texts, worst max|diff| %.2g, worst cosine %.9f' % (exp['model'], r, worst_d, worst_c))
PYEOF
    pass=$((pass + 1)); echo "ok   $m text -> embedding parity with PyTorch"
  else
    fail=$((fail + 1)); echo "FAIL $m parity"
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
