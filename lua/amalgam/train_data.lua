-- amalgam/train_data.lua - the data side of am.train: resolving each task's dataset (registry
-- name, file or Dataset), sampling (tasks[i].sample), checking task options, and building the
-- trainer's batches (positives / hard negatives per row, padding, mixed steps) from per-task
-- iterators over seeded permutations. lua/amalgam/train.lua drives the run.
local core = require "amalgam.core"
local schedule = require "amalgam.schedule"
local registry = require "amalgam.registry"
local check_loss = require("amalgam.loss").check_loss
local json = core.json

local M = {}

-- the keys of one entry of am.train's tasks list
local task_spec = { data = "any", loss = "any", batch = "integer", kind = "string", role = "string", name = "string",
  n_pos = "integer", n_neg = "integer", fill = { "pad", "repeat" }, sample = "table" }
local sample_spec = { ratio = "number", seed = "integer", complement = "boolean" }

-- ------------------------------------------------------------------ helpers

local function fnv64(s)
  local h = 0xcbf29ce484222325
  for i = 1, #s do h = ((h ~ s:byte(i)) * 0x100000001b3) end
  return ("%016x"):format(h)
end

--- M.sample_ids(n, key, ratio, seed [, complement]) -> sorted 1-based row ids
-- round(ratio * n) rows (at least 1) drawn without replacement by a seeded partial Fisher-Yates
-- shuffle keyed by (seed, key: the dataset's content hash, so datasets are sampled
-- independently); complement: the other rows (BOOM's "50 % and the rest")
function M.sample_ids(n, key, ratio, seed, complement)
  local k = math.max(1, math.min(n, math.floor(ratio * n + 0.5)))
  local r = schedule.rng(seed ~ core.source.hash64(key))
  local idx = {}
  for i = 1, n do idx[i] = i end
  for i = 1, k do
    local j = i - 1 + r.int(n - i + 1)
    idx[i], idx[j] = idx[j], idx[i]
  end
  local out = {}
  if complement then
    for i = k + 1, n do out[#out + 1] = idx[i] end
  else
    for i = 1, k do out[i] = idx[i] end
  end
  table.sort(out)
  return out
end


local function is_dataset(x) return type(x) == "userdata" and tostring(x):match("^Dataset") ~= nil end

local function file_exists(p)
  local f = io.open(p, "r")
  if f then f:close() return true end
  return false
end

-- resolve a task's data -> Dataset, manifest entry | nil, msg, code
local function resolve_data(st, t, i)
  local d = t.data
  if is_dataset(d) then
    if d:n() == 0 then return nil, ("train: task %d: the dataset is empty"):format(i), "EINVAL" end
    return d, { task = i, source = "handle", kind = d:kind(), rows = d:n(), hash = d:hash() }
  end
  if type(d) ~= "string" then return nil, ("train: task %d: 'data' must be a dataset name, path or Dataset"):format(i), "EINVAL" end
  local reg = registry.get(st, d)
  if reg then
    local role = t.role or reg.train or "train"
    local f = reg.files and reg.files[role]
    if not f then return nil, ("train: dataset '%s' has no '%s' file to train on"):format(d, role), "ENOTFOUND" end
    local path = registry.resolve(reg.dir, f.path)
    local ds, msg, code = core.dataset.load(t.kind or f.kind, path)
    if not ds then return nil, msg, code end
    if ds:n() == 0 then return nil, ("train: task %d: dataset '%s' is empty"):format(i, d), "EINVAL" end
    return ds, { task = i, source = d, role = role, path = registry.relative(st:dir(), path), kind = ds:kind(), rows = ds:n(), hash = ds:hash() }
  end
  if file_exists(d) then
    local kind = t.kind
    if not kind then
      kind = (d:match("%.txt$") or d:match("%.txt%.gz$")) and "text" or "pairs"
      if d:match("sts") then kind = "graded" end
    end
    local ds, msg, code = core.dataset.load(kind, d)
    if not ds then return nil, msg, code end
    if ds:n() == 0 then return nil, ("train: task %d: dataset '%s' is empty"):format(i, d), "EINVAL" end
    return ds, { task = i, source = "file", path = d, kind = ds:kind(), rows = ds:n(), hash = ds:hash() }
  end
  return nil, ("train: unknown dataset '%s' (not a file; datasets in %s: %s)"):format(d, st:dir(), registry.names_text(st)),
    "ENOTFOUND"
end

local function default_loss(kind)
  if kind == "graded" then return { kind = "cosent" } end
  if kind == "text" then return { kind = "mlm" } end
  return { kind = "infonce" }
end

-- does the loss (or the loss a wrapper applies per view) train on hard negatives?
local function wants_negatives(loss)
  if loss.kind == "mlm" then return false end
  local l = loss
  while type(l) == "table" do
    if l.hard_negatives == false then return false end
    l = l.inner
  end
  return true
end

-- k entries of list: a seeded draw without replacement; a list with no more: all of it, in
-- order, or with fill = "repeat" (CoDiEmb's and FlagEmbedding's data code) k drawn from the
-- list repeated ceil(k/m) times
local function pick(list, k, rng_of, fill)
  local m = #list
  if m < k and fill == "repeat" and m > 0 then
    local rep = {}
    for x = 1, math.ceil(k / m) * m do rep[x] = list[(x - 1) % m + 1] end
    list, m = rep, #rep
  end
  if m <= k then
    local out = {}
    for i = 1, m do out[i] = list[i] end
    return out
  end
  local r, idx = rng_of(), {}
  for i = 1, m do idx[i] = i end
  local out = {}
  for i = 1, k do
    local j = i - 1 + r.int(m - i + 1)
    idx[i], idx[j] = idx[j], idx[i]
    out[i] = list[idx[i]]
  end
  return out
end

-- the rows ids (drawn in `epoch` of task's iterator) of task's dataset as a batch with per-row
-- lists: a pairs row gives n_pos of its positives and n_neg of its hard negatives (a seeded draw
-- per (run seed, task, epoch, row) when it has more, all it has otherwise); pad_batch makes the
-- trainer's table from it
local function make_batch(task, ids, epoch, seed)
  local ds, loss = task.ds, task.loss
  local kind = ds:kind()
  if kind == "pairs" then
    if loss.kind == "mlm" then
      local t = {}
      for j, id in ipairs(ids) do t[j] = ds:row(id).query end
      return { texts = t }
    end
    local q, p, n = {}, {}, {}
    local want_neg = wants_negatives(loss)
    for j, id in ipairs(ids) do
      local r = ds:row(id)
      local g
      local function rng_of()
        g = g or schedule.rng(((seed * 1000003 + task.index) * 1000003 + epoch) * 1000003 + id)
        return g
      end
      q[j] = r.query
      p[j] = pick(r.pos, task.n_pos, rng_of, task.fill)
      n[j] = want_neg and pick(r.neg, task.n_neg, rng_of, task.fill) or {}
    end
    return { queries = q, positives = p, negatives = n }
  elseif kind == "graded" then
    local a, b, s = {}, {}, {}
    for j, id in ipairs(ids) do
      local r = ds:row(id)
      a[j], b[j], s[j] = r.sentence1, r.sentence2, r.score
    end
    return { sentence1 = a, sentence2 = b, scores = s }
  else
    local t = {}
    for j, id in ipairs(ids) do t[j] = ds:row(id).text end
    return { texts = t }
  end
end

-- the trainer's batch: every row's positives and negatives padded with false (a masked
-- candidate, loss.h) to the most any row of the batch has; one positive each: a plain list
local function pad_batch(b)
  if not b.positives then return b end
  local P, K = 0, 0
  for j = 1, #b.queries do
    P = math.max(P, #b.positives[j])
    K = math.max(K, #b.negatives[j])
  end
  local out = { queries = b.queries }
  local function padded(lists, w)
    local o = {}
    for j, l in ipairs(lists) do
      local r = {}
      for x = 1, w do r[x] = l[x] or false end
      o[j] = r
    end
    return o
  end
  if P == 1 then
    out.positives = {}
    for j, l in ipairs(b.positives) do out.positives[j] = l[1] end
  else
    out.positives = padded(b.positives, P)
  end
  if K > 0 then out.negatives = padded(b.negatives, K) end
  return out
end

-- one batch from several batches of the same shape (a mixed step): lists concatenated, every
-- row keeping its own positives and hard negatives
local function merge_batches(parts)
  if #parts == 1 then return parts[1] end
  local out = {}
  for _, b in ipairs(parts) do
    for k, list in pairs(b) do
      local o = out[k] or {}
      out[k] = o
      for _, v in ipairs(list) do o[#o + 1] = v end
    end
  end
  return out
end

local function same_value(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same_value(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- a mixed schedule (shuffled_batches{mixed=true}, also inside two_stage) is one loss over the
-- rows of every task (BOOM's mixed baseline): one data kind and one identical loss spec, or an
-- error at the recipe's line
local function check_mixed(s, tasks, level)
  if type(s) ~= "table" then return end
  if s.kind == "two_stage" then
    for _, st in ipairs { s.stage1, s.stage2 } do
      if type(st) == "table" and st.kind == nil then -- a group list: its stages
        for _, x in ipairs(st) do check_mixed(x, tasks, level + 1) end
      else
        check_mixed(st, tasks, level + 1)
      end
    end
  elseif s.kind == "shuffled_batches" and s.mixed then
    for i = 2, #tasks do
      local a, b = tasks[1], tasks[i]
      if a.loss.kind ~= b.loss.kind or a.ds:kind() ~= b.ds:kind() then
        error(("train: shuffled_batches{mixed=true} needs tasks of one loss kind: task 1 is %s (%s), task %d is %s (%s)")
          :format(a.loss.kind, a.ds:kind(), i, b.loss.kind, b.ds:kind()), level + 1)
      end
      if not same_value(a.loss, b.loss) then
        error(("train: shuffled_batches{mixed=true} is one loss over the rows of every task: task 1's loss (%s) and "
          .. "task %d's (%s) differ\nHINT: give every task the same loss (or run them as separate tasks of a "
          .. "homogeneous schedule)"):format(json.encode(a.loss), i, json.encode(b.loss)), level + 1)
      end
    end
  end
end

-- per-task iterator over dataset_batch_order permutations (drop_last)
local function next_ids(task, cur, bs, seed)
  local n = task.n
  if cur.pos + bs > n then
    cur.epoch = cur.epoch + 1
    cur.pos = 0
  end
  if not task.order or task.order_epoch ~= cur.epoch then
    task.order = core.raw_batch_order(n, seed + task.index * 7919, cur.epoch)
    task.order_epoch = cur.epoch
  end
  local ids = {}
  for j = 1, bs do ids[j] = task.order[cur.pos + j] end
  cur.pos = cur.pos + bs
  return ids
end

-- prepare tasks from the stored/given options -> tasks, manifest | nil, msg, code
local function prepare_tasks(st, list)
  local tasks, manifest = {}, {}
  for i, t in ipairs(list) do
    if type(t) ~= "table" then error(("train: tasks[%d] must be a table"):format(i), 3) end
    -- option typos raise here, at the recipe's line, not in the trainer (level 3: prepare_tasks'
    -- caller's caller = the recipe calling am.train / am.resume)
    core.check_options(("train: tasks[%d]"):format(i), t, task_spec, 3)
    if t.loss ~= nil then check_loss(t.loss, ("train: tasks[%d].loss"):format(i), 3) end
    local ds, info, code = resolve_data(st, t, i)
    if not ds then return nil, info, code end
    if t.sample ~= nil then
      local s = core.check_options(("train: tasks[%d].sample"):format(i), t.sample, sample_spec, 3)
      if not (type(s.ratio) == "number" and s.ratio > 0 and s.ratio <= 1) then
        error(("train: tasks[%d].sample.ratio must be in (0, 1]"):format(i), 3)
      end
      local ids = M.sample_ids(ds:n(), ds:hash(), s.ratio, s.seed or 1, s.complement)
      if #ids == 0 then
        return nil, ("train: task %d: the sample (ratio %g%s) of %d rows is empty"):format(i, s.ratio,
          s.complement and ", complement" or "", ds:n()), "EINVAL"
      end
      local sub, m2, c2 = ds:select(ids)
      if not sub then return nil, m2, c2 end
      info.sample = { ratio = s.ratio, seed = s.seed or 1, complement = s.complement or nil, of_rows = ds:n(),
        of_hash = ds:hash(), ids_hash = fnv64(table.concat(ids, ",")) }
      ds, info.rows, info.hash = sub, sub:n(), sub:hash()
    end
    local bs = math.tointeger(t.batch or 32)
    if not bs or bs < 1 then error(("train: tasks[%d].batch must be a positive integer"):format(i), 3) end
    if ds:n() == 0 then return nil, ("train: task %d: dataset '%s' is empty"):format(i, tostring(t.data)), "EINVAL" end
    if bs > ds:n() then
      return nil, ("train: task %d: batch %d larger than the dataset (%d rows)"):format(i, bs, ds:n()), "EINVAL"
    end
    local loss = t.loss or default_loss(ds:kind())
    if type(loss) ~= "table" or not loss.kind then error(("train: tasks[%d].loss must be an am.loss.* spec"):format(i), 3) end
    if ds:kind() == "graded" then -- before the run exists; the trainer checks it at every step too
      local l = loss
      while type(l) == "table" do
        if l.kind == "infonce" and l.threshold == nil then
          return nil, ("train: task %d: InfoNCE on graded pairs (sentence1, sentence2, score) would count every pair, "
            .. "whatever its score, as a positive\nHINT: use am.loss.cosent or am.loss.codiemb_sts for graded data, "
            .. "or am.loss.infonce{threshold = T} to take the pairs scored >= T as positives"):format(i), "EINVAL"
        end
        l = l.inner
      end
    end
    local n_pos, n_neg = t.n_pos or 1, t.n_neg or 1
    if n_pos < 1 then error(("train: tasks[%d].n_pos must be >= 1"):format(i), 3) end
    if n_neg < 0 then error(("train: tasks[%d].n_neg must be >= 0"):format(i), 3) end
    if ds:kind() == "graded" then loss = require("amalgam.preset")._with_score_range(loss, ds) end
    info.batch = bs
    info.loss = loss
    info.n_pos, info.n_neg, info.fill = t.n_pos, t.n_neg, t.fill
    manifest[i] = info
    tasks[i] = { index = i, ds = ds, n = ds:n(), batch = bs, loss = loss, n_pos = n_pos, n_neg = n_neg, fill = t.fill,
      label = t.name or (type(t.data) == "string" and t.data:match("([^/]+)$")) or ("task" .. i) }
    for j = 1, i - 1 do -- metrics and progress lines name tasks: two on one dataset need two names
      if tasks[j].label == tasks[i].label then tasks[i].label = tasks[i].label .. "#" .. i end
    end
    info.name = tasks[i].label
  end
  return tasks, manifest
end

local function sched_tasks(tasks, accum)
  local out = {}
  for i, t in ipairs(tasks) do out[i] = { n = t.n, batch = t.batch, accum = accum } end
  return out
end

M.fnv64, M.is_dataset, M.file_exists, M.wants_negatives = fnv64, is_dataset, file_exists, wants_negatives
M.make_batch, M.pad_batch, M.merge_batches = make_batch, pad_batch, merge_batches
M.check_mixed, M.next_ids = check_mixed, next_ids
M.prepare_tasks, M.sched_tasks = prepare_tasks, sched_tasks

return M
