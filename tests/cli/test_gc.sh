#!/usr/bin/env bash
# CLI tests of the store's housekeeping through the real binary: a mistyped --store is an error
# naming the path (one wording, nothing created), `info 0`, undoubled messages, `ls models`
# (aligned columns, kinds, run@step labels, sizes), `amalgam rm` (dependencies, --force,
# --dry-run, runs), `amalgam gc` (trainer state of finished runs, stale caches, --compact),
# `amalgam du`.
# usage: test_gc.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$(readlink -f "$1")"   # absolute: one check runs from tests/
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_gc
PY=python3

# --- a mistyped --store: an error naming the path, the same words everywhere, nothing created
typo="$W/no-such-store"
for cmd in "ls" "ls models" "ls datasets" "ls results" "ls runs" "info base" "encode base" "export base $W/exp" \
           "eval base --task x" "compare base" "rm base" "gc" "du" "info" "resume x" "lua -e assert(am.models())"; do
  # shellcheck disable=SC2086 # the command is words
  expect_fail "--store typo: $cmd" "^amalgam: error: no store at '$typo'|no store at '$typo'" "$AM" --store "$typo" $cmd </dev/null
done
[ ! -e "$typo" ] && ok "a mistyped --store creates nothing" || bad "a mistyped --store created $typo"
"$AM" --store "$typo" lua -e 'print(select(2, am.store.default()))' >"$W/out" 2>&1
grep -q "no store at '$typo'" "$W/out" && [ ! -e "$typo" ] && ok "amalgam lua: the default store is not created" \
  || bad "amalgam lua created or opened $typo"

# --- a small store: a random init, a pair dataset, three short runs
"$AM" init-model --config tiny --name base --seed 7 >/dev/null 2>"$W/err" || bad "init-model"
expect "info 0: an id prefix needs 4 hex characters" 1 "at least 4 hex characters" "$AM" info 0
expect "info abc: the same hint" 1 "at least 4 hex characters" "$AM" info abc
cat >"$W/prep.lua" <<'LUA'
local am = require "amalgam"
local ds = am.dataset.new("pairs")
for i = 1, 64 do assert(ds:add_pair("query " .. i .. " about topic " .. (i % 7), "document " .. i .. " on topic " .. (i % 7))) end
assert(ds:write(args.out))
LUA
"$AM" run "$W/prep.lua" out="$W/pairs.jsonl" >/dev/null 2>"$W/err" || bad "pairs fixture"
cat >"$W/train.lua" <<'LUA'
local am = require "amalgam"
local o = { name = args.name, init = args.init or "base", steps = tonumber(args.steps or 4), lr = 1e-3,
  seed = tonumber(args.seed or 3), progress = false, checkpoint_every = tonumber(args.ck or 0),
  tasks = { { data = args.data, batch = 8 } } }
if args.keep then o.keep_state = true end
local run, msg = am.train(o)
if not run then io.stderr:write(msg, "\n") os.exit(1) end
print(run.id)
LUA
expect "train: an unknown init model is named once" 1 "^train: unknown model 'nope' \(see amalgam ls models\)$" \
  "$AM" run "$W/train.lua" init=nope data="$W/pairs.jsonl"
run_a=$("$AM" run "$W/train.lua" name=sts-a data="$W/pairs.jsonl" 2>"$W/err") || bad "train a"
run_b=$("$AM" run "$W/train.lua" data="$W/pairs.jsonl" ck=2 seed=4 2>"$W/err") || bad "train b (unnamed, checkpoints)"
# a done run of an older build, which kept its trainer state: keep_state, then the flag removed
run_old=$("$AM" run "$W/train.lua" name=old data="$W/pairs.jsonl" keep=1 seed=5 2>"$W/err") || bad "train old"
"$AM" lua -e "local st = am.store.default(); local r = am.json.decode(st:get('runs', '$run_old'))
r.keep_state = nil; assert(st:put('runs', '$run_old', am.json.encode(r)))" 2>"$W/err" || bad "strip keep_state"
"$AM" lua -e "local st = am.store.default(); print(am.raw_run_state(st, '$run_a', 'state') == nil, am.raw_run_state(st, '$run_old', 'state') ~= nil)" >"$W/out" 2>&1
grep -q "^true	true$" "$W/out" && ok "a done run drops its trainer state; keep_state keeps it" || bad "state at the end of a run: $(cat "$W/out")"
"$AM" init-model --config tiny --name a-rather-long-model-name-that-goes-on-and-on-for-a-while --seed 9 >/dev/null 2>&1
"$AM" init-model --config tiny --name second-name-of-base --seed 7 >/dev/null 2>&1

