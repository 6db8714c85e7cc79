-- amalgam/sweep_record.lua - the record am.sweep leaves in the store so a sweep can be found
-- again (am.sweeps, the TUI's Sweeps panel): its spec, grid axes and each point's model id.
-- Scores are not copied: every point's results are stored under its model id already.
--
-- The record lives in the runs database under "sweep/<id>" (run listings skip keys with '/').
-- id = a hash of the spec and the grid, so repeating a sweep rewrites the same record.

local core = require "amalgam.core"
local json = core.json

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

local M = {}

local PREFIX = "sweep/"

-- a value as JSON can hold it: Models become their ids, functions and stores are left out
local function plain(v)
  local t = type(v)
  if t == "number" or t == "string" or t == "boolean" then return v end
  if core.type(v) == "Model" then return v:id() end
  if t ~= "table" or core.type(v) then return nil end
  local out = {}
  for k, x in pairs(v) do
    if type(k) == "string" or math.type(k) == "integer" then out[k] = plain(x) end
  end
  if #v > 0 then setmetatable(out, json.array_mt) end
  return out
end

--- record(store, merge_opts, grid, keys, points, eval_opts | nil) -> id | nil
-- Called by am.sweep after its last point; a store that cannot be written (read-only) keeps no
-- record and the sweep's result is unchanged.
function M.record(st, merge_opts, grid, keys, points, ev)
  local spec = {}
  for k, v in pairs(merge_opts) do
    if k ~= "store" then spec[k] = plain(v) end
  end
  local axes = {}
  for i, k in ipairs(keys) do axes[i] = { key = k, values = plain(grid[k]) } end
  local key_text = json.encode { spec = spec, axes = axes, eval = ev and plain(ev) or false }
  local id = core.source.hash(key_text):sub(1, 16)
  local pts = {}
  for i, p in ipairs(points) do pts[i] = { params = plain(p.params), id = p.id } end
  local eval = ev and plain(ev) or nil
  if eval then eval.store = nil end
  local rec = {
    format = 1, id = id, created = os.date("!%Y-%m-%dT%H:%M:%SZ"), created_t = core.source.wallclock(), spec = spec, axes = setmetatable(axes, json.array_mt),
    points = setmetatable(pts, json.array_mt), eval = eval or false,
  }
  local ok = pcall(st.put, st, "runs", PREFIX .. id, json.encode(rec))
  return ok and id or nil
end

--- am.sweeps([store]) -> list | nil, msg, code: the recorded sweeps, newest first, each
--- {id, created, spec = {method, base, models, ...}, axes = {{key, values}...}, points = {{params, id}...}, eval}
function M.list(st)
  if st == nil then
    local msg, code
    st, msg, code = core.store.default()
    if not st then return nil, msg, code end
  elseif core.type(st) ~= "Store" then
    error(("bad argument #1 to 'sweeps' (Store expected, got %s)"):format(core.typeof(st)), 2)
  end
  local keys, msg, code = st:keys("runs", PREFIX)
  if not keys then return nil, msg, code end
  local out = {}
  for _, k in ipairs(keys) do
    local v = st:get("runs", k)
    local rec = v and json.decode(v)
    if type(rec) == "table" and type(rec.points) == "table" then out[#out + 1] = rec end
  end
  -- newest first; created_t orders two sweeps recorded within the same second
  table.sort(out, function(a, b)
    if a.created ~= b.created then return tostring(a.created) > tostring(b.created) end
    local ta, tb = tonumber(a.created_t) or 0, tonumber(b.created_t) or 0
    if ta ~= tb then return ta > tb end
    return a.id < b.id
  end)
  return out
end

return M
