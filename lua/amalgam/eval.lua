-- amalgam/eval.lua - evaluation policy: the default suite's evaluation tasks, task resolution,
-- am.eval / am.compare / am.results, and the ID/OOD comparison table (text, JSON, CSV) that
-- `amalgam eval` and `amalgam compare` print. The mechanism (data loading, quick subsamples,
-- embedding cache, MTEB metrics, results in the store) is C: src/evalrun via the raw_eval_*
-- primitives of src/lua/l_eval.c.
--
-- Reference: lua/API.md ("Evaluation").

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
-- of all 13 tasks by the tiny model (~3,000 texts, 1.4 s of CPU; long documents -- Debian
-- descriptions, FAQ answers, man pages, Brown paragraphs, mails -- capped at 48 tokens): most of
-- the texts go to the tasks that separate models (retrieval queries, STS pairs); probes get 8
-- training rows per label (MTEB's samples_per_label, stratified: evalrun_pick_stratified) and
-- enough test rows that the tasks that hardly separate models (Brown, spam, kjv-web) add little
-- noise to the OOD average. `amalgam bench quick` measures the result: over a 24-model panel
-- (init, base, checkpoints, per-task and joint runs, seeds, merges) Kendall tau quick vs full =
-- 0.92 (ID average) / 0.87 (OOD average), and 99% / 97% of the
-- pairwise average deltas beyond the full suite's noise keep their sign (the earlier 30-60 per
-- task, on 16 of those models: tau 0.45 / 0.70, 78% / 89%).
-- Every model sees the same subsample, so quick deltas between models are paired comparisons.
M.SUITE = {
  { name = "wn-def", dataset = "wn-def", type = "retrieval", test = "test", tag = "id", main = "ndcg_at_10",
    quick = { n = 100, docs = 150 } },
  { name = "deb-desc", dataset = "deb-desc", type = "retrieval", test = "test", tag = "id", main = "ndcg_at_10",
    quick = { n = 60, docs = 80, max_len = 48 } },
  { name = "wn-sts", dataset = "wn-sts", type = "sts", test = "test", tag = "id", main = "cosine_spearman",
    quick = { n = 300 } },
  { name = "wn-sense", dataset = "wn-sense", type = "pair_classification", test = "test", tag = "id", main = "max_ap",
    quick = { n = 40 } },
  { name = "deb-section", dataset = "deb-section", type = "classification", test = "test", train = "train", tag = "id",
    main = "accuracy", quick = { n = 60, train = 160, experiments = 1, max_len = 48 } },
  { name = "foldoc-def", dataset = "foldoc-def", type = "retrieval", test = "test", tag = "ood", main = "ndcg_at_10",
    quick = { n = 60, docs = 80, max_len = 48 } },
  { name = "prog-faq", dataset = "prog-faq", type = "retrieval", test = "test", tag = "ood", main = "ndcg_at_10",
    quick = { n = 50, docs = 60, max_len = 48 } },
  { name = "manpage", dataset = "manpage", type = "retrieval", test = "test", tag = "ood", main = "ndcg_at_10",
    quick = { n = 50, docs = 60, max_len = 48 } },
  { name = "kjv-web", dataset = "kjv-web", type = "bitext", test = "test", tag = "ood", main = "f1",
    quick = { n = 150, max_len = 48 } },
  { name = "brown-genre", dataset = "brown-genre", type = "classification", test = "test", train = "probe", tag = "ood",
    main = "accuracy", quick = { n = 150, train = 120, experiments = 1, max_len = 48 } },
  { name = "brown-genre.clust", dataset = "brown-genre", type = "clustering", test = "test", tag = "ood",
    main = "v_measure", quick = { n = 150, experiments = 2, cluster_sample = 256, max_len = 48 } },
  { name = "spam", dataset = "spam", type = "classification", test = "test", train = "probe", tag = "ood",
    main = "accuracy", quick = { n = 400, train = 40, experiments = 1, max_len = 48 } },
  { name = "spam.clust", dataset = "spam", type = "clustering", test = "cluster", tag = "ood", main = "v_measure",
    quick = { n = 200, experiments = 2, cluster_sample = 256, max_len = 48 } },
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

local eval_spec = {
  suite = { "default", "quick" }, tasks = "table|string", mode = { "full", "quick" }, layer = "integer",
  dim = "integer", pooling = { "mean", "cls" }, normalize = "boolean", max_len = "integer", batch = "integer",
  force = "boolean", no_store = "boolean", no_cache = "boolean", on_step = "function", on_task = "function",
  store = "Store", tag = { "id", "ood" },
}

local Results = {}
Results.__index = Results
Results.__name = "amalgam.EvalResults"

--- am.eval(model [, opts]) -> results | nil, msg, code
-- results: a list of result tables (suite order; each the stored JSON decoded, plus from_store)
-- with fields model (id), name, mode, layer, dim, id_avg, ood_avg, by_task = {name = result}.
function M.eval(model, opts)
  core.check_arg(model, 1, "eval", "Model|string")
  opts = core.check_options("eval", opts, eval_spec)
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local m
  m, msg, code = model_of(model, st)
  if not m then return nil, msg, code end
  local specs
  specs, msg, code = M.tasks(opts)
  if not specs then return nil, msg, code end
  local out = setmetatable({ model = m:id(), name = m:name(), mode = mode_of(opts), layer = opts.layer, dim = opts.dim,
    by_task = {} }, Results)
  local cfg = cfg_of(opts, opts.on_step)
  local scores = {}
  for i, spec in ipairs(specs) do
    local res, from, ecode
    if not opts.force then -- stored: no weights loaded (a merge kept as its recipe is not computed)
      res = core.raw_eval_lookup(st, m:id(), spec, cfg)
      from = res ~= nil
    end
    if not res then res, from, ecode = core.raw_eval_task(st, m, spec, cfg) end
    if not res then return nil, from, ecode end
    clean(res)
    res.from_store = from
    res.tag = spec.tag          -- the tag of this experiment, not the one stored
    out[i] = res
    out.by_task[spec.name] = res
    scores[spec.name] = res.main_score
    if opts.on_task then opts.on_task(res, i, #specs) end
  end
  out.id_avg, out.id_count, out.id_total = average(specs, scores, "id")
  out.ood_avg, out.ood_count, out.ood_total = average(specs, scores, "ood")
  out.specs = specs
  return out
end

-- ------------------------------------------------------------------ comparison

local Compare = {}
Compare.__index = Compare
Compare.__name = "amalgam.Comparison"

local compare_spec = {
  ref = "Model|string|integer", suite = { "default", "quick" }, tasks = "table|string", mode = { "full", "quick" },
  layer = "integer", dim = "integer", pooling = { "mean", "cls" }, normalize = "boolean", max_len = "integer",
  batch = "integer", force = "boolean", no_eval = "boolean", no_store = "boolean", no_cache = "boolean",
  on_step = "function", on_task = "function", store = "Store", tag = { "id", "ood" },
}

--- am.compare{model, model, ... [, ref=, suite=, tasks=, mode=, layer=, dim=, no_eval=, ...]}
--   -> Comparison | nil, msg, code
-- Missing results are computed (stored results are reused), or left empty with no_eval.
function M.compare(opts)
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'compare' (table expected, got %s)"):format(core.typeof(opts)), 2)
  end
  local models_in, named = {}, {}
  for k, v in pairs(opts) do
    if math.type(k) == "integer" then models_in[k] = v else named[k] = v end
  end
  if #models_in == 0 then error("compare: no models given (am.compare{ model1, model2, ... })", 2) end
  for i = 1, #models_in do
    if models_in[i] == nil then error(("compare: model list has a hole at %d"):format(i), 2) end
    core.check_arg(models_in[i], 1, "compare", "Model|string")
  end
  named = core.check_options("compare", named, compare_spec)
  local st, msg, code = store_of(named)
  if not st then return nil, msg, code end
  local specs
  specs, msg, code = M.tasks(named)
  if not specs then return nil, msg, code end
  local cfg = cfg_of(named, named.on_step)
  local cmp = setmetatable({ mode = cfg.mode, layer = named.layer, dim = named.dim, tasks = specs, models = {} }, Compare)
  for i, x in ipairs(models_in) do
    local m
    m, msg, code = model_of(x, st)
    if not m then return nil, msg, code end
    local row = { id = m:id(), name = m:name() or m:id():sub(1, 12), scores = {}, results = {}, se = {} }
    for _, spec in ipairs(specs) do
      local res
      if not named.force then
        res = core.raw_eval_lookup(st, row.id, spec, cfg)    -- stored: no weights loaded
        if res then res.from_store = true end
      end
      if not res and not named.no_eval then
        local from
        res, from, code = core.raw_eval_task(st, m, spec, cfg)
        if not res then return nil, from, code end
        res.from_store = from
      end
      if res then
        clean(res)
        row.results[spec.name] = res
        row.scores[spec.name] = res.main_score
        row.se[spec.name] = res.main_se
        if named.on_task then named.on_task(res, row) end
      end
    end
    row.id_avg, row.id_count, row.id_total = average(specs, row.scores, "id")
    row.ood_avg, row.ood_count, row.ood_total = average(specs, row.scores, "ood")
    row.se.id_avg = average_se(specs, row.scores, row.se, "id")
    row.se.ood_avg = average_se(specs, row.scores, row.se, "ood")
    cmp.models[i] = row
  end
  -- the reference row
  local ref = 1
  if named.ref ~= nil then
    if math.type(named.ref) == "integer" then
      ref = named.ref
      if ref < 1 or ref > #cmp.models then error(("compare: ref %d out of range 1..%d"):format(ref, #cmp.models), 2) end
    else
      local want = core.type(named.ref) == "Model" and named.ref:id() or st:resolve(named.ref)
      if not want then return nil, ("compare: unknown reference model '%s'"):format(tostring(named.ref)), "ENOTFOUND" end
      ref = nil
      for i, row in ipairs(cmp.models) do if row.id == want then ref = i break end end
      if not ref then
        return nil, ("compare: the reference '%s' is not among the compared models"):format(tostring(named.ref)), "EINVAL"
      end
    end
  end
  cmp.ref = ref
  cmp:test_deltas(st)
  return cmp
end

-- the delta of one task between two results: paired test on the stored per-example scores, or
-- (results stored without them) the unpaired SE sqrt(se_a^2 + se_b^2) and no p-value
local function task_test(st, a, b)
  local t = core.raw_eval_paired(st, a.model, b.model, a.task, a.config_hash, b.config_hash)
  if t then return { se = t.se, p_value = t.p_value, paired = true } end
  if type(a.main_se) == "number" and type(b.main_se) == "number" then
    return { se = math.sqrt(a.main_se ^ 2 + b.main_se ^ 2), paired = false }
  end
  return nil
end

--- cmp:test_deltas(store): for every non-reference row, row.tests[key] = {delta, se, p_value,
--- paired, noise} per task and average (noise = the delta is within noise)
function Compare:test_deltas(st)
  local ref = self.models[self.ref]
  for ri, row in ipairs(self.models) do
    row.tests = {}
    if ri ~= self.ref and ref then
      local sums = { id = { 0, 0, true }, ood = { 0, 0, true } }
      for _, spec in ipairs(self.tasks) do
        local a, b = row.results[spec.name], ref.results[spec.name]
        if a and b and type(a.main_score) == "number" and type(b.main_score) == "number" then
          local t = task_test(st, a, b) or {}
          t.delta = a.main_score - b.main_score
          if t.p_value then t.noise = t.p_value >= M.NOISE_P
          elseif t.se then t.noise = math.abs(t.delta) <= M.NOISE_Z * t.se end
          row.tests[spec.name] = t
          local g = sums[spec.tag or ""]
          if g then
            if t.se and t.se == t.se then g[1] = g[1] + t.se ^ 2 else g[3] = false end
            g[2] = g[2] + 1
          end
        end
      end
      for tag, g in pairs(sums) do
        local key = tag .. "_avg"
        local v, rv = row[key], ref[key]
        if v and rv and g[2] > 0 and g[2] == row[tag .. "_count"] and g[2] == ref[tag .. "_count"] then
          local t = { delta = v - rv }
          if g[3] then
            t.se = math.sqrt(g[1]) / g[2]
            t.noise = math.abs(t.delta) <= M.NOISE_Z * t.se
          end
          row.tests[key] = t
        end
      end
    end
  end
end

-- "beir:/long/path/dir#split" -> "beir:dir#split" for column titles (names stay whole elsewhere)
local function short_title(name)
  local kind, path = name:match("^(%w+):(.+)$")
  if not kind then return name end
  local base = path:gsub("/+$", ""):match("([^/]+)$") or path
  return kind .. ":" .. base
end

-- the columns: ID avg, OOD avg, then tasks (ID, OOD, untagged)
local function columns(cmp)
  local cols = { { key = "id_avg", title = "ID avg", avg = "id" }, { key = "ood_avg", title = "OOD avg", avg = "ood" } }
  for _, tag in ipairs { "id", "ood", false } do
    for _, s in ipairs(cmp.tasks) do
      if (s.tag or false) == tag then cols[#cols + 1] = { key = s.name, title = short_title(s.name), tag = s.tag } end
    end
  end
  return cols
end

-- " |" before the first task column and where the tag group changes
local function sep_of(cols, i)
  if i == 3 or (i > 3 and cols[i].tag ~= cols[i - 1].tag) then return " |" end
  return ""
end

local function value(row, col)
  if col.avg then return row[col.key] end
  return row.scores[col.key]
end

local function complete(row, col)
  if not col.avg then return true end
  return row[col.avg .. "_count"] == row[col.avg .. "_total"]
end

--- cmp:table([{color = false}]) -> string: one row per model (scores x 100), then a delta row
--- under every non-reference model; "—" marks a result that is not there.
function Compare:table(o)
  o = o or {}
  local color = o.color
  local cols = columns(self)
  local ref = self.models[self.ref]
  local namew = 5
  for _, row in ipairs(self.models) do namew = math.max(namew, #row.name + 2) end
  namew = math.max(namew, #("  Δ " .. (ref and ref.name or "")) + 1)
  local widths = {}
  for i, c in ipairs(cols) do widths[i] = math.max(7, #c.title) end
  local lines = {}
  local function pad(s, w, visible)
    visible = visible or #s
    return string.rep(" ", math.max(0, w - visible)) .. s
  end
  local function utf8len(s) return utf8.len(s) or #s end
  -- header: group labels over the task columns
  local head = { "MODEL" .. string.rep(" ", namew - 5) }
  for i, c in ipairs(cols) do
    local sep = sep_of(cols, i)
    head[#head + 1] = sep .. " " .. pad(c.title, widths[i])
  end
  local title = fmt("%s evaluation (%s), scores x 100%s%s", self.mode, #self.tasks == #M.SUITE and "default suite"
    or (#self.tasks .. " tasks"), self.layer and (", layer " .. self.layer) or "", self.dim and (", dim " .. self.dim) or "")
  lines[1] = title
  lines[2] = concat(head)
  local missing, partial, has_se, any_noise = false, false, false, false
  for ri, row in ipairs(self.models) do
    local cells = { row.name .. string.rep(" ", namew - utf8len(row.name)) }
    local dcells = { "  Δ " .. (ref and ref.name or "") }
    dcells[1] = dcells[1] .. string.rep(" ", namew - utf8len(dcells[1]))
    for i, c in ipairs(cols) do
      local sep = sep_of(cols, i)
      local v = value(row, c)
      local s
      if v == nil then
        s = "—"
        if not c.avg then missing = true end
      else
        s = fmt("%.2f", v * 100)
        if not complete(row, c) then s = s .. "*"; partial = true end
      end
      cells[#cells + 1] = sep .. " " .. pad(s, widths[i], utf8len(s))
      local rv = ref and value(ref, c)
      local ds, vis = "", 0
      if ri ~= self.ref and v ~= nil and rv ~= nil then
        local d = (v - rv) * 100
        local t = row.tests and row.tests[c.key]
        local noise = t and t.noise
        ds = (noise and "≈" or "") .. fmt("%+.2f", d)
        vis = utf8len(ds)
        if noise then any_noise = true end
        if color and noise then ds = "\27[2m" .. ds .. "\27[0m"
        elseif color and math.abs(d) >= 0.005 then ds = (d > 0 and "\27[32m" or "\27[31m") .. ds .. "\27[0m" end
      elseif ri ~= self.ref then
        ds, vis = "—", 1
      end
      dcells[#dcells + 1] = sep .. " " .. pad(ds, widths[i], vis)
    end
    lines[#lines + 1] = concat(cells)
    local scells, any_se = { "  ±" .. string.rep(" ", namew - 3) }, false
    for i, c in ipairs(cols) do
      local se = row.se and row.se[c.key]
      local s = "—"
      if type(se) == "number" and se == se and value(row, c) ~= nil then s = fmt("%.2f", se * 100); any_se = true end
      scells[#scells + 1] = sep_of(cols, i) .. " " .. pad(s, widths[i], utf8len(s))
    end
    if any_se then lines[#lines + 1] = color and ("\27[2m" .. concat(scells) .. "\27[0m") or concat(scells); has_se = true end
    if ri ~= self.ref then lines[#lines + 1] = concat(dcells) end
  end
  if missing then
    lines[#lines + 1] = fmt("— = no %s result stored (HINT: amalgam eval MODEL%s, or compare without --no-eval)",
      self.mode, self.mode == "quick" and " --suite quick" or "")
  end
  if partial then lines[#lines + 1] = "* = average over the tasks that have a result" end
  if has_se then lines[#lines + 1] = "± = standard error (bootstrap over queries / pairs / rows; averages: sqrt(Σ se²) / n)" end
  if any_noise then
    lines[#lines + 1] = fmt("≈ = within noise (tasks: paired permutation test p ≥ %.2f; averages: |Δ| < %.2f SE)",
      M.NOISE_P, M.NOISE_Z)
  end
  return concat(lines, "\n")
end

Compare.__tostring = function(self) return self:table() end

--- cmp:json_table() -> plain table for am.json.encode (MTEB metric names per task)
function Compare:json_table()
  local ref = self.models[self.ref]
  local out = { mode = self.mode, layer = self.layer, dim = self.dim, ref = ref and ref.id, tasks = json.array(),
    models = json.array() }
  for _, s in ipairs(self.tasks) do
    out.tasks[#out.tasks + 1] = { name = s.name, dataset = s.dataset, type = s.type, tag = s.tag,
      main_metric = s.main or M.MAIN[s.type] }
  end
  for _, row in ipairs(self.models) do
    local r = { model = row.id, name = row.name, id_avg = row.id_avg, ood_avg = row.ood_avg,
      id_count = row.id_count, ood_count = row.ood_count, id_avg_se = row.se.id_avg, ood_avg_se = row.se.ood_avg,
      tasks = {}, delta = {}, delta_test = {} }
    for _, s in ipairs(self.tasks) do
      local res = row.results[s.name]
      if res then
        local t = {}
        for k, v in pairs(res.scores or {}) do t[k] = v end
        t.main_score = res.main_score
        t.main_se = res.main_se
        t.main_metric = res.main_metric
        t.tag = s.tag
        t.mode = res.mode
        r.tasks[s.name] = t
      end
    end
    if next(r.tasks) == nil then r.tasks = nil end
    if ref and row ~= ref then
      for _, c in ipairs(columns(self)) do
        local v, rv = value(row, c), value(ref, c)
        if v and rv then r.delta[c.key] = v - rv end
        local t = row.tests and row.tests[c.key]
        if t then
          r.delta_test[c.key] = { se = t.se, p_value = t.p_value, paired = t.paired, within_noise = t.noise or false }
        end
      end
    end
    if next(r.delta) == nil then r.delta = nil end
    if next(r.delta_test) == nil then r.delta_test = nil end
    out.models[#out.models + 1] = r
  end
  return out
end

function Compare:json(pretty) return json.encode(self:json_table(), { pretty = pretty ~= false }) end

local function csv_field(s)
  s = tostring(s)
  if s:find('[",\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

--- cmp:csv() -> string: model,name,id_avg,ood_avg,<task>...,delta_id_avg,delta_ood_avg
function Compare:csv()
  local cols = columns(self)
  local head = { "model", "name" }
  for _, c in ipairs(cols) do head[#head + 1] = c.key end
  head[#head + 1] = "delta_id_avg"
  head[#head + 1] = "delta_ood_avg"
  for _, c in ipairs(cols) do head[#head + 1] = "se_" .. c.key end
  head[#head + 1] = "delta_se_id_avg"
  head[#head + 1] = "delta_se_ood_avg"
  local lines = { concat(head, ",") }
  local ref = self.models[self.ref]
  for _, row in ipairs(self.models) do
    local f = { row.id, csv_field(row.name) }
    for _, c in ipairs(cols) do
      local v = value(row, c)
      f[#f + 1] = v and fmt("%.6f", v) or ""
    end
    for _, k in ipairs { "id_avg", "ood_avg" } do
      f[#f + 1] = (ref and row[k] and ref[k]) and fmt("%.6f", row[k] - ref[k]) or ""
    end
    for _, c in ipairs(cols) do
      local se = row.se and row.se[c.key]
      f[#f + 1] = (type(se) == "number" and se == se) and fmt("%.6f", se) or ""
    end
    for _, k in ipairs { "id_avg", "ood_avg" } do
      local t = row.tests and row.tests[k]
      f[#f + 1] = (t and t.se) and fmt("%.6f", t.se) or ""
    end
    lines[#lines + 1] = concat(f, ",")
  end
  return concat(lines, "\n")
end

-- ------------------------------------------------------------------ stored results

--- am.results([{store=, model=}]) -> list of {model=, task=, config_hash=, result=}
function M.results(opts)
  opts = core.check_options("results", opts, { store = "Store", model = "Model|string" })
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local model = opts.model
  if core.type(model) == "Model" then model = model:id() end
  local list
  list, msg, code = core.raw_eval_results(st, model)
  if not list then return nil, msg, code end
  for _, x in ipairs(list) do clean(x.result) end
  return list
end

-- ------------------------------------------------------------------ results of am.eval

local function result_line(r, w)
  local how
  if r.from_store then how = "stored"
  else how = fmt("%.2fs, %d texts, %d encoded", r.time and r.time.total or 0, r.sizes and r.sizes.texts or 0,
    r.sizes and r.sizes.encoded or 0) end
  local se = type(r.main_se) == "number" and fmt(" ±%.4f", r.main_se) or ""
  return fmt("  %-" .. w .. "s %-4s %-20s %-16s %8s%-8s   %s", r.task, r.tag or "-", r.type, r.main_metric,
    r.main_score and fmt("%.4f", r.main_score) or "—", se, how)
end

local function avg_line(self)
  local function avg(v, n, t, se)
    if not v then return "—" end
    return fmt("%.4f", v) .. (se and fmt(" ±%.4f", se) or "") .. (n < t and fmt(" (%d/%d tasks)", n, t) or "")
  end
  local sc, ses = {}, {}
  for _, r in ipairs(self) do sc[r.task] = r.main_score; ses[r.task] = r.main_se end
  local specs = self.specs or {}
  return fmt("  ID avg %s   OOD avg %s", avg(self.id_avg, self.id_count, self.id_total, average_se(specs, sc, ses, "id")),
    avg(self.ood_avg, self.ood_count, self.ood_total, average_se(specs, sc, ses, "ood")))
end

local function head_line(name, id, mode) return fmt("%s (%s)  %s", name or "?", id:sub(1, 12), mode) end

function Results:table()
  local w = 18
  for _, r in ipairs(self) do w = math.max(w, #r.task) end
  local lines = { head_line(self.name, self.model, self.mode) }
  for _, r in ipairs(self) do lines[#lines + 1] = result_line(r, w) end
  lines[#lines + 1] = avg_line(self)
  return concat(lines, "\n")
end
Results.__tostring = function(self) return self:table() end

-- ------------------------------------------------------------------ CLI entry points

-- a progress line on stderr (terminals only)
local function progress_fn(enabled)
  if not enabled then return nil end
  local last = 0
  return function(p)
    local now = os.clock()
    if p.stage == "encode" and p.done > 0 and p.done < p.total and now - last < 0.1 then return end
    last = now
    local what = p.stage == "encode" and fmt("encode %d/%d", p.done, p.total) or p.stage
    io.stderr:write(fmt("\r\27[K%s: %s", p.task, what))
    if p.stage == "done" then io.stderr:write("\r\27[K") end
    io.stderr:flush()
  end
end

local function opts_from_cli(a)
  local o = { suite = a.suite, tasks = a.tasks, layer = a.layer, dim = a.dim, force = a.force or nil,
    no_store = a.no_store or nil, no_cache = a.no_cache or nil, tag = a.tag, mode = a.mode }
  if a.suite and not M.SUITES[a.suite] then
    return nil, fmt("unknown suite '%s' (default, quick)", a.suite), "EINVAL"
  end
  return o
end

--- cli_eval{models = {...}, suite=, tasks=, layer=, dim=, force=, json=, no_store=, no_cache=, tag=}
--- prints the results; returns true | nil, msg, code
function M.cli_eval(a)
  local o, msg, code = opts_from_cli(a)
  if not o then return nil, msg, code end
  o.on_step = progress_fn(a.progress)
  local all = {}
  local st
  st, msg, code = core.store.default()
  if not st then return nil, msg, code end
  for i, name in ipairs(a.models) do
    local m
    m, msg, code = st:model(name)
    if not m then return nil, msg, code end
    local r
    if not a.json then
      local specs
      specs, msg, code = M.tasks(o)
      if not specs then return nil, msg, code end
      local w = 18
      for _, sp in ipairs(specs) do w = math.max(w, #sp.name) end
      print(head_line(m:name() or name, m:id(), mode_of(o)))
      o.on_task = function(res)
        if a.progress then io.stderr:write("\r\27[K") end
        print(result_line(res, w))
        io.stdout:flush()
      end
    end
    r, msg, code = M.eval(m, o)
    if not r then return nil, msg, code end
    if a.json then
      local list = json.array()
      for k, x in ipairs(r) do
        x.from_store = nil
        list[k] = x
      end
      local sc, ses = {}, {}
      for _, x in ipairs(r) do sc[x.task] = x.main_score; ses[x.task] = x.main_se end
      all[i] = { model = r.model, name = r.name, mode = r.mode, id_avg = r.id_avg, ood_avg = r.ood_avg,
        id_avg_se = average_se(r.specs, sc, ses, "id"), ood_avg_se = average_se(r.specs, sc, ses, "ood"), results = list }
    else
      print(avg_line(r))
    end
  end
  if a.json then print(json.encode(json.array(all), { pretty = true })) end
  return true
end

--- cli_compare{models = {...}, ref=, suite=, tasks=, layer=, dim=, json=, csv=, no_eval=, force=, color=}
function M.cli_compare(a)
  local o, msg, code = opts_from_cli(a)
  if not o then return nil, msg, code end
  o.on_step = progress_fn(a.progress)
  o.no_eval = a.no_eval or nil
  o.ref = a.ref
  for i, m in ipairs(a.models) do o[i] = m end
  local cmp
  cmp, msg, code = M.compare(o)
  if not cmp then return nil, msg, code end
  if a.json then print(cmp:json(true))
  elseif a.csv then print(cmp:csv())
  else print(cmp:table { color = a.color }) end
  return true
end

-- ------------------------------------------------------------------ quick vs full fidelity

-- Kendall tau-b of two equally long lists (ties counted as in scipy.stats.kendalltau)
local function kendall_tau(x, y)
  local n, conc, disc, tx, ty = #x, 0, 0, 0, 0
  for i = 1, n - 1 do
    for j = i + 1, n do
      local dx, dy = x[i] - x[j], y[i] - y[j]
      if dx == 0 and dy == 0 then -- tied in both: counts in neither
      elseif dx == 0 then tx = tx + 1
      elseif dy == 0 then ty = ty + 1
      elseif (dx > 0) == (dy > 0) then conc = conc + 1
      else disc = disc + 1 end
    end
  end
  local d = math.sqrt((conc + disc + tx) * (conc + disc + ty))
  if d == 0 then return nil end
  return (conc - disc) / d
end
M.kendall_tau = kendall_tau

--- am.eval.bench_quick{models = {...}, store=, on_model=} -> report | nil, msg, code
-- Evaluates every model with the full and the quick suite (stored results are reused) and
-- measures how well quick ranks like full: Kendall tau-b of the ID and OOD averages, and the
-- share of model pairs whose full-suite average delta is larger than its noise (1.96 x the
-- unpaired SE sqrt(se_i^2 + se_j^2) of the two averages) where quick's delta has the same sign.
-- report = {models = [{name, id, full = {id_avg, ood_avg, id_se, ood_se}, quick = {...},
--           quick_seconds}], tau = {id, ood}, sign = {id = {agree, pairs}, ood = {...}},
--           tasks = {task = tau of the task's main score}}
function M.bench_quick(opts)
  opts = core.check_options("bench_quick", opts, { models = "table", store = "Store", on_model = "function",
    tasks = "table|string", tag = { "id", "ood" } })
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local names = opts.models
  if not names or #names == 0 then
    names = {}
    for _, r in ipairs(assert(st:models())) do
      if r.kind ~= "task_vector" then names[#names + 1] = r.id end
    end
  end
  if #names < 3 then return nil, fmt("bench quick: %d models; the ranking needs 3 or more", #names), "EINVAL" end
  local rep = { models = {}, tau = {}, sign = {}, tasks = {} }
  for _, name in ipairs(names) do
    local m
    m, msg, code = model_of(name, st)
    if not m then return nil, msg, code end
    local f, q
    f, msg, code = M.eval(m, { store = opts.store, tasks = opts.tasks, tag = opts.tag })
    if not f then return nil, msg, code end
    q, msg, code = M.eval(m, { store = opts.store, tasks = opts.tasks, tag = opts.tag, mode = "quick" })
    if not q then return nil, msg, code end
    local function side(r)
      local sc, se = {}, {}
      for _, x in ipairs(r) do sc[x.task] = x.main_score; se[x.task] = x.main_se end
      return { id_avg = r.id_avg, ood_avg = r.ood_avg, id_se = average_se(r.specs, sc, se, "id"),
        ood_se = average_se(r.specs, sc, se, "ood"), scores = sc }
    end
    local row = { name = m:name() or m:id():sub(1, 12), id = m:id(), full = side(f), quick = side(q) }
    rep.specs = f.specs
    rep.models[#rep.models + 1] = row
    if opts.on_model then opts.on_model(row, #rep.models, #names) end
  end
  for _, tag in ipairs { "id", "ood" } do
    local k, kse = tag .. "_avg", tag .. "_se"
    local xf, xq, rows = {}, {}, {}
    for _, r in ipairs(rep.models) do
      if r.full[k] and r.quick[k] then xf[#xf + 1] = r.full[k]; xq[#xq + 1] = r.quick[k]; rows[#rows + 1] = r end
    end
    rep.tau[tag] = #rows >= 2 and kendall_tau(xf, xq) or nil
    local agree, pairs = 0, 0
    for i = 1, #rows - 1 do
      for j = i + 1, #rows do
        local a, b = rows[i], rows[j]
        local df, dq = a.full[k] - b.full[k], a.quick[k] - b.quick[k]
        local se = (a.full[kse] and b.full[kse]) and math.sqrt(a.full[kse] ^ 2 + b.full[kse] ^ 2) or 0
        if math.abs(df) > M.NOISE_Z * se then
          pairs = pairs + 1
          if (df > 0) == (dq > 0) and dq ~= 0 then agree = agree + 1 end
        end
      end
    end
    rep.sign[tag] = { agree = agree, pairs = pairs }
  end
  for _, spec in ipairs(rep.specs) do
    local xf, xq = {}, {}
    for _, r in ipairs(rep.models) do
      xf[#xf + 1] = r.full.scores[spec.name] or 0
      xq[#xq + 1] = r.quick.scores[spec.name] or 0
    end
    rep.tasks[spec.name] = kendall_tau(xf, xq)
  end
  return rep
end

--- cli_bench_quick{models = {...}}: `amalgam bench quick [MODEL...]`
function M.cli_bench_quick(a)
  local rep, msg, code = M.bench_quick { models = a.models, on_model = a.progress and function(row, i, n)
    io.stderr:write(fmt("\r\27[K%d/%d %s", i, n, row.name))
    io.stderr:flush()
  end or nil }
  if a.progress then io.stderr:write("\r\27[K") end
  if not rep then return nil, msg, code end
  local w = 8
  for _, r in ipairs(rep.models) do w = math.max(w, #r.name) end
  print(fmt("%-" .. w .. "s  %8s %8s  %8s %8s", "MODEL", "full ID", "quick ID", "full OOD", "quickOOD"))
  local function p(v) return v and fmt("%8.2f", v * 100) or fmt("%8s", "—") end
  for _, r in ipairs(rep.models) do
    print(fmt("%-" .. w .. "s  %s %s  %s %s", r.name, p(r.full.id_avg), p(r.quick.id_avg), p(r.full.ood_avg),
      p(r.quick.ood_avg)))
  end
  local function t(v) return v and fmt("%.3f", v) or "—" end
  print(fmt("Kendall tau (quick vs full, %d models): ID avg %s   OOD avg %s", #rep.models, t(rep.tau.id), t(rep.tau.ood)))
  for _, tag in ipairs { "id", "ood" } do
    local s = rep.sign[tag]
    print(fmt("sign agreement of %s-average deltas beyond the full suite's noise: %d/%d%s", tag:upper(), s.agree,
      s.pairs, s.pairs > 0 and fmt(" (%.0f%%)", 100 * s.agree / s.pairs) or ""))
  end
  local parts = {}
  for _, spec in ipairs(rep.specs) do parts[#parts + 1] = fmt("%s %s", spec.name, t(rep.tasks[spec.name])) end
  print("per-task tau: " .. concat(parts, ", "))
  return true
end

return M
