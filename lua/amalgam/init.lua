-- amalgam/init.lua - the public `amalgam` module: Lua sugar over the C core.
--
-- The C part (amalgam.core, src/lua/*.c) provides the handles (Store, Model, Matrix), json,
-- store.open/default and the raw_* primitives. This file adds the friendly entry points
-- (am.model, am.init_model, am.import, am.models, am.name, am.log, ...) that validate their
-- option tables here, so errors point at the caller's line, and then call the raw functions.
-- It is compiled into the binary; set AMALGAM_LUA_PATH=<repo>/lua to load it from disk instead.
-- Reference: lua/API.md.

local core = require "amalgam.core"
local M = core   -- one table: require "amalgam" == require "amalgam.core" plus this sugar

local type, tostring, pairs, ipairs, error, select = type, tostring, pairs, ipairs, error, select
local concat, sort = table.concat, table.sort

-- ------------------------------------------------------------------ argument checking

-- typeof(v): "Model" / "Store" / "Matrix" for handles, "integer" for integral numbers,
-- else type(v)
local function typeof(v)
  local t = core.type(v)
  if t then return t end
  if math.type(v) == "integer" then return "integer" end
  return type(v)
end

local function matches(v, want)
  local t = typeof(v)
  for alt in want:gmatch("[^|]+") do
    if alt == t then return true end
    if alt == "number" and type(v) == "number" then return true end
    if alt == "integer" and type(v) == "number" and math.tointeger(v) then return true end
    if alt == "any" then return true end
  end
  return false
end

--- Raise "bad argument #n to 'fname' (msg)" at the caller of the API function.
local function argerror(n, fname, msg, level)
  error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), (level or 2) + 1)
end

--- check_arg(v, n, fname, want [, level]): want is "string", "integer", "Model|string", ...
local function check_arg(v, n, fname, want, level)
  if type(want) ~= "string" or math.type(n) ~= "integer" or type(fname) ~= "string" then
    -- misuse of check_arg itself: name the bad argument of check_arg
    local bad = math.type(n) ~= "integer" and 2 or type(fname) ~= "string" and 3 or 4
    local wants = { [2] = "integer", [3] = "string", [4] = "string" }
    argerror(bad, "check_arg", ("%s expected, got %s"):format(wants[bad], typeof(({ v, n, fname, want })[bad])), 2)
  end
  if not matches(v, want) then
    argerror(n, fname, ("%s expected, got %s"):format(want:gsub("|", " or "), typeof(v)), (level or 2) + 1)
  end
  return v
end

--- check_options(fname, opts, spec [, level]) -> opts (never nil)
-- spec maps each allowed key to a type ("string", "integer", "number", "boolean", "table",
-- "function", "Model", "Store", "Matrix", alternatives "a|b") or to a list of allowed values.
-- Unknown keys, wrong types and values outside the list raise at `level` (default: the caller
-- of the function that called check_options).
function M.check_options(fname, opts, spec, level)
  if type(fname) ~= "string" then argerror(1, "check_options", "string expected, got " .. typeof(fname)) end
  if type(spec) ~= "table" then argerror(3, "check_options", "table expected, got " .. typeof(spec)) end
  level = (level or 2) + 1
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error(("%s: options must be a table, got %s"):format(fname, typeof(opts)), level)
  end
  for k, v in pairs(opts) do
    local want = spec[k]
    if want == nil then
      local known = {}
      for name in pairs(spec) do known[#known + 1] = name end
      sort(known)
      error(("%s: unknown option '%s' (known: %s)"):format(fname, tostring(k), concat(known, ", ")), level)
    elseif type(want) == "table" then
      local ok = false
      for _, e in ipairs(want) do ok = ok or v == e end
      if not ok then
        error(("%s: option '%s' must be one of %s, got %s"):format(fname, k, concat(want, "|"),
          type(v) == "string" and ("'" .. v .. "'") or tostring(v)), level)
      end
    elseif not matches(v, want) then
      error(("%s: option '%s' must be %s, got %s"):format(fname, k, want:gsub("|", " or "), typeof(v)), level)
    end
  end
  return opts
end

M.check_arg = check_arg
M.typeof = typeof

-- ------------------------------------------------------------------ store

-- a closed Store handle given by the caller raises at the caller's line (level), not in here
local store_dir = core.raw_methods("Store").dir
local function check_open(st, level)
  if not pcall(store_dir, st) then error("attempt to use a closed store", level + 1) end
end

-- store_of(opts): opts.store or the default store; returns store or nil, msg, code
local function store_of(opts)
  if opts and opts.store then
    check_open(opts.store, 3)
    return opts.store
  end
  return core.store.default()
end

-- pick_store(store, n, fname): the optional store argument #n, or the default store
local function pick_store(store, n, fname)
  if store == nil then return core.store.default() end
  check_arg(store, n, fname, "Store", 3)
  check_open(store, 3)
  return store
end

-- ------------------------------------------------------------------ models

--- am.model(name_or_id [, store]) -> Model | nil, msg, code
function M.model(x, store)
  if core.type(x) == "Model" then return x end
  check_arg(x, 1, "model", "string")
  local st, msg, code = pick_store(store, 2, "model")
  if not st then return nil, msg, code end
  return st:model(x)
end

--- am.models([store]) -> { {id=, name=, names=, kind=, layers=, hidden=, ...}, ... }
function M.models(store)
  local st, msg, code = pick_store(store, 1, "models")
  if not st then return nil, msg, code end
  return st:models()
end

local init_spec = {
  config = { "tiny", "mini", "small" }, name = "string", seed = "integer", vocab = "string",
  max_seq_length = "integer", store = "Store",
}

--- am.init_model{config="tiny", name=, seed=42, vocab=, max_seq_length=128, store=} -> Model
function M.init_model(opts)
  opts = M.check_options("init_model", opts, init_spec)
  if opts.max_seq_length and opts.max_seq_length < 2 then
    error("init_model: option 'max_seq_length' must be >= 2", 2)
  end
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  return core.raw_init_model(st, opts.config or "tiny", opts.name, math.tointeger(opts.seed or 42),
    opts.vocab, math.tointeger(opts.max_seq_length or 128))
end

--- am.import(dir [, {name=, store=}]) -> Model | nil, msg, code
function M.import(dir, opts)
  check_arg(dir, 1, "import", "string")
  opts = M.check_options("import", opts, { name = "string", store = "Store" })
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  return core.raw_import(st, dir, opts.name)
end

--- am.name(name, model [, store]) -> id | nil, msg, code   (point a name at a model)
function M.name(name, model, store)
  check_arg(name, 1, "name", "string")
  check_arg(model, 2, "name", "Model|string")
  local st, msg, code = pick_store(store, 3, "name")
  if not st then return nil, msg, code end
  return st:name(name, model)
end

--- am.unname(name [, store]) -> true | nil, msg, code
function M.unname(name, store)
  check_arg(name, 1, "unname", "string")
  local st, msg, code = pick_store(store, 2, "unname")
  if not st then return nil, msg, code end
  return st:unname(name)
end

-- Model methods written in Lua
local Model = core.raw_methods("Model")

local encode_spec = {
  pooling = { "mean", "cls" }, normalize = "boolean", layer = "integer", dim = "integer", batch = "integer",
  max_len = "integer",
}

-- check the m:encode options here, so a bad one raises at the caller's line and names fname
-- (m:encode would name itself and point into this file); level 3 = the caller of fname
local model_id = Model.id
local function check_encode_opts(self, opts, fname)
  if core.type(self) ~= "Model" then
    error(("calling '%s' on bad self (Model expected, got %s)"):format(fname, typeof(self)), 3)
  end
  if not pcall(model_id, self) then error("attempt to use a closed model", 3) end
  core.check_options(fname, opts, encode_spec, 3)
  if not opts then return end
  local function range(key, ok, what)
    if opts[key] ~= nil and not ok(opts[key]) then
      error(("%s: option '%s': %s out of range %s"):format(fname, key, tostring(opts[key]), what), 4)
    end
  end
  local nl, nd = self:layers(), self:dim()
  range("layer", function(v) return v >= -1 and v <= nl end, ("0..%d (-1 = last)"):format(nl))
  range("dim", function(v) return v >= 0 and v <= nd end, ("1..%d (0 = all)"):format(nd))
  range("batch", function(v) return v >= 1 and v <= 65536 end, "1..65536")
  range("max_len", function(v) return v == 0 or (v >= 2 and v <= 1 << 20) end, "2..1048576 (0 = the model's)")
end

--- m:similarity(a, b [, encode_opts]) -> cosine similarity of two texts | nil, msg, code
function Model:similarity(a, b, opts)
  check_encode_opts(self, opts, "similarity")
  check_arg(a, 1, "similarity", "string")
  check_arg(b, 2, "similarity", "string")
  local e, msg, code = self:encode({ a, b }, opts)
  if not e then return nil, msg, code end
  return e:cosine(1, 2)
end

--- m:embed(text [, encode_opts]) -> { x1, ..., xd } | nil, msg, code
function Model:embed(text, opts)
  check_encode_opts(self, opts, "embed")
  check_arg(text, 1, "embed", "string")
  local e, msg, code = self:encode(text, opts)
  if not e then return nil, msg, code end
  local row = e:row(1)
  e:close()
  return row
end

-- ------------------------------------------------------------------ log

local function fmt(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring((select(i, ...))) end
  return concat(parts, " ")
end

--- am.log(...) logs at info level (also am.log.debug/info/warn/error(...), am.log.tail(n))
M.log = setmetatable({
  debug = function(...) core.raw_log("debug", fmt(...)) end,
  info = function(...) core.raw_log("info", fmt(...)) end,
  warn = function(...) core.raw_log("warn", fmt(...)) end,
  error = function(...) core.raw_log("error", fmt(...)) end,
  tail = function(n)
    if n ~= nil then
      check_arg(n, 1, "tail", "integer")
      if n < 0 or n > 4096 then argerror(1, "tail", "expected 0..4096, got " .. n) end
    end
    return core.raw_log_tail(n or 20)
  end,
}, {
  __call = function(_, ...) core.raw_log("info", fmt(...)) end,
})

M.recipe = require "amalgam.recipe"
M.params = M.recipe.params -- a recipe's declared key=value parameters

-- training (lua/amalgam/train.lua, train_data.lua, loss.lua, runs.lua, schedule.lua; C side src/lua/l_train.c)
do
  local train = require "amalgam.train"
  M.train, M.resume, M.loss = train.train, train.resume, train.loss
  M.runs, M.run_info, M.run_metrics = train.runs, train.run_info, train.run_metrics
  M.schedule = require "amalgam.schedule"
  M.preset = require "amalgam.preset" -- each paper's defaults (loss, pooling, schedule hints)
end

-- merging (lua/amalgam/merge.lua; C side src/lua/l_merge.c, src/api/merge_store.c)
do
  local merge = require "amalgam.merge"
  M.merge, M.merge_methods, M.diagnose, M.sweep = merge.merge, merge.methods, merge.diagnose, merge.sweep
  M.greedy_soup = merge.greedy_soup
  M.sweeps = require("amalgam.sweep_record").list -- the sweeps am.sweep recorded
end

return M
