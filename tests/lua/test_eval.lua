-- test_eval.lua - am.eval, am.compare, am.results and the raw_eval_* primitives on the fixtures
-- of tests/ref/evalrun/ with the HF fixture models: success, `nil, msg, code`, misuse.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local TD = os.getenv("AM_TEST_DIR") or (arg[0]:match("^(.*)/lua/[^/]*$") or "tests")
local FX = TD .. "/ref/evalrun"

local st = assert(am.store.default())
local m1 = assert(am.import(TD .. "/ref/hf/bert_tiny", { name = "ev-a" }))
local m2 = assert(am.import(TD .. "/ref/hf/st_cls_norm", { name = "ev-b" }))
local TASKS = { "beir:" .. FX .. "/beir", "sts:" .. FX .. "/sts.tsv", "labels:" .. FX .. "/labels",
  "pairs:" .. FX .. "/pairclass.jsonl", "clustering:" .. FX .. "/clustering.jsonl", "bitext:" .. FX .. "/bitext.jsonl" }

-- ------------------------------------------------------------------ am.eval
local stats0 = am.raw_eval_stats()
local r = am.eval(m1, { tasks = TASKS, tag = "ood" })
T.ok(r, "eval returns results")
T.eq(#r, 6, "one result per task")
T.eq(r.model, m1:id(), "results.model is the id")
T.eq(r.name, "ev-a", "results.name")
T.eq(r.mode, "full", "default mode is full")
T.eq(r[1].type, "retrieval", "task 1 type")
T.eq(r[1].main_metric, "ndcg_at_10", "retrieval main metric")
T.ok(type(r[1].scores.ndcg_at_10) == "number" and r[1].scores.mrr_at_10 and r[1].scores.recall_at_100
  and r[1].scores.map_at_100, "MTEB retrieval names")
T.eq(r[1].main_score, r[1].scores.ndcg_at_10, "main_score = ndcg_at_10")
T.eq(r[2].main_metric, "cosine_spearman", "sts main")
T.eq(r[3].main_metric, "accuracy", "classification main")
T.eq(r[4].main_metric, "max_ap", "pair classification main")
T.eq(r[5].main_metric, "v_measure", "clustering main")
T.eq(r[6].main_metric, "f1", "bitext main")
T.ok(r[6].scores.accuracy ~= nil, "bitext accuracy too")
T.eq(r[6].config.protocol.candidates, "one_to_one", "bitext: MTEB's one-to-one rows by default")
T.eq(r[6].sizes.targets, 15, "bitext: one target per row")
T.ok(type(r[1].scores.hit_rate_at_10) == "number", "retrieval stores hit_rate")
T.eq(r[1].config.protocol.mteb, "2", "the config names the MTEB protocol version")
T.eq(r[3].config.protocol.sklearn, "1.4", "classification follows scikit-learn >= 1.4 by default")
for _, t in ipairs(am.eval_suite()) do
  if t.type == "bitext" then T.eq(t.main, "f1", "suite bitext task " .. t.name .. ": main score f1 (MTEB)") end
end
-- protocol options in a spec table
local opt = assert(am.eval(m1, { tasks = { { name = "bt-pool", type = "bitext", path = FX .. "/bitext.jsonl",
  candidate_pool = true }, { name = "cls-12", type = "classification", path = FX .. "/labels", sklearn = "1.2" },
  { name = "ret-iii", type = "retrieval", path = FX .. "/beir", ignore_identical_ids = true } }, no_store = true }))
T.eq(opt[1].sizes.targets, 30, "candidate_pool = true: every distinct positive and negative")
T.eq(opt[1].config.protocol.candidates, "pool", "candidate_pool in the config")
T.eq(opt[2].config.protocol.sklearn, "1.2", "sklearn = \"1.2\" in the config")
T.eq(opt[3].config.protocol.ignore_identical_ids, true, "ignore_identical_ids in the config")
T.eq(opt[3].main_score, r[1].main_score, "no query id is a doc id here: same scores")
T.eq(r[1].from_store, false, "computed the first time")
T.eq(r[1].tag, "ood", "tag from the options")
T.eq(r.by_task[r[2].task], r[2], "by_task")
T.eq(r.id_avg, nil, "no ID task: no ID average")
local s = 0
for i = 1, 6 do s = s + r[i].main_score end
T.near(r.ood_avg, s / 6, 1e-12, "OOD average of the main scores")
T.eq(r.ood_count, 6, "ood_count")
T.eq(r[1].sizes.queries, 12, "sizes.queries")
T.eq(r[1].sizes.docs, 40, "sizes.docs")
T.ok(r[1].config.layer == 2 and r[1].config.dim == 32, "resolved layer and dim in the config")
T.eq(#r[1].config_hash, 32, "config hash")
T.ok(tostring(r):find("OOD avg", 1, true), "tostring of results")
local stats1 = am.raw_eval_stats()
T.ok(stats1.texts_encoded > stats0.texts_encoded, "texts were encoded")

-- stored: nothing is encoded again, the numbers are the same
local r2 = assert(am.eval("ev-a", { tasks = TASKS }))
T.eq(r2[1].from_store, true, "second eval comes from the store")
T.eq(r2[2].main_score, r[2].main_score, "same score")
T.eq(am.raw_eval_stats().texts_encoded, stats1.texts_encoded, "nothing encoded the second time")
-- force recomputes from the embedding cache (still no encoding)
local r3 = assert(am.eval(m1, { tasks = { TASKS[2] }, force = true }))
T.eq(r3[1].from_store, false, "force recomputes")
T.eq(r3[1].main_score, r[2].main_score, "force: same score")
T.eq(am.raw_eval_stats().texts_encoded, stats1.texts_encoded, "force: embeddings from the cache")
-- quick mode and truncated dims are other results
local q = assert(am.eval(m1, { tasks = { TASKS[1] }, mode = "quick" }))
T.eq(q.mode, "quick", "mode quick")
T.eq(q[1].mode, "quick", "result marked quick")
local d8 = assert(am.eval(m1, { tasks = { TASKS[2] }, dim = 8, layer = 1 }))
T.ok(d8[1].config.dim == 8 and d8[1].config.layer == 1, "dim 8 / layer 1 in the config")
T.ok(d8[1].config_hash ~= r[2].config_hash, "another config hash")
local sq = assert(am.eval(m1, { tasks = { TASKS[2] }, suite = "quick" }))
T.eq(sq.mode, "quick", "suite quick means quick mode")

-- on_step sees the stages
local stages = {}
assert(am.eval(m1, { tasks = { TASKS[4] }, force = true, no_cache = true, on_step = function(p)
  stages[p.stage] = (stages[p.stage] or 0) + 1
  T.ok(type(p.task) == "string" and type(p.done) == "number" and type(p.total) == "number", "on_step fields")
end }))
T.ok(stages.load and stages.score and stages.done, "on_step: load, score, done")
-- an error in on_step propagates and stores nothing
am.raw_eval_clear()
local n_before = #assert(am.results())
T.checkerr("stop here", am.eval, m1, { tasks = { "sts:" .. FX .. "/pairclass.jsonl" }, no_cache = true,
  on_step = function(p) if p.stage == "encode" then error("stop here") end end })
T.eq(#assert(am.results()), n_before, "nothing stored after an error in on_step")

-- ------------------------------------------------------------------ suite tasks
-- a prepared dataset directory is found under <store>/datasets/<name>/
os.execute(("mkdir -p '%s/datasets/wn-sts' && cp '%s/sts.tsv' '%s/datasets/wn-sts/test.tsv'"):format(st:dir(), FX, st:dir()))
local w = assert(am.eval(m1, { tasks = { "wn-sts" } }))
T.eq(w[1].task, "wn-sts", "suite task name")
T.eq(w[1].tag, "id", "suite tag")
T.eq(w[1].dataset, "wn-sts", "dataset name")
T.eq(w.id_avg, w[1].main_score, "ID average of one task")
T.eq(w.ood_avg, nil, "no OOD task")
T.near(w[1].main_score, r[2].main_score, 1e-12, "same data, same score")
local e, msg, code = am.eval(m1)            -- the whole default suite: not prepared here
T.eq(e, nil, "unprepared suite fails")
T.eq(code, "ENOTFOUND", "ENOTFOUND")
T.ok(msg and msg:find("amalgam prepare", 1, true), "message has the prepare hint: " .. tostring(msg))
T.ok(#am.eval_suite() == 12, "12 evaluation tasks in the default suite")
do -- every suite task reads a dataset prepare builds; >= 5 ID and >= 6 OOD; the ones that did not
   -- separate tiny models (README's task table) stay prepared but out of the suite
  local built, n, names = {}, { id = 0, ood = 0 }, {}
  for _, t in ipairs(require("amalgam.prepare").TASKS) do built[t.name] = t end
  for _, t in ipairs(am.eval_suite()) do
    T.ok(built[t.dataset] ~= nil, "suite task " .. t.name .. ": dataset " .. t.dataset .. " is prepared")
    n[t.tag] = n[t.tag] + 1
    names[t.name] = t
  end
  T.ok(n.id >= 5 and n.ood >= 6, ("%d ID and %d OOD tasks"):format(n.id, n.ood))
  T.ok(not names["kjv-web"] and not names["brown-genre"] and not names["spam.clust"], "non-separating tasks left the suite")
  T.ok(built["kjv-web"] and built["brown-genre"], "kjv-web and brown-genre are still prepared")
  T.eq(names["foldoc-cat"].samples_per_label, 16, "foldoc-cat: 16 probe rows per label")
  T.eq(names["prog-faq.clust"].test, "sections", "prog-faq.clust clusters the sections file")
end

-- ------------------------------------------------------------------ am.compare
local c = am.compare { m1, "ev-b", tasks = TASKS, tag = "ood" }
T.ok(c, "compare")
T.eq(#c.models, 2, "two rows")
T.eq(c.ref, 1, "first model is the reference")
T.eq(c.models[1].results[TASKS[1]].from_store, true, "stored result reused")
T.ok(c.models[2].ood_avg ~= nil, "second model evaluated on the fly")
local txt = tostring(c)
T.ok(txt:find("ID avg", 1, true) and txt:find("OOD avg", 1, true), "table shows ID and OOD averages")
T.ok(txt:find("Δ ev-a", 1, true), "delta row against the reference")
T.ok(txt:find("beir:beir", 1, true), "ad-hoc tasks get short column titles")
local jt = c:json_table()
T.eq(jt.models[1].ood_avg, c.models[1].ood_avg, "json ood_avg")
T.ok(jt.models[2].delta and jt.models[2].delta.ood_avg, "json delta")
T.ok(jt.models[1].tasks[TASKS[1]].ndcg_at_10 ~= nil, "json uses MTEB metric names")
T.ok(am.json.decode(c:json()), "json() is valid JSON")
local csv = c:csv()
T.ok(csv:match("^model,name,id_avg,ood_avg,"), "csv header")
local _, lines = csv:gsub("\n", "\n")
T.eq(lines, 2, "csv: header + 2 rows")
-- uncertainty: every result has a bootstrap SE; the same model twice differs by nothing
for _, t in ipairs(TASKS) do
  local res = c.models[1].results[t]
  T.ok(type(res.main_se) == "number" and res.main_se >= 0, "main_se stored: " .. t)
  T.eq(res.uncertainty and res.uncertainty.method, "bootstrap", "uncertainty method: " .. t)
end
T.ok(c.models[1].se.ood_avg ~= nil, "average SE")
local same = assert(am.compare { m1, m1, tasks = TASKS, tag = "ood" })
for _, t in ipairs(TASKS) do
  local tt = same.models[2].tests[t]
  T.ok(tt and tt.paired and tt.delta == 0 and tt.p_value == 1 and tt.noise, "identical models: no difference on " .. t)
end
T.ok(same.models[2].tests.ood_avg.noise, "identical models: average delta within noise")
T.ok(tostring(same):find("≈+0.00", 1, true), "table marks deltas within noise")
local sj = same:json_table()
T.ok(sj.models[2].delta_test[TASKS[1]].within_noise == true and sj.models[1].tasks[TASKS[1]].main_se, "json: SE and test")
T.ok(same:csv():match("^model,name,id_avg,ood_avg,[^\n]*,se_ood_avg,"), "csv: SE columns")
-- quick vs full fidelity: Kendall tau-b as scipy.stats.kendalltau
local ev = require("amalgam.eval")
T.near(ev.kendall_tau({ 1, 2, 3, 4, 5 }, { 1, 3, 2, 5, 4 }), 0.6, 1e-12, "kendall tau")
T.near(ev.kendall_tau({ 1, 2, 2, 3 }, { 1, 2, 3, 3 }), 0.8, 1e-12, "kendall tau-b with ties")
T.near(ev.kendall_tau({ 3, 1, 2, 5, 4, 4 }, { 2, 1, 2, 4, 5, 3 }), 0.7857142857142858, 1e-12, "kendall tau-b, ties both")
local bq = assert(am.bench_quick { models = { m1, m2, "ev-a" }, tasks = TASKS, tag = "ood" })
T.eq(#bq.models, 3, "bench_quick: a row per model")
T.ok(bq.tau.ood and bq.tau.ood >= -1 and bq.tau.ood <= 1 and bq.sign.ood.pairs >= 0, "bench_quick: tau and sign agreement")
T.ok(bq.models[1].full.ood_se ~= nil, "bench_quick: full-suite SE of the average")
T.checkfail("EINVAL", am.bench_quick, { models = { m1, m2 }, tasks = TASKS })
local c2 = assert(am.compare { m1, m2, tasks = TASKS, ref = "ev-b" })
T.eq(c2.ref, 2, "ref by name")
do -- the same comparison again (the TUI re-reads after every demo step): no paired test is redone
  local core, calls = require "amalgam.core", 0
  local raw = core.raw_eval_paired
  core.raw_eval_paired = function(...) calls = calls + 1; return raw(...) end
  local again = assert(am.compare { m1, m2, tasks = TASKS, ref = "ev-b" })
  core.raw_eval_paired = raw
  T.eq(calls, 0, "paired tests are kept per store, models, task and configs")
  for k, t in pairs(c2.models[1].tests) do
    T.eq(again.models[1].tests[k].p_value, t.p_value, "kept test " .. k .. ": same p")
  end
end
local c3 = assert(am.compare { m1, m2, tasks = { TASKS[1] }, mode = "quick", dim = 16, no_eval = true })
T.eq(c3.models[1].scores[TASKS[1]], nil, "no_eval: missing results stay empty")
T.ok(tostring(c3):find("—", 1, true), "missing shown as —")
T.checkfail("EINVAL", am.compare, { m1, tasks = { "bogus-task" } })
T.checkfail("ENOTFOUND", am.compare, { m1, tasks = TASKS, ref = "no-such-model" })

-- ------------------------------------------------------------------ am.results
local all = assert(am.results())
T.ok(#all >= 10, "results listed: " .. #all)
T.ok(all[1].model and all[1].task and #all[1].config_hash == 32 and all[1].result.main_score, "result rows")
local mine = assert(am.results { model = m2 })
for _, x in ipairs(mine) do T.eq(x.model, m2:id(), "filtered by model") end
T.checkfail("ENOTFOUND", am.results, { model = "no-such-model" })

-- ------------------------------------------------------------------ expected failures
T.checkfail("EINVAL", am.eval, m1, { tasks = { "nosuch" } })
T.checkfail("EINVAL", am.eval, m1, { tasks = { "foo:bar" } })
T.checkfail("ENOTFOUND", am.eval, m1, { tasks = { "beir:/nonexistent/dir" } })
T.checkfail("ENOTFOUND", am.eval, "no-such-model", { tasks = TASKS })
T.checkfail("EINVAL", am.eval, m1, { tasks = { TASKS[1] }, layer = 9 })
T.checkfail("EFORMAT", am.eval, m1, { tasks = { "pairs:" .. FX .. "/sts.tsv" } })   -- not 0/1 scores
T.checkfail("ENOTFOUND", am.raw_eval_lookup, st, m1:id(), { name = "x", type = "sts", path = FX .. "/sts.tsv" },
  { dim = 3 })

-- ------------------------------------------------------------------ misuse
T.checkerr("bad argument #1 to 'eval'", am.eval, 42)
T.checkerr("eval: option 'mode' must be one of full|quick", am.eval, m1, { mode = "fast" })
T.checkerr("eval: unknown option 'taks'", am.eval, m1, { taks = {} })
T.checkerr("compare: no models given", am.compare, {})
T.checkerr("bad argument #1 to 'compare' (table expected", am.compare, "ev-a")
T.checkerr("ref 3 out of range", am.compare, { m1, tasks = { TASKS[2] }, ref = 3 })
T.checkerr("option 'dim' must be >= 1", am.raw_eval_task, st, m1, { name = "x", type = "sts", path = "x" }, { dim = -2 })
T.checkerr("Model expected", am.raw_eval_task, st, "ev-a", { name = "x", type = "sts", path = "x" }, {})
local closed = assert(am.model("ev-a"))
closed:close()
T.checkerr("closed model", am.raw_eval_task, st, closed, { name = "x", type = "sts", path = "x" }, {})
T.checkfail("EINVAL", am.raw_eval_task, st, m1, { name = "x", type = "nope", path = "x" }, {})
T.checkfail("EINVAL", am.raw_eval_task, st, m1, { name = "x", type = "sts", path = "x", colour = 1 }, {})


-- ------------------------------------------------------------------ API contract additions
-- EvalResults:table, am.eval_suite, am.results misuse
local rt = assert(am.eval(m2, { tasks = { TASKS[2] } }))
T.eq(rt:table(), tostring(rt), "results:table() is tostring(results)")
T.ok(rt:table():find("ev-b", 1, true) and rt:table():find("ID avg", 1, true), "results:table() has the name and averages")
T.ok(rt:table():find("±", 1, true), "results:table() shows standard errors")
local suite = am.eval_suite()
suite[1].name = "changed"
T.eq(am.eval_suite()[1].name, "wn-def", "eval_suite() returns a copy")
T.checkerr("results: options must be a table, got integer", function() am.results(5) end)
T.checkerr("results: unknown option 'modle'", function() am.results { modle = "x" } end)
T.checkerr("eval: option 'store' must be Store, got string", function() am.eval(m2, { store = "x" }) end)
T.checkerr("compare: option 'no_eval' must be boolean", function() am.compare { m2, no_eval = 1 } end)
-- the raw primitives
do
  local spec = assert(am.raw_eval_spec("sts:" .. FX .. "/sts.tsv"))
  T.ok(spec.type == "sts" and spec.path == FX .. "/sts.tsv", "raw_eval_spec -> spec table")
  T.checkfail("EINVAL", am.raw_eval_spec, "nokind")
  T.checkerr("bad argument #1 to 'raw_eval_spec' (string expected, got no value)", function() am.raw_eval_spec() end)
  local res, from = assert(am.raw_eval_task(st, m2, spec, {}))
  T.ok(res.main_score and from == true, "raw_eval_task: a stored result (from_store)")
  local nostore = assert(am.raw_eval_task(nil, m2, spec, { mode = "quick" }))
  T.eq(nostore.mode, "quick", "raw_eval_task without a store")
  local looked = assert(am.raw_eval_lookup(st, m2:id(), spec, {}))
  T.eq(looked.config_hash, res.config_hash, "raw_eval_lookup finds the stored result")
  T.checkfail("ENOTFOUND", am.raw_eval_lookup, st, "no-such-model", spec, {})
  T.checkerr("bad argument #1 to 'raw_eval_lookup' (amalgam.Store expected, got nil)", function() am.raw_eval_lookup(nil, "x", spec, {}) end)
  local hash, cfg = am.raw_eval_config_hash(st, m2:id(), spec, {})
  T.eq(hash, res.config_hash, "raw_eval_config_hash = the stored result's hash")
  T.ok(type(cfg) == "string" and am.json.decode(cfg).type == "sts", "raw_eval_config_hash: the config JSON")
  T.checkfail("ENOTFOUND", am.raw_eval_config_hash, st, "no-such-model", spec, {})
  T.checkerr("bad argument #3 to 'raw_eval_config_hash' (table expected, got number)", function() am.raw_eval_config_hash(st, "x", 5, {}) end)
  T.checkerr("bad argument #4 to 'raw_eval_config_hash' (unknown option 'modes'", function() am.raw_eval_config_hash(st, m2:id(), spec, { modes = 1 }) end)
  local raw = assert(am.raw_eval_results(st, m2:id()))
  T.ok(#raw > 0 and raw[1].model == m2:id() and raw[1].result, "raw_eval_results(store, model)")
  T.ok(#assert(am.raw_eval_results(st)) >= #raw, "raw_eval_results(store)")
  T.checkfail("ENOTFOUND", am.raw_eval_results, st, "no-such-model")
  T.checkerr("bad argument #1 to 'raw_eval_results' (amalgam.Store expected, got nil)", function() am.raw_eval_results(nil) end)
  local s0 = am.raw_eval_stats()
  for _, k in ipairs { "encode_calls", "texts_encoded", "texts_cached", "disk_loads", "results_stored", "results_computed" } do
    T.eq(math.type(s0[k]), "integer", "raw_eval_stats()." .. k)
  end
  am.raw_eval_clear()
  T.ok(am.raw_eval_task(st, m2, spec, { force = true, no_cache = true, no_store = true }), "evaluates after raw_eval_clear")
end

-- ------------------------------------------------------------------ a recipe-only merge (the Merge panel's step)
do
  local function cache_dirs()
    local n, p = 0, io.popen("ls -1 '" .. st:dir() .. "/cache/emb' 2>/dev/null")
    for _ in p:lines() do n = n + 1 end
    p:close()
    return n
  end
  local x = assert(am.init_model { config = "tiny", name = "ev-mx", seed = 11 })
  local y = assert(am.init_model { config = "tiny", name = "ev-my", seed = 12 })
  local task = { "sts:" .. FX .. "/sts.tsv" }
  local d0 = cache_dirs()
  assert(am.eval(x, { tasks = task }))
  T.eq(cache_dirs(), d0 + 1, "a stored model's embeddings go to the disk cache")
  local c0 = am.raw_merge_counts()
  local mx = assert(am.merge { method = "linear", models = { x, y }, weights = { 1, 2 } })
  am.raw_phase_times(true)
  local rx = assert(am.eval(mx, { tasks = task }))
  local ph, threads = am.raw_phase_times()
  T.ok(ph.encode > 0 and ph.tokenize > 0 and ph.metrics > 0 and ph.store > 0 and math.type(threads) == "integer",
    "raw_phase_times: encode, tokenize, metrics and store of the evaluation")
  T.eq(cache_dirs(), d0 + 1, "a recipe-only merge's embeddings are not written to the disk cache")
  local hash = rx[1].config_hash
  T.ok(am.raw_eval_paired(st, mx:id(), mx:id(), rx[1].task, hash, hash), "the result and its per-example scores are stored")
  local my = assert(am.merge { method = "linear", models = { x, y }, weights = { 2, 1 } })
  local c1 = am.raw_merge_counts()
  T.eq(c1.inputs_loaded - c0.inputs_loaded, 2, "the first merge reads its two inputs from the store")
  T.eq(c1.inputs_kept - c0.inputs_kept, 2, "the next merge of the same inputs takes them from memory")
  T.near(assert(my:tensor("embeddings.word_embeddings.weight")):get(3, 4),
    (2 * assert(x:tensor("embeddings.word_embeddings.weight")):get(3, 4)
      + assert(y:tensor("embeddings.word_embeddings.weight")):get(3, 4)) / 3, 1e-6, "kept inputs merge the same")
  mx:close()
  my:close()
  -- a kept input removed from the store since: the merge says so instead of using the memory copy
  local z = assert(am.init_model { config = "tiny", name = "ev-mz", seed = 13 })
  local mz = assert(am.merge { method = "linear", models = { x, z }, weights = { 1, 3 } })
  local mzid, zid = mz:id(), z:id()
  mz:close()
  z:close()
  assert(am.merge { method = "linear", models = { x, y }, weights = { 5, 1 } }) -- now the last merge
  assert(st:delete(zid))
  local t, msg = assert(am.model(mzid)):tensor("embeddings.word_embeddings.weight")
  T.ok(t == nil and tostring(msg):match("no longer in the store"),
    "a recipe whose kept input was removed since says so: " .. tostring(msg))
  -- a kept base with an MLM head merged with head-less inputs: the base is copied without its
  -- head, and its vocabulary stays the kept entry's (it was freed twice: a crash when the entry
  -- was dropped later)
  local trm = assert(am.raw_trainer(x, { mlm = true, seed = 1, lr = 1e-3 }))
  assert(trm:step({ texts = { "a cat sat on the mat", "the sun is a star" } }, am.loss.mlm {}))
  local hb = assert(trm:save("ev-mhead"))
  trm:close()
  for i = 1, 4 do
    local mh = assert(am.merge { method = "task_arithmetic", base = hb, models = { x, y }, weights = { 0.1 * i, 0.5 } })
    T.ok(mh:tensor("embeddings.word_embeddings.weight"), "merge " .. i .. " over a kept base with an MLM head")
    mh:close()
  end
  am.raw_merge_forget()
  T.ok(true, "the kept inputs are dropped without a double free")
end

T.done()
