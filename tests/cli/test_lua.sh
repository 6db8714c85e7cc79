#!/usr/bin/env bash
# CLI tests of the Lua layer through the real binary: amalgam run / amalgam lua, error reports
# (syntax, runtime, undefined global), key=value args, stdin scripts, the REPL, Ctrl-C, the
# AMALGAM_LUA_PATH override, and the amalgam.so module in a stock lua5.4.
# usage: test_lua.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
BUILD="$(cd "$(dirname "$AM")" && pwd)"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_lua

"$AM" --help >"$W/out" 2>&1
grep -q "^  run " "$W/out" && grep -q "^  lua " "$W/out" && ok "help lists run and lua" || bad "help lists run and lua"

# a store with a model, to check that failing recipes leave it unchanged
"$AM" init-model --config tiny --name base >/dev/null 2>"$W/err" || bad "init-model for the fixture store"
before=$(store_state)

# --- syntax error: file:line, non-zero exit, store unchanged
printf 'local am = require "amalgam"\nlocal m = am.model("base")\nlocal x = = 3\n' >"$W/syntax.lua"
expect "syntax error shows file:line" 1 "syntax.lua:3: unexpected symbol near '='" "$AM" run "$W/syntax.lua"
[ "$(store_state)" = "$before" ] && ok "syntax error leaves the store unchanged" || bad "store changed by a syntax error"

# --- runtime error: file:line + traceback, store unchanged
cat >"$W/runtime.lua" <<'LUA'
local am = require "amalgam"
local function inner(m)
  local t = m:tensor(nil)
  return t
end
local function outer()
  local t = inner(am.model("base"))
  return t
end
outer()
LUA
expect "runtime error shows file:line and a traceback" 1 \
  "runtime.lua:3: bad argument #1 to 'tensor' \(string expected, got nil\)|stack traceback:|runtime.lua:3: in upvalue 'inner'|runtime.lua:7: in local 'outer'|runtime.lua:10: in main chunk" \
  "$AM" run "$W/runtime.lua"
[ "$(store_state)" = "$before" ] && ok "runtime error leaves the store unchanged" || bad "store changed by a runtime error"
printf 'error("plain failure")\n' >"$W/err1.lua"
expect "error() in a recipe" 1 "err1.lua:1: plain failure" "$AM" run "$W/err1.lua"
printf 'error({code = 1})\n' >"$W/err2.lua"
expect "non-string error objects are reported" 1 "error object is a table value" "$AM" run "$W/err2.lua"

# --- undefined global (typo) fails loudly; defining globals is fine
printf 'steps = 10\nlocal total = 0\nfor i = 1, stpes do total = total + i end\n' >"$W/typo.lua"
expect "undefined global names the global and file:line" 1 "typo.lua:3: undefined global 'stpes'" "$AM" run "$W/typo.lua"
printf 'x = 1\nfunction f() return x + 1 end\ny = nil\nassert(f() == 2 and y == nil)\nprint("globals ok")\n' >"$W/globals.lua"
expect "top-level globals are allowed" 0 "^globals ok$" "$AM" run "$W/globals.lua"

# --- key=value args: numbers converted, visible as args/arg and ...
cat >"$W/args.lua" <<'LUA'
local a = ...
print(args.steps + 1, math.type(args.steps), args.lr * 2, args.name, args.flag, args[1], arg == args, a == args)
LUA
expect "key=value args" 0 "^11	integer	0.5	run-1	true	extra	true	true$" \
  "$AM" run "$W/args.lua" steps=10 lr=0.25 name=run-1 flag=true extra

# --- a returned table runs its lifecycle hooks
printf 'return { setup = function(a) print("setup", a.n) end, run = function(a) return a.n * 2 end,\n  done = function(r) print("done", r) end }\n' >"$W/hooks.lua"
expect "a recipe returning a table runs setup/run/done" 0 "^setup	3$|^done	6$" "$AM" run "$W/hooks.lua" n=3

# --- the recipe uses the store given by --store (before or after the command)
printf 'local am = require "amalgam"\nassert(am.init_model{name = "from-lua", seed = 5})\nprint(am.store.default():dir())\n' >"$W/mk.lua"
expect "--store after the command" 0 "$W/other" "$AM" run "$W/mk.lua" --store "$W/other"
expect "the model is in that store" 0 "^from-lua " "$AM" ls --store "$W/other"
expect "--store before the command" 0 "$W/other2" "$AM" --store "$W/other2" run "$W/mk.lua"
expect "AMALGAM_STORE is the default" 0 "^base	" "$AM" lua -e 'for _, m in ipairs(am.models()) do print(m.name, m.id) end'

