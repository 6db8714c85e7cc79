-- test_train.lua - schedules, the Trainer binding, am.train runs in the store, determinism, bad input.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local S = am.schedule
local tdir = os.getenv("AM_TEST_DIR") or ((arg[0]:match("^(.*)/") or ".") .. "/..")

-- ------------------------------------------------------------------ schedules
local tasks = { { n = 100, batch = 10 }, { n = 300, batch = 10 }, { n = 600, batch = 20 } }
local function counts(seq)
  local c = { 0, 0, 0 }
  for _, p in ipairs(seq) do c[p[1]] = c[p[1]] + 1 end
  return c
end

do -- round robin
  local seq = S.sequence(S.round_robin(), tasks, 9, 1)
  local ok = true
  for i, p in ipairs(seq) do ok = ok and p[1] == (i - 1) % 3 + 1 and p[2] == tasks[p[1]].batch end
  T.ok(ok, "round_robin cycles 1,2,3 with each task's batch")
end

do -- shuffled batches: one epoch = 10 + 30 + 30 batches, every batch once
  local seq = S.sequence(S.shuffled_batches { seed = 1 }, tasks, 70, 1)
  local c = counts(seq)
  T.ok(c[1] == 10 and c[2] == 30 and c[3] == 30, "shuffled_batches: one epoch holds floor(n/b) batches per task")
  local again = S.sequence(S.shuffled_batches { seed = 1 }, tasks, 70, 1)
  local same = true
  for i = 1, 70 do same = same and again[i][1] == seq[i][1] end
  T.ok(same, "shuffled_batches is replayable for a seed")
  local other = S.sequence(S.shuffled_batches { seed = 2 }, tasks, 70, 1)
  local diff = false
  for i = 1, 70 do diff = diff or other[i][1] ~= seq[i][1] end
  T.ok(diff, "another seed, another order")
  T.checkerr("mixed must be a boolean", S.shuffled_batches, { mixed = 1 })
  T.checkerr("batch= is for mixed=true", S.shuffled_batches, { batch = 8 })
end

do -- shuffled batches, mixed: every step one batch of `batch` examples drawn from all tasks ∝ n_i
  local n = 2000
  local seq = S.sequence(S.shuffled_batches { mixed = true, seed = 4 }, tasks, n, 1)
  local tot, ok = { 0, 0, 0 }, true
  for _, p in ipairs(seq) do
    local sum, top = 0, 1
    for i = 1, 3 do
      sum = sum + p.mix[i]
      tot[i] = tot[i] + p.mix[i]
      if p.mix[i] > p.mix[top] then top = i end
    end
    ok = ok and sum == 10 and p[2] == 10 and p[1] == top
  end
  T.ok(ok, "mixed: each step holds tasks[1].batch examples, labelled with its largest task")
  T.near(tot[1] / (10 * n), 0.1, 0.01, "mixed: task 1 gives 10% of the examples")
  T.near(tot[2] / (10 * n), 0.3, 0.01, "mixed: task 2 gives 30%")
  T.near(tot[3] / (10 * n), 0.6, 0.01, "mixed: task 3 gives 60%")
  local again = S.sequence(S.shuffled_batches { mixed = true, seed = 4 }, tasks, n, 1)
  local same = true
  for i = 1, n do for j = 1, 3 do same = same and again[i].mix[j] == seq[i].mix[j] end end
  T.ok(same, "mixed: replayable for a seed")
  local tail = S.sequence(S.shuffled_batches { mixed = true, seed = 4 }, tasks, 5, 1, 11)
  local win = true
  for i = 1, 5 do for j = 1, 3 do win = win and tail[i].mix[j] == seq[10 + i].mix[j] end end
  T.ok(win, "mixed: a window (resume) equals the same steps of the whole")
  local big = S.sequence(S.shuffled_batches { mixed = true, batch = 32, seed = 1 }, { { n = 2, batch = 1 }, { n = 40, batch = 1 } }, 50, 1)
  local cap = true
  for _, p in ipairs(big) do cap = cap and p[2] == 32 and p.mix[1] <= 2 and p.mix[1] + p.mix[2] == 32 end
  T.ok(cap, "mixed: batch= overrides, a task never gives more rows than it has")
  T.checkerr("larger than all tasks' rows", S.sequence, S.shuffled_batches { mixed = true, batch = 50 }, { { n = 2, batch = 1 }, { n = 40, batch = 1 } }, 1, 1)
