-- amalgam/suite/wordnet.lua - the WordNet ID tasks (wn-def, wn-sts, wn-sense) and the WordNet
-- split they share: by synset, sibling groups kept together (see amalgam/suite.lua).
local core = require "amalgam.core"
local D = core.dataset
local C = require "amalgam.suite.common"
local hsort, take, nwords, stratified = C.hsort, C.take, C.nwords, C.stratified
local add_ok, new_pairs, rng = C.add_ok, C.new_pairs, C.rng
local wordnet = require "amalgam.sources.wordnet"

local M = {}

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
  local part = D.split_assign(#db.list, ids, C.WN_RATIOS, C.SEED_WN)
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
  local Z = C.SIZES
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
  for _, syn in ipairs(take(hsort(with_sib, C.SEED + 11, function(s) return s.id end), Z.train_pairs)) do
    local sib = hsort(siblings(db, syn), C.SEED + 12, function(s) return syn.id .. s.id end)[1]
    add_ok(train:add_pair(syn.query, syn.definition, sib.definition))
    tr_units[#tr_units + 1] = syn.id
    tr_units[#tr_units + 1] = sib.id
  end
  -- test: 1k queries, corpus = positives + their siblings + other test-side definitions
  local test = D.new("retrieval")
  local queries = take(hsort(elig[2], C.SEED + 13, function(s) return s.id end), Z.test_queries)
  local in_corpus, docs, te_units = {}, {}, {}
  local function add_doc(s)
    if in_corpus[s.id] or #docs >= Z.corpus then return end
    in_corpus[s.id] = true
    docs[#docs + 1] = s
  end
  for _, q in ipairs(queries) do add_doc(q) end
  for _, q in ipairs(queries) do
    for _, s in ipairs(take(hsort(siblings(db, q), C.SEED + 14, function(s) return s.id end), 5)) do add_doc(s) end
  end
  local fill = {}
  for _, syn in ipairs(db.list) do
    if syn.side == 2 and db.dcount[syn.definition] == 1 and nwords(syn.definition) >= 2 then fill[#fill + 1] = syn end
  end
  for _, s in ipairs(hsort(fill, C.SEED + 15, function(s) return s.id end)) do
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
  C.assert_disjoint("wn-def", tr_units, te_units, wn_group_of(db))
  return {
    files = { train = { ds = train, path = "train.jsonl" }, test = { ds = test, path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    train = "train",
    split = { by = "synset (sibling groups kept together)", seed = C.SEED_WN, ratios = { train = 0.8, test = 0.2 } },
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
  local Z = C.SIZES
  local out, units, hist = {}, {}, {}
  for side, n in ipairs({ Z.sts_train, Z.sts_test }) do
    local ds = D.new("graded")
    units[side] = {}
    hist[side] = {}
    for _, x in ipairs(sts_sample(db, side, n, C.SEED + 20 + side * 5)) do
      add_ok(ds:add_graded(x.a.definition, x.b.definition, x.score))
      units[side][#units[side] + 1] = x.a.id
      units[side][#units[side] + 1] = x.b.id
      local b = math.min(9, math.floor(x.score * 10))
      hist[side][b + 1] = (hist[side][b + 1] or 0) + 1
    end
    out[side] = ds
  end
  C.assert_disjoint("wn-sts", units[1], units[2], wn_group_of(db))
  local function bins(t)
    local r = {}
    for b = 1, 10 do r[b] = t[b] or 0 end
    return r
  end
  return {
    files = { train = { ds = out[1], path = "train.jsonl" }, test = { ds = out[2], path = "test.jsonl" } },
    evals = { { type = "sts", metric = "cosine_spearman", test = "test" } },
    train = "train",
    split = { by = "synset (sibling groups kept together)", seed = C.SEED_WN, ratios = { train = 0.8, test = 0.2 } },
    extra = { score = "Wu-Palmer similarity of the two synsets (NLTK 3.8 definition), 0..1",
      score_bins = { train = bins(hist[1]), test = bins(hist[2]) } },
    units = { train = units[1], test = units[2] },
  }
end

-- ------------------------------------------------------------------ ID: wn-sense

-- The negative of an example is the gloss of a synset from the same lexicographer file (same POS
-- family and topic: noun.food, verb.motion, ...) in another sibling group that shares none of the
-- example synset's lemmas. Negatives that are other senses of the example's own lemma (the first
-- design) ask for word-sense disambiguation, which every tiny model, trained or not, did at
-- chance (max AP 52-54, paired accuracy 49-54%); a same-topic gloss is related enough that word
-- overlap does not decide it, and a model that learned glosses does tell the two apart.
local function sense_candidates(db, side, seed)
  local by_lex = {}
  for _, syn in ipairs(db.list) do
    if syn.side == side and db.dcount[syn.definition] == 1 and nwords(syn.definition) >= 2 then
      local k = (syn.pos == "s" and "a" or syn.pos) .. ":" .. syn.lexfile
      by_lex[k] = by_lex[k] or {}
      table.insert(by_lex[k], syn)
    end
  end
  for k, l in pairs(by_lex) do by_lex[k] = hsort(l, seed + 3, function(s) return s.id end) end
  local function shares_lemma(a, b)
    for _, x in ipairs(a.lemmas) do
      for _, y in ipairs(b.lemmas) do if x:lower() == y:lower() then return true end end
    end
    return false
  end
  local cands = {}
  for _, syn in ipairs(db.list) do
    if syn.side == side and #syn.examples > 0 and db.dcount[syn.definition] == 1 then
      local l = by_lex[(syn.pos == "s" and "a" or syn.pos) .. ":" .. syn.lexfile] or {}
      for i, e in ipairs(syn.examples) do
        if nwords(e) >= 3 and #l > 1 then
          -- a seeded start in the lexfile's list, then the first synset that qualifies
          local start = C.hash(syn.id .. "#" .. i, seed) % #l
          for j = 0, math.min(#l, 64) - 1 do
            local o = l[(start + j) % #l + 1]
            if o.group ~= syn.group and not shares_lemma(syn, o) then
              cands[#cands + 1] = { syn = syn, example = e, other = o, key = syn.id .. "#" .. i }
              break
            end
          end
        end
      end
    end
  end
  return cands
end
M.sense_candidates = sense_candidates

function M.wn_sense(ctx)
  local db = ctx:wordnet()
  M.wordnet_split(db)
  local Z = C.SIZES
  local files, units = {}, {}
  for side, n in ipairs({ Z.sense_train, Z.sense_test }) do
    local seed = C.SEED + 40 + side
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
  C.assert_disjoint("wn-sense", units[1], units[2], wn_group_of(db))
  return {
    files = { train = { ds = files[1], path = "train.jsonl" }, test = { ds = files[2], path = "test.jsonl" } },
    evals = { { type = "pair_classification", metric = "max_ap", test = "test" } },
    train = "train",
    split = { by = "synset (sibling groups kept together)", seed = C.SEED_WN, ratios = { train = 0.8, test = 0.2 } },
    extra = { score = "1 = the gloss of the example's own sense, 0 = the gloss of a synset of the same lexicographer file "
      .. "(POS and topic) in another sibling group, sharing no lemma" },
    units = { train = units[1], test = units[2] },
  }
end

return M
