#!/usr/bin/env bash
# `amalgam demo` on a terminal (tmux, a private server) on stand-in recipes and prepare
# (tests/cli/demo_fixture) with tiny steps: the TUI opens at once on a fresh store, the header
# shows the plan's step k/N, the training run appears live in Runs, Results fill in as the
# evaluations land, the plan ends; quitting during a step leaves that step's process running
# (and says so), and the next demo waits for it; a failing step is shown, not a crash.
# usage: test_tui_demo.sh PATH/TO/amalgam    prints "N passed, N failed"
set -u
source "$(dirname "$0")/lib_tui.bash"
tui_init am_tui_demo "$1"
FX="$T/cli/demo_fixture"
LEFT=""
cleanup() { $TM kill-server 2>/dev/null; [ -n "$LEFT" ] && kill "$LEFT" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

start() { # start STORE RECIPES DELAY: a shell in a 120x32 pane running `amalgam demo`
  $TM kill-server 2>/dev/null
  sleep 0.2
  $TM new-session -d -s tui -x 120 -y 32 "env PS1='$ ' TERM=xterm-256color bash --norc --noprofile"
  keys "export AMALGAM_LUA_PATH='$FX/lua' AMALGAM_RECIPES='$2' AMALGAM_DEMO_SCALE=0.02 DEMO_STEP_DELAY=$3 \
AMALGAM_DEMO_TASKS='sts:$T/ref/evalrun/sts.tsv' DEMO_VOCAB='$T/ref/hf/bert_tiny/vocab.txt' \
AMALGAM_DEMO_VOCAB='$T/ref/hf/bert_tiny/vocab.txt'; clear; \
'$AM' --store '$1' demo; echo EXIT=\$?" Enter
}

# ---- the whole plan on a fresh store
start "$W/store" "$FX/recipes" 0.1
check "demo on a terminal opens the TUI at once on a fresh store" "^amalgam .*demo [1-4]/17" 3
check "the header shows the step, elapsed time and ETA" "demo 4/17 pretrain base-tiny \(MLM\) · [0-9]+s · ETA" 5
keys F6
check "the pretraining run is live in Runs" "base-tiny-[0-9]+-[0-9a-f]+ +running" 8
keys F4
check "Results: the random init's numbers first" "^.init-tiny " 10
check "Results fill in as the evaluations land" "^.base-tiny " 20
check "the plan ends: every step done" "demo done 17/17" 60
check "Results: the merges' full results" "demo-ties" 5
keys F8
check "Log: the steps and their output" "demo: step 17/17 done" 5
keys q
check "quitting after the plan: exit 0" "EXIT=0" 5

# ---- quitting during a step leaves it running; the next demo waits for it
start "$W/s2" "$FX/recipes" 0.5
check "second store: pretraining starts" "demo 4/17 pretrain" 5
keys q
check "quitting during a step says it goes on" "step 4/17 \(pretrain base-tiny \(MLM\)\) goes on in pid [0-9]+" 5
LEFT=$(grep -oE "goes on in pid [0-9]+" "$W/out" | grep -oE "[0-9]+$")
[ -n "$LEFT" ] && kill -0 "$LEFT" 2>/dev/null && ok "the step's process is still running" || bad "step process gone"
keys "'$AM' --store '$W/s2' demo" Enter
check "the next demo waits for the earlier step" "waiting for an earlier demo's step \(pid $LEFT\)" 5
keys q
kill "$LEFT" 2>/dev/null; LEFT=""

# ---- a failing step: shown in the header and the Log, the TUI goes on
mkdir -p "$W/bad" && cp "$FX"/recipes/*.lua "$W/bad/" && echo 'error("pretraining exploded")' >"$W/bad/pretrain_base.lua"
start "$W/s3" "$W/bad" 0
check "a failing step is shown in the header" "demo FAILED at 4/17 pretrain base-tiny \(MLM\)" 8
keys F8
check "Log: the step's error" "pretraining exploded" 5
keys q
check "the TUI quits normally after a failed step" "EXIT=0" 5
am_test_finish
