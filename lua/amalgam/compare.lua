-- amalgam/compare.lua - am.compare: models side by side on one suite against a reference, with
-- per-task paired permutation tests and the noise of the averages, and the ID/OOD comparison
-- table as text, JSON and CSV (what `amalgam compare` prints). Tasks and averages come from
-- lua/amalgam/eval_tasks.lua; the scores from am.eval's stored results (src/evalrun).

local core = require "amalgam.core"
local json = core.json
local T = require "amalgam.eval_tasks"
local store_of, model_of, cfg_of = T.store_of, T.model_of, T.cfg_of
local clean, average, average_se = T.clean, T.average, T.average_se

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local concat, fmt = table.concat, string.format

local M = {}

-- ------------------------------------------------------------------ comparison

local Compare = {}
Compare.__index = Compare
Compare.__name = "amalgam.Comparison"

local compare_spec = {
  ref = "Model|string|integer", suite = { "default", "quick" }, tasks = "table|string", mode = { "full", "quick" },
  layer = "integer", dim = "integer", pooling = { "mean", "cls" }, normalize = "boolean", max_len = "integer",
  batch = "integer", force = "boolean", no_eval = "boolean", no_store = "boolean", no_cache = "boolean",
  on_step = "function", on_task = "function", store = "Store", tag = { "id", "ood" },
}

--- am.compare{model, model, ... [, ref=, suite=, tasks=, mode=, layer=, dim=, no_eval=, ...]}
--   -> Comparison | nil, msg, code
-- Missing results are computed (stored results are reused), or left empty with no_eval.
function M.compare(opts)
  if type(opts) ~= "table" then
    error(("bad argument #1 to 'compare' (table expected, got %s)"):format(core.typeof(opts)), 2)
  end
  local models_in, named = {}, {}
  for k, v in pairs(opts) do
    if math.type(k) == "integer" then models_in[k] = v else named[k] = v end
  end
  if #models_in == 0 then error("compare: no models given (am.compare{ model1, model2, ... })", 2) end
  for i = 1, #models_in do
    if models_in[i] == nil then error(("compare: model list has a hole at %d"):format(i), 2) end
    core.check_arg(models_in[i], 1, "compare", "Model|string")
  end
  named = core.check_options("compare", named, compare_spec)
  local st, msg, code = store_of(named)
  if not st then return nil, msg, code end
  local specs
  specs, msg, code = T.tasks(named)
  if not specs then return nil, msg, code end
  local cfg = cfg_of(named, named.on_step)
  local cmp = setmetatable({ mode = cfg.mode, layer = named.layer, dim = named.dim, tasks = specs, models = {} }, Compare)
  for i, x in ipairs(models_in) do
    local m
    m, msg, code = model_of(x, st)
    if not m then return nil, msg, code end
    local row = { id = m:id(), name = m:name() or m:id():sub(1, 12), scores = {}, results = {}, se = {} }
    for _, spec in ipairs(specs) do
      local res
      if not named.force then
        res = core.raw_eval_lookup(st, row.id, spec, cfg)    -- stored: no weights loaded
        if res then res.from_store = true end
      end
      if not res and not named.no_eval then
        local from
        res, from, code = core.raw_eval_task(st, m, spec, cfg)
        if not res then return nil, from, code end
        res.from_store = from
      end
      if res then
        clean(res)
        row.results[spec.name] = res
        row.scores[spec.name] = res.main_score
        row.se[spec.name] = res.main_se
        if named.on_task then named.on_task(res, row) end
      end
    end
    row.id_avg, row.id_count, row.id_total = average(specs, row.scores, "id")
    row.ood_avg, row.ood_count, row.ood_total = average(specs, row.scores, "ood")
    row.se.id_avg = average_se(specs, row.scores, row.se, "id")
    row.se.ood_avg = average_se(specs, row.scores, row.se, "ood")
    cmp.models[i] = row
  end
  -- the reference row
  local ref = 1
  if named.ref ~= nil then
    if math.type(named.ref) == "integer" then
      ref = named.ref
      if ref < 1 or ref > #cmp.models then error(("compare: ref %d out of range 1..%d"):format(ref, #cmp.models), 2) end
    else
      local want = core.type(named.ref) == "Model" and named.ref:id() or st:resolve(named.ref)
      if not want then return nil, ("compare: unknown reference model '%s'"):format(tostring(named.ref)), "ENOTFOUND" end
      ref = nil
      for i, row in ipairs(cmp.models) do if row.id == want then ref = i break end end
      if not ref then
        return nil, ("compare: the reference '%s' is not among the compared models"):format(tostring(named.ref)), "EINVAL"
      end
    end
  end
  cmp.ref = ref
  cmp:test_deltas(st)
  return cmp
