#!/usr/bin/env bash
# CLI tests of the one Lua host (src/lua/l_host.c) through the real binary: error reports and
# exit codes (recipe error file:line exit 1, SIGINT 130 / SIGTERM 143 as one line without a
# traceback, for run, lua, eval and prepare; nothing below main exits), recipe parameters
# (am.params: booleans, unknown keys, types; unread-argument warnings; force=true / dropout=true
# reach the shipped recipes), option typos pointing at the recipe line, `amalgam lua -i` on a
# pipe, and --help.
# usage: test_host.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
R="$T/../recipes"
source "$(dirname "$0")/lib.bash"
am_test_init am_host

# --- nothing below main exits the process: main returns the exit code
hits=$(grep -rnE '(^|[^_a-z])(exit|_exit|_Exit|quick_exit) *\(' "$T/../src" | grep -v '^[^:]*:[0-9]*: *\(/\*\|\*\|//\)')
[ -z "$hits" ] && ok "no exit() in src/" || { echo "$hits" >"$W/out"; bad "exit() in src/"; }

# --- --help
"$AM" --help >"$W/out" 2>&1
grep -q "info RUN" "$W/out" && ok "--help lists info RUN" || bad "--help lacks info RUN"
grep -q "lua \[-i\]" "$W/out" && ok "--help lists lua -i" || bad "--help lacks lua -i"

# --- errors: file:line + traceback, exit 1
printf 'local x = 1\nlocal function f() error("boom") end\nf()\n' >"$W/err.lua"
expect "a Lua error in a recipe: file:line, traceback, exit 1" 1 "^amalgam: error: .*err.lua:2: boom|stack traceback:" \
  "$AM" run "$W/err.lua"
expect "the same through amalgam lua" 1 "^amalgam: error: .*err.lua:2: boom" "$AM" lua "$W/err.lua"

# --- signals: one line, no traceback, 130 / 143, for run, lua, lua -e, a pcall loop
cat >"$W/loop.lua" <<'LUA'
local f = io.open(args and args.flag or arg[1], "w"); f:write("x"); f:close()
local n = 0
while true do pcall(function() for i = 1, 1e5 do n = n + i end end) end
LUA
signal_started() { # SIG CMD...: run CMD, send SIG once $W/started exists; rc = its exit status
  local sig="$1"; shift
  rm -f "$W/started"
  "$@" >"$W/out" 2>"$W/err" &
  local pid=$!
  for _ in $(seq 100); do [ -f "$W/started" ] && break; sleep 0.1; done
  sleep 0.2
  kill -"$sig" $pid 2>/dev/null
  wait $pid; rc=$?
}
sigtest() { # NAME SIG WANT CMD...
  local name="$1" sig="$2" want="$3" rc; shift 3
  signal_started "$sig" "$@"
  if [ "$rc" = "$want" ] && [ "$(wc -l <"$W/err")" = 1 ] && grep -qE "^amalgam: .*loop.lua:[0-9]+: interrupted$" "$W/err"
  then ok "$name: exit $want, one line"; else bad "$name (exit $rc, want $want)"; fi
}
sigtest "SIGINT during amalgam run" INT 130 "$AM" run "$W/loop.lua" flag="$W/started"
sigtest "SIGTERM during amalgam run" TERM 143 "$AM" run "$W/loop.lua" flag="$W/started"
sigtest "SIGINT during amalgam lua" INT 130 "$AM" lua "$W/loop.lua" "$W/started"
sigtest "SIGTERM during amalgam lua" TERM 143 "$AM" lua "$W/loop.lua" "$W/started"

# --- eval / prepare run through the host too (their Lua modules replaced via AMALGAM_LUA_PATH)
"$AM" init-model --config tiny --name base --seed 7 >/dev/null 2>"$W/err" || bad "init-model for the fixture store"
mkdir -p "$W/dev/amalgam"
cat >"$W/dev/amalgam/eval.lua" <<'LUA'
local M = {}
function M.cli_eval(a)
  if a.models[1] == "loop" then
    io.open(os.getenv("FLAG"), "w"):close()
    while true do end
  end
  error("eval exploded")
end
M.cli_compare = M.cli_eval
return M
LUA
cat >"$W/dev/amalgam/prepare.lua" <<'LUA'
return { main = function(o)
  if o.tasks[1] == "loop" then io.open(os.getenv("FLAG"), "w"):close(); while true do end end
  if o.tasks[1] == "fail" then return nil, "prepare said no" end
  error("prepare exploded")
end }
LUA
expect "a Lua error in eval: reported once, exit 1" 1 "^amalgam: error: .*eval.lua:[0-9]+: eval exploded" \
  env AMALGAM_LUA_PATH="$W/dev" "$AM" eval base
