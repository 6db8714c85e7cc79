#!/usr/bin/env bash
# Rebuilds old_store/data.mdb: a store written by amalgam before the run/metrics contract of
# src/store/store_keys.h (runs keys "<id>", "<id>/state", "<id>/cursors"; metrics keys
# "<id>" be32(step) without a separator; no "format" in run records). Kept for
# tests/cli/test_old_store.sh; only rebuild it with a build from before that change
# (commit c457fac), or the fixture no longer shows the old layout.
# usage: (cd tests && bash ref/store/make_fixture.sh PATH/TO/OLD/amalgam)
set -euo pipefail
AM="$(readlink -f "$1")"
cd "$(dirname "$0")/../.."   # tests/: the recipe's data paths are relative to it
out=ref/store/old_store
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export AMALGAM_STORE="$tmp/store"
"$AM" import ref/hf/st_cls_norm --name base
cat >"$tmp/train.lua" <<'LUA'
local am = require "amalgam"
local tasks = { { data = "ref/store/pairs.jsonl", batch = 4, name = "pairs" },
  { data = "ref/store/sts.tsv", batch = 4, name = "sts" } }
local a = assert(am.train { name = "fx-done", init = "base", steps = 6, lr = 1e-3, seed = 5, progress = false,
  max_len = 12, checkpoint_every = 3, metrics_every = 2, tasks = tasks, schedule = am.schedule.round_robin() })
local b = assert(am.train { name = "fx-stopped", init = "base", steps = 6, lr = 1e-3, seed = 6, progress = false,
  max_len = 12, metrics_every = 2, stop_after = 3, tasks = tasks, schedule = am.schedule.round_robin() })
print(a.id, a.status, b.id, b.status)
LUA
"$AM" run "$tmp/train.lua"
"$AM" eval fx-done --task sts:ref/store/sts.tsv
rm -rf "$out" && mkdir -p "$out"
mdb_copy -c "$tmp/store" "$out"
rm -f "$out/lock.mdb"
ls -l "$out"
