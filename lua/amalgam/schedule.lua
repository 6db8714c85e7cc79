-- amalgam/schedule.lua - multi-task schedules: which task, and how big a batch, at each step.
--
-- A schedule is a spec table made by one of the constructors below (or a plain function
-- `function(step, state) return task_index, batch_size end`). schedule.sequence(spec, tasks,
-- steps, seed) turns it into the full list { {task, batch}, ... } for steps 1..steps; it is a
-- pure function of its arguments (own splitmix64 PRNG), so a run replays exactly.
--   tasks: { {n = rows, batch = batch size}, ... }
--
--   shuffled_batches{seed=}        every task's batches of one epoch (floor(n/batch) each),
--                                  shuffled together; the next epoch reshuffles (homogeneous
--                                  single-task batches).
--   shuffled_batches{mixed=true, batch=, seed=}  mixed batches: each step draws its `batch`
--                                  (default tasks[1].batch) examples from all tasks, each slot
--                                  task i with p_i ∝ n_i; the entry is {task with the most
--                                  examples, batch, mix = {count per task}}. The tasks must share
--                                  one loss kind (am.train checks it).
--   proportional{seed=}            task i drawn with p_i ∝ n_i at every step
--   round_robin{}                  1, 2, ..., k, 1, 2, ...
--   temperature{T=, seed=}         p_i ∝ n_i^(1/T)  (T = 1 proportional, T -> inf uniform)
--   sequential{order=, steps=}     tasks one after another in `order` (default 1..k); steps[j]
--                                  steps for the j-th (default: an equal split, the rest on the last)
--   two_stage{stage1=, stage2=, split=0.5}  stage1 schedule for the first split·steps steps,
--                                  stage2 for the rest (each a schedule spec or function)
--   codiemb{batch_sizes=, seed=}   CoDiEmb's dynamic single-task sampler: shuffled single-task
--                                  batches with a batch size per task (batch_sizes[i] overrides
--                                  tasks[i].batch); the loss is routed per task by the trainer
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
function M.proportional(o) return spec("proportional", o, { seed = true }) end
function M.round_robin(o) return spec("round_robin", o, {}) end
function M.temperature(o)
  local s = spec("temperature", o, { T = true, seed = true })
  if s.T ~= nil and (type(s.T) ~= "number" or s.T <= 0) then error("schedule.temperature: T must be > 0", 2) end
  return s
end
function M.sequential(o) return spec("sequential", o, { order = true, steps = true }) end
function M.two_stage(o)
  local s = spec("two_stage", o, { stage1 = true, stage2 = true, split = true })
  if not s.stage1 or not s.stage2 then error("schedule.two_stage: stage1 and stage2 are required", 2) end
  return s
end
function M.codiemb(o) return spec("codiemb", o, { batch_sizes = true, seed = true }) end

local function batch_of(tasks, i, s)
  return (s.batch_sizes and s.batch_sizes[i]) or tasks[i].batch
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
  elseif kind == "shuffled_batches" or kind == "codiemb" then
    while #out < steps do
      local epoch = {}
      for i = 1, k do
        local b = batch_of(tasks, i, s) * (tasks[i].accum or 1) -- rows of one update
        for _ = 1, math.max(1, tasks[i].n // b) do epoch[#epoch + 1] = i end
      end
      shuffle(epoch, r)
      for _, i in ipairs(epoch) do
        if #out >= steps then break end
        out[#out + 1] = { i, batch_of(tasks, i, s) }
      end
    end
  elseif kind == "proportional" or kind == "temperature" then
    local T = kind == "temperature" and (s.T or 1) or 1
    local w = {}
    for i = 1, k do w[i] = tasks[i].n ^ (1 / T) end
    for _ = 1, steps do
      local i = categorical(w, r)
      out[#out + 1] = { i, tasks[i].batch }
    end
  elseif kind == "round_robin" then
    for step = first, first + steps - 1 do
      local i = (step - 1) % k + 1
      out[#out + 1] = { i, tasks[i].batch }
    end
    return out
  elseif kind == "sequential" then
    local order = s.order or {}
    if #order == 0 then for i = 1, k do order[i] = i end end
    local per = {}
    local total = first + steps - 1
    for j = 1, #order do
      per[j] = (s.steps and s.steps[j]) or (j < #order and total // #order or total - (total // #order) * (#order - 1))
    end
    local seq = {}
    for j, i in ipairs(order) do
      if i < 1 or i > k then error(("schedule.sequential: order has task %s (1..%d)"):format(tostring(i), k), 2) end
      for _ = 1, per[j] do seq[#seq + 1] = i end
    end
    while #seq < total do seq[#seq + 1] = order[#order] end
    for step = first, total do out[#out + 1] = { seq[step], tasks[seq[step]].batch } end
    return out
  elseif kind == "two_stage" then
    local total = first + steps - 1
    local n1 = math.floor((s.split or 0.5) * total + 0.5)
    local a = M.sequence(s.stage1, tasks, n1, seed)
    local b = M.sequence(s.stage2, tasks, total - n1, seed and seed + 1)
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
