-- amalgam/eval.lua - evaluation policy: am.eval / am.results, the per-model results table, and the
-- CLI entry points of `amalgam eval`, `amalgam compare` and `amalgam bench quick`. The default
-- suite and task resolution are lua/amalgam/eval_tasks.lua, am.compare and its table (text, JSON,
-- CSV) compare.lua, quick-vs-full fidelity bench_quick.lua; this module re-exports them. The
-- mechanism (data loading, quick subsamples, embedding cache, MTEB metrics, results in the store)
-- is C: src/evalrun via the raw_eval_* primitives of src/lua/l_eval.c.
--
-- Reference: lua/API.md ("Evaluation").

local core = require "amalgam.core"
local json = core.json
local T = require "amalgam.eval_tasks"
local store_of, model_of, mode_of, cfg_of = T.store_of, T.model_of, T.mode_of, T.cfg_of
local clean, average, average_se = T.clean, T.average, T.average_se
local compare = require "amalgam.compare"
local bench_quick = require "amalgam.bench_quick"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local concat, fmt = table.concat, string.format

local M = {}
-- the module's surface as before the split (l_eval.c's forwarders, cmd_eval.c, tests use it)
for _, k in ipairs { "SUITE", "SUITES", "MAIN", "tasks", "NOISE_P", "NOISE_Z", "eval_suite", "clean",
    "average", "average_se" } do
  M[k] = T[k]
end
M.compare = compare.compare
M.kendall_tau, M.bench_quick, M.cli_bench_quick = bench_quick.kendall_tau, bench_quick.bench_quick,
  bench_quick.cli_bench_quick
local bench_latency = require "amalgam.bench_latency"
M.bench_latency, M.cli_bench_latency = bench_latency.bench_latency, bench_latency.cli_bench_latency

local eval_spec = {
  suite = { "default", "quick" }, tasks = "table|string", mode = { "full", "quick" }, layer = "integer",
  dim = "integer", pooling = { "mean", "cls" }, normalize = "boolean", max_len = "integer", batch = "integer",
  force = "boolean", no_store = "boolean", no_cache = "boolean", on_step = "function", on_task = "function",
  store = "Store", tag = { "id", "ood" },
}

local Results = {}
Results.__index = Results
Results.__name = "amalgam.EvalResults"

