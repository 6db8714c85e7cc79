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
  store = "Store", materialize = "boolean",
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

local function model_ref(v, what, level)
  local t = core.typeof(v)
  if t == "Model" then return v:id() end
  if t == "string" then return v end
  error(("merge: %s must be a Model or a model name, got %s"):format(what, t), level + 1)
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
  local ids = {}
  for i, v in ipairs(opts.models) do ids[i] = model_ref(v, ("models[%d]"):format(i), level) end
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
    materialize = opts.materialize, source = "am.merge at " .. where,
  }
end

--- am.merge{method=, base=, models={...}, weights={...}, <parameters>..., name=, materialize=, store=}
---   -> Model, info | nil, msg, code
function M.merge(opts)
  local req = request(opts, 2)
  local st = opts.store
  if st == nil then
    local msg, code
    st, msg, code = core.store.default()
    if not st then return nil, msg, code end
  end
  local m, info, code = core.raw_merge(st, req)
  if not m and code == "EINVAL" then error(info, 2) end -- a bad request: the recipe's line
  return m, info, code
end

--- am.diagnose{models={...}, base=, store=} -> diagnostics | nil, msg, code
function M.diagnose(opts)
  core.check_options("diagnose", opts, { models = "table", base = "Model|string", store = "Store" }, 2)
  if opts == nil or opts.models == nil or #opts.models == 0 then
    error("diagnose: option 'models' must list the models to compare", 2)
  end
  local ids = {}
  for i, v in ipairs(opts.models) do ids[i] = model_ref(v, ("models[%d]"):format(i), 2) end
  local st = opts.store
  if st == nil then
    local msg, code
    st, msg, code = core.store.default()
    if not st then return nil, msg, code end
  end
  local base = opts.base ~= nil and model_ref(opts.base, "base", 2) or nil
  local d, msg, code = core.raw_merge_diagnose(st, base, ids)
  if not d and code == "EINVAL" then error("diagnose: " .. msg, 2) end
  return d, msg, code
end

M.request = request
return M
