-- amalgam/preset.lua - each seed paper's training defaults as one table, so a study reproduces a
-- paper without reading its code (lua/API.md "am.preset"), and the dataset-dependent part of a
-- loss (the gold range CoDiEmb's L_mid threshold is relative to).
--
--   am.preset.starbucks{} / starbucks_sts{graded=} / matryoshka_2d{} / back_to_basics{} /
--     codiemb{} / boom{}  -> preset {name, source, loss | losses = {pairs=, graded=}, pooling, lr,
--     lr_schedule, warmup_ratio, batch | batches, n_pos, n_neg, epochs, lora, max_len, schedule, notes}
--   am.preset.apply(preset, train_options) -> train_options with the preset's values where unset
local core = require "amalgam.core"

local M = {}

-- the loss constructors live in train.lua (which requires this module: load it lazily)
local function L() return require("amalgam.train").loss end

-- a copy of loss with score_range = the dataset's gold {min, max} on every codiemb_sts node
-- that has none (am.train does this for graded tasks)
function M._with_score_range(loss, ds)
  if type(loss) ~= "table" then return loss end
  local function walk(l)
    if type(l) ~= "table" then return l end
    local c = {}
    for k, v in pairs(l) do c[k] = v end
    if c.kind == "codiemb_sts" and c.score_range == nil then
      local d = core.json.decode(ds:describe())
      if type(d.score_min) == "number" and type(d.score_max) == "number" then c.score_range = { d.score_min, d.score_max } end
    end
    if c.inner ~= nil then c.inner = walk(c.inner) end
    return c
  end
  return walk(loss)
end

local function opts(name, o, spec)
  if o ~= nil and type(o) ~= "table" then error(("preset.%s: options must be a table"):format(name), 3) end
  return core.check_options("preset." .. name, o, spec, 3)
end

-- Starbucks retrieval (ielab/Starbucks retrieval/modeling.py + README, Tevatron): CE and KL on
-- dot-product scores of unnormalised CLS rows, T = 1 for both, KL weight 1 with the full-size
-- scores detached, the fixed (layer, dim) list (the C default diagonal is Starbucks' list for a
-- 12-layer 768-d model: (2,32) (4,64) (6,128) (8,256) (10,512) (12,768)).
function M.starbucks(o)
  o = opts("starbucks", o, { pairs = "table" })
  local l = L()
  return { name = "starbucks", source = "arXiv 2410.13230; ielab/Starbucks retrieval/modeling.py, retrieval/README.md",
    loss = l.starbucks { pairs = o.pairs, kl_mode = "scores", kl_weight = 1, kl_softmax_temperature = 1, kl_detach = true,
      inner = l.infonce { sim = "dot", temperature = 1 } },
    pooling = "cls", lr = 1e-4, lr_schedule = "linear", warmup_ratio = 0, batch = 128, epochs = 3, n_pos = 1, n_neg = 7,
    max_len = { query = 32, passage = 196 },
    notes = "MS MARCO passage with 7 hard negatives per query (train_group_size 8); from bert-base-uncased or an SMAE checkpoint" }
end

-- Starbucks STS (sts/train_starbucks.py, sts/starbucks_loss.py): KL on the raw pooled rows' first d
-- features, no temperature, x 0.3, not detached (am.loss.starbucks's defaults); mean pooling (a
-- plain BERT in sentence-transformers); MNRL on AllNLI triplets, or CoSENT on STS-B (graded = true).
function M.starbucks_sts(o)
  o = opts("starbucks_sts", o, { pairs = "table", graded = "boolean" })
  local l = L()
  local inner = o.graded and l.cosent { scale = 20 } or l.infonce { temperature = 0.05 }
  return { name = "starbucks_sts", source = "arXiv 2410.13230; ielab/Starbucks sts/train_starbucks.py",
    loss = l.starbucks { pairs = o.pairs, inner = inner }, pooling = "mean", lr = 5e-5, lr_schedule = "linear",
    warmup_ratio = 0.1, batch = o.graded and 16 or 128, epochs = o.graded and 4 or 1, n_pos = 1, n_neg = 1,
    notes = "seed 42; AllNLI (anchor, positive, negative) triplets, or STS-B gold in [0, 1]" }
end

-- 2DMSE as sentence-transformers' Matryoshka2dLoss (the baseline Starbucks compared with; Starbucks'
-- sts/train_2d_matryoshka.py): am.loss.random_2d's defaults around MNRL or CoSENT.
function M.matryoshka_2d(o)
  o = opts("matryoshka_2d", o, { dims = "table", graded = "boolean" })
  local l = L()
  local inner = o.graded and l.cosent { scale = 20 } or l.infonce { temperature = 0.05 }
  return { name = "matryoshka_2d", source = "arXiv 2402.14776; sentence-transformers Matryoshka2dLoss",
    loss = l.random_2d { dims = o.dims, inner = inner }, pooling = "mean", lr = 5e-5, lr_schedule = "linear",
    warmup_ratio = 0.1, batch = o.graded and 16 or 128, epochs = o.graded and 4 or 1, n_pos = 1, n_neg = 1 }
end

