-- amalgam/suite.lua - the default benchmark's task definitions (DESIGN.md §2, DATA.md §4): how
-- the records of the source adapters become datasets, with fixed seeded splits that never
-- leak. Policy only: the datasets themselves are am.dataset handles (src/data), written and
-- registered by amalgam/prepare.lua.
--
-- Every builder is   build(ctx) -> { files = { role = {ds = Dataset, path = "train.jsonl", fmt = "jsonl"} },
--                                    evals = {...}, extra = {...}, units = {role = {unit ids}} }
-- where ctx gives the parsed sources (ctx:wordnet(), ctx:debian(), ...; see prepare.lua).
--
-- Splits (the whole suite shares them, so no ID task's test item is in any ID task's training
-- data, nor in the pretraining corpus):
--   WordNet  by synset, sibling groups kept together (wordnet.group_of: synsets sharing their first
--            hypernym; satellites with their head adjective): train 0.8 / test 0.2, seed SEED_WN
--   Debian   by source package: train 0.65 / test 0.35, seed SEED_DEB
--   OOD      test only (classification/clustering tasks also get a "probe" part for the
--            logistic-regression probe, MTEB-style, split by document/thread)
-- Samples are drawn by sorting on XXH3-64(key, seed), so they do not depend on table order.

local core = require "amalgam.core"
local S = core.source
local D = core.dataset

local wordnet = require "amalgam.sources.wordnet"

local M = {}

M.SEED = 20240601
M.SEED_WN = M.SEED + 1
M.SEED_DEB = M.SEED + 2
M.WN_RATIOS = { 0.8, 0.2 }
M.DEB_RATIOS = { 0.65, 0.35 }

-- sizes (DESIGN.md §2: eval corpora <= 12k docs, <= 1k queries, <= 5k training pairs per ID task)
M.SIZES = {
  train_pairs = 5000, test_queries = 1000, corpus = 10000, ood_corpus = 12000,
  sts_train = 5000, sts_test = 1000, sense_train = 4000, sense_test = 1000,
  section_train = 4000, section_test = 2000, kjv_queries = 1000, kjv_corpus = 5000,
  brown = 3000, spam_class = 2000, spam_cluster = 1500, max_words = 300, man_words = 100, chunk_words = 96,
}

M.DEB_SECTIONS = { "admin", "database", "devel", "doc", "editors", "electronics", "fonts", "games", "graphics",
  "hamradio", "mail", "math", "net", "science", "sound", "text", "utils", "video", "web", "x11" }

-- ------------------------------------------------------------------ helpers

local function h(key, seed) return S.hash64(key, seed) end

