-- amalgam/eval_tasks.lua - what an evaluation runs on: the default suite's evaluation tasks
-- (am.eval_suite), suite names and modes, task resolution to raw task specs (dataset registry,
-- files on disk), the eval config of one call, and the ID/OOD averages with their standard
-- errors. lua/amalgam/eval.lua (am.eval), compare.lua and bench_quick.lua build on it.

local core = require "amalgam.core"
local json = core.json
local R = require "amalgam.registry"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local concat, fmt = table.concat, string.format

local M = {}

-- ------------------------------------------------------------------ the default suite

-- The evaluation tasks of the default benchmark, ID first, then OOD. Each entry:
--   name      task name (results key, column of the comparison table)
--   dataset   the prepared dataset (<store>/datasets/<dataset>/, `datasets` db entry)
--   type      retrieval | sts | pair_classification | classification | clustering | bitext
--   test      role of the evaluated file in the dataset's registry ("test", "cluster", ...);
--             without a registry entry: <dir>/<role> if it exists, else <dir>/<role>.jsonl
--   train     role of the classifier's training file (classification)
--   split     BEIR qrels split (default "test")
--   tag       "id" | "ood"
--   main      main score (MTEB metric name)
--   ignore_identical_ids / candidate_pool / sklearn   protocol options (evalrun.h; MTEB's defaults
--             when absent: keep identical ids, one-to-one bitext, scikit-learn 1.4)
--   quick     quick-mode sample: n = queries / pairs / test rows / points / sources, docs =
--             retrieval corpus / bitext targets (judged ones included), train = training rows,
--             experiments / cluster_sample = protocol overrides
-- Quick sizes are chosen for ranking fidelity within about a second for a cold quick evaluation
-- of all 12 tasks by the tiny model (~3,000 distinct texts, 1.1 s of CPU; long documents -- Debian
-- descriptions, FAQ answers, man pages, FOLDOC definitions, mails -- capped at 48 tokens): most of
-- the texts go to the tasks that separate models most (retrieval queries, STS and sense pairs);
-- probes draw their training rows stratified (evalrun_pick_stratified) from a pool larger than
-- one experiment's samples_per_label x labels, so their 3 experiments differ (one experiment on
-- one small pool ranked foldoc-cat upside down); the two clusterings of the same file share the
-- test sample. `amalgam bench quick` measures the result: over a 14-model panel on the demo store
-- (init, base and a checkpoint, per-task runs, seeds, merges) Kendall tau quick vs full = 0.89
-- (ID average) / 0.93 (OOD average), and all pairwise average deltas beyond the full suite's
-- noise keep their sign (54/54, 66/66; the suite before the task redesign: 0.92 / 0.87 on 24 models).
-- Every model sees the same subsample, so quick deltas between models are paired comparisons.
M.SUITE = {
  { name = "wn-def", dataset = "wn-def", type = "retrieval", test = "test", tag = "id", main = "ndcg_at_10",
    quick = { n = 100, docs = 150 } },
  { name = "deb-desc", dataset = "deb-desc", type = "retrieval", test = "test", tag = "id", main = "ndcg_at_10",
    quick = { n = 60, docs = 80, max_len = 48 } },
  { name = "wn-sts", dataset = "wn-sts", type = "sts", test = "test", tag = "id", main = "cosine_spearman",
    quick = { n = 300 } },
  { name = "wn-sense", dataset = "wn-sense", type = "pair_classification", test = "test", tag = "id", main = "max_ap",
    quick = { n = 200 } },
  { name = "deb-section", dataset = "deb-section", type = "classification", test = "test", train = "train", tag = "id",
    main = "accuracy", quick = { n = 120, train = 240, experiments = 3, max_len = 48 } },
  { name = "foldoc-def", dataset = "foldoc-def", type = "retrieval", test = "test", tag = "ood", main = "ndcg_at_10",
    quick = { n = 60, docs = 80, max_len = 48 } },
  { name = "prog-faq", dataset = "prog-faq", type = "retrieval", test = "test", tag = "ood", main = "ndcg_at_10",
    quick = { n = 50, docs = 60, max_len = 48 } },
  { name = "manpage", dataset = "manpage", type = "retrieval", test = "test", tag = "ood", main = "ndcg_at_10",
    quick = { n = 50, docs = 60, max_len = 48 } },
  { name = "prog-faq.clust", dataset = "prog-faq", type = "clustering", test = "sections", tag = "ood",
    main = "v_measure", quick = { n = 400, experiments = 4, cluster_sample = 400 } },
  { name = "foldoc-cat", dataset = "foldoc-cat", type = "classification", test = "test", train = "probe", tag = "ood",
    main = "accuracy", samples_per_label = 16, quick = { n = 200, train = 288, experiments = 3, max_len = 48 } },
  { name = "foldoc-cat.clust", dataset = "foldoc-cat", type = "clustering", test = "test", tag = "ood",
    main = "v_measure", quick = { n = 200, experiments = 2, cluster_sample = 200, max_len = 48 } },
  { name = "spam", dataset = "spam", type = "classification", test = "test", train = "probe", tag = "ood",
    main = "accuracy", quick = { n = 160, train = 40, experiments = 1, max_len = 48 } },
}

