-- amalgam/merge_data.lua - the data side of am.merge, am.sweep and am.diagnose (lua/amalgam/merge.lua):
-- the data-driven merges (fisher, regmean, lm_cocktail, codiemb_fusion, self_positioning) in
-- two phases, prepare (load the models, gather the statistics once) and point (merge with one
-- set of parameters: a sweep's points share the statistics), the probe data drawn from the
-- store's datasets ("TASK[:ROWS]"), and gradient conflicts between tasks at one model.
--
-- Statistics come from trainers on the models (src/api/merge_stats.h through tr:accumulate /
-- tr:grams / tr:loss, src/lua/l_train_stats.c); the merge is computed in C (src/merge/merge_data.h)
-- and stored with its tensors (kind "merged"), its meta recording the data (task specs, rows,
-- batch size, seed and the datasets' content hashes): the same call on the same store gives the
-- same tensors, so the same model id (the draw is seeded, the statistics are computed in a fixed
-- order; dropout is off).
--
-- Reference: lua/API.md ("Merging from data", "Diagnostics").

local core = require "amalgam.core"
local registry = require "amalgam.registry"
local sample_ids = require("amalgam.train_data").sample_ids
local json = core.json

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error

local D = {}

-- each method's parameters (options that change the merge, not the statistics: sweepable)
D.methods = {
  fisher = { epsilon = "number", normalize = "string" },
  regmean = { alpha = "number" },
  lm_cocktail = { temperature = "number" },
  codiemb_fusion = { g = "string", axis = "string", temperature = "number" },
  self_positioning = { per_layer = "boolean", steps = "integer", lr = "number", optimizer = "string", mu = "number",
    regularizer = "string", simplex = "boolean", clamp = "boolean", init = "number", probe_batches = "integer",
    objective = "string", temperature = "number" },
}
-- the options every data method takes (what the statistics are gathered on)
D.fixed = {
  method = "string", base = "Model|string", models = "table", weights = "table", name = "string", store = "Store",
  data = "table|string", loss = "table", losses = "table", max_len = "integer", rows = "integer", batch_size = "integer",
  seed = "integer",
}
D.names = { "fisher", "regmean", "lm_cocktail", "codiemb_fusion", "self_positioning" }

-- a Model or a model name as the name or id a merge spec keeps (also merge.lua's)
local function model_ref(v, what, level)
  local t = core.typeof(v)
  if t == "Model" then return v:id() end
  if t == "string" then return v end
  error(("merge: %s must be a Model or a model name, got %s"):format(what, t), level + 1)
end
D.model_ref = model_ref

local function is_batch(t)
  return type(t) == "table" and (t.queries ~= nil or t.sentence1 ~= nil or t.texts ~= nil)
end

-- ------------------------------------------------------------------ probe data from the store

--- D.task_batches(st, spec, {rows=64, batch_size=16, seed=1}) -> {task=, rows=, kind=, hash=, batches=, loss=}
---   | nil, msg, code
-- spec "TASK" or "TASK:ROWS": a seeded draw of ROWS rows (all if fewer) of the registered dataset
-- TASK's training file (pairs or graded), in batches of batch_size (a last batch of one row is
-- dropped: in-batch losses need two). loss: the task's default, InfoNCE (temperature 0.05) for
-- pairs, CoSENT (scale 20) for graded pairs.
function D.task_batches(st, spec, o)
  o = o or {}
  local task, n = spec:match("^([^:]+):(%d+)$")
  if not task then task, n = spec, nil end
  local rows = n and tonumber(n) or o.rows or 64
  local bs, seed = o.batch_size or 16, o.seed or 1
  if rows < 2 then return nil, ("data '%s': at least 2 rows"):format(spec), "EINVAL" end
  if bs < 2 then return nil, "data: batch_size must be at least 2", "EINVAL" end
  local reg = registry.get(st, task)
  local f = reg and reg.files and reg.files[reg.train or "train"]
  if not f then
    return nil, ("data: no training data for '%s' (datasets: %s)"):format(task, registry.names_text(st)), "ENOTFOUND"
  end
  if f.kind ~= "pairs" and f.kind ~= "graded" then
    return nil, ("data: '%s' is %s data (pairs or graded only)"):format(task, tostring(f.kind)), "EINVAL"
  end
  local ds, msg, code = core.dataset.load(f.kind, registry.resolve(reg.dir, f.path))
  if not ds then return nil, msg, code end
  local N = ds:n()
  if N < 2 then ds:close(); return nil, ("data: '%s' has %d rows"):format(task, N), "EINVAL" end
  local ids = sample_ids(N, ds:hash(), math.min(rows, N) / N, seed)
  local batches, b = {}, nil
  for j, id in ipairs(ids) do
    if (j - 1) % bs == 0 then
      if #ids - (j - 1) < 2 then break end
      b = f.kind == "pairs" and { queries = {}, positives = {} } or { sentence1 = {}, sentence2 = {}, scores = {} }
      batches[#batches + 1] = b
    end
    local r = ds:row(id)
    if f.kind == "pairs" then
      b.queries[#b.queries + 1], b.positives[#b.positives + 1] = r.query, r.pos[1]
    else
      b.sentence1[#b.sentence1 + 1], b.sentence2[#b.sentence2 + 1], b.scores[#b.scores + 1] = r.sentence1, r.sentence2, r.score
    end
  end
  local out = { task = task, rows = #ids, kind = f.kind, hash = ds:hash(), batches = batches,
    loss = f.kind == "graded" and { kind = "cosent", scale = 20 } or { kind = "infonce", temperature = 0.05 } }
  ds:close()
  return out
end

-- opts.data as per-model lists of batches, per-model default losses (task specs) and the record
-- of the data for the meta: data = {batches...} | {{batches of model 1}, ...} | "TASK[:ROWS]" |
-- {"TASK[:ROWS]", ...} (one for all, or one per model). nil, msg, code for a bad task.
local function resolve_data(st, opts, k, level)
  local data = opts.data
  if type(data) == "string" then data = { data } end
  if type(data[1]) == "string" then
    if #data ~= 1 and #data ~= k then
      error(("merge: data names %d tasks for %d models (one task for all, or one per model)"):format(#data, k), level + 1)
    end
    local per, losses, rec = {}, {}, { tasks = {}, rows = {}, hashes = {}, batch_size = opts.batch_size or 16,
      seed = opts.seed or 1 }
    local cache = {}
    for i, s in ipairs(data) do
      if type(s) ~= "string" then error(("merge: data[%d] must be a task name like the others"):format(i), level + 1) end
      local t, msg, code = D.task_batches(st, s, opts)
      if not t then return nil, msg, code end
      cache[i] = t
      rec.tasks[i], rec.rows[i], rec.hashes[i] = s, t.rows, t.hash
    end
    for i = 1, k do
      local t = cache[#data == 1 and 1 or i]
      per[i], losses[i] = t.batches, t.loss
    end
    return per, losses, rec
  end
  if is_batch(data[1]) then
    local per = {}
    for i = 1, k do per[i] = data end
    return per, nil, nil
  end
  if #data ~= k then
    error(("merge: data must list one list of batches per model (%d models, %d lists), one list of batches, or task names"):format(k, #data), level + 1)
  end
  for i, l in ipairs(data) do
    if type(l) ~= "table" or not is_batch(l[1]) then
      error(("merge: data[%d] must be a list of batches ({queries=, positives=} or {sentence1=, sentence2=, scores=})"):format(i), level + 1)
    end
  end
  return data, nil, nil
end

-- ------------------------------------------------------------------ checks

-- string parameters: their values
local choices = { normalize = { "none", "param", "model" }, optimizer = { "adam", "sgd" },
  regularizer = { "uniform", "zero", "none" }, objective = { "task", "entropy" } }

-- the method's parameter k = v checked (a sweep checks each grid value); raises at level
function D.check_param(m, k, v, level)
  level = level + 1
  local want = D.methods[m][k]
  core.check_options("merge", { [k] = v }, { [k] = want }, level)
  local c = choices[k]
  if c and v ~= nil then
    local ok = false
    for _, x in ipairs(c) do ok = ok or x == v end
    if not ok then
      local q = {}
      for i, x in ipairs(c) do q[i] = "'" .. x .. "'" end
      error(("merge: %s must be %s%s"):format(k, table.concat(q, ", "), D.suggest(tostring(v), c)), level)
    end
  end
end

-- check opts (a data method's am.merge options; a sweep's without its grid keys); raises at level
function D.check(opts, level)
  level = level + 1
  local spec = D.methods[opts.method]
  local known = {}
  for k in pairs(D.fixed) do known[#known + 1] = k end
  for k in pairs(spec) do known[#known + 1] = k end
  for k, v in pairs(opts) do
    if D.fixed[k] then core.check_options("merge", { [k] = v }, { [k] = D.fixed[k] }, level)
    elseif spec[k] then D.check_param(opts.method, k, v, level)
    else
      error(("merge: unknown option '%s' for %s%s"):format(tostring(k), opts.method, D.suggest(tostring(k), known)), level)
    end
  end
  local m = opts.method
  if opts.models == nil or #opts.models == 0 then error("merge: option 'models' must list the models to merge", level) end
  if m ~= "codiemb_fusion" and opts.data == nil then
    error(("merge: %s needs data = { batches... } (or one list per model, or task names \"TASK[:ROWS]\")"):format(m), level)
  end
  if (m == "codiemb_fusion" or m == "self_positioning") and opts.base == nil then
    error(("merge: %s needs a base (θ0)"):format(m), level)
  end
  if opts.weights and #opts.weights ~= #opts.models then
    error(("merge: %d weights for %d models"):format(#opts.weights, #opts.models), level)
  end
  if opts.temperature ~= nil and not (opts.temperature > 0) then error("merge: temperature must be > 0", level) end
  for _, k in ipairs { "rows", "batch_size" } do
    if opts[k] ~= nil and opts[k] < 2 then error(("merge: %s must be at least 2"):format(k), level) end
  end
end

-- ------------------------------------------------------------------ prepare / point / close

local function close_all(ctx)
  for _, tr in ipairs(ctx.trs or {}) do tr:close() end
  if ctx.base_tr then ctx.base_tr:close() end
  if ctx.work then ctx.work:close() end
  ctx.trs, ctx.base_tr, ctx.work = {}, nil, nil
end
D.close = close_all

--- D.prepare(opts, level) -> ctx | nil, msg, code: models loaded, statistics gathered
function D.prepare(opts, level)
  level = level + 1
  D.check(opts, level)
  local m, k = opts.method, #opts.models
  local st = opts.store
  if st == nil then
    local msg, code
    st, msg, code = core.store.default()
    if not st then return nil, msg, code end
  end
  local needs_data = m ~= "codiemb_fusion"
  local data, task_losses, rec
  if needs_data then
    local msg, code
    data, task_losses, rec = resolve_data(st, opts, k, level)
    if not data then return nil, task_losses, rec end
  end
  local objective = opts.objective or "task"
  local losses = {}
  if m == "self_positioning" and objective == "entropy" then
    -- AdaMerging: the entropy of each query's in-batch softmax, no labels
    local l = { kind = "entropy", temperature = opts.temperature or 0.05 }
    for i = 1, k do losses[i] = l end
  elseif m ~= "regmean" and needs_data then
    if opts.losses then
      if #opts.losses ~= k then error(("merge: %d losses for %d models"):format(#opts.losses, k), level) end
      losses = opts.losses
    elseif opts.loss then
      for i = 1, k do losses[i] = opts.loss end
    elseif task_losses then
      losses = task_losses
    else
      error(("merge: %s needs loss = {...} (as tr:step's) or losses = { one per model }"):format(m), level)
    end
  end
  local topts = { dropout = false, clip = 0, keep_theta0 = false, max_len = opts.max_len }
  local ctx = { method = m, st = st, k = k, trs = {}, ids = {}, opts = opts, data = data, losses = losses, rec = rec,
    objective = objective }
  local function load(ref, what)
    local md, msg, code = st:model(model_ref(ref, what, level + 1))
    if not md then return nil, msg, code end
    local tr, msg2, code2 = core.raw_trainer(md, topts)
    if not tr then return nil, msg2, code2 end
    return tr, md
  end
  for i, ref in ipairs(opts.models) do
    local tr, md, code = load(ref, ("models[%d]"):format(i))
    if not tr then close_all(ctx); return nil, md, code end
    ctx.trs[i], ctx.ids[i] = tr, md:id()
  end
  if opts.base ~= nil then
    local tr, md, code = load(opts.base, "base")
    if not tr then close_all(ctx); return nil, md, code end
    ctx.base_tr, ctx.base_id = tr, md:id()
  end
  local nb = {}
  if m == "fisher" or m == "regmean" then
    for i, tr in ipairs(ctx.trs) do
      nb[i] = #data[i]
      for _, b in ipairs(data[i]) do
        local ok, msg, code
        if m == "fisher" then ok, msg, code = tr:accumulate(b, losses[i], "fisher")
        else ok, msg, code = tr:grams(b) end
        if not ok then close_all(ctx); return nil, ("merge: model %d: %s"):format(i, msg), code end
      end
    end
    ctx.nb = { batches = nb }
  elseif m == "lm_cocktail" then
    -- FlagEmbedding's LM_Cocktail: the models' mean losses on the examples (weights per point)
    local L = {}
    for i, tr in ipairs(ctx.trs) do
      local s = 0
      nb[i] = #data[i]
      for _, b in ipairs(data[i]) do
        local l, msg, code = tr:loss(b, losses[i])
        if not l then close_all(ctx); return nil, ("merge: model %d: %s"):format(i, msg), code end
        s = s + l
      end
      L[i] = s / #data[i]
    end
    ctx.L, ctx.nb = L, { batches = nb }
  elseif m == "self_positioning" then
    local work, msg, code = core.raw_trainer(st:model(ctx.base_id), topts)
    if not work then close_all(ctx); return nil, msg, code end
    ctx.work = work
  end
  return ctx
end

--- D.point(ctx, p, level) -> Model, info | nil, msg, code: the merge with ctx's statistics and the
--- parameters p (the method's parameters, weights, name; missing ones from ctx.opts)
function D.point(ctx, p, level)
  level = level + 1
  local o = setmetatable({}, { __index = function(_, key)
    local v = p[key]
    if v == nil then v = ctx.opts[key] end
    return v
  end })
  local m, k = ctx.method, ctx.k
  if o.temperature ~= nil and not (o.temperature > 0) then error("merge: temperature must be > 0", level) end
  local info = { method = m }
  local req = { method = m, trainers = ctx.trs, base = ctx.base_tr, weights = o.weights, name = p.name }
  local params = {}
  for key in pairs(D.methods[m]) do if o[key] ~= nil then params[key] = o[key] end end
  if ctx.rec then
    for _, key in ipairs { "rows", "batch_size", "seed" } do if ctx.opts[key] ~= nil then params[key] = ctx.opts[key] end end
  end
  local data_rec = ctx.nb
  local fail
  if m == "fisher" then
    req.epsilon, req.normalize = o.epsilon, o.normalize
  elseif m == "regmean" then
    req.alpha = o.alpha
  elseif m == "lm_cocktail" then
    local T = o.temperature or 5.0
    local w, sum, mx = {}, 0, -math.huge
    for i = 1, k do mx = math.max(mx, -ctx.L[i] / T) end
    for i = 1, k do w[i] = math.exp(-ctx.L[i] / T - mx); sum = sum + w[i] end
    for i = 1, k do w[i] = w[i] / sum end
    info.losses, info.weights = ctx.L, w
    req.weights = w
  elseif m == "codiemb_fusion" then
    req.g, req.axis, req.temperature = o.g, o.axis, o.temperature
  else -- self_positioning: a balanced probe set, the same number of batches from every task
    local n = math.huge
    for i = 1, k do n = math.min(n, #ctx.data[i]) end
    if o.probe_batches then n = math.min(n, o.probe_batches) end
    local work, data, losses = ctx.work, ctx.data, ctx.losses
    local failure
    req.work = work
    req.probe = function()
      local s, c = 0, 0
      for i = 1, k do
        for j = 1, n do
          local l, msg = work:accumulate(data[i][j], losses[i], "grad")
          if not l then failure = failure or ("model %d batch %d: %s"):format(i, j, msg); return nil end
          s, c = s + l, c + 1
        end
      end
      return s / c
    end
    req.per_layer, req.steps, req.lr, req.mu, req.simplex, req.init = o.per_layer, o.steps, o.lr, o.mu, o.simplex, o.init
    req.clamp = o.clamp
    req.adam = o.optimizer ~= "sgd"
    req.reg = o.regularizer or (o.mu and "uniform" or "none")
    info.probe_batches, info.objective = n * k, ctx.objective
    data_rec = { probe_batches = n * k }
    fail = function() return failure end
  end
  if ctx.rec then
    data_rec = data_rec or {}
    for key, v in pairs(ctx.rec) do data_rec[key] = v end
  end
  req.meta = json.encode({ merge = { method = m, models = ctx.ids, base = ctx.base_id, params = params,
    weights = req.weights, data = data_rec }, lm_cocktail = info.losses and { losses = info.losses } or nil })
  local id, res, code = core.raw_merge_data(ctx.st, req)
  if not id then
    if fail and fail() then return nil, "merge: self_positioning: " .. fail(), code end
    if code == "EINVAL" then error("merge: " .. res, level) end
    return nil, res, code
  end
  info.id, info.seconds, info.found = id, res.seconds, res.found
  if m == "self_positioning" then
    info.lambda, info.loss, info.trajectory, info.groups = res.lambda, res.loss, res.trajectory, res.groups
  end
  return ctx.st:model(id), info
end

--- D.merge(opts, level) -> Model, info | nil, msg, code (am.merge of a data method)
function D.merge(opts, level)
  level = level + 1
  local ctx, msg, code = D.prepare(opts, level)
  if not ctx then return nil, msg, code end
  local ok, m, info, c2 = pcall(D.point, ctx, { name = opts.name }, level)
  close_all(ctx)
  if not ok then error(m, 0) end
  return m, info, c2
end

-- ------------------------------------------------------------------ gradient conflicts

--- D.grad_conflict{model=, data=, losses=|loss=, rows=, batch_size=, seed=, max_len=, store=}
---   -> {model=, tasks={...}, loss={...}, batches={...}, norm, cosine, sign_conflict, sign_conflict_pairs,
---       groups, tensors} | nil, msg, code
-- Each task's mean loss gradient at the model over its sample (dropout off), then pairwise cosines
-- and sign conflicts per tensor, per layer and overall (src/api/merge_diag.c, merge_grad_diagnose).
function D.grad_conflict(opts, level)
  level = level + 1
  local st = opts.store
  if st == nil then
    local msg, code
    st, msg, code = core.store.default()
    if not st then return nil, msg, code end
  end
  local data = opts.data
  if type(data) == "string" then data = { data } end
  if type(data) ~= "table" or #data < 1 then
    error("diagnose: data must list the tasks: {\"TASK[:ROWS]\", ...} or { {batches of task 1}, ... }", level)
  end
  local k = #data
  local names, lists, losses, rows = {}, {}, {}, {}
  for i, d in ipairs(data) do
    if type(d) == "string" then
      local t, msg, code = D.task_batches(st, d, opts)
      if not t then return nil, "diagnose: " .. msg, code end
      names[i], lists[i], losses[i], rows[i] = d, t.batches, t.loss, t.rows
    elseif type(d) == "table" and is_batch(d[1]) then
      names[i], lists[i] = ("task %d"):format(i), d
    else
      error(("diagnose: data[%d] must be a task name \"TASK[:ROWS]\" or a list of batches"):format(i), level)
    end
  end
  if opts.losses then
    if #opts.losses ~= k then error(("diagnose: %d losses for %d tasks"):format(#opts.losses, k), level) end
    for i = 1, k do losses[i] = opts.losses[i] end
  elseif opts.loss then
    for i = 1, k do losses[i] = opts.loss end
  end
  for i = 1, k do
    if losses[i] == nil then
      error(("diagnose: data[%d] is a list of batches: give loss = {...} or losses = {...}"):format(i), level)
    end
  end
  local md, msg, code = st:model(model_ref(opts.model, "model", level))
  if not md then return nil, msg, code end
  local trs, mean = {}, {}
  local function close() for _, tr in ipairs(trs) do tr:close() end end
  for i = 1, k do
    local tr, m2, c2 = core.raw_trainer(md, { dropout = false, clip = 0, keep_theta0 = false, max_len = opts.max_len })
    if not tr then close(); return nil, m2, c2 end
    trs[i] = tr
    local s = 0
    for j, b in ipairs(lists[i]) do
      local l, m3, c3 = tr:accumulate(b, losses[i], "grad")
      if not l then close(); return nil, ("diagnose: %s batch %d: %s"):format(names[i], j, m3), c3 end
      s = s + l
    end
    mean[i] = s / #lists[i]
  end
  local d, m4, c4 = core.raw_grad_conflict(trs)
  close()
  if not d then return nil, m4, c4 end
  d.model, d.tasks, d.loss = md:id(), names, mean
  d.batches = {}
  for i = 1, k do d.batches[i] = #lists[i] end
  if next(rows) then d.rows = rows end
  return d
end

return D