end

-- the delta of one task between two results: paired test on the stored per-example scores, or
-- (results stored without them) the unpaired SE sqrt(se_a^2 + se_b^2) and no p-value
-- Paired tests are kept per (store, models, task, configs): the stored per-example scores behind a
-- key never change (content ids and config hashes), and a long-lived process (the TUI re-reads
-- results after every step of `amalgam demo`) would otherwise redo every test on each reload.
local paired_memo, paired_n = setmetatable({}, { __mode = "k" }), 0
local function task_test(st, a, b)
  local key = table.concat({ a.model, b.model, a.task, a.config_hash or "", b.config_hash or "" }, "|")
  local per = paired_memo[st]
  if not per or paired_n > 100000 then per = {}; paired_memo[st] = per; paired_n = 0 end
  local t = per[key]
  if t == nil then
    t = core.raw_eval_paired(st, a.model, b.model, a.task, a.config_hash, b.config_hash) or false
    per[key], paired_n = t, paired_n + 1
  end
  if t then return { se = t.se, p_value = t.p_value, paired = true } end
  if type(a.main_se) == "number" and type(b.main_se) == "number" then
    return { se = math.sqrt(a.main_se ^ 2 + b.main_se ^ 2), paired = false }
  end
  return nil
end

--- cmp:test_deltas(store): for every non-reference row, row.tests[key] = {delta, se, p_value,
--- paired, noise} per task and average (noise = the delta is within noise)
function Compare:test_deltas(st)
  local ref = self.models[self.ref]
  for ri, row in ipairs(self.models) do
    row.tests = {}
    if ri ~= self.ref and ref then
      local sums = { id = { 0, 0, true }, ood = { 0, 0, true } }
      for _, spec in ipairs(self.tasks) do
        local a, b = row.results[spec.name], ref.results[spec.name]
        if a and b and type(a.main_score) == "number" and type(b.main_score) == "number" then
          local t = task_test(st, a, b) or {}
          t.delta = a.main_score - b.main_score
          if t.p_value then t.noise = t.p_value >= T.NOISE_P
          elseif t.se then t.noise = math.abs(t.delta) <= T.NOISE_Z * t.se end
          row.tests[spec.name] = t
          local g = sums[spec.tag or ""]
          if g then
            if t.se and t.se == t.se then g[1] = g[1] + t.se ^ 2 else g[3] = false end
            g[2] = g[2] + 1
          end
        end
      end
      for tag, g in pairs(sums) do
        local key = tag .. "_avg"
        local v, rv = row[key], ref[key]
        if v and rv and g[2] > 0 and g[2] == row[tag .. "_count"] and g[2] == ref[tag .. "_count"] then
          local t = { delta = v - rv }
          if g[3] then
            t.se = math.sqrt(g[1]) / g[2]
            t.noise = math.abs(t.delta) <= T.NOISE_Z * t.se
          end
          row.tests[key] = t
        end
      end
    end
  end
end

-- "beir:/long/path/dir#split" -> "beir:dir#split" for column titles (names stay whole elsewhere)
local function short_title(name)
  local kind, path = name:match("^(%w+):(.+)$")
  if not kind then return name end
  local base = path:gsub("/+$", ""):match("([^/]+)$") or path
  return kind .. ":" .. base
end

