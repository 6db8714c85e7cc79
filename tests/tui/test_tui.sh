#!/usr/bin/env bash
# The TUI through the real binary in tmux (a private tmux server, -L): a small store made here
# (two tiny models, ad-hoc results with ID and OOD tags, a "live" run whose metrics grow while
# the TUI watches), every panel opened, the Lua console surviving an error, resizes to 80x24
# and back, quitting with q and with SIGTERM with the terminal restored, NO_COLOR, and the
# headless --frames N mode. usage: test_tui.sh PATH/TO/amalgam    prints "N passed, N failed"
set -u
source "$(dirname "$0")/lib_tui.bash"
tui_init am_tui "$1"
S="$AMALGAM_STORE"
APPROX="≈"
cleanup() { $TM kill-server 2>/dev/null; [ -n "${SLEEPER:-}" ] && kill "$SLEEPER" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# ---- the store
"$AM" init-model --config tiny --name base >/dev/null 2>"$W/err" || bad "init-model base"
"$AM" init-model --config tiny --name other --seed 7 >/dev/null 2>"$W/err" || bad "init-model other"
"$AM" eval base other --task "sts:$F/sts.tsv" --tag id >/dev/null 2>"$W/err" || bad "eval id"
"$AM" eval base other --task "beir:$F/beir" --tag ood >/dev/null 2>"$W/err" || bad "eval ood"
"$AM" merge --method linear base other --name soup >/dev/null 2>"$W/err" || bad "merge soup"
"$AM" eval base --task "sts:$F/sts.tsv" --tag id --suite quick >/dev/null 2>"$W/err" || bad "eval quick"
# twin: base merged with itself (the same weights, another id): its deltas are within noise
"$AM" merge --method linear base base --name twin >/dev/null 2>"$W/err" || bad "merge twin"
"$AM" eval twin --task "sts:$F/sts.tsv" --tag id >/dev/null 2>"$W/err" || bad "eval twin"
# two recorded sweeps (am.sweep): a 2-D grid and a 1-D one, evaluated on the ID task
"$AM" sweep --method linear base other --grid weight=0,0.5,1 --task "sts:$F/sts.tsv" --tag id >/dev/null 2>"$W/err" || bad "sweep 1-D"
"$AM" sweep --method ties --base base other twin --grid density=0.3,0.6 --grid lambda=0.5,1 --task "sts:$F/sts.tsv" --tag id \
  >/dev/null 2>"$W/err" || bad "sweep 2-D"
# a recipes/ for the Runs panel: a short training run on a toy pairs file
mkdir -p "$W/recipes"
"$AM" lua -e "local ds = am.dataset.new('pairs')
  for i = 1, 16 do assert(ds:add_pair('query number ' .. i, 'passage number ' .. i)) end
  assert(ds:write('$W/pairs.jsonl'))" >/dev/null 2>"$W/err" || bad "pairs file"
cat >"$W/recipes/tiny_run.lua" <<'LUA'
-- recipes/tiny_run.lua - a short training run (the TUI test starts it from the Runs panel)
--   amalgam run recipes/tiny_run.lua data=PAIRS.jsonl [steps=60] [name=tui-started]
local p = am.params { data = "", steps = 60, name = "tui-started" }
local run = assert(am.train { name = p.name, init = "base", steps = p.steps, lr = 1e-4, seed = 1, progress = false,
  max_len = 16, tasks = { { data = p.data, batch = 4 } } })
print("tiny_run done", run.id, run.status)
LUA
export AMALGAM_RECIPES="$W/recipes"
# the "training" process: a background job of a script ignores SIGINT, so reset it
python3 -c 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); time.sleep(600)' & SLEEPER=$!
run_write() { # run_write STEP FIRST LAST: the record at STEP and metrics rows FIRST..LAST
  "$AM" lua -e "
    local st = am.store.default()
    local m = {}
    for i = $2, $3 do m[#m + 1] = i; m[#m + 1] = am.json.encode { step = i, task = 'wn-def', loss = 3 - i / 10, lr = 1e-4, tokens_per_s = 5000 } end
    assert(am.raw_run_write(st, 'tui-run-1', { record = am.json.encode { status = 'running', step = $1, steps = 40, pid = $SLEEPER,
      start = os.date('!%Y-%m-%dT%H:%M:%SZ'), name = 'tui-run' }, metrics = m }))" >/dev/null 2>"$W/err" || bad "run write"
}
run_write 5 1 5

# ---- headless
"$AM" tui --frames 18 </dev/null >"$W/out" 2>"$W/err" && ok "headless --frames 18 (every panel twice) exits 0" || bad "headless --frames"
expect_fail "tui off a terminal without --frames" "needs a terminal" "$AM" tui
"$AM" </dev/null >"$W/out" 2>&1; [ $? = 2 ] && grep -q "usage: amalgam" "$W/out" && ok "amalgam alone off a terminal: usage" || bad "amalgam alone off a terminal"
expect_fail "tui --store without a store" "no store" "$AM" tui --store "$W/nothing" --frames 1

# ---- interactive, in tmux
start() { # start ENV...: a shell in a 120x32 pane running `amalgam` (no command: the TUI)
  $TM kill-server 2>/dev/null
  sleep 0.2
  $TM new-session -d -s tui -x 120 -y 32 "env PS1='$ ' TERM=xterm-256color $* bash --norc --noprofile"
  keys "cd '$W' && '$AM' --store '$S'; echo EXIT=\$?; stty -a | grep -oE -- '-?icanon|-?echo ' | tr '\n' ' '; echo" Enter
}
tui_pid() { local sh; sh=$($TM display -p -t tui '#{pane_pid}'); pgrep -P "$sh" -x amalgam; }

start
check "amalgam alone on a terminal opens the Models panel" "Models +[0-9]+ in"
check "lineage and kinds" "base .*init"
keys F4; check "Results: ID and OOD averages, deltas vs a reference" "ID avg.*OOD avg"
check "Results: full suite by default" "full suite"
check "Results: every delta has the paired test (no untested ones)" "within noise \(paired test\)  \* fewer"
check "Results: a delta within noise is marked by the paired test (twin = base)" "twin +-?[0-9.]+ +${APPROX}\+0\.0"
keys m; check "Results: m shows the quick results apart" "QUICK suite \(full results apart"
keys m; keys Right o; check "Results: sorts by a column" "sorted by"
keys / o t h; check "Results: / filters the models by name" "filter: oth_"
cap; grep -qE "^.base " "$W/out" && bad "filter: base still listed" || ok "filter hides the other models"
keys Escape; check "Esc clears the filter" "^.base "
keys F5; check "Plot: the Pareto front" "Pareto"
keys F6; check "Runs: the live run is listed as running" "tui-run-1 .*running +5/40"
run_write 12 6 12
check "Runs: a live run is followed (new metrics polled)" "tui-run-1 .*running +12/40" 6
keys k; check "Runs: k asks before stopping a live run" "k again stops tui-run-1"
keys k; check "Runs: k k sends SIGINT to the run's process (here a sleep: the run shows no process)" "tui-run-1 .*no proc" 6
keys c; check "Runs: c resumes a stopped run in a background process" "resuming tui-run-1 in pid [0-9]+"
log=""; for _ in $(seq 50); do log=$(ls "$S"/logs/resume-tui-run-1-*.log 2>/dev/null | head -1); [ -n "$log" ] && break; sleep 0.1; done
for _ in $(seq 50); do [ -s "$log" ] && break; sleep 0.1; done
grep -q "resume" "$log" 2>/dev/null && ok "the resume process ran amalgam resume (its output: $(head -c 60 "$log"))" || bad "no resume output in '$log'"
rm -f "$log" # cleanup
keys F3; check "Merge panel: the models with weight sliders" "other .*0\\.00"
keys Down Right; check "Merge: a weight change merges and quick-evaluates (no suite here: the error is shown)" "not prepar|not found" 10
cap; grep -q "EXIT=" "$W/out" && bad "merge ended the program" || ok "still running after the merge step"
keys F2 Enter; check "Models: details with per-tensor norms" "word_embeddings.*norm|norm.*word_embeddings|embeddings.word_embeddings.weight"
keys Escape
keys F7; check "Lua console opens" "Lua console"
keys "1 + 1" Enter; check "console evaluates an expression" "^ 2 *$"
keys 'error("boom")' Enter; check "a Lua error shows message and traceback" "boom"
cap; grep -q "traceback" "$W/out" && ok "traceback shown" || bad "no traceback"
keys "print(40 + 2)" Enter; check "the console goes on after an error (print goes to the console)" "^ 42 *$"
keys "q" Enter; check "q in the console is text, not quit" "attempt|undefined|nil|q"
cap; grep -q "EXIT=" "$W/out" && bad "q quit from the console" || ok "still running after q in the console"
keys F9; check "Sweeps: the recorded sweeps are listed" "Sweeps +2 recorded"
check "Sweeps: the 2-D grid as a heat map (rows density, columns lambda)" "density lambda"
check "Sweeps: the best cell is marked" "best ID avg [0-9.-]+ at density="
keys Down Right; check "Sweeps: the cursor moves over the cells" "^ density=0\.6 lambda=1  ID"
keys v; check "Sweeps: v shows the OOD average (none here)" "heat map: OOD avg"
keys v v
keys ']'; check "Sweeps: ] shows the next sweep (1-D: one row)" "^ weight=0  ID"
keys Right Enter; check "Sweeps: Enter selects the point's model (shown in Models)" "selected [0-9a-f]{12} \(the sweep point\)"
check "Models: the selection follows" "^.[ |├└─-]*[0-9a-f]{12} +merged"
keys Enter; check "Models: details with the diagnostics against the base (am.diagnose)" "diagnostics against the base base "
check "Models: the cosine of tau to the siblings' task vectors" "cosine +(soup|twin|ta) [+-][0-9]"
check "Models: the per-layer norms of tau" "tau. per layer +embeddings [0-9.]+ +layer\.0"
keys Escape
keys F11; check "Matryoshka: opens on the selected model" "Matryoshka +[0-9a-f]{12} +ID avg by \(layer, dim\)"
check "Matryoshka: the layer x dim grid of the model's tasks (its results are full mode: none reused)" "tasks: the model's tasks \(1\)  cells 2 x 5  evaluated 0/10"
keys c; check "Matryoshka: c computes the missing cells (stored)" "evaluated 10/10" 30
check "Matryoshka: the heat map's best cell" "best"
keys Down Left; check "Matryoshka: the cursor moves (layer 1, dim 64)" "^ layer 1  dim 64  ID avg"
"$AM" lua -e "local n = 0
  for _, r in ipairs(am.results()) do if r.result.config.dim == 8 then n = n + 1 end end
  assert(n == 2, n)" 2>"$W/err" && ok "Matryoshka: cells are stored results (layer/dim in the config)" || bad "Matryoshka results not stored: $(cat "$W/err")"
keys F8; check "Log panel with the key latency" "key latency mean"
keys F1; check "F1 help prints the key table" "Tab S-Tab.*next"
keys x
$TM resize-window -t tui -x 80 -y 24 2>/dev/null || $TM resize-pane -t tui -x 80 -y 24
check "resize to 80x24: key bar on the last line" "F10Quit"
keys F9; check "Sweeps at 80x24" "Sweeps +2 recorded"
keys '?'; check "? lists the Sweeps panel's keys" "previous / next sweep"
keys x F11; check "Matryoshka at 80x24" "^ layer 1  dim 64"
keys '?'; check "? lists the Matryoshka panel's keys" "compute the missing cells"
keys x
cap; [ "$(wc -l <"$W/out")" -le 24 ] && ok "80x24 screen" || bad "80x24 screen has $(wc -l <"$W/out") lines"
keys F4; check "Results at 80x24" "ID avg"
$TM resize-window -t tui -x 120 -y 32 2>/dev/null || $TM resize-pane -t tui -x 120 -y 32
check "resize back to 120x32" "Results +full suite"
# Runs: start a recipe from recipes/ with arguments; it outlives the TUI
keys F6 n; check "Runs: n lists recipes/ with their usage" "tiny_run\.lua +a short training run"
check "Runs: the selected recipe's usage line" "amalgam run recipes/tiny_run\.lua data=PAIRS"
keys F2; check "Runs: F-keys still switch panels with the picker up" "Models +[0-9]+ in"
keys F6; check "Runs: the picker is still up" "tiny_run\.lua +a short training run"
keys Enter; check "Runs: Enter asks for the arguments" "amalgam run tiny_run\.lua _"
keys "steps=1000 data=$W/pairs.jsonl" Enter
check "Runs: the recipe starts in the background" "started tiny_run\.lua in pid [0-9]+"
cap; child=$(grep -oE 'started tiny_run\.lua in pid [0-9]+' "$W/out" | grep -oE '[0-9]+$')
check "Runs: the started run shows up live" "tui-started.* running" 20
keys F2 q
check "q quits with exit 0" "EXIT=0"
if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then ok "the recipe's process goes on after the TUI quit"
else bad "the recipe's process ($child) ended with the TUI"; fi
for _ in $(seq 240); do kill -0 "$child" 2>/dev/null || break; sleep 0.5; done
"$AM" lua -e "for _, r in ipairs(am.runs()) do if r.name == 'tui-started' then print(r.status, r.step) end end" >"$W/runs" 2>&1
grep -qE "^done.1000" "$W/runs" && ok "its run record completes (done, 1000 steps)" || bad "run record: $(cat "$W/runs")"
ls "$S"/logs/tiny_run-*.log >/dev/null 2>&1 && grep -q "tiny_run done" "$S"/logs/tiny_run-*.log && ok "its output is in the store's logs/" \
  || bad "no output in $S/logs"
check "terminal restored after q (icanon, echo)" "^icanon echo"

start
check "started again" "Models +[0-9]+ in"
kill -TERM "$(tui_pid)"
check "SIGTERM ends it with 143" "EXIT=143"
check "terminal restored after SIGTERM" "^icanon echo"

start NO_COLOR=1
check "NO_COLOR: starts" "Models +[0-9]+ in"
$TM capture-pane -t tui -p -e >"$W/out"
grep -qE $'\e\\[(3[0-7]|4[0-7]|38;|48;)' "$W/out" && bad "NO_COLOR: colours used" || ok "NO_COLOR: no colours, attributes only"
keys F9; check "NO_COLOR: Sweeps" "density lambda"
check "NO_COLOR: the heat map falls back to shade glyphs" "[░▒▓█] +-?[0-9]+\.[0-9]"
$TM capture-pane -t tui -p -e >"$W/out"
grep -qE $'\e\\[(3[0-7]|4[0-7]|38;|48;)' "$W/out" && bad "NO_COLOR: Sweeps uses colours" || ok "NO_COLOR: Sweeps without colours"
keys F11; check "NO_COLOR: Matryoshka" "layer +dim"
keys F10; check "F10 quits" "EXIT=0"

start AMALGAM_TUI_ASCII=1
check "ASCII fallback: starts" "Models +[0-9]+ in"
cap; LC_ALL=C grep -q $'[\x80-\xff]' "$W/out" && bad "ASCII fallback: non-ASCII on screen" || ok "ASCII fallback: ASCII only"
for p in F9 F11; do
  keys $p; sleep 0.5; cap
  LC_ALL=C grep -q $'[\x80-\xff]' "$W/out" && bad "ASCII fallback: non-ASCII on $p" || ok "ASCII fallback: $p ASCII only"
done
check "ASCII fallback: the heat map's best mark" "[0-9]\\*([ |]|$)"
keys q; check "quits" "EXIT=0"
am_test_finish