[ "$(grep -c '^amalgam: ' "$W/err")" = 1 ] && ok "eval: one message" || bad "eval: messages doubled"
expect "a Lua error in prepare: reported once, exit 1" 1 "^amalgam: error: .*prepare.lua:[0-9]+: prepare exploded" \
  env AMALGAM_LUA_PATH="$W/dev" "$AM" prepare x
[ "$(grep -c '^amalgam: ' "$W/err")" = 1 ] && ok "prepare: one message" || bad "prepare: messages doubled"
expect "prepare's nil, msg: exit 1" 1 "^amalgam: error: prepare said no$" env AMALGAM_LUA_PATH="$W/dev" "$AM" prepare fail
sigwait() { # NAME SIG WANT CMD...: signal once $W/started exists
  local name="$1" sig="$2" want="$3" rc; shift 3
  signal_started "$sig" "$@"
  if [ "$rc" = "$want" ] && grep -q "interrupted" "$W/err" && ! grep -q "traceback" "$W/err"
  then ok "$name: exit $want"; else bad "$name (exit $rc, want $want)"; fi
}
sigwait "SIGTERM during amalgam eval" TERM 143 env FLAG="$W/started" AMALGAM_LUA_PATH="$W/dev" "$AM" eval loop
sigwait "SIGINT during amalgam prepare" INT 130 env FLAG="$W/started" AMALGAM_LUA_PATH="$W/dev" "$AM" prepare loop

# --- recipe parameters (am.params)
cat >"$W/params.lua" <<'LUA'
local p = am.params { steps = 200, lr = 1e-4, name = "x", force = false, warmup = { type = "integer" } }
print(p.steps, math.type(p.steps), p.lr, p.name, p.force, type(p.force), p.warmup)
LUA
expect "params: defaults" 0 "^200	integer	0.0001	x	false	boolean	nil$" "$AM" run "$W/params.lua"
expect "params: force=true is the boolean true, name=123 a string" 0 "^10	integer	0.5	123	true	boolean	7$" \
  "$AM" run "$W/params.lua" steps=10 lr=0.5 name=123 force=true warmup=7
expect "params: an unknown key names it and the known ones, exit 2" 2 \
  "^amalgam: error: .*params.lua: unknown argument 'forse' \(known: force, lr, name, steps, warmup\)$" \
  "$AM" run "$W/params.lua" forse=true
grep -q traceback "$W/err" && bad "params: a usage error shows a traceback" || ok "params: no traceback for a usage error"
expect "params: a boolean must be true or false" 2 "argument 'force' must be true or false, got 'yes'" \
  "$AM" run "$W/params.lua" force=yes
expect "params: an integer must be an integer" 2 "argument 'steps' must be an integer, got '1.5'" \
  "$AM" run "$W/params.lua" steps=1.5
expect "params: a number must be a number" 2 "argument 'lr' must be a number, got 'fast'" "$AM" run "$W/params.lua" lr=fast
expect "params: positional arguments are rejected" 2 "unexpected argument 'oops'" "$AM" run "$W/params.lua" oops
printf 'local p = am.params { steps = 1 }\nprint(p.stpes)\n' >"$W/undeclared.lua"
expect "params: reading an undeclared parameter raises at the line" 1 "undeclared.lua:2: 'stpes' is not a parameter" \
  "$AM" run "$W/undeclared.lua"
# a recipe without am.params: an argument it never read is warned about at the end
printf 'print(args.steps or 5)\nif args.never then print("no") end\n' >"$W/plain.lua"
expect "no params: an unread argument is warned about" 0 "^3$|warning: .*plain.lua: argument 'stpes' was never read by the recipe \(it read: steps\)" \
  "$AM" run "$W/plain.lua" steps=3 stpes=4
grep -q "never'" "$W/err" && bad "no params: a read key is not warned about" || ok "no params: read keys are not warned about"

# --- the shipped recipes declare their parameters: typos fail before anything runs
before=$(store_state)
for r in train_tasks pretrain_base judge_base; do
  expect "$r.lua: an unknown argument fails up front" 2 "$r.lua: unknown argument 'forse' \(known: .*steps" \
    "$AM" run "$R/$r.lua" forse=true
done
[ "$(store_state)" = "$before" ] && ok "the failing recipes left the store unchanged" || bad "store changed"

