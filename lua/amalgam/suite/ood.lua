-- amalgam/suite/ood.lua - the OOD tasks, test only: retrieval (foldoc-def, prog-faq, manpage),
-- bitext (kjv-web), classification + clustering (brown-genre, spam) with a probe part.
local core = require "amalgam.core"
local S = core.source
local D = core.dataset
local C = require "amalgam.suite.common"
local hsort, take, nwords = C.hsort, C.take, C.nwords
local clip, stratified, add_ok = C.clip, C.stratified, C.add_ok

local M = {}

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
  local Z = C.SIZES
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
  local queries = take(hsort(elig, C.SEED + 71, function(e) return e.did end), Z.test_queries)
  local inq = {}
  for _, q in ipairs(queries) do inq[q.did] = true end
  local docs = {}
  for _, q in ipairs(queries) do docs[#docs + 1] = { q.did, clip(q.text, Z.max_words) } end
  for _, e in ipairs(hsort(all, C.SEED + 72, function(e) return e.did end)) do
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

-- FOLDOC definitions by their first <category> tag, the 12 largest categories: a logistic-
-- regression probe (probe half) and clustering (test half), halves split by entry. Replaces
-- brown-genre, which no trained tiny model separated from the random init (a random model's
-- token features carry the genre as well); the FOLDOC categories do separate them.
function M.foldoc_cat(ctx)
  local Z = C.SIZES
  local entries = ctx:foldoc()
  local tcount, ccount = {}, {}
  for _, e in ipairs(entries) do tcount[e.text] = (tcount[e.text] or 0) + 1 end
  local items = {}
  for i, e in ipairs(entries) do
    if e.category and tcount[e.text] == 1 and nwords(e.text) >= 5 then
      items[#items + 1] = { id = "foldoc-" .. i, text = clip(e.text, Z.max_words), label = e.category }
      ccount[e.category] = (ccount[e.category] or 0) + 1
    end
  end
  local cats = {}
  for c in pairs(ccount) do cats[#cats + 1] = c end
  table.sort(cats, function(a, b) return ccount[a] > ccount[b] or (ccount[a] == ccount[b] and a < b) end)
  local top, names = {}, {}
  for i = 1, math.min(Z.foldoc_cats, #cats) do top[cats[i]] = true; names[i] = cats[i] end
  local kept = {}
  for _, x in ipairs(items) do if top[x.label] then kept[#kept + 1] = x end end
  local picked = stratified(kept, function(x) return x.label end, Z.foldoc_cat, C.SEED + 75, function(x) return x.id end)
  local ds, units = M.probe_test(picked, function(x) return x.label end, function(x) return x.id end, C.SEED + 76)
  C.assert_disjoint("foldoc-cat", units[1], units[2])
  return {
    files = { probe = { ds = ds[1], path = "probe.jsonl" }, test = { ds = ds[2], path = "test.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "probe", test = "test" },
      { type = "clustering", metric = "v_measure", test = "test" } },
    split = { by = "FOLDOC entry", seed = C.SEED + 76, ratios = { probe = 0.5, test = 0.5 } },
    extra = { categories = names },
    units = { probe = units[1], test = units[2] },
  }
end

function M.prog_faq(ctx)
  local qa = ctx:faqs()
  local qcount = {}
  for _, x in ipairs(qa) do qcount[x.question:lower()] = (qcount[x.question:lower()] or 0) + 1 end
  local docs, qs = {}, {}
  for _, x in ipairs(qa) do
    docs[#docs + 1] = { x.id, clip(x.answer, C.SIZES.max_words) }
    if qcount[x.question:lower()] == 1 then qs[#qs + 1] = { "q-" .. x.id, x.question, { x.id } } end
  end
  -- clustering: perlfaq questions by their perlfaqN page (9 topical sections). The Python FAQ stays
  -- out: with it, "Perl" vs "Python" in the question splits the clusters, which a random model
  -- finds as well as a trained one
  local labelled = D.new("labelled")
  for _, x in ipairs(qa) do
    if x.source == "perlfaq" then add_ok(labelled:add_labelled(x.question, x.section)) end
  end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" },
      sections = { ds = labelled, path = "sections.jsonl" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" },
      { type = "clustering", metric = "v_measure", test = "sections" } },
    extra = { sections = "sections.jsonl: perlfaq question -> its perlfaq page's title (clustering)" },
  }
end

function M.manpage(ctx)
  local pages = ctx:manpages()
  local scount = {}
  for _, p in ipairs(pages) do scount[p.summary:lower()] = (scount[p.summary:lower()] or 0) + 1 end
  local docs, qs = {}, {}
  for _, p in ipairs(pages) do
    local id = p.package .. "/" .. p.page
    docs[#docs + 1] = { id, clip(p.description, C.SIZES.man_words) }
    if scount[p.summary:lower()] == 1 then qs[#qs + 1] = { "q-" .. id, p.summary, { id } } end
  end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" } },
    evals = { { type = "retrieval", metric = "ndcg_at_10", test = "test" } },
    extra = { query = "NAME line without the function names", doc = ("the first %d words of DESCRIPTION"):format(C.SIZES.man_words) },
  }
end

function M.kjv_web(ctx)
  local Z = C.SIZES
  local kjv, web = ctx:bibles()
  local sword = require "amalgam.sources.sword"
  local pairs_ = sword.align(kjv, web, 0.1)
  local picked = take(hsort(pairs_, C.SEED + 81, function(p) return p.ref end), Z.kjv_queries)
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
    C.SEED + 82, function(i) return web.verses[i].ref end)) do
    if #docs >= Z.kjv_corpus then break end
    add(k)
  end
  local qs = {}
  for _, p in ipairs(picked) do qs[#qs + 1] = { "kjv:" .. p.ref, p.a, { p.ref } } end
  local sum = 0
  for _, p in ipairs(pairs_) do sum = sum + p.jaccard end
  return {
    files = { test = { ds = retrieval_from({ docs = docs, queries = qs }), path = "test" } },
    evals = { { type = "bitext_mining", metric = "f1", test = "test",
      note = "MTEB bitext mining: each KJV verse against the WEB verses of all queries (one-to-one); "
        .. "the other corpus verses are distractors for bitext:DIR#candidate_pool" } },
    extra = { aligned_pairs = #pairs_, mean_jaccard = math.floor(sum / math.max(1, #pairs_) * 1000 + 0.5) / 1000,
      kjv_verses = #kjv.verses, web_verses = #web.verses },
  }
end

-- ------------------------------------------------------------------ OOD classification / clustering

function M.probe_test(items, label, group, seed, ratios)
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
  local picked = stratified(paras, function(p) return p.genre end, C.SIZES.brown, C.SEED + 91,
    function(p) return p.file .. "#" .. p.para end)
  local ds, units = M.probe_test(picked, function(p) return p.genre end, function(p) return p.file end, C.SEED + 92)
  C.assert_disjoint("brown-genre", units[1], units[2])
  return {
    files = { probe = { ds = ds[1], path = "probe.jsonl" }, test = { ds = ds[2], path = "test.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "probe", test = "test" },
      { type = "clustering", metric = "v_measure", test = "test" } },
    split = { by = "Brown text (file)", seed = C.SEED + 92, ratios = { probe = 0.5, test = 0.5 } },
  }
end

function M.spam(ctx)
  local Z = C.SIZES
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
  local picked = stratified(uniq, function(m) return m.label end, Z.spam_class, C.SEED + 101, function(m) return m.id end)
  local ds, units = M.probe_test(picked, function(m) return m.label end,
    function(m) return m.thread ~= "" and m.thread or m.id end, C.SEED + 102)
  C.assert_disjoint("spam", units[1], units[2])
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
  for _, m in ipairs(stratified(ham, function(m) return m.list end, Z.spam_cluster, C.SEED + 103, function(m) return m.id end)) do
    add_ok(cl:add_labelled(m.text, m.list))
  end
  local toplist = {}
  for i = 1, math.min(8, #lists) do toplist[i] = lists[i] end
  return {
    files = { probe = { ds = ds[1], path = "probe.jsonl" }, test = { ds = ds[2], path = "test.jsonl" },
      cluster = { ds = cl, path = "cluster.jsonl" } },
    evals = { { type = "classification", metric = "accuracy", train = "probe", test = "test" },
      { type = "clustering", metric = "v_measure", test = "cluster" } },
    split = { by = "thread (subject without Re:/Fwd:/[list] prefixes)", seed = C.SEED + 102,
      ratios = { probe = 0.5, test = 0.5 } },
    extra = { lists = toplist },
  }
end

return M