-- the columns: ID avg, OOD avg, then tasks (ID, OOD, untagged)
local function columns(cmp)
  local cols = { { key = "id_avg", title = "ID avg", avg = "id" }, { key = "ood_avg", title = "OOD avg", avg = "ood" } }
  for _, tag in ipairs { "id", "ood", false } do
    for _, s in ipairs(cmp.tasks) do
      if (s.tag or false) == tag then cols[#cols + 1] = { key = s.name, title = short_title(s.name), tag = s.tag } end
    end
  end
  return cols
end

-- " |" before the first task column and where the tag group changes
local function sep_of(cols, i)
  if i == 3 or (i > 3 and cols[i].tag ~= cols[i - 1].tag) then return " |" end
  return ""
end

local function value(row, col)
  if col.avg then return row[col.key] end
  return row.scores[col.key]
end

local function complete(row, col)
  if not col.avg then return true end
  return row[col.avg .. "_count"] == row[col.avg .. "_total"]
end

--- cmp:table([{color = false}]) -> string: one row per model (scores x 100), then a delta row
--- under every non-reference model; "—" marks a result that is not there.
function Compare:table(o)
  o = o or {}
  local color = o.color
  local cols = columns(self)
  local ref = self.models[self.ref]
  local namew = 5
  for _, row in ipairs(self.models) do namew = math.max(namew, #row.name + 2) end
  namew = math.max(namew, #("  Δ " .. (ref and ref.name or "")) + 1)
  local widths = {}
  for i, c in ipairs(cols) do widths[i] = math.max(7, #c.title) end
  local lines = {}
  local function pad(s, w, visible)
    visible = visible or #s
    return string.rep(" ", math.max(0, w - visible)) .. s
  end
  local function utf8len(s) return utf8.len(s) or #s end
  -- header: group labels over the task columns
  local head = { "MODEL" .. string.rep(" ", namew - 5) }
  for i, c in ipairs(cols) do
    local sep = sep_of(cols, i)
    head[#head + 1] = sep .. " " .. pad(c.title, widths[i])
  end
  local title = fmt("%s evaluation (%s), scores x 100%s%s", self.mode, #self.tasks == #T.SUITE and "default suite"
    or (#self.tasks .. " tasks"), self.layer and (", layer " .. self.layer) or "", self.dim and (", dim " .. self.dim) or "")
  lines[1] = title
  lines[2] = concat(head)
  local missing, partial, has_se, any_noise = false, false, false, false
  for ri, row in ipairs(self.models) do
    local cells = { row.name .. string.rep(" ", namew - utf8len(row.name)) }
    local dcells = { "  Δ " .. (ref and ref.name or "") }
    dcells[1] = dcells[1] .. string.rep(" ", namew - utf8len(dcells[1]))
    for i, c in ipairs(cols) do
      local sep = sep_of(cols, i)
      local v = value(row, c)
      local s
      if v == nil then
        s = "—"
        if not c.avg then missing = true end
      else
        s = fmt("%.2f", v * 100)
        if not complete(row, c) then s = s .. "*"; partial = true end
      end
      cells[#cells + 1] = sep .. " " .. pad(s, widths[i], utf8len(s))
      local rv = ref and value(ref, c)
      local ds, vis = "", 0
      if ri ~= self.ref and v ~= nil and rv ~= nil then
        local d = (v - rv) * 100
        local t = row.tests and row.tests[c.key]
        local noise = t and t.noise
        ds = (noise and "≈" or "") .. fmt("%+.2f", d)
        vis = utf8len(ds)
        if noise then any_noise = true end
        if color and noise then ds = "\27[2m" .. ds .. "\27[0m"
        elseif color and math.abs(d) >= 0.005 then ds = (d > 0 and "\27[32m" or "\27[31m") .. ds .. "\27[0m" end
      elseif ri ~= self.ref then
        ds, vis = "—", 1
      end
      dcells[#dcells + 1] = sep .. " " .. pad(ds, widths[i], vis)
    end
    lines[#lines + 1] = concat(cells)
    local scells, any_se = { "  ±" .. string.rep(" ", namew - 3) }, false
    for i, c in ipairs(cols) do
      local se = row.se and row.se[c.key]
      local s = "—"
      if type(se) == "number" and se == se and value(row, c) ~= nil then s = fmt("%.2f", se * 100); any_se = true end
      scells[#scells + 1] = sep_of(cols, i) .. " " .. pad(s, widths[i], utf8len(s))
    end
    if any_se then lines[#lines + 1] = color and ("\27[2m" .. concat(scells) .. "\27[0m") or concat(scells); has_se = true end
    if ri ~= self.ref then lines[#lines + 1] = concat(dcells) end
  end
  if missing then
    lines[#lines + 1] = fmt("— = no %s result stored (HINT: amalgam eval MODEL%s, or compare without --no-eval)",
      self.mode, self.mode == "quick" and " --suite quick" or "")
  end
  if partial then lines[#lines + 1] = "* = average over the tasks that have a result" end
  if has_se then lines[#lines + 1] = "± = standard error (bootstrap over queries / pairs / rows; averages: sqrt(Σ se²) / n)" end
  if any_noise then
    lines[#lines + 1] = fmt("≈ = within noise (tasks: paired permutation test p ≥ %.2f; averages: |Δ| < %.2f SE)",
      T.NOISE_P, T.NOISE_Z)
  end
  return concat(lines, "\n")
end

Compare.__tostring = function(self) return self:table() end

--- cmp:json_table() -> plain table for am.json.encode (MTEB metric names per task)
function Compare:json_table()
  local ref = self.models[self.ref]
  local out = { mode = self.mode, layer = self.layer, dim = self.dim, ref = ref and ref.id, tasks = json.array(),
    models = json.array() }
  for _, s in ipairs(self.tasks) do
    out.tasks[#out.tasks + 1] = { name = s.name, dataset = s.dataset, type = s.type, tag = s.tag,
      main_metric = s.main or T.MAIN[s.type] }
  end
  for _, row in ipairs(self.models) do
    local r = { model = row.id, name = row.name, id_avg = row.id_avg, ood_avg = row.ood_avg,
      id_count = row.id_count, ood_count = row.ood_count, id_avg_se = row.se.id_avg, ood_avg_se = row.se.ood_avg,
      tasks = {}, delta = {}, delta_test = {} }
    for _, s in ipairs(self.tasks) do
      local res = row.results[s.name]
      if res then
        local t = {}
        for k, v in pairs(res.scores or {}) do t[k] = v end
        t.main_score = res.main_score
        t.main_se = res.main_se
        t.main_metric = res.main_metric
        t.tag = s.tag
        t.mode = res.mode
        r.tasks[s.name] = t
      end
    end
    if next(r.tasks) == nil then r.tasks = nil end
    if ref and row ~= ref then
      for _, c in ipairs(columns(self)) do
        local v, rv = value(row, c), value(ref, c)
        if v and rv then r.delta[c.key] = v - rv end
        local t = row.tests and row.tests[c.key]
        if t then
          r.delta_test[c.key] = { se = t.se, p_value = t.p_value, paired = t.paired, within_noise = t.noise or false }
        end
      end
    end
    if next(r.delta) == nil then r.delta = nil end
    if next(r.delta_test) == nil then r.delta_test = nil end
    out.models[#out.models + 1] = r
  end
  return out
end

function Compare:json(pretty) return json.encode(self:json_table(), { pretty = pretty ~= false }) end

local function csv_field(s)
  s = tostring(s)
  if s:find('[",\n]') then s = '"' .. s:gsub('"', '""') .. '"' end
  return s
end

--- cmp:csv() -> string: model,name,id_avg,ood_avg,<task>...,delta_id_avg,delta_ood_avg
function Compare:csv()
  local cols = columns(self)
  local head = { "model", "name" }
  for _, c in ipairs(cols) do head[#head + 1] = c.key end
  head[#head + 1] = "delta_id_avg"
  head[#head + 1] = "delta_ood_avg"
  for _, c in ipairs(cols) do head[#head + 1] = "se_" .. c.key end
  head[#head + 1] = "delta_se_id_avg"
  head[#head + 1] = "delta_se_ood_avg"
  local lines = { concat(head, ",") }
  local ref = self.models[self.ref]
  for _, row in ipairs(self.models) do
    local f = { row.id, csv_field(row.name) }
    for _, c in ipairs(cols) do
      local v = value(row, c)
      f[#f + 1] = v and fmt("%.6f", v) or ""
    end
    for _, k in ipairs { "id_avg", "ood_avg" } do
      f[#f + 1] = (ref and row[k] and ref[k]) and fmt("%.6f", row[k] - ref[k]) or ""
    end
    for _, c in ipairs(cols) do
      local se = row.se and row.se[c.key]
      f[#f + 1] = (type(se) == "number" and se == se) and fmt("%.6f", se) or ""
    end
    for _, k in ipairs { "id_avg", "ood_avg" } do
      local t = row.tests and row.tests[k]
      f[#f + 1] = (t and t.se) and fmt("%.6f", t.se) or ""
    end
    lines[#lines + 1] = concat(f, ",")
  end
  return concat(lines, "\n")
end


M.Compare = Compare

return M
