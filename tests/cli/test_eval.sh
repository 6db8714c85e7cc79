#!/usr/bin/env bash
# CLI tests of evaluation through the real binary: amalgam eval (ad-hoc --task KIND:PATH and a
# prepared suite task), compare (table, --json keys, --csv, --no-eval), ls results, and bad
# input (clear error, non-zero exit, store unchanged). Fixtures: tests/ref/evalrun/.
# usage: test_eval.sh PATH/TO/amalgam        prints "N passed, N failed"
set -u
AM="$1"
T="${AM_TEST_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
F="$T/ref/evalrun"
source "$(dirname "$0")/lib.bash"
am_test_init am_cli_eval
PY=python3
json_check() { # json_check NAME PYTHON-EXPR-ON-d < json
  $PY -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if ($2) else 1)" <"$W/out" && ok "$1" || bad "$1"
}
BEIR="beir:$F/beir"; STS="sts:$F/sts.tsv"; LAB="labels:$F/labels"; PC="pairs:$F/pairclass.jsonl"
CLU="clustering:$F/clustering.jsonl"; BIT="bitext:$F/bitext.jsonl"

# --- help lists the commands
"$AM" --help >"$W/out" 2>&1
grep -q "^  eval " "$W/out" && grep -q "^  compare " "$W/out" && ok "help lists eval and compare" || bad "help"
"$AM" eval --help >"$W/out" 2>&1
grep -q "Kendall tau [0-9.]* (ID average) / [0-9.]* (OOD average) over [0-9]* models" "$W/out" &&
  ok "eval --help states the measured quick-vs-full tau" || bad "eval --help: no tau"

# --- no store: clear error, nothing created
expect_fail "eval without a store" "no store at" "$AM" eval m --task "$STS"
[ ! -e "$AMALGAM_STORE" ] && ok "no store created" || bad "store created by a failed eval"

"$AM" import "$T/ref/hf/bert_tiny" --name t >/dev/null 2>"$W/err" || bad "import fixture"
"$AM" import "$T/ref/hf/st_cls_norm" --name s >/dev/null 2>"$W/err" || bad "import fixture 2"

# --- eval on ad-hoc tasks
if "$AM" eval t --task "$BEIR" --task "$STS" --task "$LAB" --task "$PC" --task "$CLU" --task "$BIT" >"$W/out" 2>"$W/err"; then
  grep -q "ndcg_at_10" "$W/out" && grep -q "cosine_spearman" "$W/out" && grep -q "max_ap" "$W/out" \
    && grep -q "v_measure" "$W/out" && grep -q "accuracy" "$W/out" && ok "eval six ad-hoc tasks" || bad "eval output"
else bad "eval six ad-hoc tasks (exit)"; fi
"$AM" eval t --task "$BEIR" --task "$STS" >"$W/out" 2>"$W/err" && [ "$(grep -c stored "$W/out")" = 2 ] \
  && ok "second eval reuses stored results" || bad "stored results not reused"
"$AM" eval t --task "$BEIR" --task "$STS" --tag ood --json >"$W/out" 2>"$W/err" || bad "eval --json exit"
json_check "eval --json: MTEB names, tag, averages" \
  'd[0]["results"][0]["scores"]["ndcg_at_10"] is not None and "recall_at_100" in d[0]["results"][0]["scores"] and d[0]["results"][1]["main_metric"]=="cosine_spearman" and d[0]["results"][0]["tag"]=="ood" and d[0]["ood_avg"] is not None and d[0]["results"][0]["mode"]=="full"'
"$AM" eval t --task "$STS" --suite quick --json >"$W/out" 2>"$W/err" || bad "eval quick exit"
json_check "quick mode marked quick" 'd[0]["mode"]=="quick" and d[0]["results"][0]["mode"]=="quick"'
"$AM" eval t --task "$STS" --dim 8 --layer 1 --json >"$W/out" 2>"$W/err" || bad "eval --dim exit"
json_check "--dim/--layer in the config" 'd[0]["results"][0]["config"]["dim"]==8 and d[0]["results"][0]["config"]["layer"]==1'
"$AM" eval t --task "$STS" --no-store >/dev/null 2>"$W/err" || bad "eval --no-store"

# --- ls results
"$AM" ls results >"$W/out" 2>"$W/err" && [ "$(grep -c '^t ' "$W/out")" = 8 ] && grep -q "cosine_spearman" "$W/out" \
  && ok "ls results: 8 stored results" || bad "ls results ($(grep -c '^t ' "$W/out") rows)"
"$AM" ls results --json >"$W/out" 2>"$W/err" || bad "ls results --json exit"
json_check "ls results --json" 'len(d)==8 and all(r["model_name"]=="t" and "main_score" in r for r in d)'

# --- compare
"$AM" compare t s --task "$BEIR" --task "$STS" --tag ood >"$W/out" 2>"$W/err" || bad "compare exit"
grep -q "ID avg" "$W/out" && grep -q "OOD avg" "$W/out" && grep -q "Δ t" "$W/out" && grep -q "^s " "$W/out" \
  && ok "compare table: ID and OOD averages, delta row" || bad "compare table"
! grep -q $'\e\[' "$W/out" && ok "no colour codes when stdout is not a terminal" || bad "colour codes in a pipe"
"$AM" compare t s --task "$BEIR" --task "$STS" --tag ood --json >"$W/out" 2>"$W/err" || bad "compare --json exit"
json_check "compare --json keys" \
  '[m["name"] for m in d["models"]]==["t","s"] and all("id_avg" in m or m.get("id_count")==0 for m in d["models"]) and d["models"][0]["ood_avg"] is not None and "ndcg_at_10" in d["models"][1]["tasks"]["'"$BEIR"'"] and "ood_avg" in d["models"][1]["delta"] and d["tasks"][0]["main_metric"]=="ndcg_at_10"'
