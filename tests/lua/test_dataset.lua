-- test_dataset.lua - the API contract of am.dataset (lua/API.md "Datasets"): every function and
-- Dataset method with a success case, its `nil, msg, code` failures, and misuse (raised errors
-- naming the function). The formats in depth are tested in C (tests/unit/test_data*.c).
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local D = am.dataset
local TD = os.getenv("AM_TEST_DIR") or (arg[0]:match("^(.*)/lua/[^/]*$") or "tests")

local dir = T.tmpdir("ds_api")
assert(am.source.mkdir_p(dir))
local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  return path
end

-- ------------------------------------------------------------------ am.dataset.new
for _, kind in ipairs { "pairs", "graded", "sts", "labelled", "labels", "text", "retrieval" } do
  local ds = D.new(kind, "origin-" .. kind)
  T.eq(am.type(ds), "Dataset", "am.type of a " .. kind .. " dataset")
  T.eq(ds:n(), 0, "new " .. kind .. " dataset is empty")
end
T.eq(D.new("sts"):kind(), "graded", "sts is an alias of graded")
T.eq(D.new("labels"):kind(), "labelled", "labels is an alias of labelled")
T.eq(am.json.decode(D.new("text", "my-origin"):describe()).origin, "my-origin", "new(kind, origin)")
T.checkerr("bad argument #1 to 'new' (unknown dataset kind 'nope'", function() D.new("nope") end)
T.checkerr("bad argument #1 to 'new' (string expected, got no value)", function() D.new() end)
T.checkerr("bad argument #2 to 'new' (string expected, got table)", function() D.new("text", {}) end)