--- am.eval_suite() -> a copy of M.SUITE (the default suite's evaluation tasks)
function M.eval_suite()
  local function copy(t)
    if type(t) ~= "table" then return t end
    local o = {}
    for k, v in pairs(t) do o[k] = copy(v) end
    return o
  end
  return copy(M.SUITE)
end

local by_name = {}
for _, t in ipairs(M.SUITE) do by_name[t.name] = t end

M.SUITES = { default = "full", quick = "quick" }   -- suite name -> default mode

-- MTEB main score of each task type (what src/evalrun uses when a task names none)
M.MAIN = { retrieval = "ndcg_at_10", sts = "cosine_spearman", pair_classification = "max_ap",
  classification = "accuracy", clustering = "v_measure", bitext = "f1" }

-- ------------------------------------------------------------------ helpers

local null = json.null

-- json.null -> nil, recursively (results come from JSON)
local function clean(v)
  if type(v) ~= "table" then return v end
  for k, x in pairs(v) do
    if x == null then v[k] = nil else clean(x) end
  end
  return v
end
M.clean = clean

local function file_exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local function is_dir(p)
  local f = io.open(p .. "/.", "rb")   -- opening a directory for reading works on Linux
  if f then f:close() return true end
  return false
end

-- store of opts (or the default)
local function store_of(opts)
  if opts and opts.store then return opts.store end
  return core.store.default()
end

-- the registry entry of a dataset, or nil
local function registry(st, name)
  local e = R.get(st, name)
  return e and clean(e)
end

-- path of a role of a dataset directory
local function role_path(dir, reg, role)
  local f = reg and type(reg.files) == "table" and reg.files[role]
  if type(f) == "table" and type(f.path) == "string" then return dir .. "/" .. f.path end
  local p = dir .. "/" .. role
  if is_dir(p) or file_exists(p) then return p end
  for _, ext in ipairs { ".jsonl", ".tsv", ".jsonl.gz" } do
    if file_exists(p .. ext) then return p .. ext end
  end
  return p
end

-- A suite entry (or a registry eval) -> a spec table for raw_eval_task.
local function spec_of(st, t)
  local reg = registry(st, t.dataset)
  local dir = reg and reg.dir or (st:dir() .. "/datasets/" .. t.dataset)
  if not is_dir(dir) then
    return nil, fmt("task '%s': dataset '%s' is not prepared (no %s) (HINT: amalgam prepare %s)", t.name, t.dataset,
      dir, t.dataset), "ENOTFOUND"
  end
  local spec = {
    name = t.name, dataset = t.dataset, type = t.type, tag = t.tag, main = t.main,
    path = role_path(dir, reg, t.test or "test"), split = t.split, seed = t.seed,
    samples_per_label = t.samples_per_label, experiments = t.experiments, cluster_sample = t.cluster_sample,
    ignore_identical_ids = t.ignore_identical_ids, candidate_pool = t.candidate_pool, sklearn = t.sklearn,
    quick = t.quick,
  }
  if t.train then spec.train = role_path(dir, reg, t.train) end
  return spec
end

local type_alias = { bitext_mining = "bitext" }

-- Tasks from a registry entry that is not in the default suite (amalgam prepare --import ...)
local function registry_tasks(st, name)
  local reg = registry(st, name)
  if not reg or type(reg.evals) ~= "table" or #reg.evals == 0 then return nil end
  local out = {}
  for i, e in ipairs(reg.evals) do
    local ty = type_alias[e.type] or e.type
    local tname = (#reg.evals > 1 and i > 1) and (name .. "." .. ty) or name
    out[#out + 1] = { name = tname, dataset = name, type = ty, test = e.test or "test", train = e.train,
      split = e.split, tag = reg.tag, main = e.metric, ignore_identical_ids = e.ignore_identical_ids,
      candidate_pool = e.candidate_pool, sklearn = e.sklearn }
  end
  return out
end

--- M.tasks(opts) -> list of spec tables | nil, msg, code
-- opts.tasks: nil (the whole default suite) or a list of names / "KIND:PATH" specs;
-- a name selects the suite task of that name, or every suite task of that dataset, or a
-- registered dataset's evals. opts.tag applies to ad-hoc specs.
function M.tasks(opts)
  opts = opts or {}
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local want = opts.tasks
  if type(want) == "string" then want = { want } end
  local entries = {}
  if not want then
    for _, t in ipairs(M.SUITE) do entries[#entries + 1] = t end
  else
    for _, w in ipairs(want) do
      if type(w) == "table" then
        entries[#entries + 1] = { spec = w }
      elseif by_name[w] then
        entries[#entries + 1] = by_name[w]
      else
        local found = false
        for _, t in ipairs(M.SUITE) do
          if t.dataset == w then entries[#entries + 1] = t; found = true end
        end
        if not found and w:find(":", 1, true) then
          local spec, m2, c2 = core.raw_eval_spec(w)
          if not spec then return nil, m2, c2 end
          spec.tag = opts.tag
          entries[#entries + 1] = { spec = clean(spec) }
          found = true
        end
        if not found then
          local rt = registry_tasks(st, w)
          if rt then
            for _, t in ipairs(rt) do entries[#entries + 1] = t end
            found = true
          end
        end
        if not found then
          local names, in_suite, extra = {}, {}, {}
          for _, t in ipairs(M.SUITE) do names[#names + 1] = t.name; in_suite[t.dataset] = true end
          for _, n in ipairs(R.names(st)) do
            if not in_suite[n] and registry_tasks(st, n) then extra[#extra + 1] = n end
          end
          return nil, fmt("unknown task '%s' (suite tasks: %s%s; or KIND:PATH with KIND = beir, sts, pairs, labels, "
            .. "clustering, bitext)", w, concat(names, ", "),
            #extra > 0 and ("; registered datasets: " .. concat(extra, ", ")) or ""), "EINVAL"
        end
      end
    end
  end
  local specs, seen = {}, {}
  for _, e in ipairs(entries) do
    local spec = e.spec
    if not spec then
      local m2, c2
      spec, m2, c2 = spec_of(st, e)
      if not spec then return nil, m2, c2 end
    end
    if not seen[spec.name] then
      seen[spec.name] = true
      specs[#specs + 1] = spec
    end
  end
  return specs
end

local cfg_keys = { "layer", "dim", "pooling", "normalize", "max_len", "batch", "force", "no_store", "no_cache" }

local function mode_of(opts)
  if opts.mode then return opts.mode end
  return M.SUITES[opts.suite or "default"] or "full"
end

local function cfg_of(opts, on_step)
  local c = { mode = mode_of(opts), on_step = on_step }
  for _, k in ipairs(cfg_keys) do c[k] = opts[k] end
  return c
end

-- mean of the main scores of the tasks tagged `tag`: avg, count, total
local function average(specs, scores, tag)
  local s, n, total = 0, 0, 0
  for _, spec in ipairs(specs) do
    if spec.tag == tag then
      total = total + 1
      local v = scores[spec.name]
      if type(v) == "number" and v == v then s = s + v; n = n + 1 end
    end
  end
  if n == 0 then return nil, 0, total end
  return s / n, n, total
end
M.average = average

-- standard error of that average: sqrt(sum se^2) / n over the tasks averaged (tasks are
-- independent samples); nil when a task has no SE (a result stored before SEs were kept)
local function average_se(specs, scores, ses, tag)
  local s2, n = 0, 0
  for _, spec in ipairs(specs) do
    local v = scores[spec.name]
    if spec.tag == tag and type(v) == "number" and v == v then
      local se = ses[spec.name]
      if type(se) ~= "number" or se ~= se then return nil end
      s2 = s2 + se * se; n = n + 1
    end
  end
  if n == 0 then return nil end
  return math.sqrt(s2) / n
end
M.average_se = average_se

M.NOISE_P = 0.05   -- a task delta with a paired permutation p >= this is within noise
M.NOISE_Z = 1.96   -- an average delta within NOISE_Z standard errors is within noise

local function model_of(x, st)
  if core.type(x) == "Model" then return x end
  return st:model(x)
end

M.store_of, M.model_of, M.mode_of, M.cfg_of = store_of, model_of, mode_of, cfg_of

return M
