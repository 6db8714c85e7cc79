-- amalgam/bench_latency.lua - `amalgam bench quick-latency`: the Merge panel's step timed N
-- times: a recipe-only merge (am.merge, computed in memory) and a quick evaluation (am.eval
-- {suite = "quick"}) of it, with the time per phase from the C core's phase timers (parents
-- loaded from the store, merge arithmetic, task data, tokenize, encode, metrics, store writes).
-- A benchmark, not a test: it prints median and p90 per phase.

local core = require "amalgam.core"
local T = require "amalgam.eval_tasks"

local ipairs, fmt, concat = ipairs, string.format, table.concat

local M = {}

local PHASES = { "parents", "merge", "data", "tokenize", "encode", "metrics", "store" }

local function quantile(xs, q)
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  if #s == 0 then return 0 end
  local pos = 1 + (#s - 1) * q
  local lo = math.floor(pos)
  local hi = math.min(lo + 1, #s)
  return s[lo] + (s[hi] - s[lo]) * (pos - lo)
end
M.quantile = quantile

-- checkpoints named BASE+TASK of the base with the most of them: {base, models (up to 3)}
local function auto_models(st)
  local rows = am.models(st)
  local byname = {}
  for _, r in ipairs(rows) do if r.name then byname[r.name] = r end end
  local groups, best = {}, nil
  for _, r in ipairs(rows) do
    local b = r.name and r.kind == "checkpoint" and r.name:match("^(.-)%+[^@]+$")
    if b and byname[b] then
      groups[b] = groups[b] or {}
      local g = groups[b]
      g[#g + 1] = r.name
      if not best or #g > #groups[best] or (#g == #groups[best] and b < best) then best = b end
    end
  end
  if not best or #groups[best] < 2 then return nil end
  local g = groups[best]
  table.sort(g)
  while #g > 3 do table.remove(g) end
  return best, g
end

--- bench_latency{base=, models=, method=, runs=, store=, on_run=} -> report | nil, msg, code
-- report = {base, models, method, runs = {{merge_s, eval_s, total_s, phases = {name = s}}},
--           median = {...}, p90 = {...}} (the same keys as one run, phases flattened)
function M.bench_latency(opts)
  opts = core.check_options("bench_latency", opts, { base = "string", models = "table", method = "string",
    runs = "integer", store = "Store", on_run = "function" })
  local st, msg, code = T.store_of(opts)
  if not st then return nil, msg, code end
  local base, models = opts.base, opts.models
  if not models or #models == 0 then
    base, models = auto_models(st)
    if not base then
      return nil, "bench quick-latency: no checkpoints named BASE+TASK to merge; give BASE MODEL MODEL...", "EINVAL"
    end
  end
  if #models < 2 then return nil, "bench quick-latency: needs two or more models to merge", "EINVAL" end
  local method = opts.method or "linear"
  local n = opts.runs or 7
  -- each run merges new weights (a new recipe), so nothing is found stored from an earlier run
  local salt = (os.time() % 100000) * 1e-7
  local now = am.source.now
  local rep = { base = base, models = models, method = method, runs = {} }
  for i = 1, n do
    local w = {}
    for k = 1, #models do w[k] = 0.2 + 0.6 * ((i * 0.37 + k * 0.23) % 1) + salt + i * 1e-6 end
    local req = { method = method, models = models, weights = w }
    if method ~= "linear" and base then req.base = base end
    core.raw_phase_times(true)
    local t0 = now()
    local m, info, mcode = am.merge(req)
    if not m then return nil, info, mcode end
    local t1 = now()
    local r, emsg, ecode = am.eval(m, { suite = "quick" })
    if not r then return nil, emsg, ecode end
    local t2 = now()
    m:close() -- as the Merge panel does: the weights go back to the buffer pool now, not at a GC
    local phases, threads = core.raw_phase_times()
    rep.threads = threads
    local run = { merge_s = t1 - t0, eval_s = t2 - t1, total_s = t2 - t0, phases = phases, id_avg = r.id_avg,
      ood_avg = r.ood_avg }
    local sum = 0
    for _, p in ipairs(PHASES) do sum = sum + run.phases[p] end
    run.phases.other = math.max(0, run.total_s - sum)
    rep.runs[i] = run
    if opts.on_run then opts.on_run(run, i, n) end
  end
  rep.median, rep.p90 = { phases = {} }, { phases = {} }
  for _, k in ipairs { "merge_s", "eval_s", "total_s" } do
    local xs = {}
    for i, run in ipairs(rep.runs) do xs[i] = run[k] end
    rep.median[k], rep.p90[k] = quantile(xs, 0.5), quantile(xs, 0.9)
  end
  local all = { table.unpack(PHASES) }
  all[#all + 1] = "other"
  for _, p in ipairs(all) do
    local xs = {}
    for i, run in ipairs(rep.runs) do xs[i] = run.phases[p] end
    rep.median.phases[p], rep.p90.phases[p] = quantile(xs, 0.5), quantile(xs, 0.9)
  end
  rep.phase_names = all
  return rep
end

--- cli_bench_latency{models = {BASE, MODEL...}, method=, runs=}: `amalgam bench quick-latency`
function M.cli_bench_latency(a)
  local base, models = nil, nil
  if a.models and #a.models > 0 then
    base, models = a.models[1], { table.unpack(a.models, 2) }
  end
  local rep, msg, code = M.bench_latency { base = base, models = models, method = a.method, runs = a.runs }
  if not rep then return nil, msg, code end
  local loadavg = io.open("/proc/loadavg")
  local load = loadavg and loadavg:read("l") or "?"
  if loadavg then loadavg:close() end
  print(fmt("amalgam bench quick-latency: %s of %s (base %s), merge + quick eval, %d runs, %d threads, load %s",
    rep.method, concat(rep.models, ", "), rep.base or "-", #rep.runs, rep.threads,
    load:match("^(%S+ %S+ %S+)") or load))
  print(fmt("%-10s %9s %9s", "phase", "median ms", "p90 ms"))
  for _, p in ipairs(rep.phase_names) do
    print(fmt("%-10s %9.1f %9.1f", p, rep.median.phases[p] * 1e3, rep.p90.phases[p] * 1e3))
  end
  print(fmt("%-10s %9.1f %9.1f", "am.merge", rep.median.merge_s * 1e3, rep.p90.merge_s * 1e3))
  print(fmt("%-10s %9.1f %9.1f", "am.eval", rep.median.eval_s * 1e3, rep.p90.eval_s * 1e3))
  print(fmt("%-10s %9.1f %9.1f", "total", rep.median.total_s * 1e3, rep.p90.total_s * 1e3))
  return true
end

return M
