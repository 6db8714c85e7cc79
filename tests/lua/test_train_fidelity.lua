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
  -- shuffled batches: an epoch counts updates of batch·accumulation rows
  local seq = am.schedule.sequence(am.schedule.shuffled_batches { seed = 1 }, { { n = 8, batch = 2, accum = 2 },
    { n = 16, batch = 2, accum = 2 } }, 6, 1)
  local c = { 0, 0 }
  for _, p in ipairs(seq) do c[p[1]] = c[p[1]] + 1 end
  T.ok(c[1] == 2 and c[2] == 4, "shuffled_batches under accumulation: one epoch = floor(n / (batch·accum)) updates")
end

T.done()
