#!/usr/bin/env bash
# The TUI's mouse and the shared model selection, through the real binary in tmux: raw xterm SGR
# mouse reports (ESC [ < b ; col ; row M/m, 1-based) typed into the pane the way a terminal sends
# them. A click on the key bar switches panel, the wheel moves the selection, a click on a list row
# selects it (Models, Results, Runs, the Plot's legend); the Plot's ←→ walk the points by ID
# average and the selection is shared (Models, Results, Plot follow each other). Also: mouse
# reporting is switched off on exit, AMALGAM_TUI_MOUSE=0 leaves the mouse alone, the ASCII/NO_COLOR
# mode and headless --frames. usage: test_tui_mouse.sh PATH/TO/amalgam    prints "N passed, N failed"
set -u
source "$(dirname "$0")/lib_tui.bash"
tui_init am_tui_mouse "$1"
S="$AMALGAM_STORE"
cleanup() { $TM kill-server 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT

# ---- the store: three models with ID and OOD results (soup best on both), two finished runs
"$AM" init-model --config tiny --name base >/dev/null 2>"$W/err" || bad "init-model base"
"$AM" init-model --config tiny --name other --seed 7 >/dev/null 2>"$W/err" || bad "init-model other"
"$AM" merge --method linear base other --name soup >/dev/null 2>"$W/err" || bad "merge soup"
"$AM" eval base other soup --task "sts:$F/sts.tsv" --tag id >/dev/null 2>"$W/err" || bad "eval id"
"$AM" eval base other soup --task "beir:$F/beir" --tag ood >/dev/null 2>"$W/err" || bad "eval ood"
for r in 1 2; do
  "$AM" lua -e "assert(am.raw_run_write(am.store.default(), 'mouse-run-$r', { record = am.json.encode {
      status = 'done', step = 10, steps = 10, start = '2026-01-0${r}T00:00:00Z', name = 'mouse-run-$r' }, metrics = {} }))" \
    >/dev/null 2>"$W/err" || bad "run write $r"
done

"$AM" tui --frames 9 </dev/null >"$W/out" 2>"$W/err" && ok "headless --frames 9 with the mouse code exits 0" || bad "headless --frames"

# ---- interactive, in tmux
press() { $TM send-keys -t tui -l $'\e[<'"$1;$2;$3M"; }               # press() B COL ROW
click() { press 0 "$1" "$2"; $TM send-keys -t tui -l $'\e[<'"0;$1;$2m"; }   # click COL ROW (press, release)
wheel() { press $(( $1 == 1 ? 65 : 64 )) 10 8; }                       # wheel 1 (down) | -1 (up)
bar() { # bar LABEL: click the key bar's LABEL ("F4Results"), found on the screen's last line
  cap
  local last col
  last=$(grep -c '' "$W/out")
  col=$(tail -1 "$W/out" | awk -v s="$1" '{ print index($0, s) }')
  [ "$col" -gt 0 ] || { bad "no $1 in the key bar"; return; }
  click $((col + 1)) "$last"
}
row() { # row ERE [COL]: click the first screen line matching ERE (at COL, default 4)
  cap
  local n
  n=$(grep -nE -- "$1" "$W/out" | head -1 | cut -d: -f1)
  [ -n "$n" ] || { bad "no line /$1/ to click"; return; }
  click "${2:-4}" "$n"
}
start() { # start ENV...: a shell in a 120x32 pane running the TUI
  $TM kill-server 2>/dev/null
  sleep 0.2
  $TM new-session -d -s tui -x 120 -y 32 "env PS1='$ ' TERM=xterm-256color $* bash --norc --noprofile"
  keys "cd '$W' && '$AM' --store '$S'; echo EXIT=\$?" Enter
}
flag() { $TM display -p -t tui '#{mouse_any_flag}#{mouse_sgr_flag}'; }

start
check "opens on Models" "Models +[0-9]+ in"
[ "$(flag)" = 11 ] && ok "mouse reporting on (SGR)" || bad "mouse reporting flags: $(flag)"
bar F4Results; check "a click on F4Results in the key bar shows Results" "Results +full suite"
check "Results: the first row selected (soup: best OOD)" "^.soup "
cap; grep -qE "^▶soup " "$W/out" && ok "Results: soup selected at first" || bad "Results: soup not selected"
wheel 1; check "the wheel down moves the selection (base)" "^▶base "
wheel 1; check "the wheel down again (other)" "^▶other "
wheel -1; check "the wheel up moves it back (base)" "^▶base "
row " soup +-?[0-9]"; check "a click on a Results row selects it" "^▶soup "
bar F2Models; check "a click on F2Models shows Models" "Models +[0-9]+ in"
row "^ +other +init"; sleep 0.3
bar F4Results; check "a click on a Models row selects it: Results follows (other)" "^▶other "
bar F5Plot; check "Plot: starts on the selected model" "selected 3 other  ID"
keys Right; check "Plot: → the next point by ID avg (base)" "selected 2 base  ID"
keys Right; check "Plot: → again (soup, the best ID)" "selected 1 soup  ID"
keys Right; check "Plot: → at the right end stays" "selected 1 soup  ID"
keys Left; check "Plot: ← back (base)" "selected 2 base  ID"
keys F4; check "Results follows the Plot's selection" "^▶base "
keys F5; check "Plot shown" "selected 2 base  ID"
row "^ .* 3 +other +-?[0-9]" 100; check "Plot: a click on a legend row selects it" "selected 3 other  ID"
keys F2; check "Models shown" "Models +[0-9]+ in"
wheel -1; sleep 0.3
keys F4; check "Models: the wheel moved up from other (soup) and Results follows" "^▶soup "
keys F5 '?'; check "? lists the Plot's keys (←→ by ID avg, the mouse)" "the next point left / right"
check "? lists the mouse everywhere" "click the key bar"
click 10 10; check "a click closes the help" "selected . [a-z]+  ID"
bar F6Runs; check "Runs: two runs" "mouse-run-2"
check "Runs: the first selected" "^▶mouse-run-2"
row "^ mouse-run-1"; check "Runs: a click on a run selects it" "^▶mouse-run-1"
keys F5 Left Left Left; check "keys still work after the mouse" "selected 3 other  ID"
bar F10Quit; check "a click on F10Quit quits (exit 0)" "EXIT=0"
[ "$(flag)" = 00 ] && ok "mouse reporting off after quitting" || bad "mouse reporting left on: $(flag)"

start AMALGAM_TUI_MOUSE=0
check "AMALGAM_TUI_MOUSE=0: starts" "Models +[0-9]+ in"
[ "$(flag)" = 00 ] && ok "AMALGAM_TUI_MOUSE=0: no mouse reporting" || bad "AMALGAM_TUI_MOUSE=0: flags $(flag)"
keys F4; check "AMALGAM_TUI_MOUSE=0: keys work" "Results +full suite"
keys q; check "quits" "EXIT=0"

start NO_COLOR=1 AMALGAM_TUI_ASCII=1
check "ASCII + NO_COLOR: starts" "Models +[0-9]+ in"
bar F4Results; check "ASCII + NO_COLOR: a key bar click" "Results +full suite"
wheel 1; check "ASCII + NO_COLOR: the wheel" "^[^ ]base "
cap; LC_ALL=C grep -q $'[\x80-\xff]' "$W/out" && bad "ASCII: non-ASCII on screen" || ok "ASCII: ASCII only"
bar F5Plot; check "ASCII + NO_COLOR: Plot's selection line" "selected 2 base  ID"
keys q; check "quits" "EXIT=0"
am_test_finish
