-- amalgam/runs.lua - reading training runs back from the store (C run API, src/store/store_runs.h):
--   am.runs([store]) -> { run records (decoded JSON), ... }; am.run_info(id [, store]) -> record
--   am.run_metrics(id [, store | {store=, after=, last=}]) -> { {step=, ...}, ... }
--   (run ids may be unique prefixes; lua/amalgam/train.lua writes the runs)
local core = require "amalgam.core"
local json = core.json

local M = {}

--- am.runs([store]) -> { record, ... } (sorted by start)
function M.runs(st)
  if st ~= nil then core.check_arg(st, 1, "runs", "Store") end
  st = st or core.store.default()
  local out = {}
  for _, text in ipairs(assert(core.raw_run_list(st))) do
    local r = json.decode(text)
    r.recipe = r.recipe and { path = r.recipe.path, hash = r.recipe.hash } or nil
    out[#out + 1] = r
  end
  table.sort(out, function(a, b) return (a.start or "") < (b.start or "") end)
  return out
end

--- am.run_info(id_or_prefix [, store]) -> record | nil, msg, code
function M.run_info(id, st)
  core.check_arg(id, 1, "run_info", "string")
  if st ~= nil then core.check_arg(st, 2, "run_info", "Store") end
  st = st or core.store.default()
  local full, msg, code = core.raw_run_resolve(st, id)
  if not full then return nil, msg, code end
  local t, m2, c2 = core.raw_run_get(st, full)
  if not t then return nil, m2, c2 end
  return json.decode(t)
end

--- am.run_metrics(id_or_prefix [, store | {store=, after=, last=}]) -> { row, ... } (steps after..last)
function M.run_metrics(id, o)
  core.check_arg(id, 1, "run_metrics", "string")
  if o ~= nil and type(o) ~= "table" then core.check_arg(o, 2, "run_metrics", "Store") end
  if type(o) ~= "table" then o = { store = o } end
  o = core.check_options("run_metrics", o, { store = "Store", after = "integer", last = "integer" })
  local st = o.store or core.store.default()
  local full = core.raw_run_resolve(st, id)
  if not full then return {} end
  local out = {}
  for i, text in ipairs(core.raw_run_metrics(st, full, (o.after or 0) + 1, o.last)) do out[i] = json.decode(text) end
  return out
end

return M