# --- ls models: kinds, labels, sizes, aligned columns
"$AM" ls models >"$W/ls" 2>"$W/err"
grep -qE "^base,second-name-of-base +[0-9a-f]{12} +init " "$W/ls" && ok "ls: a random init is kind init, names joined" \
  || bad "ls kind init: $(cat "$W/ls")"
grep -qE "^${run_b:0:20}.*@2 +[0-9a-f]{12} +checkpoint " "$W/ls" && ok "ls: an unnamed checkpoint shows RUN@STEP" \
  || bad "ls run@step: $(cat "$W/ls")"
grep -qE "@2\.tau +[0-9a-f]{12} +task_vector " "$W/ls" && ok "ls: its task vector shows RUN@STEP.tau" || bad "ls tau label"
grep -qE "^a-rather-long-model-name-t…n-for-a-while  " "$W/ls" && ok "ls: a long name loses its middle to …" || bad "ls long name: $(cat "$W/ls")"
grep -qE "17\.[0-9] MB" "$W/ls" && ok "ls: sizes" || bad "ls sizes"
$PY - "$W/ls" <<'PY' && ok "ls: every row's columns line up with the header" || bad "ls alignment: $(cat "$W/ls")"
import sys, re
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
head = lines[0]
cols = [head.index(c) for c in ("ID", "KIND", "SIZE", "CREATED")]
for l in lines[1:]:
    m = re.search(r"  ([0-9a-f]{12})  ", l)
    assert m and m.start(1) == cols[0], l
    assert l[cols[1]:].split()[0] in ("init", "checkpoint", "task_vector"), l
    assert re.match(r"20\d\d-", l[cols[3]:]), l
PY
"$AM" ls models --json >"$W/json" 2>"$W/err"
$PY -c 'import json,sys; ms=json.load(open(sys.argv[1])); assert all(m["bytes"] > 17e6 and m["label"] for m in ms), ms' "$W/json" \
  && ok "ls --json has bytes and label" || bad "ls --json"

# --- du
expect "du: per kind, trainer state marked for gc" 0 "models: init +2 |models: checkpoint|run trainer state +1 .*1 of finished runs.*amalgam gc drops them|stored once" \
  "$AM" du
"$AM" du --json | $PY -c 'import json,sys; d=json.load(sys.stdin); assert d["file_bytes"] > 0 and any(k["kind"]=="run trainer state" and k["bytes"] > 60e6 for k in d["kinds"])' \
  && ok "du --json" || bad "du --json"
expect "info without an argument is du" 0 "run trainer state" "$AM" info

# --- rm: dependencies, --dry-run, --force
before=$(store_state)
expect "rm base: refused, it is a parent" 2 "is needed by model sts-a|nothing removed" "$AM" rm base
expect "rm --dry-run says what it would do" 0 "would remove model sts-a|would free" "$AM" rm sts-a --dry-run
expect_fail "rm an unknown name" "no model or run 'nope'" "$AM" rm nope
[ "$before" = "$(store_state)" ] && ok "refused / dry-run rm change nothing" || bad "rm changed the store"
expect "rm a run: its unnamed checkpoints and task vectors go with it" 0 \
  "removed model .*@2 \(.*checkpoint|removed model .*@2\.tau|removed run $run_b .*metrics rows" "$AM" rm "${run_b:0:12}"
"$AM" ls models >"$W/ls" 2>&1
! grep -q "@2" "$W/ls" && grep -q "^sts-a " "$W/ls" && ok "rm RUN: gone from ls models, other models stay" || bad "rm run: $(cat "$W/ls")"
"$AM" ls runs >"$W/out" 2>&1
! grep -q "$run_b" "$W/out" && grep -q "$run_a" "$W/out" && ok "rm RUN: gone from ls runs" || bad "rm run: ls runs"
expect "rm a named checkpoint" 0 "removed model sts-a \(" "$AM" rm sts-a
"$AM" run "$W/train.lua" name=child init=a-rather-long-model-name-that-goes-on-and-on-for-a-while data="$W/pairs.jsonl" >/dev/null 2>&1 \
  || bad "train from the long-named init"
expect "rm a model another one needs, --force" 0 "needed by model child|removed model a-rather-long" \
  "$AM" rm a-rather-long-model-name-that-goes-on-and-on-for-a-while --force
expect "info: a removed parent is marked in the lineage" 0 "└─ [0-9a-f]{12} +\(removed from the store\)" "$AM" info child

# a run that is training now: refused (its trainer would write the record again)
cat >"$W/slow.lua" <<'LUA'
local am = require "amalgam"
am.train { name = "live", init = "base", steps = 400, lr = 1e-3, progress = false, tasks = { { data = args.data, batch = 8 } },
  on_step = function(m)
    if m.step == 2 then io.open(args.mark, "w"):close() end
    local t = os.clock() + 0.05
    while os.clock() < t do end
  end }
