# lib_tui.bash - what the TUI suites (tests/tui/test_*.sh) share, on top of tests/cli/lib.bash:
#   tui_init PREFIX AMALGAM    AM (absolute), T (tests/), F (the evalrun fixtures), $W and a fresh
#                              store (am_test_init), TM: a private tmux server (-L PREFIX_PID);
#                              exits 77 (skipped) without tmux
#   cap                        the pane "tui" into $W/out
#   wait_for PATTERN [SECONDS] the screen matches ERE PATTERN (default 5 s)
#   check NAME PATTERN [SECONDS]   ok / bad on wait_for
#   keys KEY...                tmux send-keys to the pane
# Sourced by the suites; not a test (CMake registers test_*.sh only).
tui_init() {
  AM="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
  T="${AM_TEST_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
  F="$T/ref/evalrun"
  source "$T/cli/lib.bash"
  am_test_init "$1"
  if ! command -v tmux >/dev/null; then echo "tmux not installed: skipped"; exit 77; fi
  TM="tmux -L $1_$$ -f /dev/null"
}
cap() { $TM capture-pane -t tui -p >"$W/out" 2>&1; }
wait_for() {
  local i n=$(( ${2:-5} * 10 ))
  for ((i = 0; i < n; i++)); do cap; grep -qE -- "$1" "$W/out" && return 0; sleep 0.1; done
  return 1
}
check() { if wait_for "$2" "${3:-5}"; then ok "$1"; else bad "$1 (screen lacks /$2/)"; fi; }
keys() { $TM send-keys -t tui "$@"; }
