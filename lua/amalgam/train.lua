-- amalgam/train.lua - multi-task training runs on top of the C trainer (src/lua/l_train.c).
--
--   am.train{ name=, init=Model|name, tasks={ {data=name|path|Dataset, loss=am.loss.infonce{...},
--             batch=32, n_pos=1, n_neg=1, fill="pad", kind=, role=, name=, sample={ratio=, seed=, complement=}}, ... },
--             schedule=am.schedule.X{...}|function,
--             steps=, lr=, warmup=, lr_schedule=, weight_decay=, clip=, accumulation=, seed=,
--             lora=, max_len=, dropout=, checkpoint_every=, metrics_every=, on_step=function(s),
--             progress=true, store= }
--     -> run {id=, model=Model (final checkpoint), task_vector=id, status=, losses={...}}
--        | nil, msg, code for expected failures (unknown dataset/model, batch > dataset, ...)
--   am.resume(run_id [, {steps=, on_step=, progress=}]) -> run | nil, msg, code
--   am.runs([store]) -> { run records (decoded JSON), ... }; am.run_info(id [, store]) -> record
--   am.run_metrics(id [, store | {store=, after=, last=}]) -> { {step=, ...}, ... }
--   (run ids may be unique prefixes)
--   (am.loss.* in lua/amalgam/loss.lua; datasets, sampling and batches in train_data.lua; am.runs,
--   am.run_info, am.run_metrics in runs.lua)
--
-- The store keeps runs through the C run API (src/store/store_runs.h; keys and the record
-- schema in src/store/store_keys.h): the run record, the trainer state and iterator cursors of
-- the last checkpoint, and one metrics row per step {step, task (its name), loss, terms, lr, grad_norm,
-- tokens, sequences, tokens_per_s, ids (1-based row ids of the update's micro-batches; a mixed step:
-- task "mixed", ids { {task=, ids=}, ... }, rows {[task] = n})}; a step is one optimizer update;
-- rows are written every metrics_every steps in one transaction.
local core = require "amalgam.core"
local schedule = require "amalgam.schedule"
local json = core.json
local loss = require "amalgam.loss"
local data = require "amalgam.train_data"
local runs = require "amalgam.runs"
local fnv64, is_dataset, make_batch, pad_batch = data.fnv64, data.is_dataset, data.make_batch, data.pad_batch
local merge_batches, check_mixed, next_ids = data.merge_batches, data.check_mixed, data.next_ids
local prepare_tasks, sched_tasks, file_exists = data.prepare_tasks, data.sched_tasks, data.file_exists

local M = {}
-- the module's public surface as before the split (init.lua, preset.lua, tests require these)
M.loss, M.check_loss, M.sample_ids = loss.loss, loss.check_loss, data.sample_ids
M.runs, M.run_info, M.run_metrics = runs.runs, runs.run_info, runs.run_metrics

local lora_spec = { rank = "integer", alpha = "number", dropout = "number", targets = "table" }

local function pid()
  local f = io.open("/proc/self/stat")
  if not f then return 0 end
  local n = f:read("n")
  f:close()
  return n or 0
end

local function now() return os.date("!%Y-%m-%dT%H:%M:%SZ") end

