-- amalgam/bench_quick.lua - `amalgam bench quick` / am.eval.bench_quick: how well the quick
-- suite ranks models like the full one (Kendall tau-b of the averages, sign agreement of the
-- deltas beyond noise, per-task tau).

local core = require "amalgam.core"
local T = require "amalgam.eval_tasks"
local store_of, model_of, average_se = T.store_of, T.model_of, T.average_se

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local concat, fmt = table.concat, string.format

local M = {}

-- ------------------------------------------------------------------ quick vs full fidelity

-- Kendall tau-b of two equally long lists (ties counted as in scipy.stats.kendalltau)
local function kendall_tau(x, y)
  local n, conc, disc, tx, ty = #x, 0, 0, 0, 0
  for i = 1, n - 1 do
    for j = i + 1, n do
      local dx, dy = x[i] - x[j], y[i] - y[j]
      if dx == 0 and dy == 0 then -- tied in both: counts in neither
      elseif dx == 0 then tx = tx + 1
      elseif dy == 0 then ty = ty + 1
      elseif (dx > 0) == (dy > 0) then conc = conc + 1
      else disc = disc + 1 end
    end
  end
  local d = math.sqrt((conc + disc + tx) * (conc + disc + ty))
  if d == 0 then return nil end
  return (conc - disc) / d
end
M.kendall_tau = kendall_tau

--- am.eval.bench_quick{models = {...}, store=, on_model=} -> report | nil, msg, code
-- Evaluates every model with the full and the quick suite (stored results are reused) and
-- measures how well quick ranks like full: Kendall tau-b of the ID and OOD averages, and the
-- share of model pairs whose full-suite average delta is larger than its noise (1.96 x the
-- unpaired SE sqrt(se_i^2 + se_j^2) of the two averages) where quick's delta has the same sign.
-- report = {models = [{name, id, full = {id_avg, ood_avg, id_se, ood_se}, quick = {...},
--           quick_seconds}], tau = {id, ood}, sign = {id = {agree, pairs}, ood = {...}},
--           tasks = {task = tau of the task's main score}}
function M.bench_quick(opts)
  opts = core.check_options("bench_quick", opts, { models = "table", store = "Store", on_model = "function",
    tasks = "table|string", tag = { "id", "ood" } })
  local st, msg, code = store_of(opts)
  if not st then return nil, msg, code end
  local names = opts.models
  if not names or #names == 0 then
    names = {}
    for _, r in ipairs(assert(st:models())) do
      if r.kind ~= "task_vector" then names[#names + 1] = r.id end
    end
  end
  if #names < 3 then return nil, fmt("bench quick: %d models; the ranking needs 3 or more", #names), "EINVAL" end
  local rep = { models = {}, tau = {}, sign = {}, tasks = {} }
  for _, name in ipairs(names) do
    local m
    m, msg, code = model_of(name, st)
    if not m then return nil, msg, code end
    local f, q
    f, msg, code = require("amalgam.eval").eval(m, { store = opts.store, tasks = opts.tasks, tag = opts.tag })
    if not f then return nil, msg, code end
    q, msg, code = require("amalgam.eval").eval(m, { store = opts.store, tasks = opts.tasks, tag = opts.tag, mode = "quick" })
    if not q then return nil, msg, code end
    local function side(r)
      local sc, se = {}, {}
      for _, x in ipairs(r) do sc[x.task] = x.main_score; se[x.task] = x.main_se end
      return { id_avg = r.id_avg, ood_avg = r.ood_avg, id_se = average_se(r.specs, sc, se, "id"),
        ood_se = average_se(r.specs, sc, se, "ood"), scores = sc }
    end
    local row = { name = m:name() or m:id():sub(1, 12), id = m:id(), full = side(f), quick = side(q) }
    rep.specs = f.specs
    rep.models[#rep.models + 1] = row
    if opts.on_model then opts.on_model(row, #rep.models, #names) end
  end
  for _, tag in ipairs { "id", "ood" } do
    local k, kse = tag .. "_avg", tag .. "_se"
    local xf, xq, rows = {}, {}, {}
    for _, r in ipairs(rep.models) do
      if r.full[k] and r.quick[k] then xf[#xf + 1] = r.full[k]; xq[#xq + 1] = r.quick[k]; rows[#rows + 1] = r end
    end
    rep.tau[tag] = #rows >= 2 and kendall_tau(xf, xq) or nil
    local agree, pairs = 0, 0
    for i = 1, #rows - 1 do
      for j = i + 1, #rows do
        local a, b = rows[i], rows[j]
        local df, dq = a.full[k] - b.full[k], a.quick[k] - b.quick[k]
        local se = (a.full[kse] and b.full[kse]) and math.sqrt(a.full[kse] ^ 2 + b.full[kse] ^ 2) or 0
        if math.abs(df) > T.NOISE_Z * se then
          pairs = pairs + 1
          if (df > 0) == (dq > 0) and dq ~= 0 then agree = agree + 1 end
        end
      end
    end
    rep.sign[tag] = { agree = agree, pairs = pairs }
  end
  for _, spec in ipairs(rep.specs) do
    local xf, xq = {}, {}
    for _, r in ipairs(rep.models) do
      xf[#xf + 1] = r.full.scores[spec.name] or 0
      xq[#xq + 1] = r.quick.scores[spec.name] or 0
    end
    rep.tasks[spec.name] = kendall_tau(xf, xq)
  end
  return rep
end

--- cli_bench_quick{models = {...}}: `amalgam bench quick [MODEL...]`
function M.cli_bench_quick(a)
  local rep, msg, code = M.bench_quick { models = a.models, on_model = a.progress and function(row, i, n)
    io.stderr:write(fmt("\r\27[K%d/%d %s", i, n, row.name))
    io.stderr:flush()
  end or nil }
  if a.progress then io.stderr:write("\r\27[K") end
  if not rep then return nil, msg, code end
  local w = 8
  for _, r in ipairs(rep.models) do w = math.max(w, #r.name) end
  print(fmt("%-" .. w .. "s  %8s %8s  %8s %8s", "MODEL", "full ID", "quick ID", "full OOD", "quickOOD"))
  local function p(v) return v and fmt("%8.2f", v * 100) or fmt("%8s", "—") end
  for _, r in ipairs(rep.models) do
    print(fmt("%-" .. w .. "s  %s %s  %s %s", r.name, p(r.full.id_avg), p(r.quick.id_avg), p(r.full.ood_avg),
      p(r.quick.ood_avg)))
  end
  local function t(v) return v and fmt("%.3f", v) or "—" end
  print(fmt("Kendall tau (quick vs full, %d models): ID avg %s   OOD avg %s", #rep.models, t(rep.tau.id), t(rep.tau.ood)))
  for _, tag in ipairs { "id", "ood" } do
    local s = rep.sign[tag]
    print(fmt("sign agreement of %s-average deltas beyond the full suite's noise: %d/%d%s", tag:upper(), s.agree,
      s.pairs, s.pairs > 0 and fmt(" (%.0f%%)", 100 * s.agree / s.pairs) or ""))
  end
  local parts = {}
  for _, spec in ipairs(rep.specs) do parts[#parts + 1] = fmt("%s %s", spec.name, t(rep.tasks[spec.name])) end
  print("per-task tau: " .. concat(parts, ", "))
  return true
end

return M
