#!/usr/bin/env bash
# The Merge panel through the real binary in tmux, on a store whose quick suite is made of the
# evalrun fixtures: a weight slider's merge and its ID/OOD averages equal `amalgam merge` and
# `amalgam eval --suite quick --force` of the same spec; the λ slider and the per-layer-group
# sliders change the merge spec (same recipe id as the command line's --set / --rule); keys
# answer while a step runs on the worker thread (AMALGAM_TUI_STEP_DELAY makes the step slow)
# and slider moves made meanwhile coalesce into one step; `s` names and stores the merge and its
# full evaluation, a background process, lands in Results.
# usage: test_tui_merge.sh PATH/TO/amalgam    prints "N passed, N failed"
set -u
source "$(dirname "$0")/lib_tui.bash"
tui_init am_tui_merge "$1"
S="$AMALGAM_STORE"
cleanup() { $TM kill-server 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# ---- the store: two tiny models, the quick suite's datasets made of fixtures
"$AM" init-model --config tiny --name base >/dev/null 2>"$W/err" || bad "init-model base"
"$AM" init-model --config tiny --name other --seed 7 >/dev/null 2>"$W/err" || bad "init-model other"
# every dataset of the default suite, whatever it holds today, from a fixture of its task type
"$AM" lua -e 'for _, t in ipairs(am.eval_suite()) do print(t.dataset, t.type, t.test or "test", t.train or "-") end' \
  >"$W/suite" 2>"$W/err" || bad "am.eval_suite"
while read -r ds ty test train; do
  d="$S/datasets/$ds"; mkdir -p "$d"
  case "$ty" in
    retrieval) rm -rf "${d:?}/$test"; cp -r "$F/beir" "$d/$test" ;;
    sts) cp "$F/sts.tsv" "$d/$test.tsv" ;;
    pair_classification) cp "$F/pairclass.jsonl" "$d/$test.jsonl" ;;
    bitext) cp "$F/bitext.jsonl" "$d/$test.jsonl" ;;
    classification) cp "$F/labels/test.jsonl" "$d/$test.jsonl"; cp "$F/clustering.jsonl" "$d/$train.jsonl" ;;
    clustering) cp "$F/clustering.jsonl" "$d/$test.jsonl" ;;
    *) bad "no fixture for task type $ty" ;;
  esac
done <"$W/suite"
"$AM" eval base --suite quick >"$W/out" 2>"$W/err" && ok "the fixture store has a quick suite" || bad "quick suite on the fixtures"

# ---- tmux
start() { # start ENV...: the TUI in a 120x40 pane
  $TM kill-server 2>/dev/null
  sleep 0.2
  $TM new-session -d -s tui -x 120 -y 40 "env PS1='$ ' TERM=xterm-256color $* bash --norc --noprofile"
  keys "cd '$W' && '$AM' --store '$S' tui; echo EXIT=\$?" Enter
}
shown_id() { grep -oE "quick eval [0-9a-f]{8}" "$W/out" | head -1 | awk '{print $3}'; }
shown_avg() { grep -oE "$1 +-?[0-9]+\\.[0-9]" "$W/out" | head -1 | awk '{print $2}'; }
cli_id() { "$AM" merge --method task_arithmetic --base base "$@" 2>"$W/err" | grep -oE "id [0-9a-f]{32}" | awk '{print $2}'; }
# goto_row PATTERN: move the cursor (Home, then Down) to the first row matching ERE PATTERN
goto_row() {
  local i
  keys $(printf 'Up %.0s' {1..30})
  for ((i = 0; i < 16; i++)); do
    sleep 0.15; cap
    grep -qE -- "^▶$1" "$W/out" && return 0
    keys Down
  done
  return 1
}
# wait_step OLD: a finished step whose id differs from OLD
wait_step() {
  local i
  for ((i = 0; i < 300; i++)); do
    cap
    if ! grep -q "computing" "$W/out"; then local id; id=$(shown_id); [ -n "$id" ] && [ "$id" != "$1" ] && break; fi
    sleep 0.1
  done
  [ "$i" -lt 300 ] || return 1
  # settled: under load the loop may read the last of several keys after the first step ended,
  # which starts one more step; wait until nothing has been computing for half a second
  local quiet=0
  for ((i = 0; i < 300 && quiet < 5; i++)); do
    sleep 0.1; cap
    if grep -q "computing" "$W/out"; then quiet=0; else quiet=$((quiet + 1)); fi
  done
  [ "$quiet" -ge 5 ]
}

start
check "the TUI starts" "Models +[0-9]+ in"
keys F3; check "Merge panel: method and the lambda slider" "method task_arithmetic"
check "Merge panel: the parameter row" "lambda .*1\\.00"
keys b; check "b picks the base" "base base"
goto_row other && ok "select the model row" || bad "no row other"
keys Right
wait_step "" && ok "a slider move merges and quick-evaluates" || bad "no quick evaluation after a slider move"
check "the moved slider" "other .*0\\.05"
cap; id=$(shown_id); want=$(cli_id other:0.05)
[ -n "$id" ] && [ "${want:0:8}" = "$id" ] && ok "the slider's merge is amalgam merge --base base other:0.05 ($id)" ||
  bad "slider merge $id, command line ${want:0:8}"