--- am.eval(model [, opts]) -> results | nil, msg, code
-- results: a list of result tables (suite order; each the stored JSON decoded, plus from_store)
-- with fields model (id), name, mode, layer, dim, id_avg, ood_avg, by_task = {name = result}.
function M.eval(model, opts)
  core.check_arg(model, 1, "eval", "Model|string")
  opts = core.check_options("eval", opts, eval_spec)
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local m
  m, msg, code = model_of(model, st)
  if not m then return nil, msg, code end
  local specs
  specs, msg, code = T.tasks(opts)
  if not specs then return nil, msg, code end
  local out = setmetatable({ model = m:id(), name = m:name(), mode = mode_of(opts), layer = opts.layer, dim = opts.dim,
    by_task = {} }, Results)
  local cfg = cfg_of(opts, opts.on_step)
  local scores = {}
  for i, spec in ipairs(specs) do
    local res, from, ecode
    if not opts.force then -- stored: no weights loaded (a merge kept as its recipe is not computed)
      res = core.raw_eval_lookup(st, m:id(), spec, cfg)
      from = res ~= nil
    end
    if not res then res, from, ecode = core.raw_eval_task(st, m, spec, cfg) end
    if not res then return nil, from, ecode end
    clean(res)
    res.from_store = from
    res.tag = spec.tag          -- the tag of this experiment, not the one stored
    out[i] = res
    out.by_task[spec.name] = res
    scores[spec.name] = res.main_score
    if opts.on_task then opts.on_task(res, i, #specs) end
  end
  out.id_avg, out.id_count, out.id_total = average(specs, scores, "id")
  out.ood_avg, out.ood_count, out.ood_total = average(specs, scores, "ood")
  out.specs = specs
  return out
end

-- ------------------------------------------------------------------ stored results

--- am.results([{store=, model=}]) -> list of {model=, task=, config_hash=, result=}
function M.results(opts)
  opts = core.check_options("results", opts, { store = "Store", model = "Model|string" })
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local model = opts.model
  if core.type(model) == "Model" then model = model:id() end
  local list
  list, msg, code = core.raw_eval_results(st, model)
  if not list then return nil, msg, code end
  for _, x in ipairs(list) do clean(x.result) end
  return list
end

-- ------------------------------------------------------------------ results of am.eval

local function result_line(r, w)
  local how
  if r.from_store then how = "stored"
  else how = fmt("%.2fs, %d texts, %d encoded", r.time and r.time.total or 0, r.sizes and r.sizes.texts or 0,
    r.sizes and r.sizes.encoded or 0) end
  local se = type(r.main_se) == "number" and fmt(" ±%.4f", r.main_se) or ""
  return fmt("  %-" .. w .. "s %-4s %-20s %-16s %8s%-8s   %s", r.task, r.tag or "-", r.type, r.main_metric,
    r.main_score and fmt("%.4f", r.main_score) or "—", se, how)
end

local function avg_line(self)
  local function avg(v, n, t, se)
    if not v then return "—" end
    return fmt("%.4f", v) .. (se and fmt(" ±%.4f", se) or "") .. (n < t and fmt(" (%d/%d tasks)", n, t) or "")
  end
  local sc, ses = {}, {}
  for _, r in ipairs(self) do sc[r.task] = r.main_score; ses[r.task] = r.main_se end
  local specs = self.specs or {}
  return fmt("  ID avg %s   OOD avg %s", avg(self.id_avg, self.id_count, self.id_total, average_se(specs, sc, ses, "id")),
    avg(self.ood_avg, self.ood_count, self.ood_total, average_se(specs, sc, ses, "ood")))
end

local function head_line(name, id, mode) return fmt("%s (%s)  %s", name or "?", id:sub(1, 12), mode) end

function Results:table()
  local w = 18
  for _, r in ipairs(self) do w = math.max(w, #r.task) end
  local lines = { head_line(self.name, self.model, self.mode) }
  for _, r in ipairs(self) do lines[#lines + 1] = result_line(r, w) end
  lines[#lines + 1] = avg_line(self)
  return concat(lines, "\n")
end
Results.__tostring = function(self) return self:table() end

-- ------------------------------------------------------------------ CLI entry points

-- Progress on stderr: a = "tty" rewrites one line (\r), "lines" writes a line as each task starts
-- (--progress off a terminal: logs, the TUI's demo); nil: none. The returned table's on_step goes to
-- the runner, its task_done(name) is called for every task, stored or computed (task k of total).
local function progress(mode, total)
  if not mode then return { task_done = function() end } end
  local P = { k = 0, t0 = os.time(), last = 0 }
  local function elapsed()
    local s = os.time() - P.t0
    return s >= 60 and fmt("%dm%02ds", s // 60, s % 60) or fmt("%ds", s)
  end
  function P.task_done() P.k = P.k + 1 end
  function P.on_step(p)
    local now = os.clock()
    if mode == "lines" then
      if p.stage == "load" then
        io.stderr:write(fmt("eval: task %d/%d %s (elapsed %s)\n", P.k + 1, total, p.task, elapsed()))
        io.stderr:flush()
      end
      return
    end
    if p.stage == "encode" and p.done > 0 and p.done < p.total and now - P.last < 0.1 then return end
    P.last = now
    local what = p.stage == "encode" and fmt("encode %d/%d", p.done, p.total) or p.stage
    io.stderr:write(fmt("\r\27[Ktask %d/%d %s: %s (elapsed %s)", P.k + 1, total, p.task, what, elapsed()))
    if p.stage == "done" then io.stderr:write("\r\27[K") end
    io.stderr:flush()
  end
  return P
end

-- the number of tasks the options select (for "task k/N"), 0 when they do not resolve
local function ntasks(o)
  local specs = T.tasks(o)
  return specs and #specs or 0
end

local function opts_from_cli(a)
  local o = { suite = a.suite, tasks = a.tasks, layer = a.layer, dim = a.dim, force = a.force or nil,
    no_store = a.no_store or nil, no_cache = a.no_cache or nil, tag = a.tag, mode = a.mode }
  if a.suite and not T.SUITES[a.suite] then
    return nil, fmt("unknown suite '%s' (default, quick)", a.suite), "EINVAL"
  end
  return o
end

--- cli_eval{models = {...}, suite=, tasks=, layer=, dim=, force=, json=, no_store=, no_cache=, tag=}
--- prints the results; returns true | nil, msg, code
function M.cli_eval(a)
  local o, msg, code = opts_from_cli(a)
  if not o then return nil, msg, code end
  local prog = progress(a.progress, ntasks(o) * #a.models)
  o.on_step = prog.on_step
  local all = {}
  local st
  st, msg, code = core.store.default()
  if not st then return nil, msg, code end
  for i, name in ipairs(a.models) do
    local m
    m, msg, code = st:model(name)
    if not m then return nil, msg, code end
    local r
    if not a.json then
      local specs
      specs, msg, code = T.tasks(o)
      if not specs then return nil, msg, code end
      local w = 18
      for _, sp in ipairs(specs) do w = math.max(w, #sp.name) end
      print(head_line(m:name() or name, m:id(), mode_of(o)))
      o.on_task = function(res)
        prog.task_done()
        if a.progress == "tty" then io.stderr:write("\r\27[K") end
        print(result_line(res, w))
        io.stdout:flush()
      end
    else
      o.on_task = prog.task_done
    end
    r, msg, code = M.eval(m, o)
    if not r then return nil, msg, code end
    if a.json then
      local list = json.array()
      for k, x in ipairs(r) do
        x.from_store = nil
        list[k] = x
      end
      local sc, ses = {}, {}
      for _, x in ipairs(r) do sc[x.task] = x.main_score; ses[x.task] = x.main_se end
      all[i] = { model = r.model, name = r.name, mode = r.mode, id_avg = r.id_avg, ood_avg = r.ood_avg,
        id_avg_se = average_se(r.specs, sc, ses, "id"), ood_avg_se = average_se(r.specs, sc, ses, "ood"), results = list }
    else
      print(avg_line(r))
    end
  end
  if a.json then print(json.encode(json.array(all), { pretty = true })) end
  return true
end

--- cli_compare{models = {...}, ref=, suite=, tasks=, layer=, dim=, json=, csv=, no_eval=, force=, color=}
function M.cli_compare(a)
  local o, msg, code = opts_from_cli(a)
  if not o then return nil, msg, code end
  local prog = progress(a.progress, ntasks(o) * #a.models)
  o.on_step = prog.on_step
  o.on_task = prog.task_done
  o.no_eval = a.no_eval or nil
  o.ref = a.ref
  for i, m in ipairs(a.models) do o[i] = m end
  local cmp
  cmp, msg, code = compare.compare(o)
  if not cmp then return nil, msg, code end
  if a.json then print(cmp:json(true))
  elseif a.csv then print(cmp:csv())
  else print(cmp:table { color = a.color }) end
  return true
end

return M
