-- test_sweeps.lua - am.sweeps (lua/API.md "am.sweeps"): am.sweep records each sweep (spec, grid
-- axes, point ids) in the store, the record is found again, a repeated sweep rewrites the same
-- record, and run listings do not see it.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

local TD = os.getenv("AM_TEST_DIR") or "tests"
local a = assert(am.init_model { config = "tiny", name = "sa", seed = 1 })
local b = assert(am.init_model { config = "tiny", name = "sb", seed = 2 })
T.eq(#assert(am.sweeps()), 0, "no sweeps in a new store")

local ev = { tasks = { "sts:" .. TD .. "/ref/evalrun/sts.tsv" }, tag = "id" }
local p1 = assert(am.sweep { method = "linear", models = { a, "sb" }, grid = { weight = { 0, 0.5, 1 } }, eval = ev })
T.ok(type(p1.sweep_id) == "string" and #p1.sweep_id == 16, "am.sweep returns the record's id: " .. tostring(p1.sweep_id))
local p2 = assert(am.sweep { method = "ties", base = a, models = { "sb", p1[2].model }, eval = false,
  grid = { density = { 0.3, 0.6 }, lambda = { 0.5, 1, 1.5 } } })
local list = assert(am.sweeps())
T.eq(#list, 2, "two sweeps recorded")
T.eq(list[1].id, p2.sweep_id, "newest first, also when both were recorded within one second")
local by = {}
for _, s in ipairs(list) do by[s.id] = s end
local s1, s2 = by[p1.sweep_id], by[p2.sweep_id]
T.ok(s1 and s2, "both found by id")
T.eq(s1.spec.method, "linear", "spec.method")
T.eq(s1.spec.models[1], a:id(), "a Model in the spec is kept as its id")
T.eq(s1.spec.models[2], "sb", "a name stays a name")
T.eq(#s1.axes, 1, "a 1-D sweep: one axis")
T.eq(s1.axes[1].key, "weight", "axis key")
T.eq(#s1.axes[1].values, 3, "axis values")
T.eq(#s1.points, 3, "one point per value")
for i, p in ipairs(s1.points) do T.eq(p.id, p1[i].id, "point " .. i .. " model id") end
T.eq(s1.points[2].params.weight, 0.5, "point params")
T.eq(s1.eval.tag, "id", "the evaluation options are kept")
T.eq(s2.eval, false, "eval = false is recorded")
T.eq(#s2.axes, 2, "a 2-D sweep: two axes (sorted keys)")
T.ok(s2.axes[1].key == "density" and s2.axes[2].key == "lambda", "the axes in grid order")
T.eq(#s2.points, 6, "the product of the axes")
T.ok(s2.points[2].params.density == 0.3 and s2.points[2].params.lambda == 1, "the first axis varies slowest")
T.eq(s2.spec.base, a:id(), "the base")
local again = assert(am.sweep { method = "linear", models = { a, "sb" }, grid = { weight = { 0, 0.5, 1 } }, eval = ev })
T.eq(again.sweep_id, p1.sweep_id, "a repeated sweep has the same record id")
T.eq(#am.sweeps(), 2, "and no new record")
T.eq(#am.runs(), 0, "run listings do not see sweep records")
local st = assert(am.store.default())
T.eq(#assert(am.sweeps(st)), 2, "am.sweeps(store)")
T.checkerr("bad argument #1 to 'sweeps'", function() am.sweeps(42) end)
T.done()