# --- force=true retrains (train_tasks.lua on a registered toy dataset)
cat >"$W/mk.lua" <<'LUA'
local ds = am.dataset.new("pairs")
for i = 1, 32 do ds:add_pair("query number " .. i .. " about things", "answer " .. i .. " matching things") end
assert(ds:write(args.dir .. "/pairs.jsonl"))
local f = io.open(args.dir .. "/corpus.txt", "w")
for i = 1, 40 do f:write(("a document about topic %d with some words in it and more words after them\n"):format(i)) end
f:close()
local st = am.store.default()
assert(st:put("datasets", "toy", am.json.encode { path = args.dir, files = { train = { path = "pairs.jsonl", kind = "pairs" } } }))
-- as prepare writes it: a store-relative path
local pd = st:dir() .. "/datasets/pretrain"
os.execute("mkdir -p '" .. pd .. "' && cp '" .. args.dir .. "/corpus.txt' '" .. pd .. "/'")
assert(st:put("datasets", "pretrain", am.json.encode { path = "datasets/pretrain", files = { train = { path = "corpus.txt", kind = "text" } } }))
LUA
"$AM" run "$W/mk.lua" dir="$W" >/dev/null 2>"$W/err" || bad "toy datasets"
tt() { "$AM" run "$R/train_tasks.lua" base=base tasks=toy steps=2 batch=8 "$@"; }
expect "train_tasks: the first run trains" 0 "^toy +run " tt
expect "train_tasks: a second run keeps the model" 0 "^toy +already trained" tt
expect "train_tasks: force=true retrains" 0 "^toy +run " tt force=true
pb() { "$AM" run "$R/pretrain_base.lua" init=base name=pb steps=2 batch=4 rows=16 max_len=16 "$@"; }
expect "pretrain_base: dropout=true trains" 0 "^pretrain: 16 rows, 2 steps" pb dropout=true
run=$(sed -n 's/^pretrain: .*; run \([^;]*\); model .*/\1/p' "$W/out")
printf 'local r = assert(am.run_info(args.id))\nprint("dropout", r.trainer and r.trainer.dropout)\n' >"$W/drop.lua"
expect "pretrain_base: dropout=true reaches am.train" 0 "^dropout	true$" "$AM" run "$W/drop.lua" id="$run"
expect "pretrain_base: a second run keeps the model" 0 "already pretrained" pb
expect "pretrain_base: force=true retrains" 0 "^pretrain: 16 rows, 2 steps" pb force=true

# --- an option typo points at the recipe line, not into lua/amalgam/*.lua
typo() { # NAME CODE
  printf 'local x = 1\n\n%s\n' "$2" >"$W/typo.lua"
  expect "$1" 1 "^amalgam: error: [^ ]*typo.lua:3: " "$AM" run "$W/typo.lua" data="$W/pairs.jsonl"
}
typo "am.train option typo" 'am.train { init = "base", tasks = { { data = args.data } }, stpes = 3 }'
typo "task option typo" 'am.train { init = "base", tasks = { { data = args.data, btach = 8 } }, steps = 2 }'
typo "am.loss option typo" 'am.train { init = "base", tasks = { { data = args.data, loss = am.loss.infonce { temprature = 1 } } } }'
typo "hand-written loss option typo" 'am.train { init = "base", tasks = { { data = args.data, loss = { kind = "cosent", scael = 1 } } } }'
typo "inner loss option typo" 'am.loss.matryoshka { dims = { 32 }, inner = { kind = "infonce", tmp = 1 } }'
typo "lora option typo" 'am.train { init = "base", lora = { rnak = 4 }, tasks = { { data = args.data } }, steps = 2 }'

# --- amalgam lua on a pipe: a script; -i: the REPL
expect "a piped stdin is a script" 0 "^piped	3$" sh -c "echo 'print(\"piped\", 1 + 2)' | \"$AM\" lua"
expect "lua -i: the REPL on a pipe (expressions print, errors keep it going)" 0 "^> 3$|stdin:1: oops|still here" \
  sh -c "printf '1 + 2\nerror(\"oops\")\nprint(\"still here\")\n' | \"$AM\" lua -i"
expect "lua -i -e CODE: the chunk runs first" 0 "^> 42$" sh -c "echo 'x * 2' | \"$AM\" lua -i -e 'x = 21'"

# --- Ctrl-C in the REPL stops the running line only; the next line runs
rm -f "$W/started"
{ printf 'io.open("%s", "w"):close(); while true do end\n' "$W/started"
  for _ in $(seq 100); do [ -f "$W/started" ] && break; sleep 0.1; done; sleep 1
  echo 'print("after", 1 + 1)'; } | "$AM" lua -i >"$W/out" 2>"$W/err" &
pid=$! # the last process of the pipeline: amalgam
for _ in $(seq 100); do [ -f "$W/started" ] && break; sleep 0.1; done
sleep 0.3
kill -INT $pid 2>/dev/null
wait $pid; rc=$?
if [ "$rc" = 0 ] && grep -q "^amalgam: stdin:1: interrupted$" "$W/err" && grep -q "after	2" "$W/out"; then
  ok "REPL: Ctrl-C interrupts the line, the REPL goes on"
else bad "REPL Ctrl-C (exit $rc)"; fi

am_test_finish
