-- tools/task_separation.lua - does every default task separate models? Prints, per task of the
-- default suite, the signal (best of the trained models minus the random init), the seed noise
-- (standard deviation over the seeds of one recipe) and the bootstrap SE of one result, full
-- suite, scores x 100: the numbers of README's task table. Missing results are computed.
--   amalgam run tools/task_separation.lua [init=init-tiny]
--       [trained=base-tiny,base-tiny+wn-def,base-tiny+deb-desc,base-tiny+wn-sts]
--       [seeds=base-tiny+deb-desc,base-tiny+deb-desc@seed2,base-tiny+deb-desc@seed3]
-- A task passes when its signal is more than 3x its seed noise.
local p = am.params { init = "init-tiny", trained = "base-tiny,base-tiny+wn-def,base-tiny+deb-desc,base-tiny+wn-sts",
  seeds = "base-tiny+deb-desc,base-tiny+deb-desc@seed2,base-tiny+deb-desc@seed3" }

local function list(s)
  local out = {}
  for x in s:gmatch("[^,]+") do out[#out + 1] = x end
  return out
end
local trained, seeds = list(p.trained), list(p.seeds)
if #seeds < 2 then error("task_separation: seeds= needs 2 or more models of one recipe", 0) end
local models, seen = { p.init }, { [p.init] = true }
for _, m in ipairs(trained) do if not seen[m] then models[#models + 1] = m; seen[m] = true end end
for _, m in ipairs(seeds) do if not seen[m] then models[#models + 1] = m; seen[m] = true end end

local cmp = assert(am.compare(models))
local row = {}
for _, r in ipairs(cmp.models) do row[r.name or r.id] = r end
for _, m in ipairs(models) do
  if not row[m] then error("task_separation: no row for " .. m, 0) end
end

local function sd(xs)
  local s = 0
  for _, x in ipairs(xs) do s = s + x end
  local mean, v = s / #xs, 0
  for _, x in ipairs(xs) do v = v + (x - mean) ^ 2 end
  return math.sqrt(v / (#xs - 1))
end

print(("%-18s %-4s %-20s %8s %-20s %8s %8s %7s %7s"):format("task", "tag", "type", "init", "best", "signal",
  "seed sd", "SE", "ratio"))
local failed = 0
for _, t in ipairs(cmp.tasks) do
  local init = row[p.init].scores[t.name]
  local best, bname = -math.huge, "?"
  for _, m in ipairs(trained) do
    local v = row[m].scores[t.name]
    if v and v > best then best, bname = v, m end
  end
  local xs = {}
  for _, m in ipairs(seeds) do xs[#xs + 1] = row[m].scores[t.name] end
  local noise, signal = sd(xs) * 100, (best - init) * 100
  local se = row[seeds[2]].se and row[seeds[2]].se[t.name]
  local ratio = noise > 0 and signal / noise or math.huge
  if not (ratio > 3) then failed = failed + 1 end
  print(("%-18s %-4s %-20s %8.2f %-20s %+8.2f %8.2f %7s %7.1f%s"):format(t.name, t.tag, t.type, init * 100,
    bname:sub(1, 20), signal, noise, se and ("%.2f"):format(se * 100) or "-", ratio, ratio > 3 and "" or "  FAILS"))
end
print(failed == 0 and "every task: signal > 3x seed noise" or (("%d task(s) with signal <= 3x seed noise"):format(failed)))
