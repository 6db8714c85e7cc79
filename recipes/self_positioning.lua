-- recipes/self_positioning.lua - Self Positioning (arXiv 2410.15035): merge per-task models as
-- θ = θ0 + Σ λ_k τ_k with the λ learned on a balanced probe set drawn from each task's training
-- data (each batch with its task's loss, or objective=entropy: AdaMerging's label-free entropy of
-- each query's in-batch softmax at temperature T); prints λ and the ID/OOD table of the base, each
-- task model, the uniform average (λ = 1/K) and the Self Positioning merge.
--   amalgam run recipes/self_positioning.lua [base=base-tiny] [tasks=wn-def,deb-desc,wn-sts] [models=]
--       [probe=64] [batch=16] [steps=50] [lr=5e-3] [optimizer=adam|sgd] [mu=0] [per_layer=false]
--       [simplex=false] [seed=1] [max_len=64] [suite=quick|default] [eval=TASK,...] [force=false]
--       [objective=task|entropy] [temperature=0.05]
-- models (comma-separated, one per task) defaults to <base>+<task>, the names train_tasks.lua
-- gives. The probe set is `probe` rows of each task's training data (a seeded draw, the same
-- for every task: balanced), cut into batches of `batch`. The merge is stored with its tensors
-- (named sp-<base8>-<hash6>, the hash of every setting); a rerun keeps it unless force=true.
local p = am.params { base = "base-tiny", tasks = "wn-def,deb-desc,wn-sts", models = "", probe = 64, batch = 16,
  steps = 50, lr = 5e-3, optimizer = "adam", mu = 0, per_layer = false, simplex = false, seed = 1, max_len = 64,
  suite = "quick", eval = "", force = false, objective = "task", temperature = 0.05 }

local script = (arg and arg[0]) or "self_positioning.lua"
local function bad(msg) am.recipe.usage_error(script .. ": " .. msg) end
local registry = require "amalgam.registry"
local sample_ids = require("amalgam.train").sample_ids
local store = am.store.default()

