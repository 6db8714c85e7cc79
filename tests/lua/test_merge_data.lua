-- test_merge_data.lua - the data-driven merges through the real binary (lua/amalgam/merge.lua,
-- src/lua/l_train.c tr:accumulate / tr:grams / tr:loss, src/merge/merge_data.h): Fisher, RegMean,
-- LM-Cocktail, CoDiEmb fusion and Self Positioning on tiny models; results stored with their
-- tensors, the meta records the method, data and (Self Positioning) the λ trajectory; bad input;
-- AdaMerging's entropy objective, Fisher normalize, data methods in am.sweep, probe data drawn
-- from the store's datasets ("TASK[:ROWS]", deterministic), gradient conflicts (am.diagnose{data=}).
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

-- a 100-token vocabulary: small models, quick to store
local base = assert(am.init_model { config = "tiny", name = "b0", seed = 1,
  vocab = (arg[0]:match("^(.*)/") or ".") .. "/../ref/hf/bert_tiny/vocab.txt" })
local loss = am.loss.infonce { temperature = 0.05 }
local ir = { { queries = { "a cat", "a dog", "the sun" }, positives = { "kitten", "hound", "star" } },
             { queries = { "red car", "blue sea", "green tree" }, positives = { "vehicle", "ocean", "forest" } } }
local ir2 = { { queries = { "one two", "three four", "five six" }, positives = { "pair", "couple", "duo" } } }
-- two "fine-tuned" models: a few steps each on its own task
local function tune(data, name)
  local tr = assert(am.raw_trainer(base, { lr = 2e-3, seed = 1 }))
  for _ = 1, 3 do for _, b in ipairs(data) do assert(tr:step(b, loss)) end end
  assert(tr:save(name))
  tr:close()
  return assert(am.model(name))
end
local m1, m2 = tune(ir, "t1"), tune(ir2, "t2")
local W = "encoder.layer.0.attention.self.query.weight"
local function at(m, i, j) return assert(m:tensor(W)):get(i, j) end