local function fmt_time(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%ds"):format(s)
end

local spec_train = {
  name = "string", init = "Model|string", tasks = "table", schedule = "table|function", steps = "integer",
  lr = "number", warmup = "integer", lr_schedule = { "linear", "cosine", "constant" }, weight_decay = "number",
  clip = "number", accumulation = "integer", seed = "integer", lora = "table", max_len = "integer",
  dropout = "boolean", checkpoint_every = "integer", metrics_every = "integer", on_step = "function",
  progress = "boolean", store = "Store", train_base = "boolean", stop_after = "integer", pooling = { "mean", "cls" },
  freeze = "table", keep_state = "boolean",
}

-- ------------------------------------------------------------------ the loop

-- run the steps of a prepared run `R` (fresh or resumed); returns R
local function loop(R)
  local st, tr, tasks, rec = R.store, R.trainer, R.tasks, R.rec
  local steps = rec.steps
  local accum = (rec.trainer and rec.trainer.accumulation) or 1
  local seq = schedule.sequence(R.schedule, R.sched_tasks, steps - rec.step, rec.seed, rec.step + 1)
  local pending = {}
  local clock = core.source.now -- wall time: os.clock() is CPU time, summed over the threads
  local t0 = clock()
  local tty = core.source.isatty(2)
  local next_line = 0 -- not a terminal: one plain line per ~5 % of the steps instead of \r redraws
  local wall0 = os.time()
  local tokens_total = 0
  local last = {}
  local every = R.metrics_every
  local progress = R.progress

  local function flush()
    if #pending > 0 then
      assert(core.raw_run_write(st, rec.id, { metrics = pending }))
      pending = {}
    end
  end
  local function put_rec() assert(core.raw_run_write(st, rec.id, { record = json.encode(rec) })) end

  local function checkpoint(final)
    local label = final and rec.name or (rec.name .. "@" .. rec.step)
    local ck, tv = tr:save(final and rec.name or nil, st, json.encode { run = rec.id, step = rec.step })
    if not ck then error("train: saving the checkpoint failed: " .. tostring(tv), 0) end
    rec.models.checkpoints[#rec.models.checkpoints + 1] = { step = rec.step, id = ck, label = label }
    rec.models.last = ck
    if final then rec.models.final, rec.models.task_vector = ck, tv end
    local cursors = { step = rec.step, tasks = {} }
    for i, c in ipairs(R.cursors) do cursors.tasks[i] = { epoch = c.epoch, pos = c.pos } end
    local w = { metrics = pending, record = json.encode(rec) }
    if final and not rec.keep_state then
      -- a finished run drops its trainer state (weights + AdamW moments, 3-4x the model): only a
      -- resume reads it, and a done run resumes (to extend it) only with keep_state = true
      w.drop_state = true
    else
      w.state, w.cursors = tr:state(), json.encode(cursors)
    end
    -- state, cursors, pending metrics and the record in one transaction
    assert(core.raw_run_write(st, rec.id, w))
    pending = {}
    return ck, tv
  end
  R.checkpoint = checkpoint

  local function body()
    for k, pair in ipairs(seq) do
      -- a signal during the step and its bookkeeping is raised after them: the stored state,
      -- cursors and step count always agree (resume is exact)
      core.raw_defer_interrupts(true)
      local ti, bs = pair[1], pair[2]
      local task = tasks[ti]
      local save_cur = {}
      for i, c in ipairs(R.cursors) do save_cur[i] = { epoch = c.epoch, pos = c.pos } end
      -- one step = one optimizer update = `accum` micro-batches, all of task ti (a mixed step:
      -- accum mixed draws, one loss); the update's loss and terms are the micro-batches' mean
      local ids, rows = {}, nil
      local c0 = clock()
      local s, loss_sum, tok, seqs, terms, acc_hits, acc_n = nil, 0, 0, 0, {}, 0, 0
      for a = 1, accum do
        local batch
        if pair.mix then -- mix[i] rows of task i in one batch, each row with its own candidates
          local mix = pair.mixes and pair.mixes[a] or pair.mix
          local parts = {}
          rows = rows or {}
          for i, c in ipairs(mix) do
            if c > 0 then
              local cur = R.cursors[i]
              local pi = next_ids(tasks[i], cur, c, rec.seed)
              parts[#parts + 1] = make_batch(tasks[i], pi, cur.epoch, rec.seed)
              ids[#ids + 1] = { task = tasks[i].label, ids = pi }
              rows[tasks[i].label] = (rows[tasks[i].label] or 0) + c
            end
          end
          batch = pad_batch(merge_batches(parts))
        else
          local cur = R.cursors[ti]
          local mi = next_ids(task, cur, bs, rec.seed)
          batch = pad_batch(make_batch(task, mi, cur.epoch, rec.seed))
          for _, id in ipairs(mi) do ids[#ids + 1] = id end
        end
        local msg
        s, msg = tr:step(batch, task.loss)
        if not s then
          for i, c in ipairs(save_cur) do R.cursors[i].epoch, R.cursors[i].pos = c.epoch, c.pos end
          if tostring(msg):match("^train step %d+: non%-finite") then -- trainer_step's message (trainer.c)
            R.nan = ("step %d: %s"):format(rec.step + 1, (tostring(msg):gsub("^train step %d+: ", "")))
            return
          end
          error(("train: task %d (%s) step %d: %s"):format(ti, pair.mix and "mixed" or task.label, rec.step + 1,
            tostring(msg)), 0)
        end
        if s.loss ~= s.loss or s.loss == math.huge or s.loss == -math.huge then
          R.nan = ("step %d: loss is %s"):format(rec.step + 1, tostring(s.loss))
          return
        end
        loss_sum, tok, seqs = loss_sum + s.loss, tok + s.tokens, seqs + s.sequences
        for name, v in pairs(s.terms) do terms[name] = (terms[name] or 0) + v / accum end
        if s.mlm_accuracy then acc_hits, acc_n = acc_hits + s.mlm_accuracy, acc_n + 1 end
      end
      assert(s.updated, "train: the micro-batches of a step did not end in an update")
      s.loss, s.tokens, s.terms = loss_sum / accum, tok, terms
      rec.step = rec.step + 1
      tokens_total = tokens_total + s.tokens
      local dt = math.max(clock() - c0, 1e-9)
      local key = pair.mix and 0 or ti
      last[key] = s.loss
      R.losses[#R.losses + 1] = s.loss
      local m = { step = rec.step, task = pair.mix and "mixed" or task.label, loss = s.loss, terms = s.terms, lr = s.lr,
        grad_norm = s.grad_norm, tokens = s.tokens, sequences = seqs, tokens_per_s = s.tokens / dt, ids = ids,
        rows = rows } -- mixed: ids = { {task=, ids=}, ... }, rows = { [task] = rows in the step }
      if acc_n > 0 then m.mlm_accuracy = acc_hits / acc_n end
      pending[#pending + 1] = rec.step
      pending[#pending + 1] = json.encode(m)
      if #pending >= 2 * every then flush() end
      core.raw_defer_interrupts(false)
      if R.on_step then R.on_step(m) end
      if progress and (tty or k >= next_line or k == #seq) then
        if not tty then next_line = k + math.max(1, #seq // 20) end
        local el = clock() - t0
        local eta = el / k * (#seq - k)
        local parts = {}
        if last[0] then parts[1] = ("mixed %.4f"):format(last[0]) end
        for i = 1, #tasks do
          if last[i] then parts[#parts + 1] = ("%s %.4f"):format(tasks[i].label, last[i]) end
        end
        io.stderr:write(((tty and "\r" or "") .. "[%s] step %d/%d  %s  lr %.2e  %.0f tok/s  ETA %s" .. (tty and "   " or "\n"))
          :format(rec.name, rec.step, steps, table.concat(parts, "  "), s.lr, tokens_total / math.max(el, 1e-9), fmt_time(eta)))
      end
      if R.stop_after and rec.step >= R.stop_after and rec.step < steps then
        R.stopped = true
        return
      end
      if R.checkpoint_every > 0 and rec.step % R.checkpoint_every == 0 and rec.step < steps then checkpoint(false) end
    end
  end

  rec.status = "running"
  rec.pid = pid()
  put_rec()
  local ok, err, sig = core.raw_pcall_interruptible(body)
  core.raw_defer_interrupts(false)
  if progress and tty then io.stderr:write("\n") end
  if ok and R.stopped then
    rec.status = "stopped"
    rec["end"] = now()
    checkpoint(false)
    R.model = st:model(rec.models.last)
  elseif ok and not R.nan then
    rec.status = "done"
    rec["end"] = now()
    local ck = checkpoint(true)
    R.model = st:model(ck)
  elseif R.nan then
    rec.status = "failed"
    -- rec.step is the last step with a finite loss; its update was never checked by a forward pass,
    -- so the last good checkpoint is the newest one saved before it
    local good
    for _, c in ipairs(rec.models.checkpoints) do if c.step < rec.step then good = c end end
    rec.models.good = good and good.id or nil
    local what, hint = R.nan:match("^(.-)(\nHINT:.*)$")
    rec.error = "non-finite loss at " .. (what or R.nan) .. (good and ("; the last good checkpoint (step %d) is kept: %s")
      :format(good.step, good.id) or "; no checkpoint before it: the last good weights are the initial model") .. (hint or "")
    rec["end"] = now()
    flush()
    put_rec()
    io.stderr:write("amalgam: train: " .. rec.error .. "\n")
    if good then R.model = st:model(good.id) end
    return nil, rec.error, "EFORMAT"
  elseif sig then
    rec.status = "stopped"
    rec["end"] = now()
    checkpoint(false)
    -- re-raise with one line for the user (the host prints it without a traceback, exits 130 / 143)
    core.raw_interrupt(sig, ("interrupted at step %d/%d of run %s; resume with: amalgam resume %s")
      :format(rec.step, steps, rec.id, rec.id))
    return R
  else
    rec.status = "failed"
    rec.error = tostring(err)
    rec["end"] = now()
    flush()
    put_rec()
    error(err, 0)
  end
  R.id = rec.id
  R.status = rec.status
  R.task_vector = rec.models.task_vector
  wall0 = os.time() - wall0
  R.seconds = wall0
  return R
end

-- up to `max` texts spread evenly over the MLM tasks' datasets: the token prior of a fresh MLM head
local function mlm_prior_texts(tasks, max)
  local out, mlm = {}, {}
  for _, t in ipairs(tasks) do if t.loss.kind == "mlm" then mlm[#mlm + 1] = t end end
  for _, t in ipairs(mlm) do
    local n = t.ds:n()
    local k = math.min(n, max // #mlm)
    for j = 1, k do
      local r = t.ds:row((j - 1) * n // k + 1)
      out[#out + 1] = r.text or r.query
    end
  end
  return out
end

local function new_trainer(R, model, o)
  local need_mlm = false
  for _, t in ipairs(R.tasks) do if t.loss.kind == "mlm" then need_mlm = true end end
  return core.raw_trainer(model, {
    lr = o.lr or 5e-5, warmup = o.warmup or 0, schedule = o.lr_schedule or "linear", steps = o.steps,
    weight_decay = o.weight_decay, clip = o.clip, accumulation = o.accumulation, seed = o.seed or 42,
    lora = o.lora, max_len = o.max_len, dropout = o.dropout, mlm = need_mlm, train_base = o.train_base,
    pooling = o.pooling, freeze = o.freeze, mlm_prior = need_mlm and mlm_prior_texts(R.tasks, 20000) or nil,
  })
end

function M.train(o)
  o = core.check_options("train", o, spec_train)
  if not o.init then error("train: option 'init' (the model to start from) is required", 2) end
  if not o.tasks or #o.tasks == 0 then error("train: option 'tasks' needs at least one task", 2) end
  if o.name and o.name:find("[/%c]") then
    error(("train: name '%s' must not contain '/' or control characters"):format(o.name), 2)
  end
  local st = o.store or core.store.default()
  local model = o.init
  if type(model) == "string" then
    local m, msg, code = st:model(model)
    if not m then return nil, "train: " .. tostring(msg), code end -- msg names the model already
    model = m
  end
  local tasks, manifest, code = prepare_tasks(st, o.tasks)
  if not tasks then return nil, manifest, code end
  local steps = o.steps or 100
  local seed = o.seed or 42
  local name = o.name or ("run-" .. os.date("!%Y%m%d-%H%M%S"))
  local rid = ("%s-%s-%s"):format(name, os.date("!%Y%m%d%H%M%S"), fnv64(tostring(os.clock()) .. pid() .. tostring({})):sub(1, 6))
  local recipe
  local script = rawget(_G, "arg") and arg[0]
  if type(script) == "string" and file_exists(script) then
    local f = io.open(script)
    local src = f:read("a")
    f:close()
    recipe = { path = script, source = src, hash = fnv64(src) }
  end
  local sched = o.schedule or schedule.shuffled_batches { seed = seed }
  if type(sched) == "table" and not sched.kind then
    error("train: option 'schedule' must be am.schedule.<name>{...} or a function(step, state)", 2)
  end
  check_mixed(sched, tasks, 2)
  core.check_options("train: option 'lora'", o.lora, lora_spec) -- raises at the recipe's line
  if o.freeze then -- checked here so the error points at the recipe, not at the trainer
    local names = {}
    for _, t in ipairs(assert(model:tensors())) do names[#names + 1] = t.name end
    names = table.concat(names, "\n")
    for i, f in ipairs(o.freeze) do
      if type(f) ~= "string" or f == "" then error(("train: freeze[%d] must be a non-empty string"):format(i), 2) end
      if not names:find(f, 1, true) then
        error(("train: freeze: '%s' matches no tensor of %s (names as in `amalgam info MODEL --tensors`)"):format(f, model:name() or model:id()), 2)
      end
    end
  end
  local args = {}
  for k, v in pairs(o) do
    if type(v) ~= "function" and type(v) ~= "userdata" and k ~= "tasks" and k ~= "schedule" then args[k] = v end
  end
  local hashes = {}
  for i, m in ipairs(manifest) do hashes[i] = m.hash end
  local rec = {
    id = rid, name = name, status = "running", pid = pid(), start = now(), seed = seed, steps = steps, step = 0,
    init = model:id(), args = args, recipe = recipe, keep_state = o.keep_state or nil,
    schedule = type(sched) == "table" and sched or "function",
    data = { tasks = manifest, hash = fnv64(table.concat(hashes, ",")) },
    models = { checkpoints = {} },
  }
  local R = { store = st, tasks = tasks, rec = rec, schedule = sched, sched_tasks = sched_tasks(tasks, o.accumulation),
    cursors = {}, losses = {}, on_step = o.on_step, progress = o.progress ~= false,
    checkpoint_every = o.checkpoint_every or 0, metrics_every = o.metrics_every or 20, opts = o,
    stop_after = o.stop_after }
  for i = 1, #tasks do R.cursors[i] = { epoch = 0, pos = 0 } end
  local tr, msg, c2 = new_trainer(R, model, { lr = o.lr, warmup = o.warmup, lr_schedule = o.lr_schedule, steps = steps,
    weight_decay = o.weight_decay, clip = o.clip, accumulation = o.accumulation, seed = seed, lora = o.lora,
    max_len = o.max_len, dropout = o.dropout, train_base = o.train_base, pooling = o.pooling, freeze = o.freeze })
  if not tr then return nil, msg, c2 end
  R.trainer = tr
  rec.trainer = { lr = o.lr, warmup = o.warmup, lr_schedule = o.lr_schedule, weight_decay = o.weight_decay,
    clip = o.clip, accumulation = o.accumulation, lora = o.lora, max_len = o.max_len, dropout = o.dropout,
    train_base = o.train_base, pooling = o.pooling, freeze = o.freeze }
  rec.task_specs = {}
  for i, t in ipairs(o.tasks) do
    rec.task_specs[i] = { data = (not is_dataset(t.data)) and t.data or nil, batch = t.batch, loss = tasks[i].loss,
      kind = t.kind, role = t.role, name = t.name, n_pos = t.n_pos, n_neg = t.n_neg,
      fill = t.fill, sample = t.sample }
  end
  return loop(R)
end

--- am.resume(run_id [, {steps=, on_step=, progress=, schedule=}]) -> run | nil, msg, code
function M.resume(id, o)
  core.check_arg(id, 1, "resume", "string")
  o = core.check_options("resume", o, { steps = "integer", on_step = "function", progress = "boolean", stop_after = "integer",
    schedule = "table|function", store = "Store" })
  local st = o.store or core.store.default()
  local full, msg, code = core.raw_run_resolve(st, id)
  if not full then return nil, "resume: " .. msg, code end
  id = full
  local rec = json.decode(assert(core.raw_run_get(st, id)))
  rec.format = nil
  if rec.status == "done" and not o.steps then
    return nil, ("resume: run '%s' is already done (steps = N above %d extends it)"):format(id, rec.step), "EINVAL"
  end
  if o.steps and o.steps <= (rec.step or 0) then
    return nil, ("resume: steps = %d is not above the %d steps run '%s' has done"):format(o.steps, rec.step, id), "EINVAL"
  end
  local blob = core.raw_run_state(st, id, "state")
  if rec.status == "done" and not blob then
    -- without the optimizer state an "extension" would restart from the initial model
    return nil, ("resume: run '%s' is done and its trainer state was dropped (am.train keeps it with keep_state = true);"
      .. " to train on, start a new run from its final model: am.train{init = '%s', ...}"):format(id,
      tostring(rec.models and rec.models.final)), "EINVAL"
  end
  local specs = {}
  for i, t in ipairs(rec.task_specs or {}) do
    if not t.data then return nil, "resume: task " .. i .. " was given as a Dataset handle and cannot be re-opened", "EINVAL" end
    specs[i] = t
  end
  local tasks, manifest, c = prepare_tasks(st, specs)
  if not tasks then return nil, manifest, c end
  local sched = o.schedule or (type(rec.schedule) == "table" and rec.schedule) or nil
  if not sched then return nil, "resume: the run used a schedule function; pass schedule=", "EINVAL" end
  check_mixed(sched, tasks, 2)
  local base = st:model(rec.init)
  if not base then return nil, "resume: the initial model " .. tostring(rec.init) .. " is gone", "ENOTFOUND" end
  if o.steps then rec.steps = o.steps end
  local R = { store = st, tasks = tasks, rec = rec, schedule = sched,
    sched_tasks = sched_tasks(tasks, (rec.trainer or {}).accumulation), cursors = {},
    losses = {}, on_step = o.on_step, progress = o.progress ~= false, checkpoint_every = 0, metrics_every = 20,
    stop_after = o.stop_after }
  local to = rec.trainer or {}
  local tr, m2, c2 = new_trainer(R, base, { lr = to.lr, warmup = to.warmup, lr_schedule = to.lr_schedule,
    steps = rec.steps, weight_decay = to.weight_decay, clip = to.clip, accumulation = to.accumulation, seed = rec.seed,
    lora = to.lora, max_len = to.max_len, dropout = to.dropout, train_base = to.train_base, pooling = to.pooling,
    freeze = to.freeze })
  if not tr then return nil, m2, c2 end
  R.trainer = tr
  if blob then
    local ok, lm, lc = tr:load_state(blob)
    if not ok then return nil, "resume: " .. tostring(lm), lc end
    -- the state holds the old step target: the lr schedule is recomputed for the new one (warm-up
    -- kept, the decay stretched to rec.steps), as HF's Trainer does on resume with more steps
    ok, lm, lc = tr:set_steps(rec.steps)
    if not ok then return nil, "resume: " .. tostring(lm), lc end
    local cur = json.decode(assert(core.raw_run_state(st, id, "cursors")))
    for i = 1, #tasks do R.cursors[i] = cur.tasks[i] or { epoch = 0, pos = 0 } end
    -- the step of the stored state (a later crash may have advanced rec.step beyond it)
    rec.step = cur.step or tr:steps()
    -- run.losses is one per step of the whole run: the steps before the resume from the metrics
    for i = 1, rec.step do R.losses[i] = 0 / 0 end
    for _, text in ipairs(assert(core.raw_run_metrics(st, id, 1, rec.step))) do
      local row = json.decode(text)
      R.losses[row.step] = row.loss
    end
  else
    rec.step = 0
    for i = 1, #tasks do R.cursors[i] = { epoch = 0, pos = 0 } end
  end
  rec.resumed = (rec.resumed or 0) + 1
  return loop(R)
end

return M