"$AM" eval "$want" --suite quick --force --json >"$W/cli" 2>"$W/err" || bad "amalgam eval --suite quick"
# the JSON's full precision, formatted as the panel formats a score
cli_avg() { grep -oE "\"$1\":[[:space:]]*[-0-9.e]+" "$W/cli" | head -1 | awk -F: '{printf "%.1f", $2 * 100}'; }
cli_i=$(cli_avg id_avg); cli_o=$(cli_avg ood_avg)
scr_i=$(shown_avg ID); scr_o=$(shown_avg OOD)
[ -n "$scr_i" ] && [ "$scr_i" = "$cli_i" ] && [ "$scr_o" = "$cli_o" ] &&
  ok "shown ID/OOD ($scr_i/$scr_o) = amalgam eval --suite quick --force ($cli_i/$cli_o)" ||
  bad "shown ID/OOD $scr_i/$scr_o, amalgam eval --suite quick $cli_i/$cli_o"

# the worker reads the store's results after a step: the point is in Results' quick table
keys F4; check "Results opens" "Results +([Ff][Uu][Ll][Ll]|[Qq][Uu][Ii][Cc][Kk]) suite"
cap; grep -qiE "Results +quick suite" "$W/out" || keys m
check "the slider's merge is in Results (quick), read by the worker" "^.$id"
keys F3; check "back in Merge" "method task_arithmetic"

# the method's parameter: lambda 1.05
goto_row lambda || bad "no row lambda"
keys Right
wait_step "$id" && ok "the lambda slider merges again" || bad "no step after lambda"
check "lambda moved" "lambda .*1\\.05"
cap; id2=$(shown_id); want=$(cli_id other:0.05 --set lambda=1.05)
[ -n "$id2" ] && [ "${want:0:8}" = "$id2" ] && ok "the lambda slider sets lambda in the spec (= --set lambda=1.05)" ||
  bad "lambda merge $id2, command line ${want:0:8}"

# per layer group: other's layer 0 at 0.25, its other groups at 0.05
keys g; check "g: weights per layer group" "weights per layer group"
check "the groups of a model" "layer 0 .*0\\.05"
goto_row other || bad "no row other"
keys Down Down; sleep 0.2; cap; grep -qE "^▶  layer 0" "$W/out" || bad "other's layer 0 row is two rows under it"
keys Right Right Right Right
wait_step "$id2" && ok "a layer group slider merges again" || bad "no step after the group slider"
check "the group slider moved" "layer 0 .*0\\.25"
cap; id3=$(shown_id)
want=$(cli_id other:0.25 --set lambda=1.05 --rule weight@1:embeddings.=0.05 --rule weight@1:encoder.layer.0.=0.25 \
  --rule weight@1:encoder.layer.1.=0.05 --rule weight@1:pooler=0.05)
[ -n "$id3" ] && [ "${want:0:8}" = "$id3" ] && ok "the group sliders are weight rules per layer (= --rule weight@1:encoder.layer.0.=0.25 ...)" ||
  bad "group merge $id3, command line ${want:0:8}"
keys "?"; check "? lists the panel's keys" "layer group"
keys x

# s: name, store, full evaluation in the background, its results in Results
keys s; check "s asks for a name" "name: task_arithmetic-"
keys $(printf 'BSpace %.0s' {1..40}); keys t u i s a v e Enter
check "s stores the merge and starts its full evaluation" "full evaluation running in pid [0-9]+" 20
check "the full evaluation finishes and is reported" "full evaluation of tuisave done" 60
"$AM" info tuisave >"$W/cli" 2>&1 && grep -q "tuisave" "$W/cli" && ! grep -q "recipe only" "$W/cli" &&
  ok "tuisave is stored with its tensors" || bad "tuisave not stored"
keys F4; check "its full results show in Results" "tuisave .*[0-9]"
keys q; check "q quits" "EXIT=0"

# ---- keys while a step runs (each step waits 3 s on the worker)
start AMALGAM_TUI_STEP_DELAY=3
check "started with slow steps" "Models +[0-9]+ in"
keys F3; check "Merge panel" "method task_arithmetic"
for _ in 1 2 3 4 5 6 7 8; do cap; grep -q "base base" "$W/out" && break; keys b; sleep 0.2; done
goto_row other || bad "no row other"
keys Right Right
check "the step is out: computing" "computing"
keys F2; check "F2 answers while the step runs" "Models +[0-9]+ in" 1
keys F3; check "back in Merge, still computing (the keys did not wait for the step)" "computing" 1
keys Right Right Right
check "slider moves during a step are shown at once" "other .*0\\.25" 1
wait_step "" && ok "the steps finish" || bad "steps did not finish"
cap; id=$(shown_id); want=$(cli_id other:0.25)
[ -n "$id" ] && [ "${want:0:8}" = "$id" ] && ok "the last position is the one shown (other:0.25)" || bad "shown $id, want ${want:0:8}"
keys F8; sleep 0.3; cap
n=$(grep -c "tui: merge task_arithmetic" "$W/out")
[ "$n" -ge 1 ] && [ "$n" -le 3 ] && ok "moves made during a step coalesce ($n steps for 5 moves)" || bad "$n steps for 5 moves"
grep -q "superseded after" "$W/out" && ok "a step made stale by newer moves stops between two tasks (superseded)" ||
  bad "no step was superseded"
grep -qE "key latency mean" "$W/out" && ok "the Log panel reports the key latency" || bad "no key latency"
keys q; check "q quits while idle" "EXIT=0"
am_test_finish
