-- amalgam/schedule.lua - multi-task schedules: which task, and how big a batch, at each step.
--
-- A schedule is a spec table made by one of the constructors below (or a plain function
-- `function(step, state) return task_index, batch_size end`). schedule.sequence(spec, tasks,
-- steps, seed) turns it into the full list { {task, batch}, ... } for steps 1..steps; it is a
-- pure function of its arguments (own splitmix64 PRNG), so a run replays exactly. A step is one
-- optimizer update of `accum` micro-batches of `batch` rows (one pass over a task = its
-- updates: floor(n / (batch·accum)), at least 1).
--   tasks: { {n = rows, batch = micro-batch size, accum = micro-batches per update (1)}, ... }
--
--   shuffled_batches{seed=}        every task's batches of one epoch (floor(n/batch) each),
--                                  shuffled together; the next epoch reshuffles (homogeneous
--                                  single-task batches).
--   shuffled_batches{mixed=true, batch=, seed=}  mixed batches: each step draws its `batch`
--                                  (default tasks[1].batch) examples from all tasks, each slot
--                                  task i with p_i ∝ n_i; the entry is {task with the most
--                                  examples, batch, mix = {count per task}}. The tasks must share
--                                  one loss kind (am.train checks it).
--   proportional{seed=, epochs=true}  example-proportional: sentence-transformers'
--                                  ProportionalBatchSampler, every batch of an epoch once (the
--                                  order of shuffled_batches); epochs=false: independent draws
--                                  per step, p_i ∝ n_i / (batch_i·accum) (no epoch guarantee)
--   round_robin{stop=false}        1, 2, ..., k, 1, 2, ...; a small task is reused (next epoch)
--                                  while the others go on; stop=true: more steps than k × the
--                                  smallest task's updates is an error (ST's RoundRobinBatchSampler)
--   temperature{T=, seed=}         independent draws: examples of task i ∝ n_i^(1/T) (a step
--                                  p_i ∝ (n_i/n_max)^(1/T) / (batch_i·accum)); T = 1 proportional,
--                                  T -> inf uniform over examples, T -> 0 the largest task
--   sequential{order=, steps=}     entries of `order` (default 1..k) one after another; an entry
--                                  is a task or a group {i, j, ...} (its batches shuffled together);
--                                  steps[j] for the j-th (must sum to the run's steps; default:
--                                  in proportion to the entries' one-pass updates, so steps = their
--                                  sum is one pass over each)
--   two_stage{stage1=, stage2=, split=}  stage1 for the first split·steps steps, stage2 for the
--                                  rest; each a schedule spec, a function or a group {i, j, ...}
--                                  (split default: the groups' one-pass shares if both are
--                                  groups, else 0.5)
--   codiemb{batch_sizes=, seed=}   CoDiEmb's dynamic single-task sampler: shuffled single-task
--                                  batches with a batch size per task (batch_sizes[i] overrides
--                                  tasks[i].batch; larger than the task is an error); the loss is
--                                  routed per task by the trainer
local M = {}

local MASK = 0xFFFFFFFFFFFFFFFF

-- splitmix64 PRNG over Lua 5.4 integers
local function rng(seed)
  if seed ~= nil and type(seed) ~= "number" then
    error(("bad argument #1 to 'rng' (number expected, got %s)"):format(type(seed)), 2)
  end
  local s = math.tointeger(seed) or 0
  local r = {}
  function r.next()
    s = s + 0x9E3779B97F4A7C15
    local z = s
    z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
    z = (z ~ (z >> 27)) * 0x94D049BB133111EB
    return (z ~ (z >> 31)) & MASK
  end
  function r.uniform() -- [0, 1)
    return ((r.next() >> 11) * (1.0 / 9007199254740992.0))
  end
  function r.int(n) -- 1..n
    return math.floor(r.uniform() * n) + 1
  end
  return r
end
M.rng = rng

