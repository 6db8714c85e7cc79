-- recipes/boom_bagging.lua - BOOM (Bagging-based rObust mOdel Merging): K models trained from one base,
-- each on a per-dataset subsample of the training data at a ratio, merged with Multi-SLERP (or TIES,
-- task arithmetic, linear), compared with the base, each member and the joint (all data) baseline.
--   amalgam run recipes/boom_bagging.lua [base=base-tiny] [tasks=wn-def,deb-desc,wn-sts]
--       [ratios=0.8,1.0 | 0.6,0.6,0.6 | 0.5,rest] [seed=1] [steps=100] [batch=32] [lr=1e-4] [max_len=64]
--       [scale_steps=true] [mixed=false] [method=multislerp|ties|task_arithmetic|linear]
--       [weighting=equal|size] [density=] [lambda=] [suite=quick|default] [eval=TASK,...] [name=] [force=false]
-- Every dataset is sampled independently (task proportions kept), without replacement, seeded;
-- `rest` is the complement of the previous member's sample. The sample (ratio, seed, the source
-- dataset's hash, a hash of the row ids) is recorded in each member's run record
-- (data.tasks[i].sample, am.train's `sample` task option). A member whose name already exists
-- is kept unless force=true; the member on all the data (ratio 1) is the joint baseline.
local p = am.params { base = "base-tiny", tasks = "wn-def,deb-desc,wn-sts", ratios = "0.8,1.0", seed = 1, steps = 100,
  batch = 32, lr = 1e-4, max_len = 64, scale_steps = true, mixed = false, method = "multislerp",
  weighting = "equal", density = { type = "number" }, lambda = { type = "number" }, suite = "quick", eval = "", name = "",
  force = false }

local script = (arg and arg[0]) or "boom_bagging.lua"
local function bad(msg) am.recipe.usage_error(script .. ": " .. msg) end

-- ---------------------------------------------------------------- parameters, checked up front
local base = am.model(p.base)
if not base then bad(("unknown base model '%s' (see amalgam ls models)"):format(p.base)) end
local tasks = {}
for t in p.tasks:gmatch("[^,%s]+") do tasks[#tasks + 1] = t end
if #tasks == 0 then bad("tasks: at least one dataset") end
local members = {} -- { ratio=, complement=, sseed= }
for tok in p.ratios:gmatch("[^,%s]+") do
  if tok == "rest" then
    local prev = members[#members]
    if not prev or prev.complement or prev.ratio >= 1 then
      bad("ratios: 'rest' (the complement) must follow a ratio below 1, e.g. ratios=0.5,rest")
    end
    members[#members + 1] = { ratio = prev.ratio, complement = true, sseed = prev.sseed }
  else
    local r = tonumber(tok)
    if not r or r <= 0 or r > 1 then bad(("ratios: '%s' is not a ratio in (0, 1] or 'rest'"):format(tok)) end
    members[#members + 1] = { ratio = r, sseed = p.seed * 1000 + #members + 1 }
  end
end
if #members < 2 then bad("ratios: at least two members to merge (e.g. 0.8,1.0)") end
local method_info
for _, m in ipairs(am.merge_methods()) do if m.name == p.method then method_info = m end end
if not (method_info and (p.method == "multislerp" or p.method == "ties" or p.method == "task_arithmetic"
    or p.method == "linear")) then
  bad(("method must be multislerp, ties, task_arithmetic or linear, got '%s'"):format(p.method))
end
if p.weighting ~= "equal" and p.weighting ~= "size" then
  bad(("weighting must be equal or size, got '%s'"):format(p.weighting))
end
if p.suite ~= "quick" and p.suite ~= "default" then bad(("suite must be quick or default, got '%s'"):format(p.suite)) end
if p.steps < 1 or p.batch < 1 then bad("steps and batch must be positive") end
local params = {}
for _, k in ipairs { "density", "lambda" } do
  if p[k] ~= nil then
    local reads = false
    for _, q in ipairs(method_info.params) do if q == k then reads = true end end
    if not reads then bad(("%s: method %s does not read it"):format(k, p.method)) end
    params[k] = p[k]
  end
end
local registry = require "amalgam.registry"
local store = am.store.default()
local kinds = {}
for i, t in ipairs(tasks) do
  local reg = registry.get(store, t)
  local f = reg and reg.files and reg.files[reg.train or "train"]
  if not f then bad(("tasks: no training data for '%s' (datasets: %s)"):format(t, registry.names_text(store))) end
  kinds[i] = f.kind or (t:match("sts") and "graded" or "pairs")
  if p.mixed and kinds[i] ~= kinds[1] then
    bad(("mixed=true is one loss over every task's rows: '%s' (%s) and '%s' (%s) differ"):format(tasks[1], kinds[1], t,
      kinds[i]))
  end
end

-- ---------------------------------------------------------------- members
-- what a member's training depends on besides its sample (so a rerun with other settings retrains)
local key = am.recipe.key { p.tasks, p.steps, p.batch, p.lr, p.max_len, tostring(p.scale_steps), tostring(p.mixed),
  p.seed }
local function member_name(m)
  if m.ratio >= 1 then return ("bag-%s-%s-r1"):format(base:id():sub(1, 8), key) end
  return ("bag-%s-%s-r%g%s-s%d"):format(base:id():sub(1, 8), key, m.ratio, m.complement and "c" or "", m.sseed)
end

local function loss_of(kind) return kind == "graded" and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 } end


local function train_member(m)
  local name = member_name(m)
  local have = am.model(name)
  if have and not p.force then
    local rec = am.recipe.run_of(have:id())
    if rec then return have, rec, true end
  end
  local frac = m.complement and (1 - m.ratio) or m.ratio
  local steps = p.scale_steps and math.max(1, math.floor(p.steps * frac + 0.5)) or p.steps
  local list = {}
  for i, t in ipairs(tasks) do
    list[i] = { data = t, loss = loss_of(kinds[i]), batch = p.batch,
      sample = m.ratio < 1 and { ratio = m.ratio, seed = m.sseed, complement = m.complement } or nil }
  end
  local run, msg = am.train {
    name = name, init = base, steps = steps, seed = p.seed, lr = p.lr, warmup = steps // 10, max_len = p.max_len,
    tasks = list, schedule = am.schedule.shuffled_batches { seed = p.seed, mixed = p.mixed or nil },
    progress = false,
  }
  if not run then error(("%s: member %s: %s"):format(script, name, tostring(msg)), 0) end
  return run.model, am.run_info(run.id), false
end

local t0 = os.time()
print(("boom_bagging: base %s, tasks %s, ratios %s, %d steps%s, seed %d"):format(p.base, p.tasks, p.ratios, p.steps,
  p.scale_steps and " x ratio" or "", p.seed))
local models, rows = {}, {}
for i, m in ipairs(members) do
  local model, rec, kept = train_member(m)
  m.model, m.rec = model, rec
  local n, prov = 0, {}
  for _, d in ipairs(rec.data.tasks) do
    n = n + d.rows
    local s = d.sample
    prov[#prov + 1] = s and ("%s %d/%d ids %s"):format(d.source, d.rows, s.of_rows, s.ids_hash:sub(1, 8))
      or ("%s %d (all)"):format(d.source, d.rows)
  end
  models[i], rows[i] = model, n
  print(("member %d  %-34s %s  run %s  %d steps  %s%s"):format(i, member_name(m), model:id():sub(1, 12), rec.id,
    rec.steps, table.concat(prov, ", "), kept and "  (kept)" or ""))
end

-- the joint baseline: one model on all the data (the ratio-1 member when there is one)
local joint, jrec, jkept = train_member { ratio = 1 }
print(("joint     %-34s %s  run %s  %d steps%s"):format(member_name { ratio = 1 }, joint:id():sub(1, 12), jrec.id,
  jrec.steps, jkept and "  (kept)" or ""))

-- ---------------------------------------------------------------- the merge
local weights = {}
for i = 1, #models do weights[i] = p.weighting == "size" and rows[i] or 1 end
local req = { method = p.method, models = models, weights = weights }
if method_info.base ~= "none" then req.base = base end
for k, v in pairs(params) do req[k] = v end
if p.name ~= "" then req.name = p.name end
local merged, info = am.merge(req)
if not merged then error(script .. ": merge: " .. tostring(info), 0) end
print(("merge     %s of %d members, weights %s: %s%s"):format(p.method, #models, p.weighting, merged:id():sub(1, 12),
  info.found and " (found)" or ""))

-- ---------------------------------------------------------------- ID / OOD table
local list = { base }
for _, m in ipairs(models) do list[#list + 1] = m end
list[#list + 1] = merged
local jidx
for i, m in ipairs(list) do if m:id() == joint:id() then jidx = i end end
if not jidx then list[#list + 1] = joint; jidx = #list end
list.ref = jidx
list.suite = p.suite
if p.eval ~= "" then -- suite task names or KIND:PATH specs (ad-hoc ones count as ID)
  list.tasks, list.tag = {}, "id"
  for t in p.eval:gmatch("[^,]+") do list.tasks[#list.tasks + 1] = t end
end
local cmp, cmsg = am.compare(list)
if not cmp then error(script .. ": compare: " .. tostring(cmsg), 0) end
-- row labels: what each model is in the study (ids are in the lines above)
local labels = { "base " .. p.base }
for i, m in ipairs(members) do
  labels[#labels + 1] = ("member %d r%g%s%s"):format(i, m.ratio, m.complement and " rest" or "", i == jidx - 1 and " = joint" or "")
end
labels[#labels + 1] = ("merge %s %s"):format(p.method, p.weighting)
if jidx == #list and jidx > #members + 2 then labels[#labels + 1] = "joint (all data)" end
for i, row in ipairs(cmp.models) do row.name = labels[i] or row.name end
print(("\nID/OOD (%s suite, x100; reference: the joint baseline)"):format(p.suite))
print(cmp:table())
print(("boom_bagging: %ds"):format(os.time() - t0))
