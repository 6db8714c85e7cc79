-- test_merge.lua - am.merge through the real binary (lua/API.md "Merging"): recipe-only merges and
-- their ids, the same merge found again without computing, naming stores the tensors, merges of
-- merges, task vectors as inputs, lineage in the meta, and bad input (misuse raises at the
-- recipe's line with the closest name; failures return nil, msg, code and leave the store as it was).
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

local st = assert(am.store.default())
local a = assert(am.init_model { config = "tiny", name = "ma", seed = 1 })
local b = assert(am.init_model { config = "tiny", name = "mb", seed = 2 })
local W = "embeddings.word_embeddings.weight"
local function at(m, name, i, j) return assert(m:tensor(name)):get(i, j) end

-- ------------------------------------------------------------------ a recipe-only merge
local c0 = am.raw_merge_counts()
local m, info = am.merge { method = "linear", models = { a, "mb" }, weights = { 1, 3 } }
T.ok(am.type(m) == "Model" and #m:id() == 32, "am.merge returns a Model handle")
T.eq(m:kind(), "merged", "kind merged")
T.eq(info.found, false, "a new merge is computed")
T.eq(info.stored_tensors, false, "without a name only the recipe is stored")
local meta = m:meta()
T.eq(meta.recipe_only, true, "meta.recipe_only")
T.eq(meta.merge.method, "linear", "meta.merge.method")
T.eq(#meta.parents, 2, "two parents")
T.ok(meta.parents[1].id == a:id() and meta.parents[1].weight == 1 and meta.parents[2].id == b:id()
  and meta.parents[2].weight == 3, "parents with their weights")
T.ok(meta.source:match("test_merge%.lua:%d+"), "source names the recipe line: " .. tostring(meta.source))
-- computed on use: linear = (1 a + 3 b) / 4
T.near(at(m, W, 5, 7), (at(a, W, 5, 7) + 3 * at(b, W, 5, 7)) / 4, 1e-6, "the recipe is computed on use (tensor)")
local c1 = am.raw_merge_counts()
T.eq(#m:embed("a merged model encodes"), 128, "a recipe-only merge encodes")
T.ok(c1.computed == c0.computed + 1 and c1.reused == c0.reused + 1, "the new merge is computed once (its first use reuses it)")

-- the same merge again: the same id, nothing computed
local m2, info2 = am.merge { method = "linear", models = { "ma", b }, weights = { 1, 3 } }
T.eq(m2:id(), m:id(), "same inputs and spec: same id")
T.eq(info2.found, true, "the same merge is found, not computed")
local m3 = am.merge { method = "linear", models = { a, b }, weights = { 3, 1 } }
T.ok(m3:id() ~= m:id(), "other weights: another id")
local m4 = am.merge { method = "linear", models = { a, b } }
local m5 = am.merge { method = "linear", models = { a, b }, weights = { 1, 1 } }
T.eq(m4:id(), m5:id(), "weights default to 1 (the spec is canonical)")
do
  local t1 = am.merge { method = "ties", base = a, models = { b, m } }
  local t2, ti2 = am.merge { method = "ties", base = a, models = { b, m }, density = 1, lambda = 1, normalize = true }
  T.ok(t1:id() == t2:id() and ti2.found, "defaults spelled out: the same merge")
  T.eq(t1:meta().merge.params.density, 1, "the spec holds the defaults")
end

-- ------------------------------------------------------------------ rules: per model, class, tensor
do
  local r = assert(am.merge { method = "linear", models = { a, b },
    rules = { { param = "weight", model = 2, classes = "attention", value = 3 },
              { param = "weight", model = 2, pattern = "encoder.layer.1.output.dense.*", value = 0 } } })
  local Q, O = "encoder.layer.0.attention.self.query.weight", "encoder.layer.1.output.dense.weight"
  T.near(at(r, Q, 2, 3), (at(a, Q, 2, 3) + 3 * at(b, Q, 2, 3)) / 4, 1e-6, "a class rule for one model (attention: 1:3)")
  T.near(at(r, W, 2, 3), (at(a, W, 2, 3) + at(b, W, 2, 3)) / 2, 1e-6, "other classes keep the weights (1:1)")
  T.near(at(r, O, 2, 3), at(a, O, 2, 3), 1e-6, "a pattern rule (model 2 weight 0 on one tensor)")
  local rm = r:meta().merge.rules
  T.ok(#rm == 2 and rm[1].classes[1] == "attention" and rm[1].model == 2 and rm[2].pattern, "the rules are in the spec")
  T.checkerr("merge linear: the rule pattern 'attenton' matches no tensor (did you mean the class 'attention'?)", function()
    am.merge { method = "linear", models = { a, b }, rules = { { param = "weight", pattern = "attenton", value = 2 } } } end)
  T.checkerr("merge linear: rule 1: model must be 1..2", function()
    am.merge { method = "linear", models = { a, b }, rules = { { param = "weight", model = 3, value = 2 } } } end)
  T.checkerr("merge linear: rule 1: unknown key 'modle'", function()
    am.merge { method = "linear", models = { a, b }, rules = { { param = "weight", modle = 2, value = 2 } } } end)
end

-- ------------------------------------------------------------------ naming stores the tensors
local named, ninfo = am.merge { method = "linear", models = { a, b }, weights = { 1, 3 }, name = "mab" }
T.eq(named:id(), m:id(), "naming a merge keeps its id")
T.eq(ninfo.found, true, "the recipe was there: found")
T.eq(ninfo.stored_tensors, true, "a name stores the tensors")
T.eq(am.model("mab"):meta().recipe_only, nil, "the named merge is no longer recipe-only")
T.near(at(am.model("mab"), W, 5, 7), at(m, W, 5, 7), 0, "stored tensors = the computed ones")
T.eq(am.model(m3:id()):meta().recipe_only, true, "m3 is a recipe")
assert(am.name("m31", m3))
T.eq(am.model("m31"):meta().recipe_only, nil, "am.name on a recipe stores its tensors")

-- ------------------------------------------------------------------ merges of merges, lineage
local mm = assert(am.merge { method = "task_arithmetic", base = a, models = { m4, "mab" }, weights = { 0.5, 0.5 }, lambda = 0.5 })
local mmeta = mm:meta()
T.eq(mmeta.base, a:id(), "meta.base")
T.eq(mmeta.merge.params.lambda, 0.5, "meta.merge.params")
T.ok(mmeta.parents[1].id == m4:id() and mmeta.parents[2].id == m:id(), "a merge of merges names the merges")
do -- θ = a + 0.5 (0.5 (m4 − a) + 0.5 (m − a))
  local want = at(a, W, 3, 3) + 0.5 * (0.5 * (at(m4, W, 3, 3) - at(a, W, 3, 3)) + 0.5 * (at(m, W, 3, 3) - at(a, W, 3, 3)))
  T.near(at(mm, W, 3, 3), want, 1e-5, "a merge of a recipe-only merge is computed through it")
end
local mmid = mm:id()
mm:close()
T.near(at(am.model(mmid), W, 3, 3), at(st:model(mmid), W, 3, 3), 0, "reopened by id: the same tensors")

-- ------------------------------------------------------------------ task vectors as inputs
do
  local ds = am.dataset.new("pairs")
  for i = 1, 8 do assert(ds:add_pair("query number " .. i, "passage number " .. i)) end
  local run = assert(am.train { init = a, steps = 2, lr = 1e-3, seed = 1, progress = false, tasks = { { data = ds, batch = 4 } } })
  local tv = am.model(run.task_vector)
  T.eq(tv:kind(), "task_vector", "the run's task vector")
  local ck = run.model
  local t = assert(am.merge { method = "task_arithmetic", base = a, models = { tv } })
  T.near(at(t, W, 1012, 4), at(ck, W, 1012, 4), 1e-6, "a task vector input is θ0 + τ: base + τ = the checkpoint")
  T.near(t:similarity("one text", "another text"), ck:similarity("one text", "another text"), 1e-5,
    "the merge of the task vector encodes like the checkpoint")
  -- diagnostics: the run's task vector and checkpoint start from a (found without a base)
  local d = assert(am.diagnose { models = { tv, ck } })
  T.eq(d.base, a:id(), "am.diagnose finds the model both start from")
  T.near(d.cosine[1][2], 1, 1e-5, "τ of the task vector = τ of the checkpoint: cosine 1")
  T.near(d.norm[1], d.norm[2], 1e-4 * d.norm[1], "and the same norm")
  T.eq(d.sign_conflict, 0, "no sign conflicts between equal task vectors")
end

-- ------------------------------------------------------------------ diagnostics
do
  local c = assert(am.init_model { config = "tiny", name = "mc", seed = 3 })
  local d = assert(am.diagnose { base = a, models = { b, c } })
  T.ok(d.norm[1] > 0 and d.norm[2] > 0, "norms of the task vectors")
  T.near(d.cosine[1][2], d.cosine[2][1], 0, "cosine matrix symmetric")
  T.ok(d.cosine[1][2] > 0.3 and d.cosine[1][2] < 0.7, "two random inits minus a third: cosine about 1/2: " .. d.cosine[1][2])
  T.ok(d.sign_conflict > 0.2 and d.sign_conflict < 0.5, "sign conflicts of independent vectors: " .. d.sign_conflict)
  local names = {}
  for i, g in ipairs(d.groups) do names[i] = g.name end
  T.eq(table.concat(names, ","), "embeddings,layer.0,layer.1,pooler", "groups per layer")
  T.eq(#d.tensors, #a:tensors(), "one row per tensor")
  T.checkerr("diagnose: the models do not start from one model", function() am.diagnose { models = { b, c } } end)
  T.checkerr("diagnose: option 'models' must list the models", function() am.diagnose {} end)
  T.checkfail("ENOTFOUND", am.diagnose, { base = a, models = { "no-such-model" } })
end

-- ------------------------------------------------------------------ sweeps
do
  local TD = os.getenv("AM_TEST_DIR") or "tests"
  local sts = "sts:" .. TD .. "/ref/evalrun/sts.tsv"
  local seen = 0
  local c0 = am.raw_merge_counts()
  local pts = assert(am.sweep { method = "linear", models = { a, b }, grid = { weight = { 0, 0.5, 1 } },
    eval = { tasks = { sts }, tag = "id" }, on_point = function(_, i, n) seen = seen + 1; assert(n == 3 and i == seen) end })
  T.eq(#pts, 3, "a 1-D sweep: one point per value")
  T.eq(seen, 3, "on_point after every point")
  T.eq(pts.keys[1], "weight", "points.keys")
  T.ok(pts[2].weights[1] == 0.5 and pts[2].weights[2] == 0.5, "weight x gives the weights {1 - x, x}")
  local half, hinfo = am.merge { method = "linear", models = { a, b }, weights = { 0.5, 0.5 } }
  T.ok(half:id() == pts[2].id and hinfo.found, "a sweep point is the merge with its weights (found)")
  T.ok(pts[1].model:meta().recipe_only, "sweep points are recipes")
  T.ok(type(pts[3].id_avg) == "number" and pts[3].results.by_task, "each point is evaluated: " .. tostring(pts[3].id_avg))
  local c1 = am.raw_merge_counts()
  T.ok(c1.computed == c0.computed + 3 and c1.reused == c0.reused + 3, "each point merged once, evaluated without merging again")
  local again = assert(am.sweep { method = "linear", models = { a, b }, grid = { weight = { 0, 0.5, 1 } },
    eval = { tasks = { sts }, tag = "id" } })
  local c2 = am.raw_merge_counts()
  T.eq(c2.computed, c1.computed, "a repeated sweep merges nothing (stored results: no weights loaded)")
  T.ok(again[1].found and again[3].found and again[3].results[1].from_store, "a repeated sweep computes nothing")
  T.eq(again[3].id_avg, pts[3].id_avg, "and finds the same results")
  local g2 = assert(am.sweep { method = "ties", base = a, models = { b, m }, grid = { density = { 0.3, 0.6 }, lambda = { 0.5, 1 } },
    eval = false })
  -- the ID/OOD Pareto front: points no other point beats on both averages
  local front = require("amalgam.merge").pareto_front {
    { id_avg = 0.5, ood_avg = 0.5 }, { id_avg = 0.6, ood_avg = 0.4 }, { id_avg = 0.4, ood_avg = 0.4 },
    { id_avg = 0.5, ood_avg = 0.5 }, { id_avg = 0.3, ood_avg = 0.6 } }
  T.eq(table.concat(front, ","), "5,1,4,2", "pareto_front: dominated points left out, ties kept, by ID")
  local id_only = require("amalgam.merge").pareto_front { { id_avg = 0.2 }, { id_avg = 0.7 }, { id_avg = 0.7, ood_avg = 0.1 } }
  T.eq(table.concat(id_only, ","), "2,3", "pareto_front: an average some point lacks is not compared")
  T.ok(type(pts.front) == "table" and #pts.front >= 1 and pts[pts.front[1]].pareto, "an evaluated sweep has its front")
  for i, p in ipairs(pts) do
    local beaten = false
    for _, q in ipairs(pts) do
      if q.id_avg > p.id_avg then beaten = true end -- ID tasks only: the front is the best ID average
    end
    T.eq(p.pareto == true, not beaten, "point " .. i .. " is on the front exactly when nothing beats it")
  end
  T.eq(#g2, 4, "a 2-D grid: the product")
  T.ok(g2[1].params.density == 0.3 and g2[1].params.lambda == 0.5 and g2[2].params.lambda == 1, "the first key varies slowest")
  T.eq(g2[1].model:meta().merge.params.density, 0.3, "the point's parameters are in its spec")
  local before = #am.models()
  T.checkerr("merge: unknown option 'densty' (did you mean 'density'?)", function()
    am.sweep { method = "ties", base = a, models = { a, b }, grid = { densty = { 0.3 } }, eval = false } end)
  T.checkerr("sweep: grid.weight needs exactly 2 models", function()
    am.sweep { method = "linear", models = { a, b, m }, grid = { weight = { 0.5 } }, eval = false } end)
  T.checkerr("sweep: option 'grid' must map parameters", function() am.sweep { method = "linear", models = { a, b } } end)
  T.eq(#am.models(), before, "a sweep with a bad point stores nothing")
end

-- ------------------------------------------------------------------ greedy soup
do
  local TD = os.getenv("AM_TEST_DIR") or "tests"
  local ev = { tasks = { "sts:" .. TD .. "/ref/evalrun/sts.tsv" }, tag = "id" }
  local c = am.model "mc"
  local steps = 0
  local soup, info = am.greedy_soup { models = { a, b, c }, eval = ev, on_step = function() steps = steps + 1 end }
  T.ok(am.type(soup) == "Model" and #info.steps == 3 and steps == 2, "greedy_soup: one step per model after the best")
  local best = info.steps[1]
  for _, s in ipairs(info.steps) do T.ok(s.score <= best.score, "the first step is the best model alone") end
  T.eq(info.kept[1], best.id, "the soup starts from the best model")
  local want = #info.kept == 1 and best.id or am.merge { method = "linear", models = info.kept }:id()
  T.eq(soup:id(), want, "the soup is the uniform linear merge of the kept models")
  T.ok(info.score >= best.score, "the soup scores no lower than the best model")
  T.checkerr("greedy_soup: option 'models' must list at least 2 models", function() am.greedy_soup { models = { a } } end)
  T.checkerr("greedy_soup: unknown option 'scroe'", function() am.greedy_soup { models = { a, b }, scroe = "x" } end)
end

-- ------------------------------------------------------------------ bad input
local n_models = #am.models()
local here = "test_merge.lua:"
T.checkerr(here, function() am.merge { method = "linar", models = { a, b } } end)
T.checkerr("merge: unknown method 'linar' (did you mean 'linear'?)", function() am.merge { method = "linar", models = { a, b } } end)
T.checkerr("merge: unknown option 'densty' (did you mean 'density'?)", function()
  am.merge { method = "ties", base = a, models = { a, b }, densty = 0.5 } end)
T.checkerr("merge: unknown option 'wieghts' (did you mean 'weights'?)", function()
  am.merge { method = "linear", models = { a, b }, wieghts = { 1, 2 } } end)
T.checkerr("merge: method 'linear' has no parameter 'density'", function()
  am.merge { method = "linear", models = { a, b }, density = 0.5 } end)
T.checkerr("merge ties: the method needs a base model", function() am.merge { method = "ties", models = { a, b } } end)
T.checkerr(here, function() am.merge { method = "ties", models = { a, b } } end)
T.checkerr("merge linear: all weights are zero", function() am.merge { method = "linear", models = { a, b }, weights = { 0, 0 } } end)
T.checkerr("merge: 1 weights for 2 models", function() am.merge { method = "linear", models = { a, b }, weights = { 1 } } end)
T.checkerr("merge: option 'method' is required", function() am.merge { models = { a, b } } end)
T.checkerr("merge: option 'models' must list the models", function() am.merge { method = "linear" } end)
T.checkerr("merge: models[2] must be a Model or a model name, got integer", function() am.merge { method = "linear", models = { a, 5 } } end)
T.checkfail("ENOTFOUND", am.merge, { method = "linear", models = { a, "no-such-model" } })
do
  local mini = assert(am.init_model { config = "mini", name = "mmini", seed = 1 })
  n_models = n_models + 1
  local ok, msg, code = am.merge { method = "linear", models = { a, mini } }
  T.ok(not ok and code == "ESHAPE" and msg:match("embeddings%.") ~= nil, "different shapes: ESHAPE naming a tensor: " .. tostring(msg))
end
T.eq(#am.models(), n_models, "failed merges store nothing")
T.done()
