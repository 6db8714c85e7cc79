-- amalgam.tui: what the TUI panels (src/tui) show, gathered through the public API so the
-- panels see the store exactly as recipes do. Plain tables only: the C side reads them.
local am = require "amalgam"

local M = {}

local function short(id) return id and id:sub(1, 12) or "?" end

-- The label a listing shows: a name, else RUN@STEP for a checkpoint (.tau for its task
-- vector), else the id prefix (cli_model_label does the same).
local function label_of(row, meta)
  if row.name then return row.name end
  if meta.run and meta.step then
    return meta.run .. "@" .. meta.step .. (meta.kind == "task_vector" and ".tau" or "")
  end
  return short(row.id)
end

-- Models as a lineage tree: base -> checkpoints -> task vectors -> merges. A task vector hangs
-- under its checkpoint, a merge under its base (else its first input), anything else under its
-- first parent. Rows come back in display order with a depth.
function M.models()
  local rows, err = am.models()
  if not rows then return nil, err end
  local by_id, nodes = {}, {}
  for _, r in ipairs(rows) do
    local m = am.model(r.id)
    local meta = m and m:meta() or {}
    local parents = {}
    for _, p in ipairs(meta.parents or {}) do parents[#parents + 1] = p end
    local n = {
      id = r.id, kind = meta.kind or r.kind or "?", n_params = r.n_params or 0,
      layers = r.layers, hidden = r.hidden, created = r.created or "",
      run = meta.run, step = meta.step, names = table.concat(r.names or {}, ", "),
      recipe_only = meta.recipe_only and true or false, children = {},
    }
    n.label = label_of(r, meta)
    local parent = meta.checkpoint or (type(meta.base) == "string" and meta.base)
      or (parents[1] and parents[1].id)
    n.parent = parent
    if meta.merge or meta.kind == "merged" then
      local spec = meta.merge or {}
      n.method = spec.method or meta.method
      n.inputs = parents
    end
    by_id[r.id] = n
    nodes[#nodes + 1] = n
  end
  -- an unnamed task vector is its checkpoint's ".tau"
  for _, n in ipairs(nodes) do
    local p = n.parent and by_id[n.parent]
    if n.kind == "task_vector" and n.label == short(n.id) and p then n.label = p.label .. ".tau" end
  end
  -- merge descriptions name the inputs by their labels
  for _, n in ipairs(nodes) do
    if n.inputs then
      local parts = {}
      for _, p in ipairs(n.inputs) do
        local pl = by_id[p.id] and by_id[p.id].label or short(p.id)
        parts[#parts + 1] = p.weight and string.format("%s:%g", pl, p.weight) or pl
      end
      n.recipe = string.format("%s(%s)", n.method or "merge", table.concat(parts, ", "))
    elseif n.run then
      n.recipe = "run " .. n.run .. (n.step and ("@" .. n.step) or "")
    elseif n.kind == "task_vector" and by_id[n.parent or ""] then
      n.recipe = "tau = " .. by_id[n.parent].label .. " - base"
    end
  end
  local roots = {}
  for _, n in ipairs(nodes) do
    local p = n.parent and by_id[n.parent]
    if p and p ~= n then p.children[#p.children + 1] = n else roots[#roots + 1] = n end
  end
  local function bycreated(a, b)
    if a.created ~= b.created then return a.created < b.created end
    return a.id < b.id
  end
  local out, seen = {}, {}
  local function walk(n, depth)
    if seen[n] then return end
    seen[n] = true
    n.depth = depth
    out[#out + 1] = n
    table.sort(n.children, bycreated)
    for _, c in ipairs(n.children) do walk(c, depth + 1) end
  end
  table.sort(roots, bycreated)
  for _, r in ipairs(roots) do walk(r, 0) end
  for _, n in ipairs(out) do
    n.children, n.inputs = nil, nil
    n.parent_label = n.parent and by_id[n.parent] and by_id[n.parent].label or nil
  end
  return out
end

-- Diagnostics of one model against its base (am.diagnose): its task vector's norm, per layer
-- group, and its cosine to / sign conflicts with the task vectors of its siblings (the other
-- stored models fine-tuned from the same base; a task vector stands for its checkpoint).
-- Lines for the Models panel's detail view; {} for a model without a base.
local function diag_lines(id, meta)
  local st = assert(am.store.default())
  local anchor = meta
  if meta.kind == "task_vector" and meta.checkpoint then
    local c = am.model(meta.checkpoint)
    anchor = c and c:meta() or meta
  end
  local function parent_of(m)
    local ps = m.parents or {}
    return m.checkpoint or (type(m.base) == "string" and m.base) or (ps[1] and ps[1].id)
  end
  local p = parent_of(anchor)
  if not p or meta.kind == "init" then return {} end
  local sibs, labels = {}, {}
  for _, r in ipairs(am.models() or {}) do
    local m = am.model(r.id)
    local mm = m and m:meta() or {}
    labels[r.id] = label_of(r, mm)
    if r.id ~= id and r.id ~= anchor.id and #sibs < 6 then
      if not mm.recipe_only and mm.kind == anchor.kind and parent_of(mm) == p then sibs[#sibs + 1] = r.id end
    end
  end
  local models = { id }
  for _, s in ipairs(sibs) do models[#models + 1] = s end
  local ok, d, err = pcall(am.diagnose, { models = models, base = p })
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add("")
  if not ok or not d then
    add("diagnostics: " .. tostring(ok and err or d):gsub("^[^:]*:%d+: ", ""))
    return lines
  end
  add(string.format("diagnostics against the base %s (am.diagnose, tau = this model - base)", labels[d.base] or short(d.base)))
  add(string.format("  |tau|      %.4f", d.norm[1]))
  if #models > 1 then
    local cs = {}
    for j = 2, #models do cs[#cs + 1] = string.format("%s %+.3f", labels[models[j]] or short(models[j]), d.cosine[1][j]) end
    add("  cosine     " .. table.concat(cs, "  "))
    add(string.format("  sign conflicts %.1f%% of the entries two or more of these %d change (TIES resolves them)",
      100 * (d.sign_conflict or 0), #models))
  else
    add("  (no sibling fine-tuned from the same base: no cosines or sign conflicts)")
  end
  local gs, seen = {}, {}
  for _, g in ipairs(d.groups or {}) do
    if not seen[g.name] and (g.norm[1] or 0) > 0 then
      seen[g.name] = true
      gs[#gs + 1] = string.format("%s %.3f", g.name, g.norm[1])
    end
  end
  add("  |tau| per layer  " .. table.concat(gs, "  "))
  return lines
end

-- One model's tensors with their L2 (Frobenius) norms, and its meta summary lines (then the
-- diagnostics against its base).
function M.model_detail(id)
  local m, err = am.model(id)
  if not m then return nil, err end
  local meta = m:meta()
  local lines = {}
  local function add(k, v) if v ~= nil then lines[#lines + 1] = string.format("%-10s %s", k, tostring(v)) end end
  add("id", meta.id)
  add("kind", meta.kind)
  add("names", meta.name)
  add("created", meta.created)
  add("source", meta.source)
  add("run", meta.run and (meta.run .. (meta.step and ("@" .. meta.step) or "")))
  if meta.merge then add("merge", am.json.encode(meta.merge)) end
  if meta.recipe_only then add("storage", "recipe only (computed when loaded)") end
  for _, l in ipairs(diag_lines(m:id(), meta)) do lines[#lines + 1] = l end
  local tensors = {}
  local list = m:tensors()
  for _, t in ipairs(list or {}) do
    local x = m:tensor(t.name)
    local ss = 0
    if x then
      for i = 1, x:rows() do local r = x:norm(i); ss = ss + r * r end
      x:close()
    end
    local shape = {}
    for _, d in ipairs(t.shape or {}) do shape[#shape + 1] = tostring(d) end
    tensors[#tensors + 1] = { name = t.name, shape = table.concat(shape, "x"), numel = t.numel, norm = math.sqrt(ss) }
  end
  return { lines = lines, tensors = tensors }
end

-- A result of a truncated model (Matryoshka: fewer layers or features than the model has) is
-- not the model's score: the Results table leaves it to the Matryoshka panel.
function M.truncated(res, row)
  local c = res.config
  if type(c) ~= "table" or not row then return false end
  return (type(c.layer) == "number" and row.layers and c.layer < row.layers)
    or (type(c.dim) == "number" and row.hidden and c.dim < row.hidden) or false
end

local results_cache = {} -- mode -> the table M.results built last (M.noise reads its config hashes)

-- Stored results as one table per mode (full, quick): tasks in suite order (ID, then OOD,
-- then untagged) and per model its main scores. Several configs of one (model, task, mode):
-- the newest wins.
function M.results()
  local list, err = am.results()
  if not list then return nil, err end
  local order = {}
  for i, t in ipairs(am.eval_suite()) do order[t.name] = i end
  local labels, shape = {}, {}
  for _, r in ipairs(am.models() or {}) do labels[r.id] = r.name or short(r.id); shape[r.id] = r end
  local modes = {}
  for _, x in ipairs(list) do
    local res = x.result or {}
    if M.truncated(res, shape[x.model]) then goto next end
    local mode = res.mode or "full"
    local md = modes[mode]
    if not md then
      md = { mode = mode, tasks = {}, task_set = {}, models = {}, model_set = {} }
      modes[mode] = md
    end
    local task = x.task
    if not md.task_set[task] then
      local tag = res.tag
      if tag == am.json.null then tag = nil end
      md.task_set[task] = { name = task, tag = tag or "", metric = res.main_metric or "" }
      md.tasks[#md.tasks + 1] = md.task_set[task]
    end
    local row = md.model_set[x.model]
    if not row then
      row = { id = x.model, name = labels[x.model] or short(x.model), scores = {}, created = {}, res = {} }
      md.model_set[x.model] = row
      md.models[#md.models + 1] = row
    end
    local score = res.main_score
    if type(score) == "number" and (not row.created[task] or (res.created or "") > row.created[task]) then
      row.scores[task] = score
      row.created[task] = res.created or ""
      row.res[task] = { model = x.model, task = task, config_hash = x.config_hash, main_score = score,
        main_se = type(res.main_se) == "number" and res.main_se or nil }
    end
    ::next::
  end
  local out = {}
  local rank = { id = 1, ood = 2 }
  for _, mode in ipairs { "full", "quick" } do
    local md = modes[mode]
    if md then
      table.sort(md.tasks, function(a, b)
        local ra, rb = rank[a.tag] or 3, rank[b.tag] or 3
        if ra ~= rb then return ra < rb end
        local oa, ob = order[a.name] or 1e9, order[b.name] or 1e9
        if oa ~= ob then return oa < ob end
        return a.name < b.name
      end)
      for _, r in ipairs(md.models) do r.created = nil end
      results_cache[mode] = { tasks = md.tasks, models = md.models }
      md.task_set, md.model_set = nil, nil
      out[#out + 1] = md
    end
  end
  return out
end

-- Which deltas against the reference are within noise, by am.compare's test (Compare:test_deltas:
-- a paired permutation test per task on the stored per-example scores, |delta| <= 1.96 SE for the
-- averages), for the table M.results built last in `mode`: {model id = {task | "id_avg" |
-- "ood_avg" = true (within noise) | false}}; a delta without a test is absent.
function M.noise(mode, ref_id)
  local md = results_cache[mode]
  if not md then return nil, "no " .. tostring(mode) .. " results read yet" end
  local T = require "amalgam.eval_tasks"
  local Compare = require("amalgam.compare").Compare
  local specs = {}
  for i, t in ipairs(md.tasks) do specs[i] = { name = t.name, tag = t.tag ~= "" and t.tag or nil } end
  local cmp = setmetatable({ mode = mode, tasks = specs, models = {} }, Compare)
  for i, r in ipairs(md.models) do
    local row = { id = r.id, scores = r.scores, results = r.res }
    row.id_avg, row.id_count = T.average(specs, r.scores, "id")
    row.ood_avg, row.ood_count = T.average(specs, r.scores, "ood")
    cmp.models[i] = row
    if r.id == ref_id then cmp.ref = i end
  end
  if not cmp.ref then return nil, "the reference has no " .. tostring(mode) .. " results" end
  cmp:test_deltas(assert(am.store.default()))
  local out = {}
  for _, row in ipairs(cmp.models) do
    local n = {}
    for k, t in pairs(row.tests or {}) do
      if t.noise ~= nil then n[k] = t.noise end
    end
    out[row.id] = n
  end
  return out
end

-- A grid value as a column or row label
local function val_label(v)
  if type(v) == "table" then
    local t = {}
    for i, x in ipairs(v) do t[i] = string.format("%g", x) end
    return "{" .. table.concat(t, ",") .. "}"
  end
  if type(v) == "number" then return string.format("%g", v) end
  return tostring(v)
end

-- The recorded sweeps (am.sweeps) as heat maps: rows = the first grid axis, columns = the others
-- (a 1-D sweep: one row), each cell a point with its ID / OOD average over its stored results in
-- the sweep's evaluation mode (truncated results left out). {id, title, mode, row_key, col_key,
-- rows = {label...}, cols = {label...}, cells = {{r, c, id, id_avg, ood_avg}...}}, newest first.
function M.sweeps()
  local list, err = am.sweeps()
  if not list then return nil, err end
  local T = require "amalgam.eval_tasks"
  local shape, labels = {}, {}
  for _, r in ipairs(am.models() or {}) do shape[r.id] = r; labels[r.id] = r.name end
  local out = {}
  for _, s in ipairs(list) do
    local ev = type(s.eval) == "table" and s.eval or nil
    local mode = ev and T.mode_of(ev) or "quick"
    local axes = s.axes or {}
    local row_axis = #axes >= 2 and axes[1] or nil
    local col_axes = {}
    for i = row_axis and 2 or 1, #axes do col_axes[#col_axes + 1] = axes[i] end
    local ncols = 1
    for _, a in ipairs(col_axes) do ncols = ncols * #a.values end
    local x = { id = s.id, mode = ev and mode or "none", rows = {}, cols = {}, cells = {},
      row_key = row_axis and row_axis.key or "", created = s.created or "" }
    local keys = {}
    for _, a in ipairs(col_axes) do keys[#keys + 1] = a.key end
    x.col_key = table.concat(keys, ",")
    if row_axis then
      for i, v in ipairs(row_axis.values) do x.rows[i] = val_label(v) end
    else
      x.rows[1] = ""
    end
    for c = 1, ncols do
      -- the column's values: the last axis varies fastest
      local parts, rest = {}, c - 1
      for k = #col_axes, 1, -1 do
        local n = #col_axes[k].values
        table.insert(parts, 1, val_label(col_axes[k].values[rest % n + 1]))
        rest = rest // n
      end
      x.cols[c] = table.concat(parts, ",")
    end
    local sp = s.spec or {}
    local names = {}
    for _, m in ipairs(type(sp.models) == "table" and sp.models or {}) do
      names[#names + 1] = labels[m] or (tostring(m):match("^%x+$") and #m == 32 and short(m)) or tostring(m)
    end
    local base = sp.base and (labels[sp.base] or (#tostring(sp.base) == 32 and short(sp.base)) or tostring(sp.base))
    x.title = string.format("%s(%s)%s", tostring(sp.method or "?"), table.concat(names, ", "),
      base and (" base " .. base) or "")
    for k, p in ipairs(s.points or {}) do
      local cell = { r = (k - 1) // ncols + 1, c = (k - 1) % ncols + 1, id = p.id }
      local scores, specs, newest = {}, {}, {}
      for _, r in ipairs(am.results { model = p.id } or {}) do
        local res = r.result or {}
        if res.mode == mode and not M.truncated(res, shape[p.id]) and type(res.main_score) == "number"
          and (not newest[r.task] or (res.created or "") > newest[r.task]) then
          if not newest[r.task] then
            local tag = res.tag
            if tag == am.json.null then tag = nil end
            specs[#specs + 1] = { name = r.task, tag = tag }
          end
          newest[r.task] = res.created or ""
          scores[r.task] = res.main_score
        end
      end
      cell.id_avg = T.average(specs, scores, "id")
      cell.ood_avg = T.average(specs, scores, "ood")
      x.cells[k] = cell
    end
    out[#out + 1] = x
  end
  return out
end

-- The Matryoshka panel's grid for one model: layers 1..L (at most 12, evenly spaced) by dims
-- (hidden, hidden/2, ... down to 8; at most 6), the quick-mode tasks (the quick suite when it is
-- prepared, else the tasks the model has results for), and the stored quick scores of every
-- (layer, dim, task): {id, label, layers = {...}, dims = {...}, tasks = {{name, tag}...},
-- scores = {"layer:dim:task" = score}}. Nothing is computed here (M.matryoshka_eval does).
function M.matryoshka(id)
  local st = assert(am.store.default())
  local full, err = st:resolve(id)
  if not full then return nil, err end
  local row
  for _, r in ipairs(am.models() or {}) do if r.id == full then row = r end end
  if not row or not row.layers or not row.hidden then return nil, "model " .. short(full) .. ": no layers / hidden size" end
  local layers, dims = {}, {}
  local L = row.layers
  if L <= 12 then
    for l = 1, L do layers[#layers + 1] = l end
  else
    for i = 1, 12 do layers[i] = math.max(1, math.floor(L * i / 12 + 0.5)) end
  end
  local d = row.hidden
  while d >= 8 and #dims < 6 do table.insert(dims, 1, d); d = d // 2 end
  local results = am.results { model = full } or {}
  -- the quick suite's tasks that can run here (a store prepared before the suite changed lacks
  -- some), else the tasks the model has results for that still resolve
  local T = require "amalgam.eval_tasks"
  local function resolves(name) return T.tasks { tasks = { name } } ~= nil end
  local tasks, suite_n = {}, 0
  for _, t in ipairs(am.eval_suite()) do
    suite_n = suite_n + 1
    if resolves(t.name) then tasks[#tasks + 1] = { name = t.name, tag = t.tag } end
  end
  local suite = #tasks == suite_n and "quick suite" or string.format("quick suite, %d of %d tasks prepared", #tasks, suite_n)
  if #tasks == 0 then
    suite = "the model's tasks"
    local seen = {}
    for _, r in ipairs(results) do
      local res = r.result or {}
      if not seen[r.task] then
        seen[r.task] = true
        local tag = res.tag
        if tag == am.json.null then tag = nil end
        if resolves(r.task) then tasks[#tasks + 1] = { name = r.task, tag = tag or "" } end
      end
    end
    table.sort(tasks, function(a, b) if a.tag ~= b.tag then return a.tag < b.tag end return a.name < b.name end)
  end
  local scores, created = {}, {}
  for _, r in ipairs(results) do
    local res, c = r.result or {}, (r.result or {}).config
    if res.mode == "quick" and type(c) == "table" and type(res.main_score) == "number" then
      local k = string.format("%d:%d:%s", c.layer or L, c.dim or row.hidden, r.task)
      if not created[k] or (res.created or "") > created[k] then
        scores[k], created[k] = res.main_score, res.created or ""
      end
    end
  end
  return { id = full, label = row.name or short(full), layers = layers, dims = dims, tasks = tasks, scores = scores,
    suite = suite }
end

-- One (layer, dim, task) of the Matryoshka grid, evaluated in quick mode and stored (a stored
-- result is reused): the main score, or nil, msg.
function M.matryoshka_eval(id, layer, dim, task, tag)
  local r, err = am.eval(id, { tasks = { task }, mode = "quick", layer = math.tointeger(tonumber(layer)),
    dim = math.tointeger(tonumber(dim)), tag = (tag == "id" or tag == "ood") and tag or nil })
  if not r then return nil, err end
  local x = r[1]
  r = nil
  -- the model handle and the evaluation's buffers are big in C but small to the collector:
  -- without a full collection per cell a 2-layer grid grew the process past 1 GB
  collectgarbage()
  return { score = x and x.main_score or nil, from_store = x and x.from_store or false }
end

-- The recipes in `dir` for the Runs panel's picker, by file name: {file, desc = the header's
-- first line, usage = its usage lines ("amalgam run ..." and their indented continuations)
-- joined by "\n"}.
function M.recipes(dir)
  local list, err = am.source.listdir(dir)
  if not list then return nil, err end
  local out = {}
  for _, f in ipairs(list) do
    if type(f) == "table" then f = f.name end
    if type(f) == "string" and f:match("%.lua$") then
      local desc, usage, in_usage = "", {}, false
      local fh = io.open(dir .. "/" .. f)
      if fh then
        local n = 0
        for line in fh:lines() do
          n = n + 1
          if n > 40 or not line:match("^%-%-") then break end
          local text = line:gsub("^%-%-", "")
          if n == 1 then
            desc = text:gsub("^%s*[%w_/.-]+%.lua%s*%-%s*", "")
          elseif text:match("amalgam run") then
            usage[#usage + 1], in_usage = (text:gsub("^%s+", "")), true
          elseif in_usage and text:match("^%s%s%s%s+%S") then
            usage[#usage + 1] = "    " .. text:gsub("^%s+", "")
          else
            in_usage = false
          end
        end
        fh:close()
      end
      out[#out + 1] = { file = f, desc = desc, usage = #usage > 0 and table.concat(usage, "\n") or "(no usage line in its header)" }
    end
  end
  table.sort(out, function(a, b) return a.file < b.file end)
  return out
end

-- The merge methods as the Merge panel cycles them: {name, base = "none"|"required"|"optional",
-- density = true when the method reads a density, params = the parameter names it reads}.
function M.merge_methods()
  local out = {}
  for _, x in ipairs(am.merge_methods()) do
    local d = false
    for _, p in ipairs(x.params or {}) do if p == "density" then d = true end end
    out[#out + 1] = { name = x.name, base = x.base, density = d, min_models = x.min_models, max_models = x.max_models,
      params = table.concat(x.params or {}, ",") }
  end
  return out
end

-- One step of the Merge panel: merge as a recipe (nothing but the recipe is stored) and
-- quick-evaluate it, with the reference's quick scores for the deltas. spec_json:
-- {method, base, models = {id...}, weights = {...}, <parameters>, rules = {...}, ref, name}. With
-- `name`, the merge is stored under that name (tensors too) instead. The Merge panel calls it
-- from its worker thread, in a Lua state of its own; `superseded` (optional) is asked after
-- each task and a true answer raises "superseded".
function M.merge_eval(spec_json, superseded)
  local spec = am.json.decode(spec_json)
  local now = am.source.now
  local t0 = now()
  local meth
  for _, x in ipairs(am.merge_methods()) do if x.name == spec.method then meth = x end end
  if not meth then return nil, "unknown method " .. tostring(spec.method) end
  local req = { method = spec.method, models = spec.models, weights = spec.weights, name = spec.name,
    rules = spec.rules }
  if meth.base ~= "none" and spec.base then req.base = spec.base end
  for _, p in ipairs(meth.params or {}) do
    if p ~= "weight" and spec[p] then req[p] = spec[p] end
  end
  local ok, m, info = pcall(am.merge, req)
  if not ok then return nil, tostring(m) end
  if not m then return nil, info end
  local t1 = now()
  -- superseded() true: a newer request waits, so stop between two tasks (plain Lua: the tasks
  -- done so far are stored, nothing is left half-written)
  local on_task = superseded and function() if superseded() then error("superseded", 0) end end or nil
  local r, err = am.eval(m, { suite = "quick", on_task = on_task })
  if not r then return nil, err end
  local t2 = now()
  local out = { id = m:id(), found = info.found and true or false, merge_s = t1 - t0, eval_s = t2 - t1,
    id_avg = r.id_avg, ood_avg = r.ood_avg, tasks = {} }
  m:close() -- its weights and encoder buffers are reused by the next step (not left to the GC)
  for _, x in ipairs(r) do
    local tag = x.tag
    if tag == am.json.null then tag = nil end
    out.tasks[#out.tasks + 1] = { name = x.task, tag = tag or "", score = x.main_score }
  end
  local ref = spec.ref or spec.base
  if ref then
    local rr = am.eval(ref, { suite = "quick" })
    if rr then
      out.ref_id_avg, out.ref_ood_avg, out.ref = rr.id_avg, rr.ood_avg, {}
      for _, x in ipairs(rr) do out.ref[x.task] = x.main_score end
    end
  end
  out.total_s = now() - t0
  return out
end

return M
