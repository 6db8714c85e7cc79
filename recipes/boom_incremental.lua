-- recipes/boom_incremental.lua - BOOM's incremental update: a current model (trained on the old
-- datasets) learns a new dataset without retraining on everything. A core subset of the old data
-- (core = 0.4 of each old dataset, sampled once and cached in the store) plus the new data trains
-- an update model from the base; the update is merged with the current model (0.5/0.5,
-- Multi-SLERP or linear) and compared with retraining on all the data.
--   amalgam run recipes/boom_incremental.lua [base=base-tiny] [current=] [old=wn-def,deb-desc] [new=wn-sts]
--       [core=0.4] [seed=1] [steps=100] [batch=32] [lr=1e-4] [max_len=64] [from=base|current]
--       [method=multislerp|linear] [weight=0.5] [suite=quick|default] [eval=TASK,...] [force=false]
-- steps is the length of a run over the old data; the other runs get steps in proportion to their
-- rows (one pass each, as the paper counts cost: |new| + core·|old| for the update, |old| + |new|
-- for the retraining). Without current=, the current model is trained on the old data first.
-- The core is written to <store>/cache/boom-core/r<core>-s<seed>/ (one JSONL per old dataset and
-- core.json with its provenance: ratio, seed, the source's hash and rows, the row ids' hash); a
-- rerun reuses it while the source datasets are unchanged, and models that exist are kept
-- unless force=true.
local p = am.params { base = "base-tiny", current = { type = "string" }, old = "wn-def,deb-desc", new = "wn-sts",
  core = 0.4, seed = 1, steps = 100, batch = 32, lr = 1e-4, max_len = 64, from = "base", method = "multislerp",
  weight = 0.5, suite = "quick", eval = "", force = false }

local script = (arg and arg[0]) or "boom_incremental.lua"
local function bad(msg) am.recipe.usage_error(script .. ": " .. msg) end
local registry = require "amalgam.registry"
local sample_ids = require("amalgam.train").sample_ids
local store = am.store.default()

-- ---------------------------------------------------------------- parameters, checked up front
local base = am.model(p.base)
if not base then bad(("unknown base model '%s' (see amalgam ls models)"):format(p.base)) end
local current
if p.current then
  current = am.model(p.current)
  if not current then bad(("unknown current model '%s' (see amalgam ls models)"):format(p.current)) end
end
if not (p.core > 0 and p.core <= 1) then bad(("core must be in (0, 1], got %g"):format(p.core)) end
if not (p.weight > 0 and p.weight < 1) then bad(("weight (of the update model) must be in (0, 1), got %g"):format(p.weight)) end
if p.from ~= "base" and p.from ~= "current" then bad(("from must be base or current, got '%s'"):format(p.from)) end
if p.method ~= "multislerp" and p.method ~= "linear" then
  bad(("method must be multislerp or linear, got '%s'"):format(p.method))
end
if p.suite ~= "quick" and p.suite ~= "default" then bad(("suite must be quick or default, got '%s'"):format(p.suite)) end
if p.steps < 1 or p.batch < 1 then bad("steps and batch must be positive") end

local function datasets(text, what)
  local out = {}
  for name in text:gmatch("[^,%s]+") do
    local reg = registry.get(store, name)
    local role = reg and (reg.train or "train")
    local f = reg and reg.files and reg.files[role]
    if not f then bad(("%s: no training data for '%s' (datasets: %s)"):format(what, name, registry.names_text(store))) end
    out[#out + 1] = { name = name, kind = f.kind, path = registry.resolve(reg.dir, f.path), rows = f.rows }
  end
  if #out == 0 then bad(what .. ": at least one dataset") end
  return out
end
local old, new = datasets(p.old, "old"), datasets(p.new, "new")
for _, a in ipairs(new) do
  for _, b in ipairs(old) do if a.name == b.name then bad(("'%s' is in both old and new"):format(a.name)) end end
end

-- ---------------------------------------------------------------- the core subset, cached in the store
local t0 = os.time()
local dir = ("%s/cache/boom-core/r%g-s%d"):format(store:dir(), p.core, p.seed)
local function read_json(path)
  local f = io.open(path)
  if not f then return nil end
  local ok, v = pcall(am.json.decode, f:read("a"))
  f:close()
  return ok and v or nil
end
local manifest = read_json(dir .. "/core.json") or { ratio = p.core, seed = p.seed, datasets = {} }
local changed = false
for _, d in ipairs(old) do
  local full = assert(am.dataset.load(d.kind, d.path))
  d.rows = full:n()
  local e = manifest.datasets[d.name]
  local path = ("%s/%s.jsonl"):format(dir, d.name)
  local cached = e and e.of_hash == full:hash() and am.source.stat(path)
  if cached then
    local have = am.dataset.load(d.kind, path)
    cached = have and have:hash() == e.hash
  end
  if cached then
    d.core_path, d.core_rows, d.core_note = path, e.rows, "cached"
  else
    local ids = sample_ids(full:n(), full:hash(), p.core, p.seed)
    local sub = assert(full:select(ids))
    assert(am.source.mkdir_p(dir))
    assert(sub:write(path))
    manifest.datasets[d.name] = { of_hash = full:hash(), of_rows = full:n(), rows = sub:n(), hash = sub:hash(),
      ids_hash = am.source.hash(table.concat(ids, ",")), path = ("cache/boom-core/r%g-s%d/%s.jsonl"):format(p.core,
        p.seed, d.name) }
    d.core_path, d.core_rows, d.core_note, changed = path, sub:n(), "sampled", true
  end
  full:close()
end
if changed then
  local f = assert(io.open(dir .. "/core.json.tmp", "w"))
  f:write(am.json.encode(manifest, { pretty = true }), "\n")
  f:close()
  assert(os.rename(dir .. "/core.json.tmp", dir .. "/core.json"))
end
local old_rows, new_rows, core_rows = 0, 0, 0
for _, d in ipairs(old) do old_rows, core_rows = old_rows + d.rows, core_rows + d.core_rows end
for _, d in ipairs(new) do
  local ds = assert(am.dataset.load(d.kind, d.path))
  d.rows = ds:n()
  new_rows = new_rows + d.rows
  ds:close()
end

-- ---------------------------------------------------------------- models
local function key(...) return am.recipe.key { p.steps, p.batch, p.lr, p.max_len, p.seed, ... } end
local stem = "inc-" .. base:id():sub(1, 8)

local function loss_of(kind) return kind == "graded" and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 } end