end

do -- proportional and temperature
  local n = 6000
  -- step draws: p_i ∝ n_i / batch_i (batches 10, 30, 30 of 70), so examples ∝ n_i
  local c = counts(S.sequence(S.proportional { seed = 3, epochs = false }, tasks, n, 1))
  T.near(c[1] / n, 10 / 70, 0.02, "proportional{epochs=false} p1 = 10/70")
  T.near(c[3] / n, 30 / 70, 0.02, "proportional{epochs=false} p3 = 30/70")
  -- the default: every batch of an epoch once (ST's ProportionalBatchSampler)
  local ce = counts(S.sequence(S.proportional { seed = 3 }, tasks, 70, 1))
  T.ok(ce[1] == 10 and ce[2] == 30 and ce[3] == 30, "proportional: one epoch = every task's batches once")
  local c2 = counts(S.sequence(S.temperature { T = 2, seed = 3 }, tasks, n, 1))
  local w = { 100 ^ 0.5 / 10, 300 ^ 0.5 / 10, 600 ^ 0.5 / 20 }
  local z = w[1] + w[2] + w[3]
  T.near(c2[1] / n, w[1] / z, 0.02, "temperature T=2: examples ∝ n^(1/2) (p1)")
  T.near(c2[3] / n, w[3] / z, 0.02, "temperature T=2: examples ∝ n^(1/2) (p3)")
  T.checkerr("T must be > 0", S.temperature, { T = 0 })
end

do -- sequential, two-stage, codiemb, function
  local seq = S.sequence(S.sequential { order = { 3, 1 }, steps = { 4, 6 } }, tasks, 10, 1)
  local str = {}
  for i, p in ipairs(seq) do str[i] = p[1] end
  T.eq(table.concat(str), "3333111111", "sequential follows the order and steps")
  local two = S.sequence(S.two_stage { stage1 = S.round_robin(), stage2 = S.sequential { order = { 2 } }, split = 0.4 }, tasks, 10, 1)
  str = {}
  for i, p in ipairs(two) do str[i] = p[1] end
  T.eq(table.concat(str), "1231222222", "two_stage: stage1 then stage2")
  local cd = S.sequence(S.codiemb { batch_sizes = { 5, 10, 40 }, seed = 4 }, tasks, 65, 1)
  local okb = true
  for _, p in ipairs(cd) do okb = okb and p[2] == ({ 5, 10, 40 })[p[1]] end
  T.ok(okb, "codiemb: per-task batch sizes")
  local c = counts(cd)
  T.ok(c[1] == 20 and c[2] == 30 and c[3] == 15, "codiemb: one epoch of single-task batches (20/30/15)")
  local fseq = S.sequence(function(step) return step % 2 + 1, 7 end, tasks, 4, 1)
  T.ok(fseq[1][1] == 2 and fseq[2][1] == 1 and fseq[1][2] == 7, "function schedule")
  T.checkerr("returned task", S.sequence, function() return 9 end, tasks, 2, 1)
  -- windows are consistent: steps 5..10 of a sequence equal the tail of the whole
  local whole = S.sequence(S.proportional { seed = 9 }, tasks, 10, 1)
  local tail = S.sequence(S.proportional { seed = 9 }, tasks, 6, 1, 5)
  local same = true
  for i = 1, 6 do same = same and tail[i][1] == whole[i + 4][1] end
  T.ok(same, "a window of the sequence (resume) equals the same steps of the whole")
end

-- ------------------------------------------------------------------ data: pairs64 as text
local words = {}
local pairs_list = {}
for line in io.lines(tdir .. "/ref/train/pairs64.txt") do
  if line:match("^# %[PAD%]") then
    for w in line:sub(3):gmatch("%S+") do words[#words + 1] = w end
  elseif not line:match("^#") and line:match("%S") then
    local a, b = line:match("^(.-)\t(.*)$")
    local function dec(s)
      local out = {}
      for id in s:gmatch("%d+") do
        local w = words[tonumber(id) + 1]
        if w ~= "[CLS]" and w ~= "[SEP]" then out[#out + 1] = w end
      end
      return table.concat(out, " ")
    end
    pairs_list[#pairs_list + 1] = { dec(a), dec(b) }
  end
end
T.eq(#pairs_list, 64, "pairs64 decoded")
local ds = am.dataset.new("pairs")
for _, p in ipairs(pairs_list) do assert(ds:add_pair(p[1], p[2])) end
local path = os.tmpname() .. ".jsonl"
assert(ds:write(path))

local base = assert(am.init_model { config = "tiny", name = "base", seed = 7 })

-- ------------------------------------------------------------------ Trainer binding
do
  local tr = assert(am.raw_trainer(base, { lr = 1e-3, seed = 1 }))
  T.ok(tostring(tr):match("^Trainer"), "tostring")
  local b = { queries = { "a cat", "a dog", "the sun" }, positives = { "kitten", "hound", "star" } }
  local s = assert(tr:step(b, am.loss.infonce { temperature = 0.05 }))
  T.ok(s.loss > 0 and s.tokens > 0 and s.updated and s.step == 1, "step returns stats")
  T.ok(s.terms and next(s.terms) ~= nil, "stats have terms")
  T.ok(tr:step({ sentence1 = { "a", "b", "c" }, sentence2 = { "a", "x", "c" }, scores = { 1, 0, 0.5 } }, am.loss.cosent {}),
    "cosent on graded batch")
  T.ok(tr:step(b, am.loss.matryoshka { dims = { 32, 64, 128 } }), "matryoshka")
  T.ok(tr:step(b, am.loss.starbucks {}), "starbucks default pairs")
  T.ok(tr:step(b, am.loss.random_2d {}), "random_2d")
  T.checkerr("unknown loss kind", tr.step, tr, b, { kind = "nope" })
  T.checkerr("positives", tr.step, tr, { queries = { "a" }, positives = {} }, am.loss.infonce {})
  local blob = tr:state()
  T.ok(type(blob) == "string" and #blob > 1000, "state blob")
  T.ok(tr:load_state(blob), "load_state")
  local ok, msg = tr:load_state("garbage")
  T.ok(ok == nil and type(msg) == "string", "bad blob -> nil, msg")
  local ck, tv = tr:save("tr-ck")
  T.ok(ck and tv, "save -> checkpoint and task vector")
  T.eq(am.model(ck):kind(), "checkpoint", "checkpoint kind")
  T.eq(am.model(tv):kind(), "task_vector", "task vector kind")
  T.eq(am.model(tv):meta().parents[1].id, base:id(), "task vector parent = base")
  tr:close()
  T.checkerr("closed trainer", tr.step, tr, b, am.loss.infonce {})
  T.checkerr("unknown option", am.raw_trainer, base, { lrr = 1 })
  local mt = assert(am.raw_trainer(base, { mlm = true, lr = 1e-3 }))
  local sm = assert(mt:step({ texts = { "the cat sat on the mat", "a dog ran" } }, am.loss.mlm {}))
  T.ok(sm.loss > 0, "mlm step")
  -- the MLM head is kept in the checkpoint and reused (not re-initialised) by the next trainer
  local mck, mtv = assert(mt:save())
  T.eq(am.model(mck):config().architectures[1], "BertForMaskedLM", "an MLM checkpoint stores its head")
  T.eq(am.model(mtv):config().architectures[1], "BertModel", "the task vector has no head")
  T.eq(am.model(base):config().architectures[1], "BertModel", "the base has no head")
  mt:close()
  local m2 = assert(am.raw_trainer(am.model(mck), { mlm = true, lr = 1e-3, seed = 99 }))
  T.eq(m2:save(), mck, "a stored head is reused as is (same content id after no step)")
  T.ok(m2:step({ texts = { "the cat sat on the mat", "a dog ran" } }, am.loss.mlm {}), "mlm step on a stored head")
  m2:close()
  local m3 = assert(am.raw_trainer(am.model(mck), { lr = 1e-3 }))
  T.eq(m3:save(), mck, "a non-MLM trainer keeps the stored head")
  T.ok(m3:step(b, am.loss.infonce {}), "infonce step on a model with a head")
  m3:close()
  local lt = assert(am.raw_trainer(base, { lora = { rank = 4, alpha = 8, targets = { "query", "value" } } }))
  T.ok(lt:step(b, am.loss.infonce {}), "lora step")

  -- freeze: tensors whose name contains a listed string are not updated
  local function tsum(m)
    local s = 0
    for i = 1, m:rows() do for j = 1, m:cols() do s = s + m:get(i, j) end end
    return s
  end
  local fz = assert(am.raw_trainer(base, { lr = 1e-2, freeze = { "word_embeddings", "encoder.layer.0." } }))
  for _ = 1, 2 do assert(fz:step(b, am.loss.infonce {})) end
  local fck = am.model((assert(fz:save())))
  T.eq(tsum(fck:tensor("embeddings.word_embeddings.weight")), tsum(base:tensor("embeddings.word_embeddings.weight")),
    "freeze: word embeddings unchanged")
  T.eq(tsum(fck:tensor("encoder.layer.0.attention.self.query.weight")),
    tsum(base:tensor("encoder.layer.0.attention.self.query.weight")), "freeze: layer 0 unchanged")
  T.ok(tsum(fck:tensor("encoder.layer.1.attention.self.query.weight"))
    ~= tsum(base:tensor("encoder.layer.1.attention.self.query.weight")), "freeze: layer 1 trained")
  T.ok(tsum(fck:tensor("embeddings.position_embeddings.weight"))
    ~= tsum(base:tensor("embeddings.position_embeddings.weight")), "freeze: position embeddings trained")
  fz:close()
  T.checkerr("matches no tensor", am.raw_trainer, base, { freeze = { "word_embedings" } })
  T.checkerr("non-empty strings", am.raw_trainer, base, { freeze = { "" } })
  T.checkerr("must be a list", am.raw_trainer, base, { freeze = "word_embeddings" })

  -- mlm_prior: a fresh MLM head starts from the texts' log unigram prior, so the first loss is
  -- near the unigram entropy of the batch instead of log(vocab)
  local texts = { "the cat sat on the mat", "the dog sat on the log", "the cat and the dog" }
  local p0 = assert(am.raw_trainer(base, { mlm = true, seed = 5 }))
  local prior = {}
  for i = 1, 600 do prior[i] = texts[(i - 1) % 3 + 1] end
  local pp = assert(am.raw_trainer(base, { mlm = true, seed = 5, mlm_prior = prior }))
  local l0 = assert(p0:step({ texts = texts }, am.loss.mlm { prob = 0.5 })).loss
  local lp = assert(pp:step({ texts = texts }, am.loss.mlm { prob = 0.5 })).loss
  T.ok(l0 > math.log(30522) - 1 and lp < l0 - 3, ("mlm_prior: first loss %.2f vs %.2f from a zero bias"):format(lp, l0))
  local bias = tsum(am.model((assert(pp:save()))):tensor("cls.predictions.bias"))
  T.ok(math.abs(bias) < 1e-2 * 30522, "mlm_prior: the bias is centred")
  p0:close(); pp:close()
  T.checkerr("mlm_prior", am.raw_trainer, base, { mlm = true, mlm_prior = "text" })
end

-- ------------------------------------------------------------------ end-to-end run
local function losses_of(run) return run.losses end
local st = am.store.default()
local run = assert(am.train { name = "e2e", init = base, steps = 40, lr = 2e-3, seed = 5, progress = false,
  tasks = { { data = path, loss = am.loss.infonce { temperature = 0.05 }, batch = 16 } },
  schedule = am.schedule.shuffled_batches { seed = 1 }, checkpoint_every = 20 })
local L = losses_of(run)
local first, last = 0, 0
for i = 1, 5 do first = first + L[i] end
for i = #L - 4, #L do last = last + L[i] end
T.ok(last < first * 0.7, ("loss falls (%.3f -> %.3f)"):format(first / 5, last / 5))
T.eq(run.status, "done", "run done")
T.eq(am.model(run.model:id()):kind(), "checkpoint", "final model is a checkpoint")
local rec = assert(am.run_info(run.id))
T.eq(rec.status, "done", "run record status")
T.ok(rec.models.task_vector and am.model(rec.models.task_vector):kind() == "task_vector", "task vector stored")
T.eq(#rec.models.checkpoints, 2, "checkpoint at step 20 and the final one")
T.ok(rec.data.tasks[1].rows == 64 and rec.data.hash, "data manifest")
local met = am.run_metrics(run.id)
T.eq(#met, 40, "metrics for every step")
T.ok(met[1].lr and met[1].tokens_per_s and #met[1].ids == 16, "metrics fields incl. example ids")
T.ok(not am.raw_run_state(st, run.id, "state") and not am.raw_run_state(st, run.id, "cursors"),
  "a done run drops its trainer state (keep_state keeps it)")
T.eq(met[1].task, path:match("([^/]+)$"), "metrics name the task as progress lines do")
T.eq(st:get("runs", run.id .. "/state"), nil, "no format-1 state key")
T.eq(am.json.decode(st:get("runs", run.id)).format, 1, "the record has a format")
T.eq(#am.run_metrics(run.id, { after = 35 }), 5, "metrics after a step")
T.eq(am.run_metrics(run.id, { after = 35, last = 36 })[1].step, 36, "metrics in a step range")
T.eq(am.run_info(run.id:sub(1, #run.id - 2)).id, run.id, "a unique prefix of a run id")
local found = false
for _, r in ipairs(am.runs()) do found = found or r.id == run.id end
T.ok(found, "am.runs lists the run")

-- retrieval on the training pairs improves
local function top1(model)
  local q, d = {}, {}
  for i, p in ipairs(pairs_list) do q[i], d[i] = p[1], p[2] end
  local eq, ed = model:encode(q), model:encode(d)
  local hits = 0
  for i = 1, #q do
    local best, bi = -2, 0
    for j = 1, #d do
      local c = 0
      local a, b = eq:row(i), ed:row(j)
      for k = 1, #a do c = c + a[k] * b[k] end
      if c > best then best, bi = c, j end
    end
    if bi == i then hits = hits + 1 end
  end
  return hits
end
local h0, h1 = top1(base), top1(run.model)
T.ok(h1 > h0, ("top-1 retrieval on the training pairs improves (%d -> %d of 64)"):format(h0, h1))

-- ------------------------------------------------------------------ determinism
local function twenty()
  local r = assert(am.train { name = "det", init = base, steps = 20, lr = 1e-3, seed = 11, progress = false,
    tasks = { { data = path, batch = 8 } } })
  return r.losses
end
local a, b = twenty(), twenty()
local same = #a == 20
for i = 1, 20 do same = same and a[i] == b[i] end
T.ok(same, "same seed -> bit-identical losses for 20 steps")

-- extending a done run (am.resume with steps): with keep_state the optimizer state carries on and
-- the lr schedule is recomputed for the new total, as HF's Trainer does; without it, a clear error
do
  local straight = assert(am.train { name = "ext20", init = base, steps = 20, lr = 1e-3, seed = 11, progress = false,
    tasks = { { data = path, batch = 8 } } })
  local r10 = assert(am.train { name = "ext", init = base, steps = 10, lr = 1e-3, seed = 11, progress = false,
    keep_state = true, tasks = { { data = path, batch = 8 } } })
  T.ok(am.raw_run_state(st, r10.id, "state"), "keep_state keeps a done run's trainer state")
  T.eq(am.run_info(r10.id).keep_state, true, "the record says keep_state")
  local lrs = {}
  local r20 = assert(am.resume(r10.id, { steps = 20, progress = false, on_step = function(m) lrs[#lrs + 1] = m.lr end }))
  local m20 = am.run_metrics(straight.id)
  T.eq(#lrs, 10, "resume with steps = 20 runs the 10 more steps")
  T.ok(lrs[1] > 0 and lrs[1] == m20[11].lr and lrs[10] == m20[20].lr,
    ("the lr continues on the 20-step schedule (step 11: %g, straight run %g)"):format(lrs[1], m20[11].lr))
  T.eq(#r20.losses, 20, "losses of the extended run: one per step")
  T.ok(r20.model:id() ~= r10.model:id(), "the extension stores a new final checkpoint")
  T.eq(am.run_info(r10.id).steps, 20, "the record's step target is raised")
  T.checkfail("EINVAL", am.resume, r10.id, { steps = 15, progress = false }) -- not above the steps done
  local ok, msg = am.resume(straight.id, { steps = 30, progress = false })
  T.ok(not ok and msg:find("trainer state was dropped", 1, true) and msg:find("keep_state = true", 1, true)
    and msg:find(straight.model:id(), 1, true), "extending a done run without its state: " .. tostring(msg))
end

-- a signal during a step's bookkeeping is raised after it (so state, cursors and step agree)
do
  local core = require "amalgam.core"
  local reached
  local ok, _, sig = core.raw_pcall_interruptible(function()
    core.raw_defer_interrupts(true)
    core.raw_interrupt(15)
    for i = 1, 100 do reached = i end
    core.raw_defer_interrupts(false)
    reached = "after"
  end)
  core.raw_defer_interrupts(false)
  T.ok(not ok and sig == 15 and reached == 100, "a deferred interrupt is raised when the deferral ends")
end

-- resume continues exactly: stop after 10 steps, resume to 20 == the straight 20
do
  local r10 = assert(am.train { name = "res", init = base, steps = 20, lr = 1e-3, seed = 11, progress = false,
    tasks = { { data = path, batch = 8 } }, stop_after = 10 })
  T.eq(r10.status, "stopped", "stop_after -> stopped")
  T.eq(am.run_info(r10.rec.id).status, "stopped", "run stopped after 10 steps")
  local r2 = assert(am.resume(r10.rec.id, { progress = false }))
  T.eq(r2.status, "done", "resumed run done")
  local same2 = #r2.losses == 20
  for i = 1, 20 do same2 = same2 and r2.losses[i] == a[i] end
  T.ok(same2, "resume continues bit-exactly; run.losses has one loss per step of the whole run")
  T.eq(#am.run_metrics(r10.rec.id), 20, "metrics of both parts")
end

-- mixed batches in a run: two pair sets in one batch per step; mixed loss kinds are an error
do
  local half = {}
  for i = 1, 32 do half[i] = i end
  local d1, d2 = assert(ds:select(half)), nil
  for i = 1, 32 do half[i] = 32 + i end
  d2 = assert(ds:select(half))
  local seen = {}
  local r = assert(am.train { name = "mixed", init = base, steps = 6, lr = 1e-3, seed = 2, progress = false,
    tasks = { { data = d1, batch = 8 }, { data = d2, batch = 8 } },
    schedule = am.schedule.shuffled_batches { mixed = true, batch = 12, seed = 3 },
    on_step = function(m) seen[#seen + 1] = m end })
  T.eq(r.status, "done", "mixed run done")
  local ok, both = true, false
  for _, m in ipairs(seen) do
    local n, tasks_in = 0, {}
    for _, part in ipairs(m.ids) do n = n + #part.ids; tasks_in[part.task] = true end
    ok = ok and n == 12
    both = both or (tasks_in.task1 and tasks_in.task2) -- metrics name tasks as progress lines do
  end
  T.ok(ok and both, "mixed run: 12 examples per step, drawn from both datasets in one batch")
  local g = am.dataset.new("graded")
  for i = 1, 10 do g:add_graded("a" .. i, "b" .. i, i / 10) end
  T.checkerr("one loss kind", am.train, { init = base, steps = 2, progress = false,
    tasks = { { data = d1, batch = 4 }, { data = g, batch = 4 } }, schedule = am.schedule.shuffled_batches { mixed = true } })
  T.checkerr("test_train.lua:", function()
    am.train { init = base, steps = 2, progress = false, tasks = { { data = d1, batch = 4 }, { data = g, batch = 4 } },
      schedule = am.schedule.two_stage { stage1 = am.schedule.round_robin(), stage2 = am.schedule.shuffled_batches { mixed = true } } }
  end)
end

-- ------------------------------------------------------------------ bad input
T.checkfail("ENOTFOUND", am.train, { init = base, steps = 2, progress = false, tasks = { { data = "no-such-dataset" } } })
local okm, msgm = am.train { init = "no-such-model", steps = 2, progress = false, tasks = { { data = path } } }
T.ok(okm == nil and msgm:match("unknown model"), "unknown model -> nil, msg")
T.checkfail("EINVAL", am.train, { init = base, steps = 2, progress = false, tasks = { { data = path, batch = 65 } } })
local empty = am.dataset.new("pairs")
T.checkfail("EINVAL", am.train, { init = base, steps = 2, progress = false, tasks = { { data = empty } } })
T.checkerr("test_train.lua:", function() am.train { init = base, tasks = { { data = path } }, stpes = 3 } end)
T.checkerr("unknown option 'stpes'", am.train, { init = base, tasks = { { data = path } }, stpes = 3 })
T.checkerr("'init'", am.train, { tasks = { { data = path } } })
os.remove(path)
T.done()