-- ------------------------------------------------------------------ adds and reads, per kind
local p = D.new("pairs")
T.eq(p:add_pair("q1", "p1", "n1"), true, "add_pair(q, pos, neg)")
T.eq(p:add_pair("q2", { "p2", "p3" }), true, "add_pair(q, {pos...})")
T.checkfail("EINVAL", p.add_pair, p, "q3", {})                -- no positive
T.checkfail("EUTF8", p.add_pair, p, "q\xff", "p")
T.checkfail("EINVAL", p.add_graded, p, "a", "b", 1)             -- wrong kind
T.checkerr("bad argument #1 to 'add_pair' (string expected, got nil)", function() p:add_pair(nil, "p") end)
T.checkerr("bad argument #2 to 'add_pair' (list of strings expected)", function() p:add_pair("q", { 5 }) end)
T.eq(p:n(), 2, "n() after a refused row")
T.eq(#p, 2, "#ds")
T.eq(p:kind(), "pairs", "kind()")
T.eq(p:docs(), 0, "docs() of a pairs dataset")
local r1 = p:row(2)
T.ok(r1.query == "q2" and r1.pos[2] == "p3" and #r1.neg == 0, "row(i) of pairs")
T.eq(p:row(1).neg[1], "n1", "row(i).neg")
T.checkerr("bad argument #1 to 'row' (row out of range)", function() p:row(3) end)
T.checkerr("bad argument #1 to 'row' (number expected, got string)", function() p:row("x") end)
T.eq(tostring(p), "Dataset (pairs, 2 rows)", "tostring")

local g = D.new("graded")
T.eq(g:add_graded("a", "b", 0.5), true, "add_graded")
T.checkfail("EINVAL", g.add_graded, g, "a", "b", 0 / 0)        -- not finite
T.checkerr("bad argument #3 to 'add_graded' (number expected, got string)", function() g:add_graded("a", "b", "x") end)
T.near(g:row(1).score, 0.5, 0, "row(i).score")

local l = D.new("labelled")
T.eq(l:add_labelled("buy now", "spam"), true, "add_labelled(text, string)")
T.eq(l:add_labelled("hello", 3), true, "add_labelled(text, number)")
T.checkfail("EINVAL", l.add_labelled, l, "x", "")               -- empty label
T.checkerr("bad argument #2 to 'add_labelled' (string expected, got table)", function() l:add_labelled("x", {}) end)
T.eq(table.concat(l:labels(), ","), "3,spam", "labels() sorted")
T.eq(l:row(1).label, "spam", "row(i).label")

local t = D.new("text")
T.eq(t:add_text("one document"), true, "add_text")
T.checkfail("EUTF8", t.add_text, t, "\xff")
T.checkerr("bad argument #1 to 'add_text' (string expected, got nil)", function() t:add_text(nil) end)
T.eq(t:row(1).text, "one document", "row(i).text")

local r = D.new("retrieval")
T.eq(r:add_doc("d1", "Title", "doc one"), true, "add_doc(id, title, text)")
T.eq(r:add_doc("d2", nil, "doc two"), true, "add_doc(id, nil, text)")
T.checkfail("EEXIST", r.add_doc, r, "d1", nil, "again")
T.checkerr("bad argument #1 to 'add_doc' (string expected, got nil)", function() r:add_doc(nil, nil, "x") end)
T.eq(r:add_query("q1", "which doc"), true, "add_query")
T.checkfail("EEXIST", r.add_query, r, "q1", "again")
T.checkerr("bad argument #2 to 'add_query' (string expected, got no value)", function() r:add_query("q2") end)
T.eq(r:add_qrel("test", "q1", "d2"), true, "add_qrel (grade 1 by default)")
T.eq(r:add_qrel("dev", "q1", "d1", 0), true, "add_qrel with a grade")
T.checkfail("ENOTFOUND", r.add_qrel, r, "test", "q9", "d1", 1)
T.checkfail("EEXIST", r.add_qrel, r, "test", "q1", "d2", 1)
T.checkerr("bad argument #4 to 'add_qrel' (grade must be in 0..1000000)", function() r:add_qrel("test", "q1", "d1", -1) end)
T.eq(r:docs(), 2, "docs()")
T.eq(r:n(), 1, "n() of retrieval = queries")
T.ok(r:row(1).id == "q1" and r:row(1).text == "which doc", "row(i) of retrieval is a query")
local d = r:doc(1)
T.ok(d.id == "d1" and d.title == "Title" and d.text == "doc one", "doc(i)")
T.checkerr("bad argument #1 to 'doc' (doc out of range)", function() r:doc(3) end)
T.checkerr("calling 'doc' on bad self (not a retrieval dataset)", function() p:doc(1) end)
T.eq(#r:qrels(), 2, "qrels() of every split")
local q = r:qrels("test")
T.ok(#q == 1 and q[1].split == "test" and q[1].query == "q1" and q[1].doc == "d2" and q[1].grade == 1, "qrels(split)")
T.checkerr("calling 'qrels' on bad self (not a retrieval dataset)", function() p:qrels() end)

-- ------------------------------------------------------------------ finish, hash, describe, select
T.eq(p:finish(), p, "finish() returns the dataset")
T.eq(#p:hash(), 32, "hash() is 32 hex chars")
local desc = assert(am.json.decode(p:describe()))
T.ok(desc.kind == "pairs" and desc.rows == 2 and desc.content_hash == p:hash(), "describe(): JSON with kind, rows, hash")
local sel = assert(p:select({ 2, 2, 1 }))
T.ok(sel:n() == 3 and sel:row(1).query == "q2" and sel:row(3).query == "q1", "select(ids) keeps the order and repeats")
T.checkerr("bad argument #1 to 'select' (id #1 out of range)", function() p:select({ 9 }) end)
T.checkerr("bad argument #1 to 'select' (table expected, got string)", function() p:select("x") end)

-- ------------------------------------------------------------------ write, load, import
T.eq(p:write(dir .. "/p.jsonl"), true, "write pairs JSONL")
T.eq(g:write(dir .. "/g.tsv", "tsv"), true, "write graded TSV")
T.eq(r:write(dir .. "/beir"), true, "write BEIR")
T.checkfail("EINVAL", p.write, p, dir .. "/p.tsv", "tsv")        -- TSV does not hold pairs
T.checkfail("EINVAL", D.new("text").write, D.new("text"), dir .. "/empty.txt")
T.checkfail("EIO", p.write, p, dir .. "/no/such/dir/p.jsonl")
T.checkerr("bad argument #2 to 'write' (invalid option 'xml')", function() p:write(dir .. "/x", "xml") end)
local lp = assert(D.load("pairs", dir .. "/p.jsonl"))
T.eq(lp:hash(), p:hash(), "load(kind, path): same content hash")
T.eq(assert(D.load("graded", dir .. "/g.tsv", "tsv")):hash(), g:hash(), "load(kind, path, fmt)")
local lr = assert(D.load("retrieval", dir .. "/beir"))
T.ok(lr:docs() == 2 and #lr:qrels() == 2, "load retrieval: a BEIR directory, every split")
T.checkfail("ENOTFOUND", D.load, "pairs", dir .. "/missing.jsonl")
T.checkfail("EFORMAT", D.load, "pairs", write(dir .. "/bad.jsonl", "{not json}\n"))
T.checkfail("EINVAL", D.load, "pairs", dir .. "/g.tsv", "tsv")
T.checkerr("bad argument #2 to 'load' (string expected, got no value)", function() D.load("pairs") end)
T.checkerr("bad argument #3 to 'load' (invalid option 'xml')", function() D.load("pairs", "x", "xml") end)
T.eq(assert(D.import("pairs:" .. dir .. "/p.jsonl")):hash(), p:hash(), "import('pairs:FILE')")
T.eq(assert(D.import("beir:" .. dir .. "/beir#test")):n(), 1, "import('beir:DIR#split')")
T.checkfail("EINVAL", D.import, "foo:bar")
T.checkfail("EINVAL", D.import, "no-colon")
T.checkfail("ENOTFOUND", D.import, "sts:" .. dir .. "/missing.tsv")
T.checkerr("bad argument #1 to 'import' (string expected, got table)", function() D.import({}) end)

-- ------------------------------------------------------------------ split_assign
do
  local part = D.split_assign(10, nil, { 0.7, 0.3 }, 1)
  local c = { 0, 0 }
  for _, k in ipairs(part) do c[k] = c[k] + 1 end
  T.ok(#part == 10 and c[1] == 7 and c[2] == 3, "split_assign without groups: exact part sizes")
  local again = D.split_assign(10, nil, { 0.7, 0.3 }, 1)
  T.eq(table.concat(again, ","), table.concat(part, ","), "split_assign is seeded")
  local gp = D.split_assign(4, { 5, 5, 6, 6 }, { 0.5, 0.5 }, 3)
  T.ok(gp[1] == gp[2] and gp[3] == gp[4], "split_assign keeps groups together")
  T.checkfail("EINVAL", D.split_assign, 3, nil, { 0, 0 }, 1)
  T.checkfail("EINVAL", D.split_assign, 3, nil, { -1, 2 }, 1)
  T.checkerr("bad argument #1 to 'split_assign' (number expected, got string)", function() D.split_assign("x", nil, { 1 }, 1) end)
  T.checkerr("bad argument #2 to 'split_assign' (one group id per row expected)", function() D.split_assign(3, { 1 }, { 1 }, 1) end)
  T.checkerr("bad argument #3 to 'split_assign' (table expected, got nil)", function() D.split_assign(3, nil, nil, 1) end)
end

-- ------------------------------------------------------------------ vocabulary helpers
do
  local vp = D.vocab_default_path()
  T.ok(type(vp) == "string" and vp:match("vocab%.txt$"), "vocab_default_path: " .. tostring(vp))
  local txt = assert(D.vocab_convert('["[PAD]", "x", "\u{2581}cat", "s"]'))
  T.eq(txt, "[PAD]\n[unused0]\ncat\n##s\n", "vocab_convert: slot 1 -> [unused0], \u{2581}x -> x, y -> ##y")
  T.checkfail("EFORMAT", D.vocab_convert, "{not json")
  T.checkfail("EFORMAT", D.vocab_convert, '{"a": 1}')
  T.checkerr("bad argument #1 to 'vocab_convert' (string expected, got table)", function() D.vocab_convert({}) end)
  local vocab = TD .. "/ref/tokenizer/vocab_tiny.txt"
  local corpus = write(dir .. "/corpus.txt", "the cat sat\n\nhello world\n")
  local counts, tokens, docs = D.vocab_count(vocab, { corpus })
  T.ok(type(counts) == "table" and tokens > 0 and docs == 2, "vocab_count: counts, tokens, docs (blank lines skipped)")
  local sum = 0
  for _, n in pairs(counts) do sum = sum + n end
  T.eq(sum, tokens, "vocab_count: the counts add up to the tokens")
  T.checkfail("ENOTFOUND", D.vocab_count, dir .. "/no-vocab.txt", { corpus })
  T.checkfail("EIO", D.vocab_count, vocab, { dir .. "/missing.txt" })
  T.checkerr("bad argument #2 to 'vocab_count' (table expected, got no value)", function() D.vocab_count(vocab) end)
  local ok, n = D.vocab_check(vocab, vocab, { corpus })
  T.ok(ok == true and n == tokens, "vocab_check of a vocab against itself: true, tokens")
  local small = write(dir .. "/small.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n")
  T.checkfail("EVOCAB", D.vocab_check, vocab, small, { corpus })
  T.checkfail("ENOTFOUND", D.vocab_check, vocab, dir .. "/no-vocab.txt", { corpus })
  T.checkerr("bad argument #3 to 'vocab_check' (table expected, got no value)", function() D.vocab_check(vocab, vocab) end)
end

-- ------------------------------------------------------------------ close and misuse of self
do
  local c
  do
    local h <close> = D.new("text")
    h:add_text("x")
    c = h
  end
  T.eq(tostring(c), "Dataset (closed)", "<close> closes a dataset")
  T.checkerr("attempt to use a closed dataset", function() c:n() end)
  T.checkerr("attempt to use a closed dataset", function() c:add_text("y") end)
  p:close()
  p:close() -- twice is fine
  T.checkerr("attempt to use a closed dataset", function() p:hash() end)
  T.checkerr("bad argument #1 to 'kind' (amalgam.Dataset expected, got number)", function() g.kind(5) end)
  T.checkerr("bad argument #1 to 'n' (amalgam.Dataset expected, got amalgam.Matrix)", function() g.n(am.matrix(1, 1)) end)
end

T.done()
