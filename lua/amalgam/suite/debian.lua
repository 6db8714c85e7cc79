-- amalgam/suite/debian.lua - the Debian ID tasks (deb-desc, deb-section) and the Debian split
-- they share: by source package (see amalgam/suite.lua).
local core = require "amalgam.core"
local D = core.dataset
local C = require "amalgam.suite.common"
local hsort, take, nwords, clip = C.hsort, C.take, C.nwords, C.clip
local stratified, add_ok, new_pairs = C.stratified, C.add_ok, C.new_pairs
local h = C.hash

local M = {}

-- ------------------------------------------------------------------ Debian side data

function M.debian_split(pkgs)
  if pkgs.split_done then return end
  local gid, ids, n = {}, {}, 0
  for i, p in ipairs(pkgs) do
    if not gid[p.source] then n = n + 1; gid[p.source] = n end
    ids[i] = gid[p.source]
  end
  local part = D.split_assign(#pkgs, ids, C.DEB_RATIOS, C.SEED_DEB)
  pkgs.by_source = {}
  pkgs.short_count = {}
  for i, p in ipairs(pkgs) do
    p.side = part[i]
    pkgs.by_source[p.source] = p
    pkgs.short_count[p.short:lower()] = (pkgs.short_count[p.short:lower()] or 0) + 1
  end
  pkgs.split_done = true
end

local function deb_group_of(pkgs) return function(src) return src end end

function M.deb_desc(ctx)
  local pkgs = ctx:debian()
  M.debian_split(pkgs)
  local Z = C.SIZES
  local elig, by_sec = { {}, {} }, { {}, {} }
  for _, p in ipairs(pkgs) do
    local ok = pkgs.short_count[p.short:lower()] == 1 and nwords(p.short) >= 2 and nwords(p.long) >= 8
    if ok then table.insert(elig[p.side], p) end
    if nwords(p.long) >= 8 then
      local t = by_sec[p.side]
      t[p.section] = t[p.section] or {}
      table.insert(t[p.section], p)
    end
  end
  -- a same-Section package of the same side: each Section's list in hash order, entered at a
  -- position given by the package's own hash (O(1) per pick)
  local sec_sorted = {}
  local function same_section(p, seed, k)
    local key = p.side .. "/" .. p.section .. "/" .. seed
    local l = sec_sorted[key]
    if not l then
      l = hsort(by_sec[p.side][p.section] or {}, seed, function(o) return o.source end)
      sec_sorted[key] = l
    end
    local out, n = {}, #l
    if n == 0 then return out end
    local start = h(p.source, seed) % n
    for i = 0, n - 1 do
      local o = l[(start + i) % n + 1]
      if o ~= p then out[#out + 1] = o end
      if #out >= (k or 1) then break end
    end
    return out
  end
  local train, tr_units = new_pairs(), {}
  local with_neg = {}
  for _, p in ipairs(elig[1]) do if #(by_sec[1][p.section] or {}) > 1 then with_neg[#with_neg + 1] = p end end
  for _, p in ipairs(take(hsort(with_neg, C.SEED + 51, function(p) return p.source end), Z.train_pairs)) do
    local neg = same_section(p, C.SEED + 52)[1]
    add_ok(train:add_pair(p.short, clip(p.long, Z.max_words), clip(neg.long, Z.max_words)))
    tr_units[#tr_units + 1] = p.source
    tr_units[#tr_units + 1] = neg.source
  end
  local test, te_units = D.new("retrieval"), {}
  local queries = take(hsort(elig[2], C.SEED + 53, function(p) return p.source end), Z.test_queries)
  local in_corpus, docs = {}, {}
  local function add_doc(p)
    if in_corpus[p.source] or #docs >= Z.corpus then return end
    in_corpus[p.source] = true
    docs[#docs + 1] = p
  end
  for _, q in ipairs(queries) do add_doc(q) end
  for _, q in ipairs(queries) do
    for _, o in ipairs(same_section(q, C.SEED + 54, 3)) do add_doc(o) end
  end
  local fill = {}
  for _, p in ipairs(pkgs) do if p.side == 2 and nwords(p.long) >= 8 then fill[#fill + 1] = p end end
  for _, p in ipairs(hsort(fill, C.SEED + 55, function(p) return p.source end)) do
    if #docs >= Z.corpus then break end
    add_doc(p)
  end
  for _, p in ipairs(docs) do
    add_ok(test:add_doc(p.package, "", clip(p.long, Z.max_words)))
    te_units[#te_units + 1] = p.source
  end
  for _, q in ipairs(queries) do
    add_ok(test:add_query("q-" .. q.package, q.short))
    add_ok(test:add_qrel("test", "q-" .. q.package, q.package, 1))
  end
  C.assert_disjoint("deb-desc", tr_units, te_units)
  return {
    files = { train = { ds = train, path = "train.jsonl" }, test = { ds = test, path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    train = "train",
    split = { by = "source package", seed = C.SEED_DEB, ratios = { train = 0.65, test = 0.35 } },
    units = { train = tr_units, test = te_units },
  }
end

function M.deb_section(ctx)
  local pkgs = ctx:debian()
  M.debian_split(pkgs)
  local Z = C.SIZES
  local keep = {}
  for _, s in ipairs(C.DEB_SECTIONS) do keep[s] = true end
  local items = { {}, {} }
  for _, p in ipairs(pkgs) do
    if keep[p.section] and nwords(p.long) >= 8 then table.insert(items[p.side], p) end
  end
  local files, units, labels = {}, {}, {}
  for side, n in ipairs({ Z.section_train, Z.section_test }) do
    local ds = D.new("labelled")
    units[side] = {}
    labels[side] = {}
    for _, p in ipairs(stratified(items[side], function(p) return p.section end, n, C.SEED + 60 + side,
      function(p) return p.source end)) do
      add_ok(ds:add_labelled(clip(p.long, Z.max_words), p.section))
      units[side][#units[side] + 1] = p.source
    end
    files[side] = ds
  end
  C.assert_disjoint("deb-section", units[1], units[2])
  return {
    files = { train = { ds = files[1], path = "train.jsonl" }, test = { ds = files[2], path = "test.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "train", test = "test" } },
    train = "train",
    split = { by = "source package", seed = C.SEED_DEB, ratios = { train = 0.65, test = 0.35 } },
    extra = { sections = C.DEB_SECTIONS },
    units = { train = units[1], test = units[2] },
  }
end

return M
