#!/usr/bin/env bash
# `amalgam bench` end to end with the in-repository PyTorch peer, and the peer checked against the
# team's earlier reference while that exists (tools/bench/check_peer.sh). CTest label "bench" (opt-in:
# AMALGAM_TEST_LABEL=bench ./amalgam test); exit 77 (skipped) without python3-torch.
# usage: test_bench.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$T/cli/lib.bash"
am_test_init am_bench
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "skipped: no python3-torch (AMALGAM_TEST_LABEL=bench ./amalgam test installs it)"; exit 77
fi
unset AMALGAM_TORCH_PEER
expect "bench encode: C and the in-repository peer side by side" 0 \
  '^tiny .*x   \(peer: torch [0-9]' "$AM" bench encode --config tiny --threads 1
expect "bench train: forward/backward/AdamW parts of both" 0 \
  '^tiny .*x   \(peer: torch [0-9]|C parts: forward .* peer: forward [0-9]' "$AM" bench train --config tiny --threads 1
AMALGAM_TORCH_PEER="$W/none.py" expect_fail "a missing peer is named" 'none.py not found' \
  "$AM" bench encode --config tiny

"$T/../tools/bench/check_peer.sh" >"$W/out" 2>"$W/err"; rc=$?
case $rc in
  0) ok "tools/bench/torch_peer.py agrees with the reference peer" ;;
  77) echo "skip the reference comparison: $(cat "$W/out")" ;;
  *) bad "tools/bench/torch_peer.py agrees with the reference peer" ;;
esac
am_test_finish
