-- test_merge_data.lua - the data-driven merges through the real binary (lua/amalgam/merge.lua,
-- src/lua/l_train.c tr:accumulate / tr:grams / tr:loss, src/merge/merge_data.h): Fisher, RegMean,
-- LM-Cocktail, CoDiEmb fusion and Self Positioning on tiny models; results stored with their
-- tensors, the meta records the method, data and (Self Positioning) the λ trajectory; bad input.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

local base = assert(am.init_model { config = "tiny", name = "b0", seed = 1 })
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
T.checkerr("merges from data", function() am.sweep { method = "fisher", models = { m1, m2 }, grid = { epsilon = { 1 } }, eval = false } end)
local none, msg, code = am.merge { method = "fisher", models = { m1, "nosuchmodel" }, data = ir, loss = loss }
T.ok(none == nil and code == "ENOTFOUND", "an unknown model: nil, msg, ENOTFOUND (" .. tostring(msg) .. ")")
-- a malformed probe batch: raised through the search (nothing leaks past it)
T.checkerr("batch needs", function() am.merge { method = "self_positioning", base = base, models = { m1, m2 },
  data = { ir, { { foo = 1, texts = {} } } }, loss = loss, steps = 2 } end)
T.done()