-- train (or keep) a model named name from init on list ({data=, kind=}) for steps ∝ its rows
local function train(label, name, init, list, rows)
  local have = am.model(name)
  if have and not p.force and am.recipe.run_of(have:id()) then
    print(("%-8s %-36s %s  (kept)"):format(label, name, have:id():sub(1, 12)))
    return have
  end
  local steps = math.max(1, math.floor(p.steps * rows / old_rows + 0.5))
  local tasks = {}
  for i, d in ipairs(list) do tasks[i] = { data = d.data, kind = d.kind, name = d.name, loss = loss_of(d.kind), batch = p.batch } end
  local run, msg = am.train { name = name, init = init, steps = steps, seed = p.seed, lr = p.lr, warmup = steps // 10,
    max_len = p.max_len, tasks = tasks, progress = false }
  if not run then error(("%s: %s: %s"):format(script, name, tostring(msg)), 0) end
  print(("%-8s %-36s %s  run %s  %d steps on %d rows"):format(label, name, run.model:id():sub(1, 12), run.id, steps, rows))
  return run.model
end

print(("boom_incremental: base %s, old %s (%d rows), new %s (%d rows), core %g of the old data (%d rows, %s)"):format(
  p.base, p.old, old_rows, p.new, new_rows, p.core, core_rows, changed and "sampled now" or "cached"))
local okey = {}
for _, d in ipairs(old) do okey[#okey + 1] = d.name end
okey = table.concat(okey, ",")
local nkey = {}
for _, d in ipairs(new) do nkey[#nkey + 1] = d.name end
nkey = table.concat(nkey, ",")

local old_list, new_list, core_list = {}, {}, {}
for _, d in ipairs(old) do
  old_list[#old_list + 1] = { data = d.name, kind = d.kind, name = d.name }
  core_list[#core_list + 1] = { data = d.core_path, kind = d.kind, name = d.name .. "-core" }
end
for _, d in ipairs(new) do new_list[#new_list + 1] = { data = d.name, kind = d.kind, name = d.name } end
local function cat(...)
  local out = {}
  for _, l in ipairs { ... } do for _, x in ipairs(l) do out[#out + 1] = x end end
  return out
end

if not current then
  current = train("current", ("%s-%s-current"):format(stem, key(okey)), base, old_list, old_rows)
else
  print(("%-8s %-36s %s  (given)"):format("current", p.current, current:id():sub(1, 12)))
end
local update = train("update", ("%s-%s-update-c%g-%s"):format(stem, key(okey, nkey, p.from == "current" and current:id() or "", p.core), p.core, p.from),
  p.from == "base" and base or current, cat(new_list, core_list), new_rows + core_rows)
local retrain = train("retrain", ("%s-%s-all"):format(stem, key(okey, nkey)), base, cat(old_list, new_list),
  old_rows + new_rows)

local req = { method = p.method, models = { current, update }, weights = { 1 - p.weight, p.weight } }
if p.method == "multislerp" then req.base = base end
local merged, info = am.merge(req)
if not merged then error(script .. ": merge: " .. tostring(info), 0) end
print(("%-8s %s of current and update, weights %g/%g: %s%s"):format("merge", p.method, 1 - p.weight, p.weight,
  merged:id():sub(1, 12), info.found and " (found)" or ""))

local clist = { base, current, update, merged, retrain, ref = 5, suite = p.suite }
if p.eval ~= "" then -- suite task names or KIND:PATH specs (ad-hoc ones count as ID)
  clist.tasks, clist.tag = {}, "id"
  for t in p.eval:gmatch("[^,]+") do clist.tasks[#clist.tasks + 1] = t end
end
local cmp, cmsg = am.compare(clist)
if not cmp then error(script .. ": compare: " .. tostring(cmsg), 0) end
local labels = { "base " .. p.base, "current (old data)", ("update (new + core %g)"):format(p.core),
  ("merge %s %g/%g"):format(p.method, 1 - p.weight, p.weight), "retrain (old + new)" }
for i, row in ipairs(cmp.models) do row.name = labels[i] end
print(("\nID/OOD (%s suite, x100; reference: retraining on everything)"):format(p.suite))
print(cmp:table())
print(("cost in rows trained: update %d + merge vs retrain %d (%.0f %%)"):format(new_rows + core_rows,
  old_rows + new_rows, 100 * (new_rows + core_rows) / (old_rows + new_rows)))
print(("boom_incremental: %ds"):format(os.time() - t0))