-- ---------------------------------------------------------------- parameters, checked up front
local base = am.model(p.base)
if not base then bad(("unknown base model '%s' (see amalgam ls models)"):format(p.base)) end
local tasks, models = {}, {}
for t in p.tasks:gmatch("[^,%s]+") do tasks[#tasks + 1] = t end
if #tasks < 2 then bad("tasks: at least two tasks to merge") end
local names = {}
for m in p.models:gmatch("[^,%s]+") do names[#names + 1] = m end
if #names > 0 and #names ~= #tasks then bad(("models: %d models for %d tasks"):format(#names, #tasks)) end
for i, t in ipairs(tasks) do
  local name = names[i] or (p.base .. "+" .. t)
  models[i] = am.model(name)
  if not models[i] then
    bad(("no model '%s' for task '%s' (models=..., or train them with recipes/train_tasks.lua base=%s)"):format(name, t, p.base))
  end
end
if p.probe < 1 or p.batch < 1 or p.steps < 1 then bad("probe, batch and steps must be positive") end
if p.batch > p.probe then bad(("batch %d is larger than the probe set of a task (%d rows)"):format(p.batch, p.probe)) end
if p.optimizer ~= "adam" and p.optimizer ~= "sgd" then bad(("optimizer must be adam or sgd, got '%s'"):format(p.optimizer)) end
if not (p.lr > 0) then bad("lr must be > 0") end
if p.objective ~= "task" and p.objective ~= "entropy" then bad(("objective must be task or entropy, got '%s'"):format(p.objective)) end
if not (p.temperature > 0) then bad("temperature must be > 0") end
if p.suite ~= "quick" and p.suite ~= "default" then bad(("suite must be quick or default, got '%s'"):format(p.suite)) end
local sets = {}
for i, t in ipairs(tasks) do
  local reg = registry.get(store, t)
  local f = reg and reg.files and reg.files[reg.train or "train"]
  if not f then bad(("tasks: no training data for '%s' (datasets: %s)"):format(t, registry.names_text(store))) end
  if f.kind ~= "pairs" and f.kind ~= "graded" then bad(("tasks: '%s' is %s data (pairs or graded only)"):format(t, f.kind)) end
  sets[i] = { kind = f.kind, path = registry.resolve(reg.dir, f.path) }
end

-- ---------------------------------------------------------------- the probe set
local t0 = os.time()
local data, losses, keyparts = {}, {}, {}
for i, s in ipairs(sets) do
  local ds = assert(am.dataset.load(s.kind, s.path))
  if ds:n() < p.probe then bad(("probe %d is more than the %d rows of '%s'"):format(p.probe, ds:n(), tasks[i])) end
  local ids = sample_ids(ds:n(), ds:hash(), p.probe / ds:n(), p.seed)
  local batches, b = {}, nil
  for j, id in ipairs(ids) do
    if (j - 1) % p.batch == 0 then
      if #batches * p.batch + p.batch > #ids then break end -- whole batches only
      b = s.kind == "pairs" and { queries = {}, positives = {} } or { sentence1 = {}, sentence2 = {}, scores = {} }
      batches[#batches + 1] = b
    end
    local r = ds:row(id)
    if s.kind == "pairs" then
      b.queries[#b.queries + 1], b.positives[#b.positives + 1] = r.query, r.pos[1]
    else
      b.sentence1[#b.sentence1 + 1], b.sentence2[#b.sentence2 + 1], b.scores[#b.scores + 1] = r.sentence1, r.sentence2, r.score
    end
  end
  data[i] = batches
  losses[i] = s.kind == "graded" and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 }
  keyparts[#keyparts + 1] = models[i]:id() .. ":" .. ds:hash()
  ds:close()
end

-- ---------------------------------------------------------------- the merge
local settings = { table.concat(keyparts, ","), p.probe, p.batch, p.steps, p.lr, p.optimizer, p.mu,
  tostring(p.per_layer), tostring(p.simplex), p.seed, p.max_len }
if p.objective ~= "task" then -- (the task objective's names are those of before the option)
  settings[#settings + 1] = p.objective
  settings[#settings + 1] = p.temperature
end
local key = am.recipe.key(settings)
local name = ("sp-%s-%s"):format(base:id():sub(1, 8), key)
print(("self_positioning: base %s, tasks %s, probe %d rows x %d tasks in batches of %d, %d %s steps, lr %g"):format(
  p.base, p.tasks, p.probe, #tasks, p.batch, p.steps, p.optimizer, p.lr))
local merged, sp = am.model(name), nil
if merged and not p.force and merged:meta().self_positioning then
  sp = merged:meta().self_positioning
  print(("merge    %s  %s  (kept)"):format(name, merged:id():sub(1, 12)))
else
  local info, code
  merged, info, code = am.merge { method = "self_positioning", base = base, models = models, data = data,
    losses = losses, steps = p.steps, lr = p.lr, optimizer = p.optimizer, mu = p.mu, per_layer = p.per_layer,
    simplex = p.simplex, max_len = p.max_len, name = name, objective = p.objective,
    temperature = p.objective == "entropy" and p.temperature or nil }
  if not merged then error(("%s: merge: %s (%s)"):format(script, tostring(info), tostring(code)), 0) end
  sp = { lambda = info.lambda, loss = info.loss, groups = info.groups }
  print(("merge    %s  %s  %d probe batches, %.1f s"):format(name, merged:id():sub(1, 12), info.probe_batches,
    info.seconds or 0))
end
local G = sp.groups or 1
print(("probe %s %.4f -> %.4f over %d steps"):format(p.objective == "entropy" and "entropy" or "loss", sp.loss[1],
  sp.loss[#sp.loss], #sp.loss - 1))
for i, t in ipairs(tasks) do
  local v = {}
  for g = 1, G do v[g] = ("%.4f"):format(sp.lambda[(i - 1) * G + g]) end
  print(("lambda   %-12s %s"):format(t, table.concat(v, " ")))
end

-- ---------------------------------------------------------------- ID / OOD table
local avg = assert(am.merge { method = "linear", models = models }) -- θ0 + Σ τ_k / K: λ = 1/K
local list = { base }
for _, m in ipairs(models) do list[#list + 1] = m end
list[#list + 1] = avg
list[#list + 1] = merged
list.ref, list.suite = #list - 1, p.suite
if p.eval ~= "" then -- suite task names or KIND:PATH specs (ad-hoc ones count as ID)
  list.tasks, list.tag = {}, "id"
  for t in p.eval:gmatch("[^,]+") do list.tasks[#list.tasks + 1] = t end
end
local cmp, cmsg = am.compare(list)
if not cmp then error(script .. ": compare: " .. tostring(cmsg), 0) end
local labels = { "base " .. p.base }
for i, t in ipairs(tasks) do labels[#labels + 1] = "task " .. t end
labels[#labels + 1] = ("uniform (lambda 1/%d)"):format(#tasks)
labels[#labels + 1] = "self positioning"
for i, row in ipairs(cmp.models) do row.name = labels[i] end
print(("\nID/OOD (%s suite, x100; reference: the uniform average)"):format(p.suite))
print(cmp:table())
print(("self_positioning: %ds"):format(os.time() - t0))