"$AM" compare t s --task "$BEIR" --ref s --csv >"$W/out" 2>"$W/err" || bad "compare --csv exit"
head -1 "$W/out" | grep -q "^model,name,id_avg,ood_avg," && [ "$(wc -l <"$W/out")" = 3 ] && ok "compare --csv" || bad "compare --csv"
before=$(store_state)
"$AM" compare t s --task "$STS" --dim 4 --no-eval >"$W/out" 2>"$W/err" || bad "compare --no-eval exit"
grep -q "—" "$W/out" && grep -q "HINT" "$W/out" && ok "compare --no-eval shows — with a hint" || bad "compare --no-eval"
[ "$before" = "$(store_state)" ] && ok "compare --no-eval writes nothing" || bad "compare --no-eval wrote"

# --- a prepared suite task (store/datasets/<name>/)
mkdir -p "$AMALGAM_STORE/datasets/wn-sts" && cp "$F/sts.tsv" "$AMALGAM_STORE/datasets/wn-sts/test.tsv"
"$AM" eval t --task wn-sts --json >"$W/out" 2>"$W/err" || bad "eval suite task exit"
json_check "suite task: ID tag and average" 'd[0]["results"][0]["tag"]=="id" and d[0]["id_avg"]==d[0]["results"][0]["main_score"]'

# --- bad input: clear error, non-zero exit, store unchanged
before=$(store_state)
expect_fail "unknown task" "unknown task 'nosuch'" "$AM" eval t --task nosuch
expect_fail "unknown task kind" "unknown kind 'foo'" "$AM" eval t --task foo:bar
expect_fail "missing BEIR dir" "does not exist" "$AM" eval t --task beir:/nonexistent/beir
expect_fail "BEIR dir without corpus" "corpus.jsonl" "$AM" eval t --task "beir:$F/labels"
expect_fail "missing qrels split" "no qrels split 'nope'" "$AM" eval t --task "$BEIR#nope"
expect_fail "pair classification needs 0/1" "needs 0/1 scores" "$AM" eval t --task "pairs:$F/sts.tsv"
expect_fail "wrong file kind names file:line" "test.jsonl:1" "$AM" eval t --task "sts:$F/labels/test.jsonl"
expect_fail "unknown model" "unknown model 'nope'" "$AM" eval nope --task "$STS"
expect_fail "layer out of range" "layer 7 out of range" "$AM" eval t --task "$STS" --layer 7
expect_fail "bad --suite" "unknown suite" "$AM" eval t --suite bogus
expect_fail "bad --layer" "expects an integer" "$AM" eval t --layer x
expect_fail "no model" "usage: amalgam eval" "$AM" eval
expect_fail "unprepared default suite" "amalgam prepare" "$AM" eval t
expect_fail "compare unknown ref" "unknown reference model" "$AM" compare t --task "$STS" --ref nope
expect_fail "compare --json and --csv" "not both" "$AM" compare t --json --csv
expect_fail "ls unknown kind" "unknown kind" "$AM" ls resultz
expect_fail "bench quick needs 3 models" "needs 3 or more" "$AM" bench quick t s
[ "$before" = "$(store_state)" ] && ok "failed commands leave the store unchanged" || bad "store changed by failures"
"$AM" eval nope --task nosuch >/dev/null 2>&1; [ $? -ne 0 ] && ok "non-zero exit" || bad "exit 0"
expect_fail "unknown #option" "unknown option '#candidate_pool'" "$AM" eval t --task "$STS#candidate_pool"

# --- MTEB's ignore_identical_ids: queries that are docs too (ArguAna-like)
SR="$W/selfret"; mkdir -p "$SR/qrels"
printf '{"_id": "a", "text": "cat cats dog model"}\n{"_id": "b", "text": "merge merged model text"}\n{"_id": "d", "text": "dog cat cats on"}\n{"_id": "e", "text": "model merge merged runner"}\n' >"$SR/corpus.jsonl"
printf '{"_id": "a", "text": "cat cats dog model"}\n{"_id": "b", "text": "merge merged model text"}\n' >"$SR/queries.jsonl"
printf 'query-id\tcorpus-id\tscore\na\td\t1\nb\te\t1\n' >"$SR/qrels/test.tsv"
"$AM" eval t --task "beir:$SR" --json >"$W/out" 2>"$W/err" || bad "eval self-retrieval exit"
grep -q "2 of 2 query ids are also doc ids" "$W/err" && grep -q "ignore_identical_ids" "$W/err" \
  && ok "warns when query ids are doc ids" || bad "no identical-ids warning: $(cat "$W/err")"
json_check "own doc counts by default" 'd[0]["results"][0]["scores"]["mrr_at_1"]==0 and d[0]["results"][0]["config"]["protocol"]["ignore_identical_ids"] is False'
"$AM" eval t --task "beir:$SR#ignore_identical_ids" --json >"$W/out" 2>"$W/err" || bad "eval #ignore_identical_ids exit"
! grep -q "query ids are also doc ids" "$W/err" && ok "no warning with #ignore_identical_ids" || bad "warning with the option"
json_check "#ignore_identical_ids drops the own doc" 'd[0]["results"][0]["scores"]["hit_rate_at_1000"]==1 and d[0]["results"][0]["scores"]["mrr_at_1000"]>0 and d[0]["results"][0]["config"]["protocol"]["ignore_identical_ids"] is True and d[0]["results"][0]["sizes"]["identical_ids"]==2'

am_test_finish
