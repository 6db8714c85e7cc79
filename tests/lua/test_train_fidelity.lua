-- test_train_fidelity.lua - what reaches the loss in am.train (issue 11, items 1-4): every positive
-- and hard negative of a row (n_pos / n_neg, padding masked), hard_negatives = false under the
-- wrapper losses, mixed runs as one loss over every task's rows, steps = optimizer updates under
-- gradient accumulation.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")

local base = assert(am.init_model { config = "tiny", name = "fid-base", seed = 7 })
local words = { "cat", "dog", "sun", "moon", "tree", "rock", "river", "cloud", "bird", "fish", "leaf", "star", "rain",
  "snow", "wind", "fire", "lake", "hill", "road", "door" }
local function w(i) return words[(i - 1) % #words + 1] end

-- rows with 3 positives and 8 hard negatives (the last negative's text given by `last`)
local function rich(nrows, last)
  local d = am.dataset.new("pairs")
  for i = 1, nrows do
    local pos, neg = {}, {}
    for j = 1, 3 do pos[j] = w(i) .. " " .. w(i + j) .. " " .. w(j) end
    for j = 1, 8 do neg[j] = w(i + 2 * j) .. " " .. w(j + 5) end
    if last then neg[8] = last .. " " .. w(i) end
    assert(d:add_pair("query " .. w(i) .. " " .. w(i + 7), pos, neg))
  end
  return d
end

local function one_step(d, task, extra)
  local seen
  local o = { init = base, steps = 1, lr = 1e-3, seed = 3, progress = false, max_len = 12,
    tasks = { task }, on_step = function(m) seen = m end }
  for k, v in pairs(extra or {}) do o[k] = v end
  task.data = d
  local r = assert(am.train(o))
  T.eq(r.status, "done", "run done")
  return seen
end

-- 1. every positive and every hard negative --------------------------------------------------
do
  local d = rich(4)
  local m = one_step(d, { batch = 2, n_pos = 3, n_neg = 8, loss = am.loss.infonce {} })
  T.eq(m.sequences, 2 * (1 + 3 + 8), "n_pos = 3, n_neg = 8: the query, 3 positives and 8 negatives of each row encoded")
  local m2 = one_step(rich(4, "volcano"), { batch = 2, n_pos = 3, n_neg = 8, loss = am.loss.infonce {} })
  T.ok(math.abs(m2.loss - m.loss) > 1e-6, ("the 8th negative reaches the loss (%.6f vs %.6f)"):format(m.loss, m2.loss))
  local m3 = one_step(d, { batch = 2, loss = am.loss.infonce {} })
  T.eq(m3.sequences, 2 * 3, "default n_pos = 1, n_neg = 1")
  -- a draw of 2 of the 8: seeded (the same twice), and it changes with the run seed
  local a = one_step(d, { batch = 2, n_neg = 2, loss = am.loss.infonce {} })
  local b = one_step(d, { batch = 2, n_neg = 2, loss = am.loss.infonce {} })
  T.eq(a.loss, b.loss, "n_neg draws are seeded")
  T.eq(a.sequences, 2 * 4, "n_neg = 2: two negatives a row")
  -- rows with fewer negatives than others: padded and masked, not dropped for the whole batch
  local u = am.dataset.new("pairs")
  assert(u:add_pair("query cat", "cat kitten", { "dog hound", "sun star", "tree leaf" }))
  assert(u:add_pair("query moon", "moon night", "rock stone"))
  assert(u:add_pair("query fish", "fish water"))
  local mu = one_step(u, { batch = 3, n_neg = 8, loss = am.loss.infonce {} }, { schedule = am.schedule.round_robin() })
  T.eq(mu.sequences, 3 * (1 + 1 + 3), "uneven rows: padded to the most negatives of the batch (3)")
  local v = am.dataset.new("pairs")
  assert(v:add_pair("query cat", "cat kitten", { "dog hound", "sun star", "tree leaf" }))
  assert(v:add_pair("query moon", "moon night", "rock stone"))
  assert(v:add_pair("query fish", "fish water"))
  local no = one_step(v, { batch = 3, n_neg = 0, loss = am.loss.infonce {} }, { schedule = am.schedule.round_robin() })
  T.ok(math.abs(no.loss - mu.loss) > 1e-6, "uneven rows keep their hard negatives (the loss differs from none)")
  -- the Trainer binding: false pads a row's list; a padded row changes nothing
  local function loss_of(b)
    local tr = assert(am.raw_trainer(base, { lr = 1e-3, seed = 1, dropout = false }))
    local st = assert(tr:step(b, am.loss.infonce {}))
    tr:close()
    return st
  end
  local pa = loss_of { queries = { "a cat", "a dog" }, positives = { "kitten", "hound" },
    negatives = { { "sun", "moon" }, { "tree", false } } }
  local pb = loss_of { queries = { "a cat", "a dog" }, positives = { "kitten", "hound" },
    negatives = { { "sun", "moon" }, { "tree", false } } }
  local pc = loss_of { queries = { "a cat", "a dog" }, positives = { "kitten", "hound" },
    negatives = { { "sun", "moon" }, { "tree", "tree" } } }
  T.ok(pa.sequences == 8 and pa.loss == pb.loss and math.abs(pa.loss - pc.loss) > 1e-6,
    "tr:step: false pads a row's negatives (masked: the loss differs from a duplicate)")
  T.checkerr("every query needs a positive", function()
    loss_of { queries = { "a", "b" }, positives = { { "x", "y" }, { false, false } } }
  end)
  T.checkerr("or false: padding", function() loss_of { queries = { "a" }, positives = { { "x", 3 } } } end)
  -- fill = "repeat" (CoDiEmb's data code): the short rows filled with repeats, no padding
  local rp = one_step(u, { batch = 3, n_neg = 4, fill = "repeat", loss = am.loss.infonce {} },
    { schedule = am.schedule.round_robin() })
  T.eq(rp.sequences, 3 * (1 + 1 + 4), "fill = 'repeat': every row with negatives filled to n_neg (the one without padded)")
  T.ok(math.abs(rp.loss - mu.loss) > 1e-6, "fill = 'repeat' differs from padding")
  T.eq(am.preset.apply(am.preset.codiemb {}, { tasks = { { data = d } } }).tasks[1].fill, "repeat",
    "am.preset.codiemb fills short rows as CoDiEmb's data code does")
  T.checkerr("fill", am.train, { init = base, progress = false, tasks = { { data = d, batch = 2, fill = "dup" } } })
  T.checkerr("n_pos must be >= 1", am.train, { init = base, progress = false, tasks = { { data = d, batch = 2, n_pos = 0 } } })
  T.checkerr("n_neg must be >= 0", am.train, { init = base, progress = false, tasks = { { data = d, batch = 2, n_neg = -1 } } })
end

-- 2. hard_negatives = false under each wrapper --------------------------------------------------
do
  local d = rich(4)
  local wrappers = {
    matryoshka = function(inner) return am.loss.matryoshka { dims = { 32, 128 }, inner = inner } end,
    starbucks = function(inner) return am.loss.starbucks { inner = inner } end,
    random_2d = function(inner) return am.loss.random_2d { inner = inner } end,
  }
  for name, wrap in pairs(wrappers) do
    local with = one_step(d, { batch = 2, n_neg = 2, loss = wrap(am.loss.infonce {}) })
    local without = one_step(d, { batch = 2, n_neg = 2, loss = wrap(am.loss.infonce { hard_negatives = false }) })
    T.eq(without.sequences, 2 * 2, name .. ": hard_negatives = false of the inner loss drops the negatives")
    T.ok(math.abs(with.loss - without.loss) > 1e-6,
      ("%s: hard_negatives = false changes the loss (%.6f vs %.6f)"):format(name, with.loss, without.loss))
  end
  -- the Trainer binding reads it through the wrapper too
  local tr = assert(am.raw_trainer(base, { lr = 1e-3, seed = 1 }))
  local bt = { queries = { "a cat", "a dog" }, positives = { "kitten", "hound" }, negatives = { "sun", "moon" } }
  local s1 = assert(tr:step(bt, am.loss.matryoshka { inner = am.loss.infonce { hard_negatives = false } }))
  T.eq(s1.sequences, 4, "raw trainer: hard_negatives = false inside matryoshka")
  tr:close()
end

-- 3. mixed runs: one loss over the rows of every task ------------------------------------------
do
  local d1, d2 = rich(6), rich(6, "volcano")
  T.checkerr("is one loss over the rows of every task", am.train, { init = base, steps = 1, progress = false,
    tasks = { { data = d1, batch = 2, loss = am.loss.infonce { temperature = 0.05 } },
      { data = d2, batch = 2, loss = am.loss.infonce { temperature = 0.1 } } },
    schedule = am.schedule.shuffled_batches { mixed = true, batch = 4 } })
  T.checkerr("test_train_fidelity.lua:", function()
    am.train { init = base, steps = 1, progress = false,
      tasks = { { data = d1, batch = 2, loss = am.loss.infonce {} },
        { data = d2, batch = 2, loss = am.loss.infonce { symmetric = true } } },
      schedule = am.schedule.shuffled_batches { mixed = true, batch = 4 } }
  end)
  -- each row keeps its own negatives: task 2 has none, task 1 keeps its 2 per row
  local d3 = am.dataset.new("pairs")
  for i = 1, 6 do assert(d3:add_pair("plain " .. w(i), "answer " .. w(i + 1))) end
  local seen = {}
  local r = assert(am.train { init = base, steps = 3, lr = 1e-3, seed = 4, progress = false, max_len = 12,
    tasks = { { data = d1, batch = 2, n_neg = 2, name = "rich" }, { data = d3, batch = 2, name = "plain" } },
    schedule = am.schedule.shuffled_batches { mixed = true, batch = 6, seed = 2 },
    on_step = function(m) seen[#seen + 1] = m end })
  T.eq(r.status, "done", "mixed run done")
  local ok = true
  for _, m in ipairs(seen) do
    local nr, np = m.rows.rich or 0, m.rows.plain or 0
    local K = nr > 0 and 2 or 0
    ok = ok and m.task == "mixed" and nr + np == 6 and m.sequences == 6 * (2 + K)
  end
  T.ok(ok, "mixed metrics: task 'mixed', rows per task; one part's negatives kept (the other's rows padded)")
  local rows = am.run_metrics(r.id)
  T.eq(rows[1].task, "mixed", "stored metrics name the step 'mixed'")
  local ms = {}
  assert(am.train { init = base, steps = 2, accumulation = 2, lr = 1e-3, seed = 4, progress = false, max_len = 12,
    tasks = { { data = d1, batch = 2, name = "rich" }, { data = d3, batch = 2, name = "plain" } },
    schedule = am.schedule.shuffled_batches { mixed = true, batch = 4, seed = 2 },
    on_step = function(m) ms[#ms + 1] = m end })
  local okm = #ms == 2
  for _, m in ipairs(ms) do okm = okm and (m.rows.rich or 0) + (m.rows.plain or 0) == 8 end
  T.ok(okm, "mixed under accumulation = 2: two mixed draws of 4 rows per update")
end

-- 4. steps = optimizer updates under accumulation ------------------------------------------------
do
  local d1, d2 = rich(8), rich(8, "volcano")
  local seen = {}
  local r = assert(am.train { init = base, steps = 4, accumulation = 2, lr = 1e-3, seed = 4, progress = false,
    max_len = 12, tasks = { { data = d1, batch = 2, name = "a" }, { data = d2, batch = 2, name = "b" } },
    schedule = am.schedule.round_robin(), on_step = function(m) seen[#seen + 1] = m end })
  T.eq(#seen, 4, "steps = 4 with accumulation = 2: 4 metric rows")
  T.eq(#r.losses, 4, "run.losses: one per update")
  local ok = true
  for i, m in ipairs(seen) do ok = ok and #m.ids == 4 and m.task == (i % 2 == 1 and "a" or "b") end
  T.ok(ok, "each update: 2 micro-batches of 2 rows, all of one task")
  T.ok(math.abs(seen[4].lr - 1e-3 * 0.25) < 1e-9, ("the lr decays over 4 updates (%.3g at the last)"):format(seen[4].lr))
  -- stop after 2 updates and resume: the same 4 updates as one go
  local p1, p2 = os.tmpname() .. ".jsonl", os.tmpname() .. ".jsonl"
  assert(d1:write(p1))
  assert(d2:write(p2))
  local function run(stop)
    return assert(am.train { init = base, steps = 4, accumulation = 2, lr = 1e-3, seed = 4, progress = false,
      max_len = 12, stop_after = stop, tasks = { { data = p1, batch = 2, n_neg = 3 }, { data = p2, batch = 2 } } })
  end
  local whole, part = run(nil), run(2)
  T.eq(part.status, "stopped", "stopped after 2 updates")
  local rest = assert(am.resume(part.id, { progress = false }))
  local same = #rest.losses == 4
  for i = 1, 4 do same = same and rest.losses[i] == whole.losses[i] end
  T.ok(same, "resume under accumulation continues bit-exactly")
  os.remove(p1)
  os.remove(p2)
  -- shuffled batches: an epoch counts updates of batch·accumulation rows
  local seq = am.schedule.sequence(am.schedule.shuffled_batches { seed = 1 }, { { n = 8, batch = 2, accum = 2 },
    { n = 16, batch = 2, accum = 2 } }, 6, 1)
  local c = { 0, 0 }
  for _, p in ipairs(seq) do c[p[1]] = c[p[1]] + 1 end
  T.ok(c[1] == 2 and c[2] == 4, "shuffled_batches under accumulation: one epoch = floor(n / (batch·accum)) updates")
end

-- 5, 6. schedules ------------------------------------------------------------------------------
local S = am.schedule
local function tasks_of(seq)
  local out = {}
  for i, p in ipairs(seq) do out[i] = tostring(p[1]) end
  return table.concat(out)
end
local function counts(seq, k)
  local c = {}
  for i = 1, k do c[i] = 0 end
  for _, p in ipairs(seq) do c[p[1]] = c[p[1]] + 1 end
  return c
end
do
  -- sequential: by default one pass over each task in order (steps in proportion to their updates)
  local tk = { { n = 20, batch = 2 }, { n = 100, batch = 2 }, { n = 6, batch = 2 } }
  T.eq(tasks_of(S.sequence(S.sequential {}, tk, 63, 1)), ("1"):rep(10) .. ("2"):rep(50) .. ("3"):rep(3),
    "sequential: one pass over each task (10, 50, 3 updates)")
  T.eq(tasks_of(S.sequence(S.sequential {}, tk, 126, 1)), ("1"):rep(20) .. ("2"):rep(100) .. ("3"):rep(6),
    "sequential: twice the steps, two passes each")
  local acc = { { n = 20, batch = 2, accum = 2 }, { n = 100, batch = 2, accum = 2 } }
  T.eq(tasks_of(S.sequence(S.sequential {}, acc, 30, 1)), ("1"):rep(5) .. ("2"):rep(25),
    "sequential under accumulation: one pass = n / (batch·accum) updates")
  T.checkerr("summing to the run's 63", S.sequence, S.sequential { steps = { 10, 50 } }, tk, 63, 1)
  T.checkerr("summing to the run's 63", S.sequence, S.sequential { order = { 1, 2 }, steps = { 10, 50 } }, tk, 63, 1)
  -- groups: stage 1 = tasks 1 and 3 shuffled together, then task 2
  local g = S.sequence(S.sequential { order = { { 1, 3 }, 2 } }, tk, 63, 1)
  local head = tasks_of(g):sub(1, 13)
  T.ok(select(2, head:gsub("1", "")) == 10 and select(2, head:gsub("3", "")) == 3 and head ~= "1111111111333"
    and tasks_of(g):sub(14) == ("2"):rep(50), "sequential{order = {{1, 3}, 2}}: a shuffled group, then task 2")
  T.checkerr("order holds task indices or groups", S.sequential, { order = { "x" } })
  T.checkerr("order has task 9 (1..3)", S.sequence, S.sequential { order = { { 1, 9 } } }, tk, 10, 1)
  -- two_stage with groups: stage 1 = {1, 3}, stage 2 = {2}; split by their one-pass shares
  local two = tasks_of(S.sequence(S.two_stage { stage1 = { 1, 3 }, stage2 = { 2 } }, tk, 63, 1))
  T.ok(not two:sub(1, 13):find("2") and two:sub(14) == ("2"):rep(50), "two_stage{stage1 = {1, 3}, stage2 = {2}}: one pass of each group")
  local two2 = tasks_of(S.sequence(S.two_stage { stage1 = { 2 }, stage2 = { 1, 3 }, split = 0.5 }, tk, 20, 1))
  T.ok(two2:sub(1, 10) == ("2"):rep(10) and not two2:sub(11):find("2"), "two_stage: split given")
  T.checkerr("does not exist", S.sequence, S.two_stage { stage1 = { 1, 9 }, stage2 = { 2 } }, tk, 10, 1)
  T.checkerr("stage1 must be a schedule spec", S.two_stage, { stage1 = "x", stage2 = { 1 } })
  T.checkerr("split must be a number in [0, 1]", S.two_stage, { stage1 = { 1 }, stage2 = { 2 }, split = 2 })

  -- temperature: small T does not overflow to the last task; it tends to the largest
  local tt = { { n = 10000, batch = 10 }, { n = 50, batch = 10 }, { n = 400, batch = 10 } }
  local c = counts(S.sequence(S.temperature { T = 0.01, seed = 1 }, tt, 200, 1), 3)
  T.ok(c[1] == 200, ("temperature T = 0.01: every step on the largest task (%d, %d, %d)"):format(c[1], c[2], c[3]))
  local c5 = counts(S.sequence(S.temperature { T = 5, seed = 1 }, tt, 4000, 1), 3)
  T.ok(c5[1] > c5[3] and c5[3] > c5[2] and c5[2] > 0, "temperature T = 5: all tasks, ordered by size")
  -- round robin: reuse by default, stop = true refuses to go past the smallest task
  local rr = { { n = 4, batch = 2 }, { n = 20, batch = 2 } }
  T.eq(#S.sequence(S.round_robin(), rr, 10, 1), 10, "round_robin reuses a small task")
  T.eq(#S.sequence(S.round_robin { stop = true }, rr, 4, 1), 4, "round_robin{stop = true} within the smallest task")
  T.checkerr("exhausted after 2 rounds", S.sequence, S.round_robin { stop = true }, rr, 5, 1)
  -- codiemb: a batch size larger than its task
  T.checkerr("larger than the task", S.sequence, S.codiemb { batch_sizes = { 5, 30 } }, rr, 2, 1)
  T.checkerr("accumulation 2", S.sequence, S.codiemb {}, { { n = 3, batch = 2, accum = 2 } }, 2, 1)
end

-- the same through am.train: sequential one pass, a bad steps list
do
  local a, b = rich(8), rich(4, "volcano")
  local seen = {}
  local r = assert(am.train { init = base, steps = 6, lr = 1e-3, seed = 4, progress = false, max_len = 12,
    tasks = { { data = a, batch = 2, name = "a" }, { data = b, batch = 2, name = "b" } },
    schedule = S.sequential {}, on_step = function(m) seen[#seen + 1] = m.task end })
  T.eq(r.status, "done", "sequential run done")
  T.eq(table.concat(seen, " "), "a a a a b b", "am.train sequential: one pass over each task (4 and 2 updates)")
  T.checkerr("must give each of the 2 entries", am.train, { init = base, steps = 6, progress = false,
    tasks = { { data = a, batch = 2 }, { data = b, batch = 2 } }, schedule = S.sequential { steps = { 3, 4 } } })
  local big = am.dataset.new("pairs")
  for i = 1, 40 do assert(big:add_pair("big " .. w(i) .. " " .. w(i + 3), "ans " .. w(i + 1))) end
  local tseen = {}
  assert(am.train { init = base, steps = 3, lr = 1e-3, seed = 4, progress = false, max_len = 12,
    tasks = { { data = big, batch = 2, name = "big" }, { data = b, batch = 2, name = "small" } },
    schedule = S.temperature { T = 0.01 }, on_step = function(m) tseen[#tseen + 1] = m.task end })
  T.eq(table.concat(tseen, " "), "big big big", "am.train temperature T = 0.01: the largest task")
end

T.done()