local function shuffle(t, r)
  for i = #t, 2, -1 do
    local j = r.int(i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

local function categorical(weights, r)
  local total = 0
  for _, w in ipairs(weights) do total = total + w end
  local u = r.uniform() * total
  local acc = 0
  for i, w in ipairs(weights) do
    acc = acc + w
    if u < acc then return i end
  end
  return #weights
end

local function spec(kind, opts, allowed)
  opts = opts or {}
  if type(opts) ~= "table" then error(("schedule.%s: options must be a table"):format(kind), 3) end
  for k in pairs(opts) do
    if not allowed[k] then error(("schedule.%s: unknown option '%s'"):format(kind, tostring(k)), 3) end
  end
  local s = { kind = kind }
  for k, v in pairs(opts) do s[k] = v end
  return s
end

function M.shuffled_batches(o)
  local s = spec("shuffled_batches", o, { seed = true, mixed = true, batch = true })
  if s.mixed ~= nil and type(s.mixed) ~= "boolean" then error("schedule.shuffled_batches: mixed must be a boolean", 2) end
  if s.batch ~= nil and (math.type(s.batch) ~= "integer" or s.batch < 1) then
    error("schedule.shuffled_batches: batch must be a positive integer", 2)
  end
  if s.batch and not s.mixed then error("schedule.shuffled_batches: batch= is for mixed=true", 2) end
  return s
end
function M.proportional(o)
  local s = spec("proportional", o, { seed = true, epochs = true })
  if s.epochs ~= nil and type(s.epochs) ~= "boolean" then error("schedule.proportional: epochs must be a boolean", 2) end
  return s
end
function M.round_robin(o)
  local s = spec("round_robin", o, { stop = true })
  if s.stop ~= nil and type(s.stop) ~= "boolean" then error("schedule.round_robin: stop must be a boolean", 2) end
  return s
end
function M.temperature(o)
  local s = spec("temperature", o, { T = true, seed = true })
  if s.T ~= nil and (type(s.T) ~= "number" or s.T <= 0) then error("schedule.temperature: T must be > 0", 2) end
  return s
end
-- a group: a non-empty list of task indices (a stage / an order entry of several tasks)
local function is_group(x) return type(x) == "table" and x.kind == nil and #x > 0 end
local function check_group(g, what)
  for _, i in ipairs(g) do
    if math.type(i) ~= "integer" or i < 1 then error(("schedule.%s: a group holds task indices (got %s)"):format(what, tostring(i)), 3) end
  end
end

function M.sequential(o)
  local s = spec("sequential", o, { order = true, steps = true })
  if s.order ~= nil and type(s.order) ~= "table" then error("schedule.sequential: order must be a list", 2) end
  for _, e in ipairs(s.order or {}) do
    if type(e) == "table" then check_group(e, "sequential") elseif math.type(e) ~= "integer" or e < 1 then
      error(("schedule.sequential: order holds task indices or groups of them (got %s)"):format(tostring(e)), 2)
    end
  end
  if s.steps ~= nil then
    if type(s.steps) ~= "table" then error("schedule.sequential: steps must be a list of step counts", 2) end
    for _, n in ipairs(s.steps) do
      if math.type(n) ~= "integer" or n < 0 then error("schedule.sequential: steps must be integers >= 0", 2) end
    end
  end
  return s
end
function M.two_stage(o)
  local s = spec("two_stage", o, { stage1 = true, stage2 = true, split = true })
  if not s.stage1 or not s.stage2 then error("schedule.two_stage: stage1 and stage2 are required", 2) end
  for _, k in ipairs { "stage1", "stage2" } do
    local st = s[k]
    if is_group(st) then check_group(st, "two_stage")
    elseif type(st) ~= "function" and (type(st) ~= "table" or type(st.kind) ~= "string") then
      error(("schedule.two_stage: %s must be a schedule spec, a function or a list of task indices"):format(k), 2)
    end
  end
  if s.split ~= nil and (type(s.split) ~= "number" or s.split < 0 or s.split > 1) then
    error("schedule.two_stage: split must be a number in [0, 1]", 2)
  end
  return s
end
function M.codiemb(o) return spec("codiemb", o, { batch_sizes = true, seed = true }) end

local function batch_of(tasks, i, s)
  return (s.batch_sizes and s.batch_sizes[i]) or tasks[i].batch
end

-- updates of task i in one pass over it (batch·accum rows each, the remainder dropped; >= 1)
local function updates(tasks, i, s)
  return math.max(1, tasks[i].n // (batch_of(tasks, i, s or {}) * (tasks[i].accum or 1)))
end

-- `count` task indices over the tasks of group g: one-pass epochs of their updates shuffled
-- together, the next epoch reshuffled (shuffled_batches restricted to g)
local function group_seq(tasks, g, count, r, what)
  local out = {}
  for _, i in ipairs(g) do
    if i > #tasks then error(("schedule.%s: task %d of a group does not exist (%d tasks)"):format(what, i, #tasks), 3) end
  end
  while #out < count do
    local epoch = {}
    for _, i in ipairs(g) do for _ = 1, updates(tasks, i) do epoch[#epoch + 1] = i end end
    shuffle(epoch, r)
    for _, i in ipairs(epoch) do
      if #out >= count then break end
      out[#out + 1] = i
    end
  end
  return out
end

-- split total into parts proportional to sizes (largest remainder; ties to the earlier part)
local function apportion(total, sizes)
  local sum, out, rem = 0, {}, {}
  for _, x in ipairs(sizes) do sum = sum + x end
  local given = 0
  for j, x in ipairs(sizes) do
    local q = total * x / sum
    out[j] = math.floor(q)
    rem[j] = q - out[j]
    given = given + out[j]
  end
  local idx = {}
  for j = 1, #sizes do idx[j] = j end
  table.sort(idx, function(a, b) if rem[a] ~= rem[b] then return rem[a] > rem[b] end return a < b end)
  for x = 1, total - given do out[idx[x]] = out[idx[x]] + 1 end
  return out
end

local function group_size(tasks, e)
  if type(e) ~= "table" then return updates(tasks, e) end
  local u = 0
  for _, i in ipairs(e) do u = u + updates(tasks, i) end
  return u
end

local function check_int(v, n, min, optional)
  if (v == nil and optional) or (math.type(v) == "integer" and v >= min) then return end
  error(("bad argument #%d to 'sequence' (integer%s expected, got %s)"):format(n,
    min > math.mininteger and (" >= " .. min) or "", math.type(v) == "integer" and tostring(v) or type(v)), 3)
end

-- sequence(spec, tasks, steps, seed [, first]) -> { {task, batch}, ... } for steps first..first+steps-1
function M.sequence(s, tasks, steps, seed, first)
  if type(tasks) ~= "table" then
    error(("bad argument #2 to 'sequence' (list of {n=, batch=} expected, got %s)"):format(type(tasks)), 2)
  end
  for i, t in ipairs(tasks) do
    if type(t) ~= "table" or math.type(t.n) ~= "integer" or math.type(t.batch) ~= "integer" or t.batch < 1
      or (t.accum ~= nil and (math.type(t.accum) ~= "integer" or t.accum < 1)) then
      error(("bad argument #2 to 'sequence' (task %d must be {n = integer, batch = integer >= 1 [, accum = integer >= 1]})")
        :format(i), 2)
    end
  end
  check_int(steps, 3, math.mininteger) -- <= 0: no steps
  if seed ~= nil and type(seed) ~= "number" then
    error(("bad argument #4 to 'sequence' (number expected, got %s)"):format(type(seed)), 2)
  end
  check_int(first, 5, 1, true)
  first = first or 1
  local k = #tasks
  local out = {}
  if k == 0 then error("schedule: no tasks", 2) end
  if type(s) == "function" then
    local state = { tasks = tasks, seed = seed }
    for step = first, first + steps - 1 do
      local t, b = s(step, state)
      if math.type(t) ~= "integer" or t < 1 or t > k then
        error(("schedule function: step %d returned task %s (1..%d expected)"):format(step, tostring(t), k), 2)
      end
      out[#out + 1] = { t, math.tointeger(b) or tasks[t].batch }
    end
    return out
  end
  if type(s) ~= "table" or not s.kind then error("schedule: a schedule spec or a function expected", 2) end
  local r = rng((s.seed or seed or 1) * 1000003 + 17)
  local kind = s.kind
  if kind == "shuffled_batches" and s.mixed then
    local B, N = s.batch or tasks[1].batch, 0
    for i = 1, k do N = N + tasks[i].n end
    if B > N then error(("schedule.shuffled_batches: mixed batch %d larger than all tasks' rows (%d)"):format(B, N), 2) end
    local A = tasks[1].accum or 1
    for _ = 1, steps do
      local mixes = {}
      for a = 1, A do
        local mix, w = {}, {}
        for i = 1, k do mix[i], w[i] = 0, tasks[i].n end
        for _ = 1, B do
          local i = categorical(w, r)
          mix[i] = mix[i] + 1
          if mix[i] == tasks[i].n then w[i] = 0 end -- a task never gives more rows than it has
        end
        mixes[a] = mix
      end
      local mix = mixes[1]
      local top = 1
      for i = 2, k do if mix[i] > mix[top] then top = i end end
      out[#out + 1] = { top, B, mix = mix, mixes = A > 1 and mixes or nil }
    end
  elseif kind == "shuffled_batches" or kind == "codiemb" or (kind == "proportional" and s.epochs ~= false) then
    if kind == "codiemb" then -- its sampler drops the remainder: a batch beyond the task has no batch
      for i = 1, k do
        local b = batch_of(tasks, i, s) * (tasks[i].accum or 1)
        if b > tasks[i].n then
          error(("schedule.codiemb: task %d's batch %d%s is larger than the task (%d rows)"):format(i, batch_of(tasks, i, s),
            (tasks[i].accum or 1) > 1 and (" x accumulation %d"):format(tasks[i].accum) or "", tasks[i].n), 2)
        end
      end
    end
    while #out < steps do
      local epoch = {}
      for i = 1, k do
        for _ = 1, updates(tasks, i, s) do epoch[#epoch + 1] = i end
      end
      shuffle(epoch, r)
      for _, i in ipairs(epoch) do
        if #out >= steps then break end
        out[#out + 1] = { i, batch_of(tasks, i, s) }
      end
    end
  elseif kind == "proportional" or kind == "temperature" then
    -- independent draws per step: examples of task i ∝ n_i^(1/T), so a step is task i with
    -- p ∝ n_i^(1/T) / (rows of its update); n relative to the largest task (no overflow for small T)
    local T = kind == "temperature" and (s.T or 1) or 1
    local w, nmax = {}, 0
    for i = 1, k do nmax = math.max(nmax, tasks[i].n) end
    for i = 1, k do w[i] = (tasks[i].n / nmax) ^ (1 / T) / (tasks[i].batch * (tasks[i].accum or 1)) end
    for _ = 1, steps do
      local i = categorical(w, r)
      out[#out + 1] = { i, tasks[i].batch }
    end
  elseif kind == "round_robin" then
    if s.stop then -- sentence-transformers' RoundRobinBatchSampler: done when the smallest task is
      local m = math.huge
      for i = 1, k do m = math.min(m, updates(tasks, i)) end
      if first + steps - 1 > m * k then
        error(("schedule.round_robin{stop=true}: %d steps, but the smallest task is exhausted after %d rounds (%d steps)")
          :format(first + steps - 1, m, m * k), 2)
      end
    end
    for step = first, first + steps - 1 do
      local i = (step - 1) % k + 1
      out[#out + 1] = { i, tasks[i].batch }
    end
    return out
  elseif kind == "sequential" then
    local order = s.order or {}
    if #order == 0 then for i = 1, k do order[i] = i end end
    local total = first + steps - 1
    for _, e in ipairs(type(order) == "table" and order or {}) do
      for _, i in ipairs(type(e) == "table" and e or { e }) do
        if i < 1 or i > k then error(("schedule.sequential: order has task %s (1..%d)"):format(tostring(i), k), 2) end
      end
    end
    local per
    if s.steps then
      local sum = 0
      for _, n in ipairs(s.steps) do sum = sum + n end
      if #s.steps ~= #order or sum ~= total then
        error(("schedule.sequential: steps (%d entries summing to %d) must give each of the %d entries of order its "
          .. "steps, summing to the run's %d"):format(#s.steps, sum, #order, total), 2)
      end
      per = s.steps
    else -- steps in proportion to each entry's one-pass updates: steps = their sum is one pass each
      local sizes = {}
      for j, e in ipairs(order) do sizes[j] = group_size(tasks, e) end
      per = apportion(total, sizes)
    end
    local seq = {}
    for j, e in ipairs(order) do
      if type(e) == "table" then
        for _, i in ipairs(group_seq(tasks, e, per[j], r, "sequential")) do seq[#seq + 1] = i end
      else
        for _ = 1, per[j] do seq[#seq + 1] = e end
      end
    end
    for step = first, total do out[#out + 1] = { seq[step], tasks[seq[step]].batch } end
    return out
  elseif kind == "two_stage" then
    local total = first + steps - 1
    for _, st in ipairs { s.stage1, s.stage2 } do
      if is_group(st) then
        for _, i in ipairs(st) do
          if i > k then error(("schedule.two_stage: task %d of a group does not exist (%d tasks)"):format(i, k), 2) end
        end
      end
    end
    local split = s.split
    if split == nil and is_group(s.stage1) and is_group(s.stage2) then -- one pass over each group's share
      local a, b = group_size(tasks, s.stage1), group_size(tasks, s.stage2)
      split = a / (a + b)
    end
    local n1 = math.floor((split or 0.5) * total + 0.5)
    local function stage(st, n, sd)
      if is_group(st) then
        local out2 = {}
        for j, i in ipairs(group_seq(tasks, st, n, rng((sd or 1) * 1000003 + 29), "two_stage")) do
          out2[j] = { i, tasks[i].batch }
        end
        return out2
      end
      return M.sequence(st, tasks, n, sd)
    end
    local a = stage(s.stage1, n1, seed)
    local b = stage(s.stage2, total - n1, seed and seed + 1)
    for step = first, total do out[#out + 1] = step <= n1 and a[step] or b[step - n1] end
    return out
  else
    error("schedule: unknown kind '" .. tostring(kind) .. "'", 2)
  end
  -- seeded kinds are generated from step 1; cut to the window
  if first > 1 then
    local all = M.sequence(s, tasks, first + steps - 1, seed, 1)
    out = {}
    for step = first, first + steps - 1 do out[#out + 1] = all[step] end
  end
  return out
end

return M