LUA
"$AM" run "$W/slow.lua" data="$W/pairs.jsonl" mark="$W/mark" >/dev/null 2>&1 &
trainer=$!
for _ in $(seq 100); do [ -e "$W/mark" ] && break; sleep 0.2; done
live=$("$AM" lua -e 'for _, r in ipairs(am.runs()) do if r.name == "live" then print(r.id) end end' 2>/dev/null)
expect "rm a running run: refused" 2 "run $live is running \(pid $trainer\)" "$AM" rm "$live"
kill -TERM "$trainer"; wait "$trainer"
expect "rm the stopped run" 0 "removed run $live \(stopped\).*trainer state" "$AM" rm "$live"

# --- gc: finished runs' trainer state, keep_state, stale caches, --compact
run_k=$("$AM" run "$W/train.lua" name=kept data="$W/pairs.jsonl" keep=1 2>"$W/err") || bad "train with keep_state"
mkdir -p "$AMALGAM_STORE/cache/emb/0123456789abcdef0123456789abcdef"
echo '{"model":"00000000000000000000000000000000","layer":-1}' >"$AMALGAM_STORE/cache/emb/0123456789abcdef0123456789abcdef/space.json"
head -c 100000 /dev/zero >"$AMALGAM_STORE/cache/emb/0123456789abcdef0123456789abcdef/g.emb"
expect "gc --dry-run" 0 "would drop the trainer state of 1 finished runs|kept the trainer state of 1|would drop 1 embedding caches" "$AM" gc --dry-run
[ -d "$AMALGAM_STORE/cache/emb/0123456789abcdef0123456789abcdef" ] && ok "gc --dry-run keeps files" || bad "dry-run deleted files"
expect "gc drops finished runs' state and stale caches" 0 "dropped the trainer state of 1 finished runs: [67][0-9]\.[0-9] MB|dropped 1 embedding caches|free pages" "$AM" gc
[ ! -d "$AMALGAM_STORE/cache/emb/0123456789abcdef0123456789abcdef" ] && ok "gc removed the stale cache" || bad "stale cache kept"
"$AM" lua -e "local st = am.store.default(); print(am.raw_run_state(st, '$run_old', 'state') == nil, am.raw_run_state(st, '$run_k', 'state') ~= nil)" >"$W/out" 2>&1
grep -q "^true	true$" "$W/out" && ok "gc: the old done run's state is gone, the keep_state run's kept" || bad "gc state: $(cat "$W/out")"
expect "gc again: nothing to drop" 0 "nothing to drop" "$AM" gc
size0=$(stat -c %s "$AMALGAM_STORE/data.mdb")
# compaction refuses while another process has the store open
"$AM" lua -e 'am.models(); io.read()' < <(sleep 4) >/dev/null 2>&1 &
holder=$!
sleep 1.5
expect "gc --compact refuses while the store is open elsewhere" 1 "open in another process" "$AM" gc --compact
wait "$holder"
sum0=$(mdb_dump -a "$AMALGAM_STORE" | md5sum)
expect "gc --compact shrinks data.mdb" 0 "compacted data.mdb: .* -> " "$AM" gc --compact
size1=$(stat -c %s "$AMALGAM_STORE/data.mdb")
[ "$size1" -lt "$size0" ] && ok "data.mdb shrank ($size0 -> $size1 bytes)" || bad "data.mdb did not shrink ($size0 -> $size1)"
[ "$sum0" = "$(mdb_dump -a "$AMALGAM_STORE" | md5sum)" ] && ok "compaction keeps every key and value" || bad "compaction changed the content"
[ ! -e "$AMALGAM_STORE/compact.tmp" ] && ok "no temporary left" || bad "compact.tmp left"
expect "the compacted store works" 0 "^kept " "$AM" ls models
"$AM" run "$W/train.lua" name=after data="$W/pairs.jsonl" >/dev/null 2>"$W/err" && ok "training writes to the compacted store" \
  || bad "train after compaction"

# --- a store written before the run API (tests/ref/store/old_store): du reads it in place, gc
# drops the done run's state and keeps the stopped one's, compaction keeps it readable
cp -r "$T/ref/store/old_store" "$W/old"
expect "du on an old store" 0 "run trainer state +2 .*1 of finished runs" "$AM" --store "$W/old" du
expect "gc on an old store" 0 "dropped the trainer state of 1 finished runs" "$AM" --store "$W/old" gc --compact
expect "the stopped run still resumes (its data paths are relative to tests/)" 0 "^run fx-stopped.* done at step 6 of 6" \
  sh -c 'cd "$1" && exec "$2" --store "$3" resume fx-stopped' sh "$T" "$AM" "$W/old"

am_test_finish
