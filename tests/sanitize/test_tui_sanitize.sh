#!/usr/bin/env bash
# The TUI's draw loop under AddressSanitizer and UndefinedBehaviorSanitizer: a separate build of
# amalgam (BUILD/sanitize, -DAM_SANITIZE_ADDRESS=ON -DAM_SANITIZE_UNDEFINED=ON; incremental after
# the first run, ~45 s cold on 2 cores), a small generated store with something for every panel
# (models, full and quick results, a merge, a recorded 2-D sweep, a run with metrics, a stored
# Matryoshka cell), then `amalgam tui --frames N --panel P` starting from every panel (the loop
# shows each panel in turn). A sanitizer report (ASan and UBSan stop at the first) fails it.
# usage: test_tui_sanitize.sh PATH/TO/amalgam SOURCE_DIR     prints "N passed, N failed"
set -u
BUILD="$(cd "$(dirname "$1")" && pwd)"
SRC="$(cd "$2" && pwd)"
T="$SRC/tests"
F="$T/ref/evalrun"
source "$T/cli/lib.bash"
am_test_init am_tui_san
SB="$BUILD/sanitize"
mkdir -p "$SB"
# the vocabulary the main build uses (AM_VOCAB_FILE from ctest), not a copy under the source tree
asset=()
[ -n "${AM_VOCAB_FILE:-}" ] && asset=(-DAM_ASSET_DIR="$(dirname "$AM_VOCAB_FILE")")
if ! cmake -S "$SRC" -B "$SB" -DCMAKE_BUILD_TYPE=Debug -DAM_SANITIZE_ADDRESS=ON -DAM_SANITIZE_UNDEFINED=ON "${asset[@]}" \
    >"$W/err" 2>&1 || ! cmake --build "$SB" -j2 --target amalgam >"$W/err" 2>&1; then
  tail -20 "$W/err"; bad "the sanitizer build"; am_test_finish; exit 1
fi
ok "amalgam built with -fsanitize=address,undefined in $SB"
AM="$SB/amalgam"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=86:log_path=$W/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87:log_path=$W/ubsan"
# ---- the store (made by the sanitized binary too: the CLI paths run under it as well)
"$AM" init-model --config tiny --name base >/dev/null 2>"$W/err" || bad "init-model base"
"$AM" init-model --config tiny --name other --seed 7 >/dev/null 2>"$W/err" || bad "init-model other"
"$AM" eval base other --task "sts:$F/sts.tsv" --tag id >/dev/null 2>"$W/err" || bad "eval id"
"$AM" eval base --task "sts:$F/sts.tsv" --tag id --suite quick >/dev/null 2>"$W/err" || bad "eval quick"
"$AM" sweep --method ties --base base other base --grid density=0.3,0.6 --grid lambda=0.5,1 --task "sts:$F/sts.tsv" \
  --tag id >/dev/null 2>"$W/err" || bad "sweep"
"$AM" lua -e "
  assert(am.eval('base', { tasks = { 'sts:$F/sts.tsv' }, tag = 'id', mode = 'quick', layer = 1, dim = 32 }))
  local m = {}
  for i = 1, 30 do m[#m + 1] = i; m[#m + 1] = am.json.encode { step = i, task = 'wn-def', loss = 3 - i / 10, lr = 1e-4, tokens_per_s = 5000 } end
  assert(am.raw_run_write(am.store.default(), 'san-run', { record = am.json.encode { status = 'done', step = 30, steps = 30,
    start = '2026-01-01T00:00:00Z', ['end'] = '2026-01-01T00:01:00Z', name = 'san' }, metrics = m }))" >/dev/null 2>"$W/err" \
  || bad "results and a run"
[ -n "$(ls "$W"/asan* "$W"/ubsan* 2>/dev/null)" ] && bad "sanitizer reports while making the store: $(cat "$W"/asan* "$W"/ubsan* | head -30)"
# ---- the loop from every panel
for p in models merge results plot runs lua log sweeps matryoshka; do
  "$AM" tui --frames 20 --panel "$p" </dev/null >"$W/out" 2>"$W/err"
  rc=$?
  rep=$(cat "$W"/asan* "$W"/ubsan* 2>/dev/null | head -40)
  if [ $rc = 0 ] && [ -z "$rep" ]; then ok "tui --frames 20 from $p: no sanitizer report"
  else bad "tui --frames 20 from $p: exit $rc $rep"; fi
  rm -f "$W"/asan* "$W"/ubsan*
done
am_test_finish