-- ------------------------------------------------------------------ Fisher
local t0 = os.clock()
local f, fi = am.merge { method = "fisher", models = { m1, m2 }, data = { ir, ir2 }, loss = loss }
T.ok(am.type(f) == "Model" and f:kind() == "merged", "fisher: a merged Model")
local meta = f:meta()
T.eq(meta.merge.method, "fisher", "meta.merge.method")
T.ok(meta.merge.data.batches[1] == 2 and meta.merge.data.batches[2] == 1, "meta.merge.data: batches per model")
T.ok(meta.recipe_only ~= true, "stored with its tensors")
T.ok(#meta.parents == 2 and meta.parents[1].id == m1:id(), "parents")
local lo, hi = math.min(at(m1, 2, 3), at(m2, 2, 3)), math.max(at(m1, 2, 3), at(m2, 2, 3))
T.ok(at(f, 2, 3) >= lo - 1e-6 and at(f, 2, 3) <= hi + 1e-6, "fisher: each element between the models'")
T.eq(#f:embed("a merged model encodes"), 128, "encodes")
-- a model with itself: itself
local ff, ffi = am.merge { method = "fisher", models = { m1, m1 }, data = ir, loss = loss }
T.near(at(ff, 4, 5), at(m1, 4, 5), 1e-6, "fisher of a model with itself")
T.ok(ffi.found and ff:id() == m1:id(), "identical tensors: the stored model is found")
T.ok(m1:kind() == "checkpoint" and m1:meta().merge == nil, "its record and lineage are left as they were")
T.eq(fi.found, false, "a new merge is not found")
print(("  fisher (tiny, 2 models, 3 batches): %.2f s"):format(os.clock() - t0))

-- ------------------------------------------------------------------ RegMean
t0 = os.clock()
local r = assert(am.merge { method = "regmean", models = { m1, m2 }, data = { ir, ir2 }, alpha = 0.9 })
T.eq(r:meta().merge.params.alpha, 0.9, "regmean: alpha in the meta")
local rr = assert(am.merge { method = "regmean", models = { m1, m1 }, data = { ir, ir2 } })
T.near(at(rr, 1, 1), at(m1, 1, 1), 1e-4, "regmean of a model with itself (any Grams)")
local E = "embeddings.LayerNorm.weight"
T.near(assert(r:tensor(E)):get(1, 3), (assert(m1:tensor(E)):get(1, 3) + assert(m2:tensor(E)):get(1, 3)) / 2, 1e-6,
  "regmean: non-linear tensors averaged")
print(("  regmean (tiny, 2 models, 3 batches): %.2f s"):format(os.clock() - t0))

-- ------------------------------------------------------------------ LM-Cocktail
local c, ci = am.merge { method = "lm_cocktail", models = { m1, m2 }, data = ir, loss = loss, temperature = 5 }
T.ok(ci.losses[1] < ci.losses[2], "lm_cocktail: the model tuned on the examples has the lower loss")
T.ok(ci.weights[1] > ci.weights[2] and math.abs(ci.weights[1] + ci.weights[2] - 1) < 1e-12, "weights = softmax(-loss/T)")
T.near(ci.weights[1], 1 / (1 + math.exp((ci.losses[1] - ci.losses[2]) / 5)), 1e-12, "the softmax")
T.near(at(c, 2, 2), ci.weights[1] * at(m1, 2, 2) + ci.weights[2] * at(m2, 2, 2), 1e-6, "a linear merge with those weights")

-- ------------------------------------------------------------------ CoDiEmb fusion (no data)
local d = assert(am.merge { method = "codiemb_fusion", base = base, models = { m1, m2 }, g = "square", axis = "row" })
T.eq(d:meta().merge.params.g, "square", "codiemb_fusion: options in the meta")
local dd = assert(am.merge { method = "codiemb_fusion", base = base, models = { m1, m1 } })
T.near(at(dd, 3, 3), at(m1, 3, 3), 1e-6, "fusion of a checkpoint with itself")

-- ------------------------------------------------------------------ Self Positioning
t0 = os.clock()
local s, si = am.merge { method = "self_positioning", base = base, models = { m1, m2 }, data = { ir, ir2 }, loss = loss,
  steps = 8, lr = 0.05 }
T.ok(am.type(s) == "Model", "self_positioning: a Model")
T.eq(#si.lambda, 2, "one λ per task vector")
T.eq(#si.loss, 9, "the probe loss at each step and the final λ")
T.ok(si.loss[9] < si.loss[1], ("the probe loss falls (%.4f -> %.4f)"):format(si.loss[1], si.loss[9]))
local sm = s:meta()
T.ok(sm.self_positioning and #sm.self_positioning.trajectory == 9 and #sm.self_positioning.lambda == 2,
  "the λ trajectory and loss curve are in the meta")
T.eq(sm.merge.data.probe_batches, 2, "a balanced probe set: one batch per task")
T.near(at(s, 1, 2), at(base, 1, 2) + si.lambda[1] * (at(m1, 1, 2) - at(base, 1, 2)) + si.lambda[2] * (at(m2, 1, 2) - at(base, 1, 2)),
  1e-5, "θ = θ0 + Σ λ_k τ_k")
local sp = assert(am.merge { method = "self_positioning", base = base, models = { m1, m2 }, data = { ir, ir2 }, loss = loss,
  steps = 3, per_layer = true, simplex = true, optimizer = "sgd", lr = 0.01 })
local lam = sp:meta().self_positioning.lambda
T.eq(#lam, 2 * 4, "per layer: K x (L + 2) groups")
for gi = 1, 4 do T.near(lam[gi] + lam[4 + gi], 1, 1e-9, "simplex: each group's λ sums to 1") end
print(("  self_positioning (tiny, 8 steps, 2 probe batches): %.2f s"):format(os.clock() - t0))

-- ------------------------------------------------------------------ bad input
T.checkerr("needs data", function() am.merge { method = "fisher", models = { m1, m2 }, loss = loss } end)
T.checkerr("needs loss", function() am.merge { method = "fisher", models = { m1, m2 }, data = ir } end)
T.checkerr("needs a base", function() am.merge { method = "self_positioning", models = { m1 }, data = ir, loss = loss } end)
T.checkerr("did you mean 'epsilon'", function() am.merge { method = "fisher", models = { m1 }, data = ir, loss = loss, epsilo = 1 } end)
T.checkerr("one list of batches per model", function() am.merge { method = "fisher", models = { m1, m2 }, data = { ir }, loss = loss } end)
T.checkerr("alpha must be in", function() am.merge { method = "regmean", models = { m1, m2 }, data = ir, alpha = 2 } end)
T.checkerr("unknown g", function() am.merge { method = "codiemb_fusion", base = base, models = { m1 }, g = "sqr" } end)
T.checkerr("optimizer must be", function() am.merge { method = "self_positioning", base = base, models = { m1 }, data = ir, loss = loss, optimizer = "adm" } end)
T.checkerr("did you mean 'regmean'", function() am.merge { method = "regmaen", models = { m1 } } end)
local none, msg, code = am.merge { method = "fisher", models = { m1, "nosuchmodel" }, data = ir, loss = loss }
T.ok(none == nil and code == "ENOTFOUND", "an unknown model: nil, msg, ENOTFOUND (" .. tostring(msg) .. ")")
-- a malformed probe batch: raised through the search (nothing leaks past it)
T.checkerr("batch needs", function() am.merge { method = "self_positioning", base = base, models = { m1, m2 },
  data = { ir, { { foo = 1, texts = {} } } }, loss = loss, steps = 2 } end)

-- ------------------------------------------------------------------ AdaMerging's entropy objective
t0 = os.clock()
local unl = { { queries = { "a cat", "a dog", "the sun", "red car" }, positives = { "kitten", "hound", "star", "vehicle" } } }
local e, ei = am.merge { method = "self_positioning", objective = "entropy", temperature = 0.1, base = base,
  models = { m1, m2 }, data = unl, steps = 6, lr = 0.05, init = 0.3 }
T.ok(am.type(e) == "Model", "entropy objective: no loss needed (label-free)")
T.eq(ei.objective, "entropy", "info.objective")
T.eq(#ei.trajectory, 7, "the λ trajectory: before each step and the final λ")
T.ok(ei.trajectory[1][1] == 0.3 and ei.trajectory[1][2] == 0.3, "the trajectory starts at init")
T.ok(ei.loss[7] < ei.loss[1], ("the entropy falls (%.4f -> %.4f)"):format(ei.loss[1], ei.loss[7]))
T.ok(ei.loss[1] > 0 and ei.loss[1] <= math.log(4) + 1e-9, "an entropy over 4 in-batch candidates: in (0, log 4]")
local em = e:meta()
T.eq(em.merge.params.objective, "entropy", "the objective in the meta")
T.ok(em.self_positioning and #em.self_positioning.trajectory == 7, "the trajectory is stored in the meta")
local el = assert(am.merge { method = "self_positioning", objective = "entropy", base = base, models = { m1, m2 },
  data = unl, steps = 2, per_layer = true })
T.eq(#el:meta().self_positioning.lambda, 2 * 4, "entropy objective, layer-wise λ")
local _, eci = assert(am.merge { method = "self_positioning", objective = "entropy", base = base, models = { m1, m2 },
  data = unl, steps = 4, lr = 0.5, init = 0.3, clamp = true }) -- AdaMerging's settings, a large step
local in01 = true
for _, lam in ipairs(eci.trajectory) do for _, x in ipairs(lam) do in01 = in01 and x >= 0 and x <= 1 end end
T.ok(in01, "clamp = true: every λ of the trajectory in [0, 1]")
T.checkerr("objective must be 'task', 'entropy'", function() am.merge { method = "self_positioning", objective = "entropie",
  base = base, models = { m1 }, data = unl } end)
print(("  self_positioning, entropy objective (tiny, 6 + 2 steps): %.2f s"):format(os.clock() - t0))

-- ------------------------------------------------------------------ Fisher normalize
local fn1 = assert(am.merge { method = "fisher", models = { m1, m2 }, data = { ir, ir2 }, loss = loss, normalize = "model" })
T.eq(fn1:meta().merge.params.normalize, "model", "fisher normalize in the meta")
T.ok(fn1:id() ~= f:id(), "normalize = model changes the merge")
T.checkerr("normalize must be 'none', 'param', 'model'", function() am.merge { method = "fisher", models = { m1, m2 },
  data = ir, loss = loss, normalize = "tensor" } end)

-- ------------------------------------------------------------------ data methods in sweeps
local n_trainers = 0
local pts = assert(am.sweep { method = "regmean", models = { m1, m2 }, data = { ir, ir2 }, grid = { alpha = { 0, 0.5, 0.9 } },
  eval = false, on_point = function(p, i, n) n_trainers = n end })
T.eq(#pts, 3, "regmean sweep: one point per alpha")
T.eq(pts[3].id, r:id(), "the alpha = 0.9 point is the am.merge of the same data (same tensors, same id)")
T.ok(pts[1].id ~= pts[2].id, "alpha changes the merge")
T.eq(n_trainers, 3, "on_point called with the count")
local fp = assert(am.sweep { method = "fisher", models = { m1, m2 }, data = { ir, ir2 }, loss = loss,
  grid = { normalize = { "none", "model" }, epsilon = { 1e-10 } }, eval = false })
T.eq(fp[1].id, f:id(), "fisher sweep point (none, 1e-10) = am.merge's")
T.eq(fp[2].id, fn1:id(), "fisher sweep point (model) = am.merge's")
local wp = assert(am.sweep { method = "fisher", models = { m1, m2 }, data = { ir, ir2 }, loss = loss, grid = { weight = { 0.25, 0.75 } },
  eval = false })
T.ok(wp[1].weights[1] == 0.75 and wp[2].weights[2] == 0.75, "grid.weight over a data method")
local sp2 = assert(am.sweep { method = "self_positioning", objective = "entropy", base = base, models = { m1, m2 }, data = unl,
  steps = 2, grid = { lr = { 0.01, 0.1 } }, eval = false })
T.ok(sp2[1].lambda and #sp2[2].trajectory == 3, "self_positioning sweep points carry λ and the trajectory")
T.checkerr("regmean has no parameter 'alpa' (did you mean 'alpha'?)", function() am.sweep { method = "regmean",
  models = { m1, m2 }, data = ir, grid = { alpa = { 1 } }, eval = false } end)
T.checkerr("normalize must be", function() am.sweep { method = "fisher", models = { m1, m2 }, data = ir, loss = loss,
  grid = { normalize = { "none", "tensr" } }, eval = false } end)

-- ------------------------------------------------------------------ probe data from the store's datasets
local st = am.store.default()
local dir = st:dir() .. "/toy"
os.execute("mkdir -p '" .. dir .. "'")
local function reg(name, file, kind)
  assert(st:put("datasets", name, am.json.encode { path = dir, files = { train = { path = file, kind = kind } } }))
end
for _, name in ipairs { "pa", "pb" } do
  local ds = am.dataset.new("pairs")
  for i = 1, 20 do ds:add_pair(("%s query %d about thing %d"):format(name, i, i % 7), ("answer %d on thing %d"):format(i, i % 7)) end
  assert(ds:write(dir .. "/" .. name .. ".jsonl"))
  reg(name, name .. ".jsonl", "pairs")
end
local g = am.dataset.new("graded")
for i = 1, 20 do g:add_graded("sentence " .. i, "another sentence " .. (i % 5), (i % 5) / 4) end
assert(g:write(dir .. "/gs.jsonl"))
reg("gs", "gs.jsonl", "graded")
local tf, tfi = am.merge { method = "fisher", models = { m1, m2 }, data = { "pa:8", "gs" }, batch_size = 4, seed = 3 }
T.ok(am.type(tf) == "Model", "fisher from task names (each task's default loss)")
local td = tf:meta().merge.data
T.ok(td.tasks[1] == "pa:8" and td.tasks[2] == "gs" and td.rows[1] == 8 and td.rows[2] == 20, "the data spec in the meta")
T.ok(td.batches[1] == 2 and td.batches[2] == 5 and td.seed == 3 and td.batch_size == 4 and #td.hashes == 2,
  "batches, seed, batch size and the datasets' hashes in the meta")
local tf2, tf2i = am.merge { method = "fisher", models = { m1, m2 }, data = { "pa:8", "gs" }, batch_size = 4, seed = 3 }
T.ok(tf2:id() == tf:id() and tf2i.found, "deterministic: the same data spec gives the same tensors (found)")
local tf3 = assert(am.merge { method = "fisher", models = { m1, m2 }, data = { "pa:8", "gs" }, batch_size = 4, seed = 4 })
T.ok(tf3:id() ~= tf:id(), "another seed draws other rows")
local ts = assert(am.merge { method = "self_positioning", objective = "entropy", base = base, models = { m1, m2 },
  data = { "pa:8", "pb:8" }, batch_size = 4, steps = 2 })
T.eq(ts:meta().merge.data.probe_batches, 4, "self_positioning from tasks: 2 batches of each")
local none2, msg2, code2 = am.merge { method = "regmean", models = { m1, m2 }, data = { "pa", "nope" } }
T.ok(none2 == nil and code2 == "ENOTFOUND" and msg2:find("no training data for 'nope'", 1, true), "an unknown task: nil, msg, ENOTFOUND")
T.checkerr("data names 3 tasks for 2 models", function() am.merge { method = "regmean", models = { m1, m2 }, data = { "pa", "pb", "gs" } } end)

-- ------------------------------------------------------------------ gradient conflicts between tasks
-- constructed: task 2 = task 1's batch (aligned: cosine 1, no sign conflicts); task 3 = the same
-- batch with the loss negated (opposed: cosine -1, every shared entry in conflict); task 4 another batch
local neg = am.loss.infonce { temperature = 0.05, weight = -1 }
local gc = assert(am.diagnose { model = m1, data = { ir, ir, ir, ir2 }, losses = { loss, loss, neg, loss } }).gradients
T.eq(#gc.tasks, 4, "gradients: four tasks")
T.near(gc.cosine[1][2], 1, 1e-6, "the same task twice: cosine 1")
T.near(gc.cosine[1][3], -1, 1e-6, "the negated loss: cosine -1")
T.eq(gc.sign_conflict_pairs[1][2], 0, "aligned: no sign conflicts")
T.near(gc.sign_conflict_pairs[1][3], 1, 1e-12, "opposed: every shared entry in conflict")
T.ok(gc.cosine[1][4] > -1 + 1e-3 and gc.cosine[1][4] < 1 - 1e-3, "another task: in between")
T.near(gc.norm[1], gc.norm[3], 1e-9 * gc.norm[1], "the negated gradient has the same norm")
T.near(gc.loss[3], -gc.loss[1], 1e-9, "the mean losses per task")
T.ok(#gc.groups >= 3 and gc.groups[1].name == "embeddings" and gc.groups[2].name == "layer.0", "per layer groups")
T.near(gc.groups[2].cosine[1][3], -1, 1e-6, "per layer: opposed")
-- a model with an MLM head (its tensors are not contiguous in the buffer): each group once
local trm = assert(am.raw_trainer(base, { mlm = true, seed = 1, lr = 1e-3 }))
assert(trm:step({ texts = { "a cat sat on the mat", "the sun is a star" } }, am.loss.mlm {}))
assert(trm:save("mh"))
trm:close()
local gh = assert(am.diagnose { model = "mh", data = { ir, ir2 }, loss = loss }).gradients
local seen_g, dup, names_g = {}, false, {}
for _, gr in ipairs(gh.groups) do dup = dup or seen_g[gr.name]; seen_g[gr.name] = true; names_g[#names_g + 1] = gr.name end
T.ok(not dup and seen_g.head, "each layer group once, the head's too: " .. table.concat(names_g, " "))
T.ok(#gc.tensors > 10 and gc.tensors[1].name == "embeddings.word_embeddings.weight", "per tensor")
T.eq(gc.model, m1:id(), "the model measured")
local both = assert(am.diagnose { base = base, models = { m1, m2 }, data = { "pa:8", "gs" }, batch_size = 4 })
T.ok(#both.cosine == 2 and both.gradients and both.gradients.model == base:id(), "task vectors and, with data, gradients at the base")
T.ok(both.gradients.tasks[2] == "gs" and both.gradients.batches[1] == 2 and both.gradients.rows[1] == 8, "tasks by name")
T.ok(both.sign_conflict_pairs and both.sign_conflict_pairs[1][1] == 0, "task-vector diagnostics: pairwise sign conflicts too")
T.checkerr("give loss = {...} or losses", function() am.diagnose { model = m1, data = { ir, ir2 } } end)
T.checkerr("needs the model", function() am.diagnose { data = { "pa" } } end)
T.done()
