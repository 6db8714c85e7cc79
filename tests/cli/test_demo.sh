#!/usr/bin/env bash
# CLI tests of `amalgam demo` off a terminal (headless) on stand-in recipes and prepare
# (tests/cli/demo_fixture): every step of the plan in order as a child process, the models and
# full results it makes, a second demo that trains and evaluates nothing, a failing step that
# stops the plan with its error; and the per-task progress lines of `eval` / `compare --progress`.
# usage: test_demo.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
source "$(dirname "$0")/lib.bash"
am_test_init am_demo
FX="$T/cli/demo_fixture"
STS="sts:$T/ref/evalrun/sts.tsv"
export AMALGAM_LUA_PATH="$FX/lua" AMALGAM_RECIPES="$FX/recipes" AMALGAM_DEMO_SCALE=0.01 AMALGAM_DEMO_TASKS="$STS" \
  DEMO_VOCAB="$T/ref/hf/bert_tiny/vocab.txt" AMALGAM_DEMO_VOCAB="$T/ref/hf/bert_tiny/vocab.txt"

# --- the whole plan, headless (stdin is not a terminal)
expect "demo headless: 17 steps, the table, the round trip" 0 \
  "^\[1/17\] prepare|^\[17/17\] full evaluation of demo-ties|^demo-ties |Δ base-tiny|re-imported .*\(identical\)|^demo done in" \
  "$AM" demo </dev/null
cp "$W/out" "$W/first"; cp "$W/err" "$W/first.err"
order=$(grep -oE '^\[[0-9]+/17\] .*' "$W/first" | sed -E 's/  \(elapsed.*//; s/^\[[0-9]+\/17\] //' | tr '\n' '|')
want="prepare the ID/OOD benchmark|create init-tiny (random init)|full evaluation of init-tiny|"
want+="pretrain base-tiny (MLM)|full evaluation of base-tiny|train the per-task models|"
want+="full evaluation of base-tiny+wn-def|full evaluation of base-tiny+deb-desc|full evaluation of base-tiny+wn-sts|"
want+="train the joint baseline|full evaluation of base-tiny+joint|merge: linear soup -> demo-soup|"
want+="merge: task arithmetic -> demo-ta|merge: TIES -> demo-ties|full evaluation of demo-soup|"
want+="full evaluation of demo-ta|full evaluation of demo-ties|"
[ "$order" = "$want" ] && ok "steps in plan order: init, then base evaluated before the task models train" || bad "order: $order"
grep -q "^     amalgam eval base-tiny --progress --task $STS" "$W/first" &&
  grep -q "^     amalgam init-model --config tiny --name init-tiny --seed 1 --vocab" "$W/first" && ok "each step is the command a user would run" ||
  bad "step commands"
grep -qF "eval: task 1/1 $STS" "$W/first.err" && ok "evaluation steps print their progress" || bad "eval progress in the demo"
"$AM" ls models >"$W/out" 2>&1
miss=""; for m in init-tiny base-tiny base-tiny+wn-def base-tiny+deb-desc base-tiny+wn-sts base-tiny+joint demo-soup demo-ta demo-ties; do
  awk -v m="$m" '$1 == m { f = 1 } END { exit !f }' "$W/out" || miss="$miss $m"; done
[ -z "$miss" ] && ok "every demo model is stored" || bad "missing models:$miss"
n_res=$("$AM" ls results | grep -c " full ")
[ "$n_res" -ge 8 ] && ok "full results of the demo models ($n_res)" || bad "full results: $n_res"
runs=$("$AM" ls runs | wc -l)

# --- a second demo: everything is in the store
expect "second demo: done" 0 "^demo done in" "$AM" demo --headless </dev/null
[ "$("$AM" ls runs | wc -l)" = "$runs" ] && ok "second demo trains nothing" || bad "second demo started runs"
! grep -qE "encoded$" "$W/out" && grep -q "stored$" "$W/out" && ok "second demo evaluates nothing (stored results)" ||
  bad "second demo re-evaluated"
