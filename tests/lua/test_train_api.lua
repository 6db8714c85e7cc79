-- test_train_api.lua - the API contract of the training functions (lua/API.md "Training"): for
-- am.train, am.resume, am.runs, am.run_info, am.run_metrics, am.loss.*, am.schedule.*,
-- am.raw_trainer and the Trainer methods, am.raw_batch_order, am.raw_put_many and the interrupt
-- primitives: a success case, the `nil, msg, code` failures, and misuse (raised errors naming the
-- function). Tiny model, a few steps. Behaviour in depth (losses falling, resume exactness,
-- schedules' statistics) is in test_train.lua.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local S = am.schedule

local st = assert(am.store.default())
local base = assert(am.init_model { config = "tiny", name = "tapi-base", seed = 3 })
local ds = am.dataset.new("pairs")
for i = 1, 8 do assert(ds:add_pair("query number " .. i, "passage number " .. i)) end
local dir = T.tmpdir("tapi")
assert(am.source.mkdir_p(dir))
local pairs_path = dir .. "/pairs.jsonl"
assert(ds:write(pairs_path))
-- a model whose weights are gone from the store: loading fails with ENOTFOUND
local gone = assert(am.init_model { name = "tapi-gone", seed = 99 })
assert(st:delete("tapi-gone"))

-- ------------------------------------------------------------------ am.loss.*
for _, k in ipairs { "infonce", "cosent", "codiemb_sts", "matryoshka", "starbucks", "random_2d", "mlm" } do
  local spec = am.loss[k] { weight = 2 }
  T.ok(spec.kind == k and spec.weight == 2, "am.loss." .. k .. " builds {kind = '" .. k .. "', options}")
  T.eq(am.loss[k]().kind, k, "am.loss." .. k .. "() without options")
  T.checkerr("loss." .. k .. ": options must be a table", function() am.loss[k]("x") end)
end

-- ------------------------------------------------------------------ am.schedule.*
local tasks = { { n = 10, batch = 2 }, { n = 20, batch = 5 } }
local ctors = {
  shuffled_batches = { seed = 1 }, proportional = { seed = 1 }, round_robin = {}, temperature = { T = 2, seed = 1 },
  sequential = { order = { 2, 1 } }, two_stage = { stage1 = S.round_robin(), stage2 = S.proportional() },
  codiemb = { batch_sizes = { 1, 2 } },
}
for name, opts in pairs(ctors) do
  local s = S[name](opts)
  T.eq(s.kind, name, "am.schedule." .. name .. " spec kind")
  local seq = S.sequence(s, tasks, 6, 7)
  local ok = #seq == 6
  for _, p in ipairs(seq) do ok = ok and (p[1] == 1 or p[1] == 2) and math.type(p[2]) == "integer" end
  T.ok(ok, "am.schedule.sequence of " .. name .. ": 6 steps of {task, batch}")
  T.checkerr("schedule." .. name .. ": unknown option 'bogus'", function() S[name] { bogus = 1 } end)
  T.checkerr("schedule." .. name .. ": options must be a table", function() S[name](5) end)
end
T.checkerr("schedule.two_stage: stage1 and stage2 are required", function() S.two_stage {} end)
T.checkerr("schedule.temperature: T must be > 0", function() S.temperature { T = -1 } end)
-- sequence: arguments
T.eq(#S.sequence(S.round_robin(), tasks, 0, 1), 0, "sequence of 0 steps")
T.eq(S.sequence(S.round_robin(), tasks, 2, 1, 4)[1][1], 2, "sequence from step 4 (first)")
T.checkerr("bad argument #2 to 'sequence' (list of {n=, batch=} expected, got nil)",
  function() S.sequence(S.round_robin(), nil, 1, 1) end)
T.checkerr("bad argument #2 to 'sequence' (task 1 must be", function() S.sequence(S.round_robin(), { { n = 1 } }, 1, 1) end)
T.checkerr("bad argument #3 to 'sequence' (integer expected, got nil)", function() S.sequence(S.round_robin(), tasks) end)
T.checkerr("bad argument #4 to 'sequence' (number expected, got string)", function() S.sequence(S.round_robin(), tasks, 1, "x") end)
T.checkerr("bad argument #5 to 'sequence' (integer >= 1 expected, got 0)", function() S.sequence(S.round_robin(), tasks, 1, 1, 0) end)
T.checkerr("schedule: a schedule spec or a function expected", function() S.sequence({}, tasks, 1, 1) end)
T.checkerr("schedule: no tasks", function() S.sequence(S.round_robin(), {}, 1, 1) end)
T.checkerr("schedule: unknown kind 'x'", function() S.sequence({ kind = "x" }, tasks, 1, 1) end)
T.eq(#S.sequence(S.two_stage { stage1 = S.round_robin(), stage2 = S.proportional() }, tasks, 4, nil), 4,
  "two_stage without a seed (the specs' or 1)")
-- rng
do
  local g1, g2 = S.rng(42), S.rng(42)
  T.eq(g1.next(), g2.next(), "rng: same seed, same stream")
  local u, k = g1.uniform(), g1.int(6)
  T.ok(u >= 0 and u < 1 and k >= 1 and k <= 6, "rng: uniform in [0, 1), int in 1..n")
  T.eq(S.rng(1.5).next(), S.rng(0).next(), "rng: a non-integral seed acts as 0")
  T.checkerr("bad argument #1 to 'rng' (number expected, got string)", function() S.rng("x") end)
end

-- ------------------------------------------------------------------ am.raw_trainer and Trainer methods
local b = { queries = { "a cat", "a dog" }, positives = { "kitten", "puppy" } }
do
  local tr = assert(am.raw_trainer(base, { lr = 1e-3, seed = 1, steps = 10 }))
  T.eq(am.type(tr), "Trainer", "am.type of a trainer")
  T.ok(tostring(tr):match("^Trainer %(base %x+, step 0%)$"), "tostring: " .. tostring(tr))
  T.eq(tr:base(), base:id(), "tr:base() is the id of the model it started from")
  T.eq(tr:steps(), 0, "tr:steps() before any step")
  local s = assert(tr:step(b, am.loss.infonce { temperature = 0.05 }))
  T.ok(s.loss > 0 and s.step == 1 and s.updated and s.tokens > 0, "tr:step -> stats")
  T.eq(tr:steps(), 1, "tr:steps() after one step")
  local g = assert(tr:step({ sentence1 = { "a", "b", "c" }, sentence2 = { "a", "x", "c" }, scores = { 1, 0, 0.5 } },
    am.loss.codiemb_sts {}))
  T.ok(g.terms and next(g.terms) ~= nil, "codiemb_sts step reports its terms")
  -- expected failures: nil, msg, code
  T.checkfail("EINVAL", tr.step, tr, b, am.loss.cosent {})              -- CoSENT needs gold scores
  T.checkfail("EINVAL", tr.step, tr, { texts = { "a b c" } }, am.loss.mlm {}) -- no MLM head
  -- misuse
  T.checkerr("bad argument #1 to 'step' (table expected, got string)", function() tr:step("x", am.loss.infonce {}) end)
  T.checkerr("bad argument #2 to 'step' (loss spec needs a 'kind')", function() tr:step(b, {}) end)
  T.checkerr("unknown loss kind 'nope'", function() tr:step(b, { kind = "nope" }) end)
  T.checkerr("option 'sim': expected one of cos|dot", function() tr:step(b, { kind = "infonce", sim = "l2" }) end)
  T.checkerr("loss.infonce: option 'sim' must be one of cos|dot", function() return am.loss.infonce { sim = "l2" } end)
  T.checkerr("loss.infonce: unknown option 'tempreature'", function() return am.loss.infonce { tempreature = 5 } end)
  T.checkerr("loss.cosent: option 'scale' must be number", function() return am.loss.cosent { scale = "x" } end)
  T.checkerr("temperature must be > 0", function() return am.loss.infonce { temperature = 0 } end)
  T.checkerr("inner must be a loss", function() return am.loss.matryoshka { inner = { 1 } } end)
  T.checkfail("EUTF8", tr.step, tr, { queries = { "ok", "bad \xff byte" }, positives = { "a", "b" } }, am.loss.infonce {})
  T.checkerr("batch needs 'queries', 'sentence1' or 'texts'", function() tr:step({}, am.loss.infonce {}) end)
  -- state / load_state
  local blob = tr:state()
  T.ok(type(blob) == "string" and #blob > 1000, "tr:state() -> blob")
  T.eq(tr:load_state(blob), true, "tr:load_state(blob)")
  T.checkfail("EFORMAT", tr.load_state, tr, "garbage")
  T.checkerr("bad argument #1 to 'load_state' (string expected, got no value)", function() tr:load_state() end)
  -- save
  local ck, tv = tr:save("tapi-ck")
  T.ok(ck and tv, "tr:save(name) -> checkpoint id, task vector id")
  T.eq(am.model("tapi-ck"):kind(), "checkpoint", "the checkpoint is named")
  T.eq(am.model("tapi-ck.tau"):id(), tv, "the task vector is named name.tau")
  T.ok(tr:save(), "tr:save() without a name")
  T.checkfail("EINVAL", tr.save, tr, "-bad")
  T.checkerr("bad argument #2 to 'save' (amalgam.Store expected, got number)", function() tr:save("x", 5) end)
  local rodir = T.tmpdir("tapi_ro")
  assert(am.store.open(rodir)):close()
  collectgarbage()
  local ro = assert(am.store.open(rodir, { readonly = true }))
  T.checkfail("EINVAL", tr.save, tr, "x", ro)
  -- raw_put_many (one write transaction of runs / metrics / results)
  T.eq(am.raw_put_many(st, "runs", { "tapi/1", "a", "tapi/2", "b" }), true, "raw_put_many")
  T.eq(st:get("runs", "tapi/2"), "b", "raw_put_many wrote both keys")
  T.checkfail("EINVAL", am.raw_put_many, ro, "runs", { "k", "v" })
  T.checkerr("bad argument #2 to 'raw_put_many' (db must be runs, metrics or results)",
    function() am.raw_put_many(st, "models", {}) end)
  T.checkerr("bad argument #3 to 'raw_put_many' (keys and values must be strings)",
    function() am.raw_put_many(st, "runs", { "k", 5 }) end)
  ro:close()
  -- close
  tr:close()
  tr:close() -- twice is fine
  T.eq(tostring(tr), "Trainer (closed)", "tostring of a closed trainer")
  T.checkerr("attempt to use a closed trainer", function() tr:steps() end)
  T.checkerr("attempt to use a closed trainer", function() tr:base() end)
  T.checkerr("bad argument #1 to 'steps' (amalgam.Trainer expected, got number)", function() tr.steps(5) end)
end
T.checkfail("ENOTFOUND", am.raw_trainer, gone, {})
T.checkerr("bad argument #1 to 'raw_trainer' (amalgam.Model expected, got nil)", function() am.raw_trainer(nil) end)
T.checkerr("bad argument #2 to 'raw_trainer' (unknown option 'lrr'", function() am.raw_trainer(base, { lrr = 1 }) end)
T.checkerr("option 'lr' must be > 0", function() am.raw_trainer(base, { lr = 0 }) end)
T.checkerr("option 'schedule': expected one of constant|linear|cosine", function() am.raw_trainer(base, { schedule = "exp" }) end)
T.checkerr("option 'lora.targets': unknown target 'nope'", function() am.raw_trainer(base, { lora = { targets = { "nope" } } }) end)

-- ------------------------------------------------------------------ am.raw_batch_order
do
  local o = am.raw_batch_order(10, 42, 0)
  local seen, ok = {}, #o == 10
  for _, i in ipairs(o) do ok = ok and i >= 1 and i <= 10 and not seen[i]; seen[i] = true end
  T.ok(ok, "raw_batch_order is a permutation of 1..n")
  T.eq(table.concat(am.raw_batch_order(10, 42, 0), ","), table.concat(o, ","), "raw_batch_order is seeded")
  T.ok(table.concat(am.raw_batch_order(10, 42, 1), ",") ~= table.concat(o, ","), "another epoch, another order")
  T.checkerr("bad argument #1 to 'raw_batch_order' (n must be in 1..2^28)", function() am.raw_batch_order(0, 1, 0) end)
  T.checkerr("bad argument #2 to 'raw_batch_order' (number expected, got string)", function() am.raw_batch_order(3, "x", 0) end)
end

-- ------------------------------------------------------------------ interrupts
do
  T.eq(am.raw_interrupted(), false, "raw_interrupted: none pending")
  local r = table.pack(am.raw_pcall_interruptible(function(a, c) return a + c, "x" end, 1, 2))
  T.ok(r[1] == true and r[2] == 3 and r[3] == "x", "raw_pcall_interruptible: true, results...")
  local ok, err, sig = am.raw_pcall_interruptible(function() error("boom") end)
  T.ok(ok == false and tostring(err):find("boom", 1, true) and sig == nil, "an ordinary error: false, err (no signal)")
  local seen
  ok, err, sig = am.raw_pcall_interruptible(function()
    am.raw_defer_interrupts(true)
    am.raw_interrupt(15)
    seen = am.raw_interrupted()        -- deferred: only the flag is set
    am.raw_defer_interrupts(false)     -- raised at the next instruction
    seen = "not reached"
  end)
  am.raw_defer_interrupts(false)
  T.eq(seen, 15, "raw_interrupted() returns the pending signal while deferred")
  T.ok(ok == false and tostring(err):find("interrupted", 1, true) and sig == 15,
    "raw_pcall_interruptible: false, 'interrupted', signal")
  T.eq(am.raw_interrupted(), false, "raw_pcall_interruptible cleared the interrupt")
  T.checkerr("bad argument #1 to 'raw_pcall_interruptible' (value expected)", function() am.raw_pcall_interruptible() end)
  T.checkerr("bad argument #1 to 'raw_interrupt' (number expected, got string)", function() am.raw_interrupt("x") end)
end

-- ------------------------------------------------------------------ am.train
local run = assert(am.train { name = "tapi", init = base, steps = 3, lr = 1e-3, seed = 1, progress = false,
  tasks = { { data = pairs_path, batch = 4, loss = am.loss.infonce {} } }, stop_after = 2 })
T.eq(run.status, "stopped", "am.train with stop_after: status stopped")
T.ok(type(run.id) == "string" and #run.losses == 2 and am.type(run.model) == "Model", "run fields: id, losses, model")
T.eq(run.model:kind(), "checkpoint", "run.model is a checkpoint")
do
  local steps = {}
  local r2 = assert(am.train { init = "tapi-base", steps = 2, progress = false, tasks = { { data = ds, batch = 4 } },
    on_step = function(m) steps[#steps + 1] = m.step end })
  T.eq(r2.status, "done", "am.train with a Dataset handle and a model name: done")
  T.ok(r2.task_vector and am.model(r2.task_vector):kind() == "task_vector", "run.task_vector")
  T.eq(table.concat(steps, ","), "1,2", "on_step sees every step")
  T.ok(r2.id:match("^run%-"), "default run name: " .. r2.id)
  -- resume of a run given a Dataset handle cannot re-open it
  T.checkfail("EINVAL", am.resume, r2.id, { progress = false, steps = 4 })
end
-- expected failures
T.checkfail("ENOTFOUND", am.train, { init = "no-such-model", progress = false, tasks = { { data = ds } } })
T.checkfail("ENOTFOUND", am.train, { init = base, progress = false, tasks = { { data = "no-such-dataset" } } })
T.checkfail("ENOTFOUND", am.train, { init = gone, steps = 1, progress = false, tasks = { { data = ds, batch = 2 } } })
T.checkfail("EINVAL", am.train, { init = base, progress = false, tasks = { { data = ds, batch = 9 } } })
T.checkfail("EINVAL", am.train, { init = base, progress = false, tasks = { { data = am.dataset.new("pairs") } } })
T.checkfail("EINVAL", am.train, { init = base, progress = false, tasks = { { data = 5 } } })
-- misuse
T.checkerr("train: options must be a table, got string", function() am.train("x") end)
T.checkerr("train: unknown option 'stpes'", function() am.train { init = base, tasks = { { data = ds } }, stpes = 3 } end)
T.checkerr("train: option 'init' (the model to start from) is required", function() am.train { tasks = { { data = ds } } } end)
T.checkerr("train: option 'tasks' needs at least one task", function() am.train { init = base, tasks = {} } end)
T.checkerr("train: option 'init' must be Model or string, got integer", function() am.train { init = 5, tasks = { { data = ds } } } end)
T.checkerr("train: option 'lr_schedule' must be one of linear|cosine|constant", function()
  am.train { init = base, tasks = { { data = ds } }, lr_schedule = "exp" } end)
T.checkerr("train: tasks[1] must be a table", function() am.train { init = base, tasks = { 5 } } end)
T.checkerr("train: tasks[1].batch must be a positive integer", function() am.train { init = base, tasks = { { data = ds, batch = 0 } } } end)
T.checkerr("train: tasks[1].loss must be an am.loss.* spec", function() am.train { init = base, tasks = { { data = ds, batch = 4, loss = 5 } } } end)
T.checkerr("train: option 'schedule' must be am.schedule", function()
  am.train { init = base, tasks = { { data = ds, batch = 4 } }, schedule = {} } end)
T.checkerr("test_train_api.lua:220: train: freeze: 'no_such_tensor' matches no tensor", function()
  am.train { init = base, tasks = { { data = ds, batch = 4 } }, freeze = { "no_such_tensor" }, progress = false } end)

-- ------------------------------------------------------------------ am.resume
do
  local r = assert(am.resume(run.id, { progress = false }))
  T.eq(r.status, "done", "am.resume finishes a stopped run")
  T.eq(#r.losses, r.rec.steps, "losses: one per step of the whole run, also after a resume")
  T.checkfail("EINVAL", am.resume, run.id, { progress = false })   -- already done
  T.checkfail("ENOTFOUND", am.resume, "no-such-run")
  T.checkerr("bad argument #1 to 'resume' (string expected, got nil)", function() am.resume(nil) end)
  T.checkerr("resume: unknown option 'stpes'", function() am.resume(run.id, { stpes = 1 }) end)
end

-- ------------------------------------------------------------------ am.runs, am.run_info, am.run_metrics
do
  local found
  for _, r in ipairs(am.runs()) do if r.id == run.id then found = r end end
  T.ok(found and found.status == "done" and found.recipe and found.recipe.source == nil, "am.runs lists the run (no recipe source)")
  T.ok(#am.runs(st) >= 2, "am.runs(store)")
  local rec = assert(am.run_info(run.id))
  T.ok(rec.status == "done" and rec.step == 3 and rec.models.final, "am.run_info: the run record")
  T.checkfail("ENOTFOUND", am.run_info, "no-such-run")
  local met = am.run_metrics(run.id)
  T.ok(#met == 3 and met[1].step == 1 and met[3].loss, "am.run_metrics: one row per step")
  T.eq(#am.run_metrics("no-such-run"), 0, "am.run_metrics of an unknown run is empty")
  -- misuse raises (the messages do not name the function yet: reported to the training layer)
  T.checkerr("bad argument #1 to 'runs' (Store expected, got integer)", function() am.runs(5) end)
  T.checkerr("bad argument #1 to 'run_info' (string expected, got nil)", function() am.run_info(nil) end)
  T.checkerr("bad argument #1 to 'run_metrics' (string expected, got nil)", function() am.run_metrics(nil) end)
  T.checkerr("run_metrics: unknown option 'aftr'", function() am.run_metrics(run.id, { aftr = 1 }) end)
  T.eq(#am.run_metrics(run.id, { after = 1 }), 2, "am.run_metrics after a step")
  T.eq(#am.run_metrics(run.id, { store = st, after = 1, last = 2 }), 1, "am.run_metrics in a step range")
  T.eq(am.run_info(run.id:sub(1, -3)).id, run.id, "am.run_info of a unique prefix")
end

-- ------------------------------------------------------------------ am.raw_run_*
do
  local st = am.store.default()
  T.eq(am.raw_run_write(st, "tapi-run", { record = am.json.encode { status = "done" }, state = "\0blob",
    cursors = "{}", metrics = { 1, '{"step":1}', 2, '{"step":2}' } }), true, "raw_run_write")
  local rec = am.json.decode(assert(am.raw_run_get(st, "tapi-run")))
  T.ok(rec.format == 1 and rec.id == "tapi-run" and rec.status == "done", "raw_run_get: the record with format and id")
  T.checkfail("ENOTFOUND", am.raw_run_get, st, "tapi-none")
  T.eq(am.raw_run_state(st, "tapi-run", "state"), "\0blob", "raw_run_state")
  T.checkfail("ENOTFOUND", am.raw_run_state, st, "tapi-none", "state")
  T.checkfail("EINVAL", am.raw_run_state, st, "tapi-run", "Bad")
  T.eq(#am.raw_run_metrics(st, "tapi-run"), 2, "raw_run_metrics: all")
  T.eq(am.raw_run_metrics(st, "tapi-run", 2)[1], '{"step":2}', "raw_run_metrics: from a step")
  T.eq(#am.raw_run_metrics(st, "tapi-run", 1, 1), 1, "raw_run_metrics: a range")
  local n = 0
  for _, text in ipairs(am.raw_run_list(st)) do n = n + (am.json.decode(text).id == "tapi-run" and 1 or 0) end
  T.eq(n, 1, "raw_run_list")
  T.eq(am.raw_run_resolve(st, "tapi-r"), "tapi-run", "raw_run_resolve: a prefix")
  T.checkfail("ENOTFOUND", am.raw_run_resolve, st, "tapi-none")
  assert(am.raw_run_write(st, "tapi-rux", { record = "{}" }))
  T.checkfail("EINVAL", am.raw_run_resolve, st, "tapi-r")
  T.checkfail("EINVAL", am.raw_run_write, st, "a/b", { record = "{}" })
  T.checkfail("EINVAL", am.raw_run_write, st, "tapi-run", { record = "[1]" })
  T.checkerr("bad argument #3 to 'raw_run_write' (metrics must be {step, json, step, json, ...})",
    function() am.raw_run_write(st, "tapi-run", { metrics = { 1 } }) end)
  T.checkerr("bad argument #3 to 'raw_run_write' (state must be a string)",
    function() am.raw_run_write(st, "tapi-run", { state = 5 }) end)
  T.checkerr("bad argument #4 to 'raw_run_metrics' (step out of range)", function() am.raw_run_metrics(st, "x", 1, -1) end)
  T.checkerr("train: name 'a/b' must not contain '/' or control characters",
    function() am.train { name = "a/b", init = "x", tasks = { { data = "x" } } } end)
end

T.done()
