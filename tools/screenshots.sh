#!/usr/bin/env bash
# screenshots.sh - drive the real TUI in tmux on a store and capture every panel: the ANSI text
# (tmux capture-pane -e -N -p: trailing blanks kept with their colours) and a PNG rendered from it (tools/ansi2png.py, Pillow + DejaVu Sans
# Mono: apt-get install python3-pil fonts-dejavu-core).
#
# usage: tools/screenshots.sh [STORE] [OUTDIR]      (defaults: ./store after `./amalgam demo`,
#        screenshots/). The TUI only reads the store, except the Merge shot, which stores a
#        recipe-only merge (a few hundred bytes) like the Merge panel always does, and a store
#        without a recorded sweep or a Matryoshka grid gets them first (a TIES sweep of the
#        base-tiny+TASK models, base-tiny's quick results by (layer, dim): recipe-only merges and
#        stored results, about a minute); copy a store you want untouched first (cp -a STORE /tmp/x/store: the TUI is started in
#        the store's parent directory, so the header reads "store" as after ./amalgam demo). Env: AMALGAM_BIN (default build/amalgam),
#        COLS x ROWS (default 120 x 32), SIZE (font px, 15).
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STORE="${1:-$ROOT/store}"
OUT="${2:-$ROOT/screenshots}"
AM="${AMALGAM_BIN:-$ROOT/build/amalgam}"
COLS="${COLS:-120}" ROWS="${ROWS:-32}" SIZE="${SIZE:-15}"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
command -v tmux >/dev/null || { echo "screenshots.sh: tmux is needed (apt-get install tmux)" >&2; exit 1; }
$PY -c "import PIL" 2>/dev/null || { echo "screenshots.sh: Pillow is needed (apt-get install python3-pil)" >&2; exit 1; }
[ -x "$AM" ] || { echo "screenshots.sh: no binary at $AM (build first: ./amalgam --help)" >&2; exit 1; }
[ -e "$STORE/data.mdb" ] || { echo "screenshots.sh: no store at $STORE" >&2; exit 1; }
mkdir -p "$OUT"
STORE="$(cd "$STORE" && pwd)"
TM="tmux -L am_shots_$$ -f /dev/null"

# the Sweeps and Matryoshka panels need data: made here when the store has none
"$AM" --store "$STORE" lua -e '
  if #am.sweeps() == 0 then
    local ms = {}
    for _, r in ipairs(am.models()) do
      if r.name and r.name:match("^base%-tiny%+[%w-]+$") and r.kind == "checkpoint" then ms[#ms + 1] = r.name end
    end
    table.sort(ms)
    -- the quick suite tasks whose datasets are prepared (a store older than the suite lacks some)
    local T, tasks = require "amalgam.eval_tasks", {}
    for _, t in ipairs(am.eval_suite()) do
      if T.tasks { tasks = { t.name } } then tasks[#tasks + 1] = t.name end
    end
    if #ms >= 2 and #tasks > 0 then
      io.stderr:write("screenshots.sh: a TIES sweep of ", table.concat(ms, ", "), "\n")
      assert(am.sweep { method = "ties", base = "base-tiny", models = ms, eval = { mode = "quick", tasks = tasks },
        grid = { density = { 0.2, 0.5, 0.8 }, lambda = { 0.5, 1, 1.5 } } })
    end
  end
  local tui = require "amalgam.tui"
  local g = am.model("base-tiny") and tui.matryoshka("base-tiny")
  if g then
    io.stderr:write("screenshots.sh: the Matryoshka grid of base-tiny (stored results are reused)\n")
    for _, l in ipairs(g.layers) do
      for _, d in ipairs(g.dims) do
        for _, t in ipairs(g.tasks) do assert(tui.matryoshka_eval(g.id, l, d, t.name, t.tag)) end
      end
    end
  end' || echo "screenshots.sh: no sweep / Matryoshka data made (the panels show how to make them)" >&2
trap '$TM kill-server 2>/dev/null' EXIT

$TM new-session -d -s shots -x "$COLS" -y "$ROWS" \
  "cd '$(dirname "$STORE")' && env TERM=xterm-256color LANG=C.UTF-8 LC_ALL=C.UTF-8 '$AM' --store '$(basename "$STORE")' tui; sleep 30"
keys() { $TM send-keys -t shots "$@"; }
# wait until the screen shows PATTERN (ERE), at most 60 s; on a timeout the screen goes to stderr
wait_for() {
  for _ in $(seq 600); do $TM capture-pane -t shots -p | grep -qE -- "$1" && return 0; sleep 0.1; done
  echo "screenshots.sh: timed out waiting for /$1/; the screen:" >&2
  $TM capture-pane -t shots -p >&2
  return 1
}
shot() { # shot NAME: the screen as NAME.ansi and NAME.png
  sleep 0.3
  $TM capture-pane -t shots -e -N -p >"$OUT/$1.ansi"
  $PY "$ROOT/tools/ansi2png.py" "$OUT/$1.ansi" "$OUT/$1.png" --cols "$COLS" --rows "$ROWS" --size "$SIZE"
  echo "$OUT/$1.png"
}

wait_for "F10Quit"
shot models
keys Down Down Down Enter; wait_for "norm"; shot model-detail
keys Escape; sleep 0.3; keys F4; wait_for "^ Results "; shot results
keys F5; wait_for "Pareto"; shot plot
keys F6; wait_for "^ Runs"; keys Enter; shot runs
keys F3; wait_for "quick eval [0-9a-f]{8} +step|Nothing to merge|error|ENOTFOUND|not prepared"; sleep 1
# two more merges (weights moved) so the plot shows a few quick points
keys Down Down Right Right Right; sleep 0.5; wait_for "quick eval [0-9a-f]{8} +step|error|not prepared"; sleep 2
keys Up Right Right Right Right; sleep 0.5; wait_for "quick eval [0-9a-f]{8} +step|error|not prepared"; sleep 2
shot merge
keys F7; wait_for "Lua console"
keys 'for _, r in ipairs(am.runs()) do print(r.id, r.status, r.step) end' Enter
keys '#am.models(), am.version' Enter
keys 'am.model("no-such-model"):id()' Enter
sleep 0.5; shot lua
keys F8; wait_for "key latency"; shot log
keys F9; wait_for "Sweeps +[0-9]+ recorded"; keys b; shot sweeps
# the Matryoshka panel on base-tiny: ] steps through the models
keys F11; wait_for "Matryoshka"
for _ in $(seq 40); do $TM capture-pane -t shots -p | grep -qE "Matryoshka +base-tiny +" && break; keys ']'; sleep 0.2; done
shot matryoshka
keys F4 F1; wait_for "everywhere"; shot help
keys x
# the sketches' size: 80 x 24
$TM resize-window -t shots -x 80 -y 24
keys F4; sleep 0.5
$TM capture-pane -t shots -e -N -p >"$OUT/results-80x24.ansi"
$PY "$ROOT/tools/ansi2png.py" "$OUT/results-80x24.ansi" "$OUT/results-80x24.png" --cols 80 --rows 24 --size "$SIZE"
echo "$OUT/results-80x24.png"
keys q