grep -q "already trained from" "$W/out" && grep -q "the same merge was stored already" "$W/out" &&
  ! grep -q "moves from" "$W/out" &&
  ok "recipes and merges keep what the store has" || bad "second demo: recipes/merges not idempotent"

# --- a step an earlier demo left running (its pid in store/demo.pid): waited for, not repeated
"$AM" lua -e 'local t = os.time() + 4 while os.time() < t do end' >/dev/null 2>&1 & busy=$!
echo "$busy 4" >"$AMALGAM_STORE/demo.pid"
expect "a demo waits for the earlier demo's running step" 0 "waiting for the step an earlier demo left running \(pid $busy|^demo done in" \
  "$AM" demo </dev/null
wait "$busy" 2>/dev/null
[ ! -e "$AMALGAM_STORE/demo.pid" ] && ok "demo.pid removed when the steps are done" || bad "demo.pid left behind"

# --- a failing step stops the plan
mkdir -p "$W/bad" && cp "$FX"/recipes/*.lua "$W/bad/" && echo 'error("joint exploded")' >"$W/bad/train_joint.lua"
AMALGAM_RECIPES="$W/bad" "$AM" --store "$W/s2" demo </dev/null >"$W/out" 2>"$W/err"; rc=$?
[ "$rc" = 1 ] && grep -q "joint exploded" "$W/err" && grep -q "demo: amalgam run failed (exit 1)" "$W/err" &&
  ! grep -q "^\[11/17\]" "$W/out" && ok "a failing step: its error, exit 1, no later step" || bad "failing step (exit $rc)"
# --- Ctrl-C during a step: the step stops cleanly (its run checkpoints), the demo stops after it
DEMO_STEP_DELAY=0.2 "$AM" --store "$W/s3" demo </dev/null >"$W/out" 2>"$W/err" & dpid=$!
child=""; for _ in $(seq 100); do child=$(pgrep -P "$dpid" -x amalgam | head -1); [ -n "$child" ] && "$AM" --store "$W/s3" ls runs 2>/dev/null | grep -q running && break; sleep 0.1; done
kill -INT "$child" 2>/dev/null; wait "$dpid"; rc=$?
[ "$rc" = 130 ] && grep -q "interrupted during amalgam run" "$W/err" && "$AM" --store "$W/s3" ls runs | grep -q stopped &&
  ok "SIGINT during a step: run stopped, demo exit 130" || bad "SIGINT during a step (exit $rc)"
expect_fail "demo: unknown argument" "unexpected argument 'x'" "$AM" demo x

# --- progress of eval and compare: task k/N on stderr with --progress (off a terminal), nothing without
"$AM" eval base-tiny init-tiny --task "$STS" --task "beir:$T/ref/evalrun/beir" --force --progress >"$W/out" 2>"$W/err"
grep -qE "^eval: task 1/4 sts:.* \(elapsed [0-9]+s\)$" "$W/err" && grep -qE "^eval: task 4/4 beir:" "$W/err" &&
  ok "eval --progress: a line per task, k/N over models x tasks" || bad "eval --progress"
grep -q "cosine_spearman" "$W/out" && ! grep -q "eval: task" "$W/out" && ok "progress on stderr, results on stdout" ||
  bad "eval --progress streams"
"$AM" eval base-tiny --task "$STS" --force >"$W/out" 2>"$W/err"
! grep -q "task 1/" "$W/err" && ok "no progress off a terminal without --progress" || bad "progress without --progress"
"$AM" compare base-tiny demo-soup --task "$STS" --force --progress >"$W/out" 2>"$W/err"
grep -qE "^eval: task 2/2 sts:" "$W/err" && grep -q "^demo-soup" "$W/out" && ok "compare --progress" || bad "compare --progress"

am_test_finish
