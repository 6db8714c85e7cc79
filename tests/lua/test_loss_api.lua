-- test_loss_api.lua - the loss options of lua/API.md "am.loss" that follow the authors' code
-- (Starbucks' and sentence-transformers' KL options, CoDiEmb's relative L_mid threshold and the
-- dataset range am.train gives it) and am.preset.*: built, applied, trainable. Tiny model.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local TD = os.getenv("AM_TEST_DIR") or (arg[0]:match("^(.*)/lua/[^/]*$") or "tests")

local base = assert(am.init_model { config = "tiny", name = "tloss-base", seed = 5 })
local b = { queries = { "a cat", "a dog", "a cow" }, positives = { "kitten", "puppy", "calf" } }
local g = { sentence1 = { "a", "b", "c", "d" }, sentence2 = { "a", "x", "c", "y" }, scores = { 0.9, 0.1, 0.6, 0.3 } }

-- ------------------------------------------------------------------ options
T.checkerr("'kl_temperature' is ambiguous", function() am.loss.starbucks { kl_temperature = 0.3 } end)
T.checkerr("'kl_temperature' is ambiguous", function() am.loss.random_2d { kl_temperature = 0.3 } end)
T.checkerr("option 'layer_weighting' must be one of linear|uniform",
  function() am.loss.random_2d { layer_weighting = "log" } end)
local sb = am.loss.starbucks { kl_weight = 0.3, kl_softmax_temperature = 1, kl_normalize = false, kl_detach = false,
  kl_full_dim = false, kl_mode = "embeddings" }
T.eq(sb.kind, "starbucks", "am.loss.starbucks takes the KL options")
T.ok(am.loss.random_2d { layer_weighting = "uniform", random_full_dim = false }, "random_2d options")
T.ok(am.loss.codiemb_sts { mid_threshold_frac = 0.5, score_range = { 0, 5 } }, "codiemb_sts options")

do
  local tr = assert(am.raw_trainer(base, { lr = 1e-3, seed = 1, steps = 10 }))
  -- Starbucks' and ST's KL forms: KL terms are reported and finite
  for _, l in ipairs { am.loss.starbucks {}, am.loss.random_2d {}, am.loss.starbucks { kl_mode = "scores" },
    am.loss.random_2d { kl_normalize = true, kl_detach = true, kl_full_dim = false } } do
    local s = assert(tr:step(b, l))
    local kl
    for k, v in pairs(s.terms) do if k:match("^kl/") then kl = v end end
    T.ok(kl and kl == kl and s.loss == s.loss, ("%s %s: a finite KL term"):format(l.kind, l.kl_mode or ""))
  end
  -- CoDiEmb: with a score range L_mid gets the pairs >= lo + 0.2 (hi - lo); with CoDiEmb's literal
  -- 1.0 on this 0..1 scale no pair is a positive and the term is 0
  local s = assert(tr:step(g, am.loss.codiemb_sts { score_range = { 0, 1 } }))
  T.ok(s.terms.mid > 0 and s.terms.pro > 0 and s.terms.pearson > 0 and s.terms.rankkl > 0,
    "codiemb_sts on 0..1 gold: every term non-zero")
  local z = assert(tr:step(g, am.loss.codiemb_sts { mid_threshold = 1.0 }))
  T.eq(z.terms.mid, 0, "codiemb_sts mid_threshold = 1.0 (absolute) on 0..1 gold: L_mid = 0")
  T.checkerr("score_range", function() tr:step(g, am.loss.codiemb_sts { score_range = { 1, 0 } }) end)
  -- every preset's loss trains a step on data of its kind
  for _, name in ipairs { "starbucks", "starbucks_sts", "matryoshka_2d", "back_to_basics", "boom" } do
    local p = am.preset[name]()
    T.eq(p.name, name, "am.preset." .. name .. " names itself")
    local st = assert(tr:step(b, p.loss))
    T.ok(st.loss == st.loss, "am.preset." .. name .. ": a step of its loss")
  end
  local c = am.preset.codiemb()
  T.ok(assert(tr:step(b, c.losses.pairs)) and assert(tr:step(g, c.losses.graded)), "am.preset.codiemb: both losses")
  tr:close()
end

-- ------------------------------------------------------------------ presets: the paper's values
do
  local p = am.preset.starbucks()
  T.ok(p.pooling == "cls" and p.loss.inner.sim == "dot" and p.loss.inner.temperature == 1 and
    p.loss.kl_softmax_temperature == 1 and p.loss.kl_mode == "scores" and p.loss.kl_detach == true,
    "starbucks: dot product, CLS, T = 1 for the CE and the KL, scores KL detached")
  local bb = am.preset.back_to_basics()
  T.ok(bb.pooling == "mean" and bb.loss.sim == "dot" and bb.loss.temperature == 0.05 and bb.lora.rank == 8,
    "back_to_basics: dot product on mean pooling, T = 0.05, LoRA")
  local c = am.preset.codiemb()
  T.ok(c.losses.pairs.temperature == 0.02 and c.losses.pairs.multi_pos == "avg" and c.schedule.kind == "codiemb",
    "codiemb: T = 0.02, every positive slot, its sampler")
  local bm = am.preset.boom()
  T.ok(bm.n_neg == 7 and bm.schedule.kind == "shuffled_batches" and not bm.schedule.mixed,
    "boom: 7 hard negatives, homogeneous batch-level shuffling")
  local o = am.preset.apply(c, { init = base, steps = 100, tasks = { { data = "x-sts" }, { data = "y", loss = am.loss.cosent {} } } })
  T.ok(o.pooling == "cls" and o.lr == 5e-5 and o.warmup == 3 and o.schedule.kind == "codiemb", "apply: train options")
  T.ok(o.tasks[1].loss.kind == "codiemb_sts" and o.tasks[1].batch == 32 and o.tasks[2].loss.kind == "cosent"
    and o.tasks[2].batch == 64, "apply: the loss and batch per task kind, given ones kept")
  T.ok(o.tasks[1].n_neg == nil and o.tasks[2].n_pos == 2 and o.tasks[2].n_neg == 4, "apply: n_pos / n_neg on pairs tasks")
  T.checkerr("preset.apply: argument #1", function() am.preset.apply({}, {}) end)
  T.checkerr("preset.boom: unknown option 'x'", function() am.preset.boom { x = 1 } end)
end

-- ------------------------------------------------------------------ am.train gives codiemb_sts the dataset's range
do
  local path = TD .. "/ref/train/wn_sts_sample.jsonl" -- real wn-sts rows, gold 0.0625..0.9677
  local mids = {}
  local run = assert(am.train { name = "tloss-cod", init = base, steps = 3, lr = 1e-3, seed = 2, progress = false,
    tasks = { { data = path, batch = 16, loss = am.loss.codiemb_sts {} } },
    on_step = function(m) mids[#mids + 1] = m.terms.mid end })
  T.eq(run.status, "done", "codiemb_sts run on the wn-sts sample")
  local r = run.rec.task_specs[1].loss
  T.ok(r.score_range and math.abs(r.score_range[1] - 0.0625) < 1e-6 and math.abs(r.score_range[2] - 0.9677) < 1e-6,
    "the run record keeps the dataset's gold range")
  T.ok(#mids == 3 and mids[1] > 0 and mids[2] > 0 and mids[3] > 0, "L_mid is live at every step")
end

T.done()