--- list sorted by hash of key(x) with seed (a seeded shuffle independent of table order)
local function hsort(list, seed, key)
  local keyed = {}
  for i, x in ipairs(list) do keyed[i] = { h(key(x), seed), x } end
  table.sort(keyed, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i, k in ipairs(keyed) do out[i] = k[2] end
  return out
end
M.hsort = hsort

local function take(list, k)
  local out = {}
  for i = 1, math.min(k, #list) do out[i] = list[i] end
  return out
end

local function nwords(s)
  local n = 0
  for _ in s:gmatch("%S+") do n = n + 1 end
  return n
end
M.nwords = nwords

--- the first n words of s
local function clip(s, n)
  local k, last = 0, #s
  for e in s:gmatch("%S+()") do
    k = k + 1
    if k == n then last = e - 1 break end
  end
  return s:sub(1, last)
end
M.clip = clip

--- quotas per class for `total` items: equal shares, classes with fewer items give the rest
--- to the others (water-filling). counts: {label = available}; returns {label = quota}
function M.waterfill(counts, total)
  local labels = {}
  for l in pairs(counts) do labels[#labels + 1] = l end
  table.sort(labels)
  local quota, left, open = {}, total, {}
  for _, l in ipairs(labels) do quota[l] = 0; open[#open + 1] = l end
  while left > 0 and #open > 0 do
    local share = math.max(1, left // #open)
    local still = {}
    for _, l in ipairs(open) do
      local give = math.min(share, counts[l] - quota[l], left)
      quota[l] = quota[l] + give
      left = left - give
      if quota[l] < counts[l] then still[#still + 1] = l end
    end
    open = still
  end
  return quota
end

--- stratified sample: items grouped by label(x), `total` drawn with waterfill quotas, each
--- class in hash order; the result is in hash order too
local function stratified(items, label, total, seed, key)
  local by, counts = {}, {}
  for _, x in ipairs(items) do
    local l = label(x)
    by[l] = by[l] or {}
    table.insert(by[l], x)
    counts[l] = (counts[l] or 0) + 1
  end
  local quota = M.waterfill(counts, total)
  local out = {}
  for l, list in pairs(by) do
    for _, x in ipairs(take(hsort(list, seed, key), quota[l])) do out[#out + 1] = x end
  end
  return hsort(out, seed + 7, key)
end
M.stratified = stratified

--- check that no unit is on both sides and that every group is on one side only; raises
function M.assert_disjoint(task, train_units, test_units, group_of)
  local side, gside = {}, {}
  for _, u in ipairs(train_units) do side[u] = 1; if group_of then gside[group_of(u)] = 1 end end
  for _, u in ipairs(test_units) do
    if side[u] == 1 then error(("%s: split leak: '%s' is in train and test"):format(task, u), 0) end
    if group_of and gside[group_of(u)] == 1 then
      error(("%s: split leak: group '%s' of '%s' is in train and test"):format(task, group_of(u), u), 0)
    end
  end
end

local function add_ok(ok, msg, what)
  if not ok then error(("%s: %s"):format(what, msg), 0) end
end

local function new_pairs() return D.new("pairs") end

-- xorshift64* for the few places that need a stream of random numbers
local function rng(seed)
  local x = seed ~ 0x9E3779B97F4A7C15
  if x == 0 then x = 1 end
  return function(n)
    x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
    local r = (x * 2685821657736338717) >> 11
    return r % n + 1
  end
end
M.rng = rng

-- ------------------------------------------------------------------ WordNet side data

--- attach split sides and groups to a WordNet db (once): syn.side (1 train, 2 test), syn.group
function M.wordnet_split(db)
  if db.split_done then return end
  local gid, ids, n = {}, {}, 0
  for i, syn in ipairs(db.list) do
    local g = wordnet.group_of(db, syn)
    syn.group = g
    if not gid[g] then n = n + 1; gid[g] = n end
    ids[i] = gid[g]
  end
  local part = D.split_assign(#db.list, ids, M.WN_RATIOS, M.SEED_WN)
  db.groups = {}
  for i, syn in ipairs(db.list) do
    syn.side = part[i]
    local gl = db.groups[syn.group]
    if not gl then gl = {}; db.groups[syn.group] = gl end
    gl[#gl + 1] = syn
  end
  -- counts of query strings and definitions (uniqueness filters)
  db.qcount, db.dcount = {}, {}
  for _, syn in ipairs(db.list) do
    syn.query = table.concat(syn.lemmas, "; ")
    db.qcount[syn.query] = (db.qcount[syn.query] or 0) + 1
    db.dcount[syn.definition] = (db.dcount[syn.definition] or 0) + 1
  end
  db.split_done = true
end

local function wn_group_of(db) return function(id) return db.by_id[id].group end end

-- members of each sibling group usable as texts (unique definition of >= 2 words), once
local function group_docs(db)
  if not db.gdocs then
    db.gdocs = {}
    for _, s in ipairs(db.list) do
      if db.dcount[s.definition] == 1 and nwords(s.definition) >= 2 then
        local l = db.gdocs[s.group]
        if not l then l = {}; db.gdocs[s.group] = l end
        l[#l + 1] = s
      end
    end
  end
  return db.gdocs
end

local function siblings(db, syn)
  local out = {}
  for _, s in ipairs(group_docs(db)[syn.group] or {}) do
    if s ~= syn and s.side == syn.side then out[#out + 1] = s end
  end
  return out
end

local function has_sibling(db, syn)
  local l = group_docs(db)[syn.group]
  return l and (#l > 1 or (#l == 1 and l[1] ~= syn))
end

-- ------------------------------------------------------------------ ID: wn-def

function M.wn_def(ctx)
  local db = ctx:wordnet()
  M.wordnet_split(db)
  local Z = M.SIZES
  local elig = { {}, {} }
  for _, syn in ipairs(db.list) do
    if db.qcount[syn.query] == 1 and db.dcount[syn.definition] == 1 and nwords(syn.definition) >= 2 then
      table.insert(elig[syn.side], syn)
    end
  end
  -- train: query -> definition, hard negative = a sibling's definition
  local train = new_pairs()
  local with_sib = {}
  for _, syn in ipairs(elig[1]) do
    if has_sibling(db, syn) then with_sib[#with_sib + 1] = syn end
  end
  local tr_units = {}
  for _, syn in ipairs(take(hsort(with_sib, M.SEED + 11, function(s) return s.id end), Z.train_pairs)) do
    local sib = hsort(siblings(db, syn), M.SEED + 12, function(s) return syn.id .. s.id end)[1]
    add_ok(train:add_pair(syn.query, syn.definition, sib.definition))
    tr_units[#tr_units + 1] = syn.id
    tr_units[#tr_units + 1] = sib.id
  end
  -- test: 1k queries, corpus = positives + their siblings + other test-side definitions
  local test = D.new("retrieval")
  local queries = take(hsort(elig[2], M.SEED + 13, function(s) return s.id end), Z.test_queries)
  local in_corpus, docs, te_units = {}, {}, {}
  local function add_doc(s)
    if in_corpus[s.id] or #docs >= Z.corpus then return end
    in_corpus[s.id] = true
    docs[#docs + 1] = s
  end
  for _, q in ipairs(queries) do add_doc(q) end
  for _, q in ipairs(queries) do
    for _, s in ipairs(take(hsort(siblings(db, q), M.SEED + 14, function(s) return s.id end), 5)) do add_doc(s) end
  end
  local fill = {}
  for _, syn in ipairs(db.list) do
    if syn.side == 2 and db.dcount[syn.definition] == 1 and nwords(syn.definition) >= 2 then fill[#fill + 1] = syn end
  end
  for _, s in ipairs(hsort(fill, M.SEED + 15, function(s) return s.id end)) do
    if #docs >= Z.corpus then break end
    add_doc(s)
  end
  for _, s in ipairs(docs) do
    add_ok(test:add_doc(s.id, "", s.definition))
    te_units[#te_units + 1] = s.id
  end
  for _, q in ipairs(queries) do
    add_ok(test:add_query("q-" .. q.id, q.query))
    add_ok(test:add_qrel("test", "q-" .. q.id, q.id, 1))
  end
  M.assert_disjoint("wn-def", tr_units, te_units, wn_group_of(db))
  return {
    files = { train = { ds = train, path = "train.jsonl" }, test = { ds = test, path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    train = "train",
    split = { by = "synset (sibling groups kept together)", seed = M.SEED_WN, ratios = { train = 0.8, test = 0.2 } },
    units = { train = tr_units, test = te_units },
  }
end

-- ------------------------------------------------------------------ ID: wn-sts

local function sts_candidates(db, side, seed, budget)
  local pool = { n = {}, v = {} }
  local by_lex = {}
  for _, syn in ipairs(db.list) do
    if syn.side == side and (syn.pos == "n" or syn.pos == "v") and db.dcount[syn.definition] == 1 and
        nwords(syn.definition) >= 3 then
      table.insert(pool[syn.pos], syn)
      local k = syn.pos .. syn.lexfile
      by_lex[k] = by_lex[k] or {}
      table.insert(by_lex[k], syn)
    end
  end
  local seen, cands = {}, {}
  local function add(a, b)
    if a == b or a.pos ~= b.pos then return end
    local k = a.id < b.id and (a.id .. b.id) or (b.id .. a.id)
    if seen[k] then return end
    seen[k] = true
    cands[#cands + 1] = { a, b }
  end
  local r = rng(seed)
  -- siblings and parent/child (high scores)
  local groups = {}
  for _, syn in ipairs(pool.n) do groups[#groups + 1] = syn end
  for _, syn in ipairs(pool.v) do groups[#groups + 1] = syn end
  groups = hsort(groups, seed + 1, function(s) return s.id end)
  local k = 0
  for _, syn in ipairs(groups) do
    if k >= budget then break end
    local sibs = db.groups[syn.group]
    if #sibs > 1 then
      local s = sibs[r(#sibs)]
      if s.side == side and db.dcount[s.definition] == 1 and nwords(s.definition) >= 3 then add(syn, s); k = k + 1 end
    end
    local p = db.by_id[syn.hypernyms[1] or ""]
    if p and p.side == side and db.dcount[p.definition] == 1 and nwords(p.definition) >= 3 then add(syn, p); k = k + 1 end
  end
  -- same lexicographer file (middle), any pair of the same POS (low)
  local lexkeys = {}
  for key in pairs(by_lex) do lexkeys[#lexkeys + 1] = key end
  table.sort(lexkeys)
  for _ = 1, budget do
    local l = by_lex[lexkeys[r(#lexkeys)]]
    if #l > 1 then add(l[r(#l)], l[r(#l)]) end
  end
  for _ = 1, budget do
    local p = r(4) == 1 and pool.v or pool.n
    if #p > 1 then add(p[r(#p)], p[r(#p)]) end
  end
  return cands
end

local function sts_sample(db, side, total, seed)
  local cands = sts_candidates(db, side, seed, math.max(2000, total * 2))
  local items = {}
  for _, c in ipairs(cands) do
    local w = wordnet.wup(db, c[1].id, c[2].id)
    if w then items[#items + 1] = { a = c[1], b = c[2], score = math.floor(w * 10000 + 0.5) / 10000 } end
  end
  local function bin(x) return math.min(9, math.floor(x.score * 10)) end
  return stratified(items, bin, total, seed + 3, function(x) return x.a.id .. x.b.id end)
end

function M.wn_sts(ctx)
  local db = ctx:wordnet()
  M.wordnet_split(db)
  local Z = M.SIZES
  local out, units, hist = {}, {}, {}
  for side, n in ipairs({ Z.sts_train, Z.sts_test }) do
    local ds = D.new("graded")
    units[side] = {}
    hist[side] = {}
    for _, x in ipairs(sts_sample(db, side, n, M.SEED + 20 + side * 5)) do
      add_ok(ds:add_graded(x.a.definition, x.b.definition, x.score))
      units[side][#units[side] + 1] = x.a.id
      units[side][#units[side] + 1] = x.b.id
      local b = math.min(9, math.floor(x.score * 10))
      hist[side][b + 1] = (hist[side][b + 1] or 0) + 1
    end
    out[side] = ds
  end
  M.assert_disjoint("wn-sts", units[1], units[2], wn_group_of(db))
  local function bins(t)
    local r = {}
    for b = 1, 10 do r[b] = t[b] or 0 end
    return r
  end
  return {
    files = { train = { ds = out[1], path = "train.jsonl" }, test = { ds = out[2], path = "test.jsonl" } },
    evals = { { type = "sts", metric = "cosine_spearman", test = "test" } },
    train = "train",
    split = { by = "synset (sibling groups kept together)", seed = M.SEED_WN, ratios = { train = 0.8, test = 0.2 } },
    extra = { score = "Wu-Palmer similarity of the two synsets (NLTK 3.8 definition), 0..1",
      score_bins = { train = bins(hist[1]), test = bins(hist[2]) } },
    units = { train = units[1], test = units[2] },
  }
end

-- ------------------------------------------------------------------ ID: wn-sense

local function sense_candidates(db, side, seed)
  -- lemma index per POS family (satellites count as adjectives)
  if not db.lemma_index then
    db.lemma_index = {}
    for _, syn in ipairs(db.list) do
      local fam = syn.pos == "s" and "a" or syn.pos
      for _, l in ipairs(syn.lemmas) do
        local k = fam .. ":" .. l:lower()
        db.lemma_index[k] = db.lemma_index[k] or {}
        table.insert(db.lemma_index[k], syn)
      end
    end
  end
  local cands = {}
  for _, syn in ipairs(db.list) do
    if syn.side == side and #syn.examples > 0 and db.dcount[syn.definition] == 1 then
      local fam = syn.pos == "s" and "a" or syn.pos
      local others = {}
      for _, l in ipairs(syn.lemmas) do
        for _, o in ipairs(db.lemma_index[fam .. ":" .. l:lower()]) do
          if o ~= syn and o.side == side and db.dcount[o.definition] == 1 then others[#others + 1] = o end
        end
      end
      if #others > 0 then
        for i, e in ipairs(syn.examples) do
          if nwords(e) >= 3 then
            local o = hsort(others, seed, function(x) return syn.id .. i .. x.id end)[1]
            cands[#cands + 1] = { syn = syn, example = e, other = o, key = syn.id .. "#" .. i }
          end
        end
      end
    end
  end
  return cands
end

function M.wn_sense(ctx)
  local db = ctx:wordnet()
  M.wordnet_split(db)
  local Z = M.SIZES
  local files, units = {}, {}
  for side, n in ipairs({ Z.sense_train, Z.sense_test }) do
    local seed = M.SEED + 40 + side
    local picked = take(hsort(sense_candidates(db, side, seed), seed + 1, function(c) return c.key end), n // 2)
    local rows = {}
    units[side] = {}
    for _, c in ipairs(picked) do
      rows[#rows + 1] = { c.example, c.syn.definition, 1, c.key .. "+" }
      rows[#rows + 1] = { c.example, c.other.definition, 0, c.key .. "-" }
      units[side][#units[side] + 1] = c.syn.id
      units[side][#units[side] + 1] = c.other.id
    end
    local ds = D.new("graded")
    for _, r in ipairs(hsort(rows, seed + 2, function(r) return r[4] end)) do add_ok(ds:add_graded(r[1], r[2], r[3])) end
    files[side] = ds
  end
  M.assert_disjoint("wn-sense", units[1], units[2], wn_group_of(db))
  return {
    files = { train = { ds = files[1], path = "train.jsonl" }, test = { ds = files[2], path = "test.jsonl" } },
    evals = { { type = "pair_classification", metric = "max_ap", test = "test" } },
    train = "train",
    split = { by = "synset (sibling groups kept together)", seed = M.SEED_WN, ratios = { train = 0.8, test = 0.2 } },
    extra = { score = "1 = the gloss of the example's own sense, 0 = the gloss of another sense of one of its lemmas (same POS)" },
    units = { train = units[1], test = units[2] },
  }
end

-- ------------------------------------------------------------------ Debian side data

function M.debian_split(pkgs)
  if pkgs.split_done then return end
  local gid, ids, n = {}, {}, 0
  for i, p in ipairs(pkgs) do
    if not gid[p.source] then n = n + 1; gid[p.source] = n end
    ids[i] = gid[p.source]
  end
  local part = D.split_assign(#pkgs, ids, M.DEB_RATIOS, M.SEED_DEB)
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
  local Z = M.SIZES
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
  for _, p in ipairs(take(hsort(with_neg, M.SEED + 51, function(p) return p.source end), Z.train_pairs)) do
    local neg = same_section(p, M.SEED + 52)[1]
    add_ok(train:add_pair(p.short, clip(p.long, Z.max_words), clip(neg.long, Z.max_words)))
    tr_units[#tr_units + 1] = p.source
    tr_units[#tr_units + 1] = neg.source
  end
  local test, te_units = D.new("retrieval"), {}
  local queries = take(hsort(elig[2], M.SEED + 53, function(p) return p.source end), Z.test_queries)
  local in_corpus, docs = {}, {}
  local function add_doc(p)
    if in_corpus[p.source] or #docs >= Z.corpus then return end
    in_corpus[p.source] = true
    docs[#docs + 1] = p
  end
  for _, q in ipairs(queries) do add_doc(q) end
  for _, q in ipairs(queries) do
    for _, o in ipairs(same_section(q, M.SEED + 54, 3)) do add_doc(o) end
  end
  local fill = {}
  for _, p in ipairs(pkgs) do if p.side == 2 and nwords(p.long) >= 8 then fill[#fill + 1] = p end end
  for _, p in ipairs(hsort(fill, M.SEED + 55, function(p) return p.source end)) do
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
  M.assert_disjoint("deb-desc", tr_units, te_units)
  return {
    files = { train = { ds = train, path = "train.jsonl" }, test = { ds = test, path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    train = "train",
    split = { by = "source package", seed = M.SEED_DEB, ratios = { train = 0.65, test = 0.35 } },
    units = { train = tr_units, test = te_units },
  }
end

function M.deb_section(ctx)
  local pkgs = ctx:debian()
  M.debian_split(pkgs)
  local Z = M.SIZES
  local keep = {}
  for _, s in ipairs(M.DEB_SECTIONS) do keep[s] = true end
  local items = { {}, {} }
  for _, p in ipairs(pkgs) do
    if keep[p.section] and nwords(p.long) >= 8 then table.insert(items[p.side], p) end
  end
  local files, units, labels = {}, {}, {}
  for side, n in ipairs({ Z.section_train, Z.section_test }) do
    local ds = D.new("labelled")
    units[side] = {}
    labels[side] = {}
    for _, p in ipairs(stratified(items[side], function(p) return p.section end, n, M.SEED + 60 + side,
      function(p) return p.source end)) do
      add_ok(ds:add_labelled(clip(p.long, Z.max_words), p.section))
      units[side][#units[side] + 1] = p.source
    end
    files[side] = ds
  end
  M.assert_disjoint("deb-section", units[1], units[2])
  return {
    files = { train = { ds = files[1], path = "train.jsonl" }, test = { ds = files[2], path = "test.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "train", test = "test" } },
    train = "train",
    split = { by = "source package", seed = M.SEED_DEB, ratios = { train = 0.65, test = 0.35 } },
    extra = { sections = M.DEB_SECTIONS },
    units = { train = units[1], test = units[2] },
  }
end

-- ------------------------------------------------------------------ pretraining text

function M.pretrain(ctx)
  local Z = M.SIZES
  local ds = D.new("text")
  local counts = {}
  local function add(src, text)
    text = S.squash(text)
    if #text == 0 then return end
    add_ok(ds:add_text(text))
    local c = counts[src] or { docs = 0, words = 0 }
    c.docs = c.docs + 1
    c.words = c.words + nwords(text)
    counts[src] = c
  end
  local db = ctx:wordnet()
  M.wordnet_split(db)
  for _, syn in ipairs(db.list) do
    if syn.side == 1 and #syn.gloss > 0 then add("wordnet", table.concat(syn.lemmas, ", ") .. ": " .. syn.gloss) end
  end
  local pkgs = ctx:debian()
  M.debian_split(pkgs)
  for _, p in ipairs(pkgs) do
    if p.side == 1 then add("debian", p.short .. ". " .. p.long) end
  end
  local prose = require "amalgam.sources.prose"
  for _, sp in ipairs(ctx:sotu()) do
    for _, c in ipairs(prose.chunks(sp.text, Z.chunk_words)) do add("sotu", c) end
  end
  for _, ch in ipairs(ctx:moby()) do
    local cur, cw = {}, 0
    for _, para in ipairs(ch.paragraphs) do
      for _, c in ipairs(prose.chunks(para, Z.chunk_words)) do
        local w = nwords(c)
        if cw > 0 and cw + w > Z.chunk_words then add("moby-dick", table.concat(cur, " ")); cur, cw = {}, 0 end
        cur[#cur + 1] = c
        cw = cw + w
      end
    end
    if cw > 0 then add("moby-dick", table.concat(cur, " ")) end
  end
  return {
    files = { corpus = { ds = ds, path = "corpus.txt", fmt = "lines" } },
    evals = {},
    train = "corpus",
    split = { by = "the train side of the WordNet and Debian splits only; SOTU and Moby-Dick whole", seed = M.SEED },
    extra = { sources = counts },
  }
end

-- ------------------------------------------------------------------ OOD retrieval

local function retrieval_from(opts)
  -- opts.docs: { {doc id, text} }, opts.queries: { {query id, text, {relevant doc ids}} }
  local ds = D.new("retrieval")
  local seen = {}
  for _, d in ipairs(opts.docs) do
    if not seen[d[1]] then
      seen[d[1]] = true
      add_ok(ds:add_doc(d[1], "", d[2]))
    end
  end
  for _, q in ipairs(opts.queries) do
    add_ok(ds:add_query(q[1], q[2]))
    for _, did in ipairs(q[3]) do add_ok(ds:add_qrel("test", q[1], did, 1)) end
  end
  return ds
end

function M.foldoc_def(ctx)
  local Z = M.SIZES
  local entries = ctx:foldoc()
  local hcount, tcount = {}, {}
  for _, e in ipairs(entries) do
    hcount[e.headword:lower()] = (hcount[e.headword:lower()] or 0) + 1
    tcount[e.text] = (tcount[e.text] or 0) + 1
  end
  local elig, all = {}, {}
  for i, e in ipairs(entries) do
    e.did = "foldoc-" .. i
    if tcount[e.text] == 1 and nwords(e.text) >= 5 then
      all[#all + 1] = e
      if hcount[e.headword:lower()] == 1 then elig[#elig + 1] = e end
    end
  end
  local queries = take(hsort(elig, M.SEED + 71, function(e) return e.did end), Z.test_queries)
  local inq = {}
  for _, q in ipairs(queries) do inq[q.did] = true end
  local docs = {}
  for _, q in ipairs(queries) do docs[#docs + 1] = { q.did, clip(q.text, Z.max_words) } end
  for _, e in ipairs(hsort(all, M.SEED + 72, function(e) return e.did end)) do
    if #docs >= Z.ood_corpus then break end
    if not inq[e.did] then docs[#docs + 1] = { e.did, clip(e.text, Z.max_words) } end
  end
  local qs = {}
  for _, q in ipairs(queries) do qs[#qs + 1] = { "q-" .. q.did, q.headword, { q.did } } end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
  }
end

function M.prog_faq(ctx)
  local qa = ctx:faqs()
  local qcount = {}
  for _, x in ipairs(qa) do qcount[x.question:lower()] = (qcount[x.question:lower()] or 0) + 1 end
  local docs, qs = {}, {}
  for _, x in ipairs(qa) do
    docs[#docs + 1] = { x.id, clip(x.answer, M.SIZES.max_words) }
    if qcount[x.question:lower()] == 1 then qs[#qs + 1] = { "q-" .. x.id, x.question, { x.id } } end
  end
  local labelled = D.new("labelled")
  for _, x in ipairs(qa) do add_ok(labelled:add_labelled(x.question, x.source .. ": " .. x.section)) end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" },
      sections = { ds = labelled, path = "sections.jsonl" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    extra = { sections = "sections.jsonl: question -> FAQ section (optional clustering, not in the default evals)" },
  }
end

function M.manpage(ctx)
  local pages = ctx:manpages()
  local scount = {}
  for _, p in ipairs(pages) do scount[p.summary:lower()] = (scount[p.summary:lower()] or 0) + 1 end
  local docs, qs = {}, {}
  for _, p in ipairs(pages) do
    local id = p.package .. "/" .. p.page
    docs[#docs + 1] = { id, clip(p.description, M.SIZES.man_words) }
    if scount[p.summary:lower()] == 1 then qs[#qs + 1] = { "q-" .. id, p.summary, { id } } end
  end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    extra = { query = "NAME line without the function names", doc = ("the first %d words of DESCRIPTION"):format(M.SIZES.man_words) },
  }
end

function M.kjv_web(ctx)
  local Z = M.SIZES
  local kjv, web = ctx:bibles()
  local sword = require "amalgam.sources.sword"
  local pairs_ = sword.align(kjv, web, 0.1)
  local picked = take(hsort(pairs_, M.SEED + 81, function(p) return p.ref end), Z.kjv_queries)
  local docs, inc = {}, {}
  local function add(k)
    local v = web.verses[k]
    if v and not inc[v.ref] and #docs < Z.kjv_corpus then
      inc[v.ref] = true
      docs[#docs + 1] = { v.ref, v.text }
    end
  end
  for _, p in ipairs(picked) do add(web.by_ref[p.ref]) end
  -- neighbouring verses of the same chapter are the hard distractors
  for _, p in ipairs(picked) do
    local k = web.by_ref[p.ref]
    local ch = p.ref:match("^(.*)%.%d+$")
    for _, d in ipairs({ -1, 1, -2, 2 }) do
      local v = web.verses[k + d]
      if v and v.ref:match("^(.*)%.%d+$") == ch then add(k + d) end
    end
  end
  for _, k in ipairs(hsort((function() local t = {} for i = 1, #web.verses do t[i] = i end return t end)(),
    M.SEED + 82, function(i) return web.verses[i].ref end)) do
    if #docs >= Z.kjv_corpus then break end
    add(k)
  end
  local qs = {}
  for _, p in ipairs(picked) do qs[#qs + 1] = { "kjv:" .. p.ref, p.a, { p.ref } } end
  local sum = 0
  for _, p in ipairs(pairs_) do sum = sum + p.jaccard end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" } },
    evals = { { type = "bitext_mining", metric = "accuracy", test = "test",
      note = "accuracy@1: the nearest corpus verse of each KJV query is its WEB verse" } },
    extra = { aligned_pairs = #pairs_, mean_jaccard = math.floor(sum / math.max(1, #pairs_) * 1000 + 0.5) / 1000,
      kjv_verses = #kjv.verses, web_verses = #web.verses },
  }
end

-- ------------------------------------------------------------------ OOD classification / clustering

local function probe_test(items, label, key, group, seed, ratios)
  local gid, ids, n = {}, {}, 0
  for i, x in ipairs(items) do
    local g = group(x)
    if not gid[g] then n = n + 1; gid[g] = n end
    ids[i] = gid[g]
  end
  local part = D.split_assign(#items, ids, ratios or { 0.5, 0.5 }, seed)
  local out = { D.new("labelled"), D.new("labelled") }
  local units = { {}, {} }
  for i, x in ipairs(items) do
    add_ok(out[part[i]]:add_labelled(x.text, label(x)))
    table.insert(units[part[i]], group(x))
  end
  return out, units
end

function M.brown_genre(ctx)
  local paras = ctx:brown()
  local picked = stratified(paras, function(p) return p.genre end, M.SIZES.brown, M.SEED + 91,
    function(p) return p.file .. "#" .. p.para end)
  local ds, units = probe_test(picked, function(p) return p.genre end, nil, function(p) return p.file end, M.SEED + 92)
  M.assert_disjoint("brown-genre", units[1], units[2])
  return {
    files = { probe = { ds = ds[1], path = "probe.jsonl" }, test = { ds = ds[2], path = "test.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "probe", test = "test" },
      { type = "clustering", metric = "v_measure", test = "test" } },
    split = { by = "Brown text (file)", seed = M.SEED + 92, ratios = { probe = 0.5, test = 0.5 } },
  }
end

function M.spam(ctx)
  local Z = M.SIZES
  local mails = ctx:spam()
  local seen, uniq = {}, {}
  for _, m in ipairs(mails) do
    -- the subject without list tags ("[ILUG]", "[SAdev]") that would give the list away
    local subj = S.squash((m.subject:gsub("%[[^%]]*%]", " ")))
    local text = clip(S.squash((subj ~= "" and (subj .. ". ") or "") .. m.body), Z.max_words)
    if nwords(m.body) >= 5 and not seen[m.body] then
      seen[m.body] = true
      m.text = text
      uniq[#uniq + 1] = m
    end
  end
  local picked = stratified(uniq, function(m) return m.label end, Z.spam_class, M.SEED + 101, function(m) return m.id end)
  local ds, units = probe_test(picked, function(m) return m.label end, nil,
    function(m) return m.thread ~= "" and m.thread or m.id end, M.SEED + 102)
  M.assert_disjoint("spam", units[1], units[2])
  -- clustering: ham mails of the 8 largest lists
  local counts = {}
  for _, m in ipairs(uniq) do if m.list then counts[m.list] = (counts[m.list] or 0) + 1 end end
  local lists = {}
  for l in pairs(counts) do lists[#lists + 1] = l end
  table.sort(lists, function(a, b) return counts[a] > counts[b] or (counts[a] == counts[b] and a < b) end)
  local top = {}
  for i = 1, math.min(8, #lists) do top[lists[i]] = true end
  local ham = {}
  for _, m in ipairs(uniq) do if m.list and top[m.list] then ham[#ham + 1] = m end end
  local cl = D.new("labelled")
  for _, m in ipairs(stratified(ham, function(m) return m.list end, Z.spam_cluster, M.SEED + 103, function(m) return m.id end)) do
    add_ok(cl:add_labelled(m.text, m.list))
  end
  local toplist = {}
  for i = 1, math.min(8, #lists) do toplist[i] = lists[i] end
  return {
    files = { probe = { ds = ds[1], path = "probe.jsonl" }, test = { ds = ds[2], path = "test.jsonl" },
      cluster = { ds = cl, path = "cluster.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "probe", test = "test" },
      { type = "clustering", metric = "v_measure", test = "cluster" } },
    split = { by = "thread (subject without Re:/Fwd:/[list] prefixes)", seed = M.SEED + 102,
      ratios = { probe = 0.5, test = 0.5 } },
    extra = { lists = toplist },
  }
end

return M
