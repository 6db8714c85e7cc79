-- amalgam/merge.lua - am.merge: merge stored models (src/api/merge_store.h through
-- core.raw_merge, src/lua/l_merge.c). Options are checked here, so a typo raises at the recipe's
-- line with the closest name; a merge that cannot be done (unknown model, shapes, vocabularies,
-- NaN in a tensor) returns nil, msg, code and leaves the store as it was.
--
-- Reference: lua/API.md ("Merging").

local core = require "amalgam.core"
local json = core.json

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local concat, sort = table.concat, table.sort

local M = {}

-- the options of am.merge itself; every other key is a merge parameter or option
local fixed = {
  method = "string", base = "Model|string", models = "table", weights = "table", name = "string",
  store = "Store", materialize = "boolean", rules = "table",
}

local function distance(a, b)
  local la, lb = #a, #b
  local row = {}
  for j = 0, lb do row[j] = j end
  for i = 1, la do
    local prev = row[0]
    row[0] = i
    for j = 1, lb do
      local cur = row[j]
      local sub = prev + (a:sub(i, i) == b:sub(j, j) and 0 or 1)
      row[j] = math.min(sub, row[j] + 1, row[j - 1] + 1)
      prev = cur
    end
  end
  return row[lb]
end

-- the candidate closest to name, or nil when none is close (as merge_closest_name)
local function closest(name, cands)
  local best, bd
  for _, c in ipairs(cands) do
    local d = distance(name, c)
    if not bd or d < bd then best, bd = c, d end
  end
  local limit = math.max(2, math.max(#name, best and #best or 0) // 3)
  if best and bd <= limit then return best end
  return nil
end

local function suggest(name, cands)
  local c = closest(name, cands)
  if c then return (" (did you mean '%s'?)"):format(c) end
  local s = {}
  for i, v in ipairs(cands) do s[i] = v end
  sort(s)
  return " (known: " .. concat(s, ", ") .. ")"
end

-- the data-driven methods (below, data_merge): named here for the suggestions of request()
local data_method_names = { "fisher", "regmean", "lm_cocktail", "codiemb_fusion", "self_positioning" }
M.data_method_names = data_method_names

local methods_cache, options_cache
local function methods()
  if not methods_cache then methods_cache, options_cache = core.raw_merge_methods() end
  return methods_cache, options_cache
end

--- M.methods() -> { {name=, title=, reference=, base=, min_models=, max_models=, params={...}}, ... }
function M.methods()
  local list = methods()
  local out = {}
  for i, m in ipairs(list) do
    local p = {}
    for k, v in ipairs(m.params) do p[k] = v end
    out[i] = { name = m.name, title = m.title, reference = m.reference, base = m.base, min_models = m.min_models,
      max_models = m.max_models, params = p }
  end
  return out
end

local D = require "amalgam.merge_data"
local model_ref = D.model_ref

-- the ids of a list of models (Models or names); raises at `level` on misuse
local function model_refs(list, level)
  local ids = {}
  for i, v in ipairs(list) do ids[i] = model_ref(v, ("models[%d]"):format(i), level + 1) end
  return ids
end

-- opts.store, else the default store: st | nil, msg, code
local function store_of(opts)
  if opts.store ~= nil then return opts.store end
  return core.store.default()
end

-- am.eval's options for scoring models in st: a copy of eval_opts, the quick suite by default
local function eval_options(eval_opts, st)
  local ev = {}
  for k, v in pairs(eval_opts or {}) do ev[k] = v end
  if ev.suite == nil and ev.tasks == nil then ev.suite = "quick" end
  ev.store = st
  return ev
end

-- the request for core.raw_merge from am.merge's options; raises at `level` on misuse
local function request(opts, level)
  level = level + 1
  if type(opts) ~= "table" then error("merge: options must be a table, got " .. core.typeof(opts), level) end
  local list, options = methods()
  if opts.method == nil then
    local names = {}
    for i, m in ipairs(list) do names[i] = m.name end
    error("merge: option 'method' is required (one of " .. concat(names, ", ") .. ")", level)
  end
  if type(opts.method) ~= "string" then error("merge: option 'method' must be a string, got " .. core.typeof(opts.method), level) end
  local method
  for _, m in ipairs(list) do if m.name == opts.method then method = m end end
  if not method then
    local names = {}
    for i, m in ipairs(list) do names[i] = m.name end
    for _, d in ipairs(data_method_names) do
      if d == opts.method then
        error(("merge: '%s' merges from data: am.merge { method = '%s', data = ... } (stored with its tensors, not as a recipe)"):format(d, d), level)
      end
      names[#names + 1] = d
    end
    error(("merge: unknown method '%s'%s"):format(opts.method, suggest(opts.method, names)), level)
  end
  -- keys: fixed options, the method's parameters (weight is given per model), the options
  local params, known = {}, {}
  for k in pairs(fixed) do known[#known + 1] = k end
  local reads = {}
  for _, p in ipairs(method.params) do
    if p ~= "weight" then reads[p] = true; known[#known + 1] = p end
  end
  local is_option = {}
  for _, o in ipairs(options) do is_option[o] = true; known[#known + 1] = o end
  for k, v in pairs(opts) do
    if type(k) ~= "string" then error("merge: option keys must be strings, got " .. core.typeof(k), level) end
    if fixed[k] then
      core.check_options("merge", { [k] = v }, fixed, level)
    elseif reads[k] or is_option[k] then
      local ok = type(v) == "number" or (type(v) == "boolean" and is_option[k])
      if type(v) == "table" and reads[k] then
        ok = #v > 0
        for _, x in ipairs(v) do ok = ok and type(x) == "number" end
      end
      if not ok then
        error(("merge: parameter '%s' must be a number%s, got %s"):format(k,
          reads[k] and " or a list of numbers (a gradient over the layers)" or " or a boolean", core.typeof(v)), level)
      end
      params[k] = v
    elseif k == "weight" then
      error("merge: give the weights per model: weights = { w1, w2, ... }", level)
    else
      local all = {}
      for p in pairs({ weight = 1, density = 1, lambda = 1, t = 1, epsilon = 1, gamma = 1 }) do all[#all + 1] = p end
      local c = closest(k, known)
      if c then error(("merge: unknown option '%s' (did you mean '%s'?)"):format(k, c), level) end
      local other = closest(k, all)
      if other then
        error(("merge: method '%s' has no parameter '%s' (it reads: %s)"):format(method.name, other,
          #method.params > 0 and concat(method.params, ", ") or "none"), level)
      end
      sort(known)
      error(("merge: unknown option '%s' (known: %s)"):format(k, concat(known, ", ")), level)
    end
  end
  if opts.models == nil or #opts.models == 0 then error("merge: option 'models' must list the models to merge", level) end
  local ids = model_refs(opts.models, level)
  local weights
  if opts.weights ~= nil then
    if #opts.weights ~= #ids then
      error(("merge: %d weights for %d models (one weight per model)"):format(#opts.weights, #ids), level)
    end
    weights = {}
    for i, w in ipairs(opts.weights) do
      if type(w) ~= "number" then error(("merge: weights[%d] must be a number, got %s"):format(i, core.typeof(w)), level) end
      weights[i] = w
    end
  end
  local info = debug.getinfo(level, "Sl")
  local where = info and info.short_src and (info.short_src .. ":" .. (info.currentline or 0)) or "?"
  return {
    method = method.name, base = opts.base ~= nil and model_ref(opts.base, "base", level) or nil, models = ids,
    weights = weights, params = next(params) and json.encode(params) or nil, name = opts.name,
    rules = opts.rules and #opts.rules > 0 and json.encode(opts.rules) or nil,
    materialize = opts.materialize, source = "am.merge at " .. where,
  }
end

-- ------------------------------------------------------------------ data-driven merges

-- Methods that need data (or, codiemb_fusion, a base and the checkpoints' deltas): computed from
-- statistics gathered on the models and stored with their tensors (lua/amalgam/merge_data.lua).
D.suggest = suggest
local data_methods = D.methods

--- am.merge{method=, base=, models={...}, weights={...}, <parameters>..., name=, materialize=, store=}
---   -> Model, info | nil, msg, code
--- Data-driven methods (fisher, regmean, lm_cocktail, self_positioning; codiemb_fusion without data):
---   am.merge{method=, models=, base=, data = {batches} | {{batches of model 1}, ...}, loss = {...} | losses = {...}, ...}
function M.merge(opts)
  if type(opts) == "table" and data_methods[opts.method] then return D.merge(opts, 2) end
  local req = request(opts, 2)
  local st, smsg, scode = store_of(opts)
  if not st then return nil, smsg, scode end
  local m, info, code = core.raw_merge(st, req)
  if not m and code == "EINVAL" then error(info, 2) end -- a bad request: the recipe's line
  return m, info, code
end

--- am.diagnose{models={...}, base=, store=} -> diagnostics | nil, msg, code
--- am.diagnose{model= | base=, data = {"TASK[:ROWS]", ...} | {{batches}, ...}, loss= | losses=, rows=, batch_size=,
---   seed=, max_len=, [models=]} -> {gradients = {...}, [task-vector diagnostics]} | nil, msg, code
function M.diagnose(opts)
  core.check_options("diagnose", opts, { models = "table", base = "Model|string", store = "Store", model = "Model|string",
    data = "table|string", loss = "table", losses = "table", rows = "integer", batch_size = "integer", seed = "integer",
    max_len = "integer" }, 2)
  local with_data = opts ~= nil and opts.data ~= nil
  if not with_data and (opts == nil or opts.models == nil or #opts.models == 0) then
    error("diagnose: option 'models' must list the models to compare (or data = {tasks...} for gradient conflicts)", 2)
  end
  if not with_data then
    for _, k in ipairs { "model", "loss", "losses", "rows", "batch_size", "seed", "max_len" } do
      if opts[k] ~= nil then error(("diagnose: option '%s' is for gradient conflicts (give data = {tasks...})"):format(k), 2) end
    end
  end
  if with_data and opts.model == nil and opts.base == nil then
    error("diagnose: gradient conflicts (data = ...) needs the model to measure: model = M (or base = B)", 2)
  end
  local st, smsg, scode = store_of(opts)
  if not st then return nil, smsg, scode end
  local d = {}
  if opts.models ~= nil and #opts.models > 0 then
    local ids = model_refs(opts.models, 2)
    local base = opts.base ~= nil and model_ref(opts.base, "base", 2) or nil
    local msg, code
    d, msg, code = core.raw_merge_diagnose(st, base, ids)
    if not d and code == "EINVAL" then error("diagnose: " .. msg, 2) end
    if not d then return nil, msg, code end
  end
  if with_data then
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.model, o.store, o.models, o.base = opts.model or opts.base, st, nil, nil
    local g, msg, code = D.grad_conflict(o, 2)
    if not g then return nil, msg, code end
    d.gradients = g
  end
  return d
end

-- ------------------------------------------------------------------ sweeps

-- the grid's points in order: the first key varies slowest; each point {key = value}
local function grid_points(grid, keys)
  local pts = { {} }
  for _, k in ipairs(keys) do
    local next_pts = {}
    for _, p in ipairs(pts) do
      for _, v in ipairs(grid[k]) do
        local q = {}
        for kk, vv in pairs(p) do q[kk] = vv end
        q[k] = v
        next_pts[#next_pts + 1] = q
      end
    end
    pts = next_pts
  end
  return pts
end

local sweep_only = { grid = "table", eval = "table|boolean", on_point = "function" }

--- am.sweep{method=, base=, models=, weights=, <parameters>..., grid = {key = {values...}, ...},
---   eval = {am.eval options} | false, on_point = function(point, i, n), store=} -> points | nil, msg, code
function M.sweep(opts)
  if type(opts) ~= "table" then error("sweep: options must be a table, got " .. core.typeof(opts), 2) end
  local merge_opts, grid, eval_opts, on_point = {}, opts.grid, opts.eval, opts.on_point
  for k, v in pairs(opts) do
    if sweep_only[k] then core.check_options("sweep", { [k] = v }, sweep_only, 2)
    elseif k == "name" or k == "materialize" then error("sweep: option '" .. k .. "' is not for sweeps (name a point's model with am.name)", 2)
    else merge_opts[k] = v end
  end
  if type(grid) ~= "table" or next(grid) == nil then
    error("sweep: option 'grid' must map parameters to lists of values, e.g. grid = { density = {0.3, 0.6} }", 2)
  end
  local keys = {}
  for k, vals in pairs(grid) do
    if type(k) ~= "string" then error("sweep: grid keys must be parameter names", 2) end
    if type(vals) ~= "table" or #vals == 0 then error(("sweep: grid.%s must be a non-empty list of values"):format(k), 2) end
    if merge_opts[k] ~= nil then error(("sweep: '%s' is both an option and a grid key"):format(k), 2) end
    keys[#keys + 1] = k
  end
  table.sort(keys)
  local n_models = type(opts.models) == "table" and #opts.models or 0
  local dm = data_methods[merge_opts.method]
  if dm then D.check(merge_opts, 2) end
  -- every point's request checked before anything is merged or evaluated
  local points = grid_points(grid, keys)
  local reqs = {}
  for i, p in ipairs(points) do
    local o = {}
    for k, v in pairs(merge_opts) do o[k] = v end
    for k, v in pairs(p) do
      if k == "weight" then -- two models: x -> {1 - x, x}
        if n_models ~= 2 or type(v) ~= "number" then
          error("sweep: grid.weight needs exactly 2 models and numbers (x gives weights {1 - x, x}); use grid.weights = {{...}, ...}", 2)
        end
        o.weights = { 1 - v, v }
      else
        o[k == "weights" and "weights" or k] = v
      end
    end
    if dm then -- a data method: the grid's values checked here, the statistics gathered once below
      local q = { weights = o.weights }
      for k, v in pairs(p) do
        if k ~= "weight" and k ~= "weights" then
          if not dm[k] then
            local ks = {}
            for kk in pairs(dm) do ks[#ks + 1] = kk end
            error(("sweep: %s has no parameter '%s'%s"):format(merge_opts.method, k, suggest(k, ks)), 2)
          end
          D.check_param(merge_opts.method, k, v, 2)
          q[k] = v
        end
      end
      reqs[i] = q
    else
      reqs[i] = request(o, 2)
    end
  end
  local st, smsg, scode = store_of(opts)
  if not st then return nil, smsg, scode end
  local ctx
  if dm then
    merge_opts.store = st
    local msg, code
    ctx, msg, code = D.prepare(merge_opts, 2)
    if not ctx then return nil, "sweep: " .. tostring(msg), code end
  end
  local ev = eval_opts ~= false and eval_options(eval_opts, st) or nil
  local out = {}
  for i, p in ipairs(points) do
    local m, info, code
    if ctx then
      local ok
      ok, m, info, code = pcall(D.point, ctx, reqs[i], 2)
      if not ok then D.close(ctx); error(("sweep: point %d: %s"):format(i, tostring(m):gsub("^[^:]*:%d+: ", "")), 2) end
      if m then reqs[i].weights = info.weights or reqs[i].weights end
    else
      m, info, code = core.raw_merge(st, reqs[i])
    end
    if not m then
      if ctx then D.close(ctx) end
      if code == "EINVAL" then error(("sweep: point %d: %s"):format(i, info), 2) end
      return nil, ("sweep: point %d: %s"):format(i, info), code
    end
    local point = { params = p, weights = reqs[i].weights, model = m, id = m:id(), found = info.found }
    if ev then
      local r, msg, code2 = core.eval(m, ev)
      if not r then
        if ctx then D.close(ctx) end
        return nil, ("sweep: point %d: %s"):format(i, msg), code2
      end
      point.results, point.id_avg, point.ood_avg = r, r.id_avg, r.ood_avg
    end
    if info.lambda then point.lambda, point.trajectory = info.lambda, info.trajectory end
    out[i] = point
    if on_point then on_point(point, i, #points) end
  end
  if ctx then D.close(ctx) end
  out.keys = keys
  if ev then out.front = M.pareto_front(out) end
  out.sweep_id = require("amalgam.sweep_record").record(st, merge_opts, grid, keys, out, ev) -- am.sweeps, the TUI
  return out
end

--- indices of the points no other point beats on both ID and OOD average (ties kept), by ID average;
--- marks each such point with point.pareto = true. An average that some point lacks (a sweep over
--- ID tasks only) is left out of the comparison; points with neither average are left out.
function M.pareto_front(points)
  local fields = {}
  for _, f in ipairs { "id_avg", "ood_avg" } do
    local all, any = true, false
    for _, p in ipairs(points) do
      if p[f] then any = true else all = false end
    end
    if any and all then fields[#fields + 1] = f end
  end
  if #fields == 0 then return {} end
  local function beats(q, p) -- q at least as good everywhere and better somewhere
    local better = false
    for _, f in ipairs(fields) do
      if q[f] < p[f] then return false end
      if q[f] > p[f] then better = true end
    end
    return better
  end
  local front = {}
  for i, p in ipairs(points) do
    local dominated = false
    for j, q in ipairs(points) do
      if j ~= i and beats(q, p) then dominated = true; break end
    end
    if not dominated then front[#front + 1] = i; p.pareto = true end
  end
  local key = fields[1]
  table.sort(front, function(x, y)
    if points[x][key] ~= points[y][key] then return points[x][key] < points[y][key] end
    return x < y
  end)
  return front
end

-- ------------------------------------------------------------------ greedy soup

local soup_spec = { models = "table", eval = "table", score = "string|function", name = "string", store = "Store",
  on_step = "function" }

--- am.greedy_soup{models=, eval=, score="id_avg"|function(results), name=, on_step=, store=}
---   -> Model, info | nil, msg, code
-- Wortsman et al. 2022: rank the models by their own score, then add each (best first) to the
-- uniform soup only if the soup's score does not drop.
function M.greedy_soup(opts)
  core.check_options("greedy_soup", opts, soup_spec, 2)
  if opts == nil or opts.models == nil or #opts.models < 2 then
    error("greedy_soup: option 'models' must list at least 2 models", 2)
  end
  local ids = model_refs(opts.models, 2)
  local st, smsg, scode = store_of(opts)
  if not st then return nil, smsg, scode end
  local ev = eval_options(opts.eval, st)
  local score_of = opts.score or "id_avg"
  if type(score_of) == "string" then
    local key = score_of
    score_of = function(r) return r[key] end
  end
  local function score(m)
    local r, msg, code = core.eval(m, ev)
    if not r then return nil, msg, code end
    local x = score_of(r)
    if type(x) ~= "number" then
      return nil, "greedy_soup: the score is not a number (no task with that tag? see option 'score')", "EINVAL"
    end
    return x
  end
  -- the models alone, best first (ties keep the given order)
  local ranked = {}
  for i, id in ipairs(ids) do
    local m, msg, code = st:model(id)
    if not m then return nil, msg, code end
    local x
    x, msg, code = score(m)
    if not x then return nil, msg, code end
    ranked[i] = { id = m:id(), model = m, score = x, pos = i }
  end
  table.sort(ranked, function(p, q) if p.score ~= q.score then return p.score > q.score end return p.pos < q.pos end)
  local kept, best, soup = { ranked[1].id }, ranked[1].score, ranked[1].model
  local steps = { { id = ranked[1].id, score = ranked[1].score, soup_score = best, kept = true } }
  for i = 2, #ranked do
    local cand = {}
    for k, id in ipairs(kept) do cand[k] = id end
    cand[#cand + 1] = ranked[i].id
    local m, info, code = core.raw_merge(st, request({ method = "linear", models = cand }, 2))
    if not m then return nil, info, code end
    local x, msg
    x, msg, code = score(m)
    if not x then return nil, msg, code end
    local step = { id = ranked[i].id, score = ranked[i].score, soup_score = x, kept = x >= best }
    if x >= best then kept, best, soup = cand, x, m end
    steps[#steps + 1] = step
    if opts.on_step then opts.on_step(step, i, #ranked) end
  end
  if opts.name then
    local ok, msg, code = st:name(opts.name, soup)
    if not ok then return nil, msg, code end
    soup = assert(st:model(opts.name))
  end
  return soup, { kept = kept, score = best, steps = steps }
end

-- a point's value of grid key k, as text
local function show(v)
  if type(v) == "table" then
    local t = {}
    for i, x in ipairs(v) do t[i] = ("%g"):format(x) end
    return "{" .. concat(t, ",") .. "}"
  end
  if type(v) == "number" then return ("%g"):format(v) end
  return tostring(v)
end

--- M.cli_sweep{method=, base=, models={...}, weights=, params=JSON, rules=, grid = {key = {...}}, suite=, tasks=,
---   tag=, no_eval=, json=} -> true | nil, msg, code   (amalgam sweep; src/cli/cmd_merge.c)
function M.cli_sweep(a)
  local o = { method = a.method, base = a.base, models = a.models, weights = a.weights, grid = a.grid, rules = a.rules,
    data = a.data }
  if a.params then
    local p = json.decode(a.params)
    for k, v in pairs(p) do o[k] = v end
  end
  if a.no_eval then o.eval = false
  else o.eval = { suite = a.suite, tasks = a.tasks, tag = a.tag } end
  local ok, pts, msg, code = pcall(M.sweep, o)
  if not ok then return nil, tostring(pts):gsub("^[^:]*:%d+: ", ""), "EINVAL" end
  if not pts then return nil, msg, code end
  if a.json then
    local list = json.array()
    for i, p in ipairs(pts) do
      list[i] = { params = p.params, weights = p.weights, id = p.id, found = p.found, id_avg = p.id_avg, ood_avg = p.ood_avg,
        pareto = p.pareto or false }
    end
    print(json.encode(list))
    return true
  end
  local head = {}
  for _, k in ipairs(pts.keys) do head[#head + 1] = ("%-10s"):format(k) end
  print(concat(head, " ") .. (" %-12s %8s %8s"):format("ID", "ID AVG", "OOD AVG"))
  for _, p in ipairs(pts) do
    local row = {}
    for _, k in ipairs(pts.keys) do row[#row + 1] = ("%-10s"):format(show(p.params[k])) end
    local function avg(x) return x and ("%8.4f"):format(x) or ("%8s"):format("-") end
    print(concat(row, " ") .. (" %-12s %s %s%s%s"):format(p.id:sub(1, 12), avg(p.id_avg), avg(p.ood_avg),
      p.pareto and "  *" or "", p.found and "  (stored)" or ""))
  end
  if pts.front and #pts.front > 0 then
    local f = {}
    for _, i in ipairs(pts.front) do
      local kv = {}
      for _, k in ipairs(pts.keys) do kv[#kv + 1] = k .. "=" .. show(pts[i].params[k]) end
      local function v(x) return x and ("%.4f"):format(x) or "-" end
      f[#f + 1] = ("(%s: ID %s, OOD %s)"):format(concat(kv, " "), v(pts[i].id_avg), v(pts[i].ood_avg))
    end
    print("Pareto front (*, no point has both a higher ID and a higher OOD average): " .. concat(f, " "))
  end
  return true
end

-- a raised error's message without its "file:line: " prefix
local function bare(e) return (tostring(e):gsub("^[^:]*:%d+: ", "")) end

--- M.cli_merge_data{method=, base=, models=, weights=, name=, data = {"TASK[:ROWS]", ...}, params=JSON, json=}
---   -> true | nil, msg, code   (amalgam merge --method fisher|... --data ...; src/cli/cmd_merge.c)
function M.cli_merge_data(a)
  local o = { method = a.method, base = a.base, models = a.models, weights = a.weights, name = a.name, data = a.data }
  if a.params then
    for k, v in pairs(json.decode(a.params)) do o[k] = v end
  end
  if a.method ~= "codiemb_fusion" and o.data == nil then
    return nil, ("merge: %s merges from data: give --data TASK[:ROWS] (one for all models, or one per model; "
      .. "datasets: amalgam ls datasets)"):format(a.method), "EINVAL"
  end
  local ok, m, info, code = pcall(M.merge, o)
  if not ok then return nil, bare(m), "EINVAL" end
  if not m then return nil, info, code end
  if a.json then
    print(json.encode { id = m:id(), found = info.found, name = a.name, method = a.method, seconds = info.seconds,
      stored_tensors = true, lambda = info.lambda, loss = info.loss, groups = info.groups, weights = info.weights,
      losses = info.losses, objective = info.objective })
    return true
  end
  local d = m:meta().merge.data
  print(("%s %s  id %s  (%s of %d models%s)"):format(info.found and "found" or "merged", a.name or "-", m:id(), a.method,
    #a.models, a.base and ", with a base" or ""))
  if d and d.tasks then
    local t = {}
    for i, x in ipairs(d.tasks) do t[i] = ("%s (%d rows)"):format(x, d.rows[i]) end
    print(("data     %s; batches of %d, seed %d"):format(table.concat(t, ", "), d.batch_size, d.seed))
  end
  if info.found then print("the same merge was stored already (same data, same tensors)") end
  if info.losses then
    for i, l in ipairs(info.losses) do print(("model %d  loss %.4f  weight %.4f"):format(i, l, info.weights[i])) end
  end
  if info.lambda then
    local G = info.groups or 1
    print(("probe %s %.4f -> %.4f over %d steps"):format(info.objective == "entropy" and "entropy" or "loss",
      info.loss[1], info.loss[#info.loss], #info.loss - 1))
    for i = 1, #a.models do
      local v = {}
      for g = 1, G do v[g] = ("%.4f"):format(info.lambda[(i - 1) * G + g]) end
      print(("lambda   %-16s %s"):format(a.models[i], table.concat(v, " ")))
    end
  end
  if not info.found then print(("merged in %.3f s"):format(info.seconds or 0)) end
  print("stored with its tensors (a data merge is not a recipe)")
  return true
end

--- M.cli_diff_data{model=, data = {"TASK[:ROWS]", ...}, params=JSON, tensors=, json=} -> true | nil, msg, code
---   (amalgam diff MODEL --data T ...: gradient conflicts between the tasks at MODEL)
function M.cli_diff_data(a)
  local o = { model = a.model, data = a.data }
  if a.params then
    for k, v in pairs(json.decode(a.params)) do o[k] = v end
  end
  local ok, d, msg, code = pcall(M.diagnose, o)
  if not ok then return nil, bare(d), "EINVAL" end
  if not d then return nil, msg, code end
  local g = d.gradients
  if a.json then print(json.encode(g)); return true end
  local k = #g.tasks
  print(("model    %.12s %s"):format(g.model, a.model))
  for i, t in ipairs(g.tasks) do
    print(("task %-3d %-20s loss %8.4f  |grad| %.5g  (%d batches)"):format(i, t, g.loss[i], g.norm[i], g.batches[i]))
  end
  if k > 1 then
    local head = { "cosine  " }
    for y = 1, k do head[#head + 1] = ("%8d"):format(y) end
    print("\n" .. table.concat(head, " "))
    for x = 1, k do
      local row = { ("%-8d"):format(x) }
      for y = 1, k do row[#row + 1] = ("%8.4f"):format(g.cosine[x][y]) end
      print(table.concat(row, " "))
    end
    local pairs_txt = {}
    for x = 1, k do
      for y = x + 1, k do pairs_txt[#pairs_txt + 1] = ("%d-%d %.1f%%"):format(x, y, 100 * g.sign_conflict_pairs[x][y]) end
    end
    print(("sign conflicts (entries both tasks' gradients change, opposite signs): %s"):format(table.concat(pairs_txt, ", ")))
  end
  local w = a.tensors and 52 or 12
  local head = { ("%-" .. w .. "s"):format(a.tensors and "TENSOR" or "LAYER") }
  for x = 1, k do head[#head + 1] = ("%9s"):format(("|g%d|"):format(x)) end
  if k > 1 then head[#head + 1] = ("%9s %9s"):format("MEAN COS", "CONFLICT") end
  print("\n" .. table.concat(head, " "))
  for _, r in ipairs(a.tensors and g.tensors or g.groups) do
    local row = { ("%-" .. w .. "s"):format(r.name) }
    for x = 1, k do row[#row + 1] = ("%9.4g"):format(r.norm[x]) end
    if k > 1 then
      local s, n = 0, 0
      for x = 1, k do for y = x + 1, k do s, n = s + r.cosine[x][y], n + 1 end end
      row[#row + 1] = ("%9.4f %8.1f%%"):format(s / n, 100 * r.sign_conflict)
    end
    print(table.concat(row, " "))
  end
  return true
end

M.request = request
return M
