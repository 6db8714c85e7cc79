#!/usr/bin/env bash
# CLI test of `amalgam bench merge` on the tiny config without the NumPy peer: the triad line,
# one row per (method, K) and the targets line.
# usage: test_bench_merge.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
source "$(dirname "$0")/lib.bash"
am_test_init am_bench_merge

expect "bench merge prints the triad, every method and K, and the targets" 0 \
  'memory bandwidth \(triad|^linear +2 |^task_arithmetic +4 |^ties +8 .*x linear|^multislerp +8 |^targets' \
  "$AM" bench merge --config tiny --no-peer --threads 1
expect_fail "bench merge rejects an unknown config" "unknown model config 'huge'" \
  "$AM" bench merge --config huge --no-peer
expect_fail "bench names merge among the benchmarks" "available: encode, train, merge" "$AM" bench nope
am_test_finish