# --- amalgam lua: stdin script, -e, FILE ARGS
expect "amalgam lua reads a script from stdin" 0 "^from stdin	1	base$" \
  sh -c "printf 'local ms = am.models()\nprint(\"from stdin\", #ms, ms[1].name)\n' | \"$AM\" lua"
expect "amalgam lua - reads stdin" 0 "^dash$" sh -c "echo 'print(\"dash\")' | \"$AM\" lua -"
expect "amalgam lua -e CODE ARGS" 0 "^2	a	b$" "$AM" lua -e 'print(#arg, ...)' a b
printf 'print(arg[0], ...)\nprint(undefined_is_nil == nil)\n' >"$W/plain.lua"
expect "amalgam lua FILE ARGS (plain Lua semantics)" 0 "plain.lua	x	y|^true$" "$AM" lua "$W/plain.lua" x y
expect "amalgam lua syntax error on stdin" 1 "stdin:1:" sh -c "echo 'x = = 1' | \"$AM\" lua"
expect "amalgam run without a recipe is a usage error" 2 "usage: amalgam run RECIPE.lua" "$AM" run
expect "missing recipe file" 1 "cannot open .*nope.lua" "$AM" run "$W/nope.lua"

# --- REPL on a terminal (script(1) gives it a pty)
if command -v script >/dev/null 2>&1; then
  printf '1 + 2\nlocal t = {\n1, 2}\nam.version\nerror("oops")\nprint("still here")\n' >"$W/repl.in"
  # type line by line and keep the pty's input open a while: script(1) hangs up as soon as its
  # stdin ends, which can cut the REPL off before it has answered every line on a loaded machine
  { while IFS= read -r l; do printf '%s\n' "$l"; sleep 0.3; done <"$W/repl.in"; sleep 3; } | timeout 20 script -qec "\"$AM\" lua" /dev/null >"$W/out" 2>&1
  if grep -q "^> 3" "$W/out" && grep -q "stdin:1: oops" "$W/out" && grep -q "still here" "$W/out" &&
     grep -q ">> " "$W/out"; then ok "REPL: expressions, continuation lines, errors keep it running"
  else bad "REPL"; fi
else
  ok "REPL (skipped: no script(1))"
fi

# --- Ctrl-C: "interrupted" at the running line, pcall cannot swallow it, exit 130
cat >"$W/loop.lua" <<'LUA'
local f = io.open(args.flag, "w"); f:write("x"); f:close()
local n = 0
while true do pcall(function() for i = 1, 1e5 do n = n + i end end) end
LUA
"$AM" run "$W/loop.lua" flag="$W/started" >"$W/out" 2>"$W/err" &
pid=$!
for _ in $(seq 100); do [ -f "$W/started" ] && break; sleep 0.1; done
sleep 0.2
kill -INT $pid 2>/dev/null
wait $pid; rc=$?
if [ $rc = 130 ] && grep -qE "loop.lua:[0-9]+: interrupted" "$W/err"; then ok "SIGINT interrupts the recipe (exit 130)"
else bad "SIGINT interrupt (exit $rc)"; fi

# --- AMALGAM_LUA_PATH serves lua/amalgam/*.lua from disk (development), the binary otherwise
mkdir -p "$W/dev/amalgam"
printf 'return { hello = "from disk" }\n' >"$W/dev/amalgam/devonly.lua"
expect "AMALGAM_LUA_PATH overrides bundled modules" 0 "^from disk$" \
  env AMALGAM_LUA_PATH="$W/dev" "$AM" lua -e 'print(require("amalgam.devonly").hello)'
expect "without it the bundled copy is used" 1 "no bundled module 'amalgam.devonly'" \
  "$AM" lua -e 'print(require("amalgam.devonly").hello)'

# --- a stock lua5.4 can require "amalgam" (build/amalgam.so)
if command -v lua5.4 >/dev/null 2>&1 && [ -f "$BUILD/amalgam.so" ]; then
  expect "lua5.4: require 'amalgam'" 0 "^0\.[0-9]+\.[0-9]+	32$" \
    env LUA_CPATH="$BUILD/?.so" lua5.4 -e "local am = require 'amalgam'
      local st <close> = assert(am.store.open('$W/so_store'))
      local m = assert(am.import('$T/ref/hf/bert_tiny', {store = st, name = 'bt'}))
      print(am.version, m:encode({'hello world'}):cols())"
  expect "lua5.4: expected failures return nil, msg, code" 0 "^nil	unknown model 'zzz'.*	ENOTFOUND$" \
    env LUA_CPATH="$BUILD/?.so" lua5.4 -e "local am = require 'amalgam'
      local st = assert(am.store.open('$W/so_store'))
      print(am.model('zzz', st))"
else
  bad "lua5.4 or $BUILD/amalgam.so missing"
fi

am_test_finish
