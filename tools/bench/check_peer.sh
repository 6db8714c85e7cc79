#!/usr/bin/env bash
# check_peer.sh - run tools/bench/torch_peer.py and another implementation of the same contract
# (by default the team's earlier reference: shared/bench/torch_ref.py in the directory that holds
# the checkout, or the main checkout of a git worktree; it is not part of the repository) on the
# same small config and compare: the same JSON keys and types, the same shapes and parameter counts,
# and the same final training loss (both seed their weights, data and dropout alike; 1 thread).
#   tools/bench/check_peer.sh [OTHER.py]
# Exit 0: they agree; 1: they differ; 77: skipped (no other peer, or no torch).
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
ours="$here/torch_peer.py"
root="$(cd "$here/../.." && pwd)"
ref=shared/bench/torch_ref.py
other="${1:-$(dirname "$root")/$ref}"
if [ $# = 0 ] && [ ! -f "$other" ]; then  # a git worktree: beside the main checkout
  main=$(git -C "$root" worktree list --porcelain 2>/dev/null | sed -n '1s/^worktree //p') || true
  [ -n "$main" ] && other="$(dirname "$main")/$ref"
fi
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if [ ! -f "$other" ]; then echo "check_peer: skipped: no other peer at $other"; exit 77; fi
if ! "$py" -c 'import torch' 2>/dev/null; then
  echo "check_peer: skipped: no torch (apt-get install python3-torch)"; exit 77
fi
args=(--mode both --config tiny --threads 1 --steps 3 --encode-steps 2 --warmup 1 --env asis)
a=$("$py" "$ours" "${args[@]}" | grep '^{' | tail -1)
b=$("$py" "$other" "${args[@]}" | grep '^{' | tail -1)
"$py" - "$a" "$b" <<'PY'
import json, sys
ours, other = json.loads(sys.argv[1]), json.loads(sys.argv[2])
bad = []
def keys(a, b, path=""):
    for k in sorted(set(a) | set(b)):
        p = path + k
        if k not in a or k not in b:
            bad.append(f"{p}: only in {'ours' if k in a else 'the other peer'}")
        elif isinstance(b[k], dict) != isinstance(a[k], dict) or type(a[k]) is not type(b[k]):
            bad.append(f"{p}: type {type(a[k]).__name__} vs {type(b[k]).__name__}")
        elif isinstance(a[k], dict):
            keys(a[k], b[k], p + ".")
keys(ours, other)
same = ["config", "hidden", "layers", "heads", "ffn", "vocab", "seq", "threads", "params_total",
        "params_embedding", "params_nonembedding", "train.tokens_per_step", "train.model_flops_per_step",
        "encode.model_flops_per_batch"]
def get(d, p):
    for k in p.split("."):
        d = d.get(k, {}) if isinstance(d, dict) else None
    return d
for p in same:
    if get(ours, p) != get(other, p):
        bad.append(f"{p}: {get(ours, p)} vs {get(other, p)}")
la, lb = get(ours, "train.final_loss"), get(other, "train.final_loss")
if not isinstance(la, float) or not isinstance(lb, float) or abs(la - lb) > 1e-5 * max(1.0, abs(lb)):
    bad.append(f"train.final_loss: {la} vs {lb}")
for b in bad:
    print("check_peer: differs:", b)
print(f"check_peer: {'agree' if not bad else 'DIFFER'}: {ours['params_total']} parameters, "
      f"final loss {la} vs {lb}, {ours['torch_version']}")
sys.exit(1 if bad else 0)
PY