-- Back to Basics (arXiv 2311.09765; amy-hyunji/lora-for-retrieval symmetric/): InfoNCE over
-- in-batch negatives only, dot product of unnormalised mean-pooled rows, T = 0.05; LoRA r 8,
-- alpha 32, dropout 0.1 (the code; the paper says rank 7) on query and value, lr 2e-4.
function M.back_to_basics(o)
  o = opts("back_to_basics", o, { full_finetuning = "boolean" })
  local l = L()
  return { name = "back_to_basics", source = "arXiv 2311.09765; amy-hyunji/lora-for-retrieval symmetric/peft_model.py",
    loss = l.infonce { sim = "dot", temperature = 0.05, hard_negatives = false }, pooling = "mean",
    lr = o.full_finetuning and 2e-5 or 2e-4, lr_schedule = "linear", warmup_ratio = 0.1, batch = 128, epochs = 40,
    n_pos = 1, n_neg = 0, max_len = 256,
    lora = (not o.full_finetuning) and { rank = 8, alpha = 32, dropout = 0.1, targets = { "query", "value" } } or nil,
    notes = "in-batch negatives only: mined hard negatives raise in-domain but lower out-of-domain scores" }
end

-- CoDiEmb (arXiv 2508.11442; TencentCloudADP/youtu-embedding training/CoDiEmb, train_bge.sh): IR
-- InfoNCE T = 0.02 with every positive slot against all candidates (ContrastiveLoss ir_mode "all" =
-- multi_pos "avg"), the STS composite L_mid + 0.5 PRO + 2 Pearson + 5 RankKL, normalised CLS rows,
-- single-task batches of per-task sizes (IR 64, STS 32), lr 5e-5 linear, warm-up 3 %, 5 epochs.
function M.codiemb(o)
  o = opts("codiemb", o, { seed = "integer" })
  local l = L()
  return { name = "codiemb", source = "arXiv 2508.11442; youtu-embedding training/CoDiEmb/train/{loss,model}.py, scripts/train_bge.sh",
    losses = { pairs = l.infonce { temperature = 0.02, multi_pos = "avg" }, graded = l.codiemb_sts {} },
    pooling = "cls", lr = 5e-5, lr_schedule = "linear", warmup_ratio = 0.03, batches = { pairs = 64, graded = 32 },
    epochs = 5, n_pos = 2, n_neg = 4, fill = "repeat", max_len = 512,
    schedule = require("amalgam.schedule").codiemb { seed = o.seed },
    notes = "IR examples: 2 positives and 4 hard negatives (train_bge.sh); seed 49" }
end

-- BOOM (arXiv 2602.05787; secondary sources, see notes): InfoNCE with 7 hard negatives per query,
-- homogeneous batch-level shuffling (every batch from one dataset, batches of all datasets shuffled).
function M.boom(o)
  o = opts("boom", o, { seed = "integer", temperature = "number" })
  local l = L()
  return { name = "boom", source = "arXiv 2602.05787 (abstract); model cards and a secondary summary",
    loss = l.infonce { temperature = o.temperature or 0.05 }, lr = 5e-5, lr_schedule = "linear", warmup_ratio = 0,
    batch = 256, epochs = 1, n_pos = 1, n_neg = 7, max_len = 512,
    schedule = require("amalgam.schedule").shuffled_batches { seed = o.seed },
    notes = "the temperature is not published (0.05 here); the paper's backbones use last-token pooling; "
      .. "LoRA r 32 alpha 32 for > 1B models" }
end

-- the dataset kind a task will have (am.train's rules for paths; a Dataset handle knows)
local function task_kind(t)
  if t.kind then return t.kind end
  if type(t.data) == "userdata" and t.data.kind then return t.data:kind() end
  if type(t.data) == "string" then
    if t.data:match("%.txt$") then return "text" end
    if t.data:match("sts") then return "graded" end
  end
  return "pairs"
end

-- train options with the preset's values where the caller left them unset: pooling, lr,
-- lr_schedule, warmup (warmup_ratio x steps), schedule, lora, and each task's loss and batch
-- (and n_pos / n_neg / fill for pairs data)
function M.apply(p, o)
  if type(p) ~= "table" or not p.name then error("preset.apply: argument #1 must be an am.preset.* table", 2) end
  if type(o) ~= "table" then error("preset.apply: argument #2 must be am.train's options table", 2) end
  local r = {}
  for k, v in pairs(o) do r[k] = v end
  if r.pooling == nil then r.pooling = p.pooling end
  if r.lr == nil then r.lr = p.lr end
  if r.lr_schedule == nil then r.lr_schedule = p.lr_schedule end
  if r.warmup == nil and p.warmup_ratio and p.warmup_ratio > 0 then
    r.warmup = math.floor(p.warmup_ratio * (r.steps or 100) + 0.5)
  end
  if r.schedule == nil then r.schedule = p.schedule end
  if r.lora == nil then r.lora = p.lora end
  if type(o.tasks) == "table" then
    r.tasks = {}
    for i, t in ipairs(o.tasks) do
      local c = {}
      if type(t) == "table" then
        for k, v in pairs(t) do c[k] = v end
        local kind = task_kind(t)
        if c.loss == nil then c.loss = p.loss or (p.losses and p.losses[kind]) end
        if c.batch == nil then c.batch = p.batch or (p.batches and p.batches[kind]) end
        if kind == "pairs" then
          if c.n_pos == nil then c.n_pos = p.n_pos end
          if c.n_neg == nil then c.n_neg = p.n_neg end
          if c.fill == nil then c.fill = p.fill end -- CoDiEmb's data code repeats a short row's list
        end
      else
        c = t
      end
      r.tasks[i] = c
    end
  end
  return r
end

return M
