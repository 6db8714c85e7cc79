#!/usr/bin/env bash
# CLI tests of training run control through the real binary: recipe syntax / runtime errors
# (file:line, exit 1, store unchanged), SIGTERM / SIGINT during `amalgam run` (stop after the
# current step, exit 143 / 130, run "stopped" with a checkpoint, am.resume reaches the same final
# loss as an uninterrupted run of the same seed), a NaN loss (run "failed" with a message, the
# last good checkpoint kept), `amalgam ls runs` and `amalgam info RUN`.
# usage: test_train.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_train

# --- fixture: a tiny base model and tests/ref/train/pairs64.txt as a JSONL pair file
"$AM" init-model --config tiny --name base --seed 7 >/dev/null 2>"$W/err" || bad "init-model for the fixture store"
cat >"$W/prep.lua" <<'LUA'
local am = require "amalgam"
local words, ds = {}, am.dataset.new("pairs")
for line in io.lines(args.src) do
  if line:match("^# %[PAD%]") then
    for w in line:sub(3):gmatch("%S+") do words[#words + 1] = w end
  elseif not line:match("^#") and line:match("%S") then
    local a, b = line:match("^(.-)\t(.*)$")
    local function dec(s)
      local out = {}
      for id in s:gmatch("%d+") do
        local w = words[tonumber(id) + 1]
        if w ~= "[CLS]" and w ~= "[SEP]" then out[#out + 1] = w end
      end
      return table.concat(out, " ")
    end
    assert(ds:add_pair(dec(a), dec(b)))
  end
end
assert(ds:n() == 64, "pairs64 decoded")
assert(ds:write(args.out))
LUA
"$AM" run "$W/prep.lua" src="$T/ref/train/pairs64.txt" out="$W/pairs.jsonl" >/dev/null 2>"$W/err" \
  && [ "$(wc -l <"$W/pairs.jsonl")" = 64 ] && ok "pairs64 as JSONL" || bad "pairs64 as JSONL"

# the training recipe: 40 steps, seed 3; `slow` busy-waits per step (no os.execute: system()
# would ignore SIGINT) and `mark` is touched after step 3, so a signal lands mid-run
cat >"$W/train.lua" <<'LUA'
local am = require "amalgam"
local run = assert(am.train { name = args.name, init = "base", steps = 40, lr = 1e-3, seed = 3, progress = false,
  tasks = { { data = args.data, batch = 8 } },
  on_step = function(m)
    if args.mark and m.step == 3 then io.open(args.mark, "w"):close() end
    local t = os.clock() + (args.slow or 0)
    while os.clock() < t do end
  end })
print(("final %s %s %.17g"):format(run.id, run.status, run.losses[#run.losses]))
LUA
cat >"$W/resume.lua" <<'LUA'
local am = require "amalgam"
local run = assert(am.resume(args.id, { progress = false }))
print(("final %s %s %.17g"):format(run.id, run.status, run.losses[#run.losses]))
LUA

# --- recipe errors: file:line, exit 1, store unchanged
before=$(store_state)
printf 'local am = require "amalgam"\nlocal run = am.train {\n  init = "base" steps = 3 }\n' >"$W/syntax.lua"
expect "syntax error in a recipe shows file:line" 1 "syntax.lua:3:" "$AM" run "$W/syntax.lua"
[ "$(store_state)" = "$before" ] && ok "syntax error leaves the store unchanged" || bad "store changed by a syntax error"
printf 'local am = require "amalgam"\nlocal cfg = nil\nlocal steps = cfg.steps\n' >"$W/runtime.lua"
expect "runtime error in a recipe shows file:line" 1 "runtime.lua:3: attempt to index" "$AM" run "$W/runtime.lua"
printf 'local am = require "amalgam"\n\nam.train { init = "base", tasks = { { data = args.data } }, stpes = 3 }\n' >"$W/badopt.lua"
expect "a bad am.train option shows the recipe's file:line" 1 "badopt.lua:3:.*stpes" \
  "$AM" run "$W/badopt.lua" data="$W/pairs.jsonl"
[ "$(store_state)" = "$before" ] && ok "runtime errors leave the store unchanged" || bad "store changed by a runtime error"

# --- the uninterrupted reference run
expect "uninterrupted run" 0 "^final .* done " "$AM" run "$W/train.lua" name=ref data="$W/pairs.jsonl"
ref_loss=$(awk '/^final/ {print $4}' "$W/out")

# --- SIGTERM / SIGINT mid-run: stop after the current step, exit 143 / 130, resume exactly
for sig in TERM INT; do
  want=$([ $sig = TERM ] && echo 143 || echo 130)
  rm -f "$W/mark"
  "$AM" run "$W/train.lua" name=sig$sig data="$W/pairs.jsonl" mark="$W/mark" slow=0.05 >"$W/out" 2>"$W/err" &
  pid=$!
  for _ in $(seq 1 600); do [ -e "$W/mark" ] && break; sleep 0.05; done
  kill -$sig $pid 2>/dev/null
  wait $pid; rc=$?
  [ "$rc" = "$want" ] && ok "SIG$sig during amalgam run exits $want" || bad "SIG$sig exit $rc, want $want"
  id=$(sed -n 's/^amalgam: interrupted at step [0-9]*\/40 of run \([^;]*\); resume with: amalgam resume \1$/\1/p' "$W/err")
  [ -n "$id" ] && ok "SIG$sig: one line names the step and how to resume the run" || bad "SIG$sig: no resume hint"
  grep -q "traceback\|error" "$W/err" && bad "SIG$sig: a traceback or error after an interrupt" || ok "SIG$sig: no traceback"
  "$AM" info "$id" --json >"$W/info" 2>"$W/err"
  step=$(awk -F: '/"step":/ {gsub(/[ \t,]/, "", $2); print $2; exit}' "$W/info")
  grep -q '"status":[[:space:]]*"stopped"' "$W/info" && ok "SIG$sig: run marked stopped" || bad "SIG$sig: run not stopped"
  grep -q '"last":[[:space:]]*"[0-9a-f]\{32\}"' "$W/info" && ok "SIG$sig: a checkpoint is stored" || bad "SIG$sig: no checkpoint"
  [ -n "$step" ] && [ "$step" -ge 3 ] && [ "$step" -lt 40 ] && ok "SIG$sig: stopped after step $step (mid-run)" \
    || bad "SIG$sig: stopped at step '$step'"
  expect "SIG$sig: am.resume continues to the end" 0 "^final $id done " "$AM" run "$W/resume.lua" id="$id"
  got=$(awk '/^final/ {print $4}' "$W/out")
  [ -n "$got" ] && [ "$got" = "$ref_loss" ] && ok "SIG$sig: resumed final loss = uninterrupted ($got)" \
    || bad "SIG$sig: resumed final loss $got != $ref_loss"
done

# --- NaN loss: the run fails with a message, the last good checkpoint is kept. lr 1e5 (seed 3)
# first gives a non-finite loss a few steps in; the checkpoint of the step before the failing one
# produced that loss, so "last good" is the one before it.
cat >"$W/nan.lua" <<'LUA'
local am = require "amalgam"
local run, msg = am.train { name = "nan", init = "base", steps = 20, lr = tonumber(args.lr), seed = 3, progress = false,
  checkpoint_every = 1, tasks = { { data = args.data, batch = 8 } } }
assert(run == nil, "the run should fail")
error(msg, 0)
LUA
expect "NaN loss stops the run with a message" 1 "non-finite loss at step [0-9]+: .*the last good checkpoint \(step [0-9]+\) is kept" \
  "$AM" run "$W/nan.lua" data="$W/pairs.jsonl" lr=1e5
"$AM" ls runs >"$W/ls" 2>"$W/err"
nid=$(awk '$2 == "failed" {print $1; exit}' "$W/ls")
"$AM" info "$nid" --json >"$W/info" 2>"$W/err"
grep -q '"status":[[:space:]]*"failed"' "$W/info" && ok "NaN: run marked failed" || bad "NaN: run not failed"
grep -q '"error":[[:space:]]*"non-finite loss' "$W/info" && ok "NaN: the record keeps the message" || bad "NaN: no error message"
ck=$(grep -o '"good":[[:space:]]*"[0-9a-f]\{32\}"' "$W/info" | grep -o '[0-9a-f]\{32\}')
[ -n "$ck" ] && "$AM" info "$ck" >"$W/out" 2>"$W/err" && ok "NaN: the last good checkpoint is kept" \
  || bad "NaN: no last good checkpoint"
cat >"$W/nancheck.lua" <<'LUA'
local am = require "amalgam"
local r = assert(am.run_info(args.id))
local bad = tonumber(r.error:match("at step (%d+)"))
local cks = r.models.checkpoints
assert(bad and bad >= 3, "the failing step")
assert(r.step == bad - 1, ("run step %s, want %d"):format(r.step, bad - 1))
assert(#cks == bad - 1 and cks[#cks].step == bad - 1 and cks[#cks].id == r.models.last, "a checkpoint per finite step")
assert(cks[#cks - 1].step == bad - 2 and cks[#cks - 1].id == r.models.good, "good = the checkpoint before the last")
local m = assert(am.model(r.models.good))
assert(m:kind() == "checkpoint", "the checkpoint loads")
-- its weights give a finite embedding
local e = assert(m:encode({ "a finite embedding" }))
for j = 1, e:cols() do local x = e:get(1, j); assert(x == x and math.abs(x) < math.huge, "finite") end
print(("last good %d of %d"):format(bad - 2, bad))
LUA
expect "NaN: the last good checkpoint is the one before the last finite step" 0 "^last good [0-9]+ of [0-9]+$" \
  "$AM" run "$W/nancheck.lua" id="$nid"
# lr 1e30: the very first update already poisons the weights: no good checkpoint, the message says so
"$AM" --store "$W/s30" init-model --config tiny --name base --seed 7 >/dev/null 2>&1
expect "NaN at step 2: no good checkpoint, the initial model is the last good one" 1 \
  "non-finite loss at step 2: .*no checkpoint before it: the last good weights are the initial model" \
  "$AM" --store "$W/s30" run "$W/nan.lua" data="$W/pairs.jsonl" lr=1e30

# --- amalgam ls runs / amalgam info RUN
expect "ls runs lists every run" 0 "^RUN +STATUS|^ref-[^ ]+ +done +40/40|^sigTERM-[^ ]+ +done +40/40|^sigINT-[^ ]+ +done +40/40|^nan-[^ ]+ +failed" "$AM" ls runs
rid=$(awk '$1 ~ /^ref-/ {print $1; exit}' "$W/ls")
expect "info RUN --json gives the record" 0 "\"status\":[[:space:]]*\"done\"|\"name\":[[:space:]]*\"ref\"|\"format\":[[:space:]]*1" \
  "$AM" info "$rid" --json
expect "info RUN: a summary" 0 "^run +$rid|^status +done, step 40 of 40|^recipe +.*train.lua|^time +.*\([0-9]+s\)|^tasks +1 pairs.jsonl +pairs +64 rows, batch 8 +infonce +final loss [0-9.]+ \(step 40\)|^models +[0-9a-f]{12}  step 40 +ref +\(final\)|task vector" \
  "$AM" info "$rid"
expect "info RUN accepts a unique prefix" 0 "^run +$rid" "$AM" info "${rid:0:12}"
expect "info MODEL shows the run that made it" 0 "^run +[a-zA-Z]+-[0-9]+-[0-9a-f]+  \(step 40 of its 40; run done" "$AM" info ref
expect "info of a task vector shows its checkpoint's run" 0 "^run +[a-zA-Z]+-[0-9]+-[0-9a-f]+  \(step 40 of its 40; run done" "$AM" info ref.tau
expect_fail "info of an ambiguous run prefix lists the runs" "run id prefix 'sig' is ambiguous, 2 runs match: sigINT-.*, sigTERM-" \
  "$AM" info sig
expect "info of an unknown run fails" 1 "unknown model 'nosuch-run'.*no run matches it either" "$AM" info nosuch-run
"$AM" ls runs --json >"$W/runs.json" 2>"$W/err"
printf 'local am = require "amalgam"\nlocal f = io.open(args.f)\nlocal t = am.json.decode(f:read("a"))\nlocal s = {}\nfor _, r in ipairs(t) do assert(not (r.recipe and r.recipe.source), "no recipe source"); s[#s + 1] = r.name .. "=" .. r.status end\ntable.sort(s)\nprint(#t, table.concat(s, ","))\n' >"$W/lsjson.lua"
expect "ls runs --json gives every run record" 0 "^4	nan=failed,ref=done,sigINT=done,sigTERM=done$" \
  "$AM" run "$W/lsjson.lua" f="$W/runs.json"

am_test_finish
