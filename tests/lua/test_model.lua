-- test_model.lua - am.init_model, am.import, am.model, am.models, am.name/unname and the Model
-- methods (id, name, names, kind, meta, config, layers, dim, tensors, tensor, encode, export,
-- similarity, embed, close). Needs AM_TEST_DIR (tests/) for the HF fixtures.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local TD = os.getenv("AM_TEST_DIR") or (arg[0]:match("^(.*)/lua/[^/]*$") or "tests")
local HF = TD .. "/ref/hf/bert_tiny"

-- init_model
local base = assert(am.init_model { config = "tiny", name = "base", seed = 7 })
T.eq(am.type(base), "Model", "init_model returns a Model")
T.eq(base:name(), "base", "name()")
T.eq(#base:id(), 32, "id() is 32 hex chars")
T.ok(base:id():match("^%x+$"), "id() is hex")
T.eq(base:kind(), "init", "kind(): a random init is kind init")
T.eq(base:layers(), 2, "layers()")
T.eq(base:dim(), 128, "dim()")
local again = assert(am.init_model { config = "tiny", name = "base2", seed = 7 })
T.eq(again:id(), base:id(), "same config and seed -> same content id")
T.ok(am.init_model { seed = 8 }:id() ~= base:id(), "another seed -> another id; name optional")
T.checkerr("init_model: option 'config' must be one of tiny|mini|small, got 'huge'", am.init_model, { config = "huge" })
T.checkerr("init_model: unknown option 'nmae'", am.init_model, { nmae = "x" })
T.checkerr("init_model: option 'seed' must be integer, got string", am.init_model, { seed = "1" })
T.checkerr("init_model: options must be a table, got string", am.init_model, "tiny")
T.checkerr("option 'max_seq_length' must be >= 2", am.init_model, { max_seq_length = 1 })
T.checkerr("option 'store' must be Store, got string", am.init_model, { store = "x" })
T.checkfail("ENOTFOUND", am.init_model, { vocab = "/nonexistent/vocab.txt" })
T.checkfail("EINVAL", am.init_model, { name = "-bad" })

-- meta and config
local meta = base:meta()
T.eq(meta.id, base:id(), "meta().id")
T.eq(meta.name, "base", "meta().name")
T.eq(meta.pooling, "mean", "meta().pooling")
T.eq(meta.max_seq_length, 128, "meta().max_seq_length")
local cfg = base:config()
T.eq(cfg.hidden_size, 128, "config().hidden_size")
T.eq(cfg.num_hidden_layers, 2, "config().num_hidden_layers")
T.eq(cfg.num_attention_heads, 2, "config().num_attention_heads")
T.eq(cfg.vocab_size, 30522, "config().vocab_size (bert-base-uncased vocab)")

-- import
local bt = assert(am.import(HF, { name = "bt" }))
T.eq(bt:name(), "bt", "import name")
T.eq(bt:dim(), 32, "imported hidden size")
T.eq(bt:meta().source, HF, "meta().source is the directory")
T.checkfail("ENOTFOUND", am.import, TD .. "/ref/hf/no_such_model")
T.checkfail("ENOTFOUND", am.import, TD .. "/lua")                  -- a directory without config.json
T.checkerr("bad argument #1 to 'import' (string expected, got nil)", am.import)
T.checkerr("import: unknown option 'nam'", am.import, HF, { nam = "x" })

-- am.model, am.models, am.name, am.unname
local m = assert(am.model("bt"))
T.eq(m, bt, "am.model(name) == the imported handle (same id)")
T.ok(rawequal(am.model(bt), bt), "am.model(handle) returns the handle")
T.eq(am.model(bt:id():sub(1, 6)), bt, "am.model(id prefix)")
T.eq(am.model(bt:id():sub(1, 6)):name(), "bt", "a model opened by id prefix is labelled with its meta name")
T.checkfail("ENOTFOUND", am.model, "no-such-model")
T.checkerr("bad argument #1 to 'model' (string expected, got integer)", am.model, 5)
T.checkerr("bad argument #2 to 'model' (Store expected, got string)", am.model, "bt", "store")
local list = am.models()
T.eq(#list, 3, "am.models() lists every stored model")
local byname = {}
for _, r in ipairs(list) do if r.name then byname[r.name] = r end end
T.ok(byname.bt and byname.bt.hidden == 32 and byname.bt.kind == "pretrained", "models() rows")
T.checkerr("bad argument #1 to 'models' (Store expected, got integer)", am.models, 1)
T.eq(am.name("tagged", bt), bt:id(), "am.name(name, Model)")
T.eq(am.name("tagged2", "bt"), bt:id(), "am.name(name, string)")
local names = bt:names()
table.sort(names)
T.eq(table.concat(names, ","), "bt,tagged,tagged2", "m:names()")
T.eq(am.model("tagged"):name(), "tagged", "label is the name used")
T.checkfail("ENOTFOUND", am.name, "x", "no-such-model")
T.checkerr("bad argument #2 to 'name' (Model or string expected, got nil)", am.name, "x")
T.eq(am.unname("tagged2"), true, "am.unname")
T.checkfail("ENOTFOUND", am.unname, "tagged2")
T.checkerr("bad argument #1 to 'unname' (string expected, got nil)", am.unname)

-- tensors / tensor
local ts = bt:tensors()
T.eq(#ts, 39, "tensors(): 39 BERT tensors with a pooler")
T.eq(ts[1].name, "embeddings.word_embeddings.weight", "tensors()[1].name")
T.ok(ts[1].shape[1] == 100 and ts[1].shape[2] == 32 and ts[1].numel == 3200, "tensors()[1].shape")
local wte = assert(bt:tensor("embeddings.word_embeddings.weight"))
T.ok(wte:rows() == 100 and wte:cols() == 32, "tensor() 2-D shape")
T.near(wte:get(1, 1), -0.762797952, 1e-6, "tensor() values match the fixture")
local lnw = assert(bt:tensor("embeddings.LayerNorm.weight"))
T.ok(lnw:rows() == 1 and lnw:cols() == 32, "1-D tensors are 1 x n")
T.checkfail("ENOTFOUND", bt.tensor, bt, "no.such.tensor")
T.checkerr("string expected, got no value", bt.tensor, bt)

-- encode: parity with the PyTorch fixture (tests/ref/hf/expected/parity_bert_tiny.json)
local f = assert(io.open(TD .. "/ref/hf/expected/parity_bert_tiny.json"))
local ref = assert(am.json.decode(f:read("a")))
f:close()
local e = assert(bt:encode(ref.texts))
T.ok(e:rows() == #ref.texts and e:cols() == 32, "encode shape")
local maxdiff = 0
for i = 1, #ref.texts do
  for j = 1, 32 do maxdiff = math.max(maxdiff, math.abs(e:get(i, j) - ref.embeddings[i][j])) end
end
T.ok(maxdiff < 1e-4, "encode matches PyTorch (max abs diff " .. maxdiff .. ")")
-- options
local one = assert(bt:encode("hello world"))
T.eq(one:rows(), 1, "a single string gives one row")
T.near(one:get(1, 5), e:get(1, 5), 1e-6, "single text == same text in a batch")
local n = assert(bt:encode({ "hello world", "the cat" }, { normalize = true }))
T.near(n:norm(1), 1, 1e-5, "normalize=true")
local cls = assert(bt:encode({ "hello world" }, { pooling = "cls" }))
T.ok(math.abs(cls:get(1, 1) - one:get(1, 1)) > 1e-6, "pooling=cls differs from mean")
T.eq(bt:encode({ "a" }, { dim = 8 }):cols(), 8, "dim=8 (Matryoshka truncation)")
local l0 = assert(bt:encode({ "hello world" }, { layer = 0 }))
T.ok(math.abs(l0:get(1, 1) - one:get(1, 1)) > 1e-6, "layer=0 is the embedding layer")
T.eq(bt:encode({ "x" }, { batch = 1, max_len = 4 }):rows(), 1, "batch and max_len")
T.eq(bt:encode({}):rows(), 0, "no texts -> 0 rows")
T.checkfail("EUTF8", bt.encode, bt, { "ok", "bad \xff byte" })
T.checkfail("EFORMAT", bt.encode, bt, { "nul\0inside" })
T.checkerr("option 'pooling': expected one of mean|cls, got 'max'", bt.encode, bt, "x", { pooling = "max" })
T.checkerr("unknown option 'pool'", bt.encode, bt, "x", { pool = "cls" })
T.checkerr("option 'layer': 3 out of range 0..2", bt.encode, bt, "x", { layer = 3 })
T.checkerr("option 'dim': 33 out of range 1..32", bt.encode, bt, "x", { dim = 33 })
T.checkerr("option 'normalize': boolean expected, got number", bt.encode, bt, "x", { normalize = 1 })
T.checkerr("option 'batch' must be 1..65536", bt.encode, bt, "x", { batch = 0 })
T.checkerr("text 2 is a number, not a string", bt.encode, bt, { "a", 5 })
T.checkerr("string or list of strings expected, got no value", bt.encode, bt)
-- similarity / embed (Lua sugar)
T.near(bt:similarity("hello world", "hello world"), 1, 1e-6, "similarity of a text with itself")
local s = bt:similarity("hello world", "the cat and the dog")
T.ok(s > -1 and s < 1, "similarity in (-1, 1)")
local v = bt:embed("hello world")
T.ok(#v == 32 and math.abs(v[5] - one:get(1, 5)) < 1e-6, "embed() -> table")
T.checkerr("bad argument #2 to 'similarity' (string expected, got nil)", bt.similarity, bt, "x")
T.checkfail("EUTF8", bt.embed, bt, "\xff")

-- export, then import the export: same id, same embeddings
local out = T.tmpdir("export")
T.eq(bt:export(out), true, "export")
local f2 = io.open(out .. "/model.safetensors", "rb")
T.ok(f2 ~= nil, "export wrote model.safetensors")
if f2 then f2:close() end
T.checkfail("EEXIST", bt.export, bt, out)
local re = assert(am.import(out, { name = "bt-again" }))
T.eq(re:id(), bt:id(), "import(export(m)) has the same content id")
T.checkerr("string expected, got no value", bt.export, bt)

-- handles: tostring, equality, close, <close>
T.ok(tostring(bt):match("^amalgam.Model %(bt %x+%)$"), "tostring: " .. tostring(bt))
T.ok(base ~= bt, "different models are not equal")
local closed
do
  local h <close> = assert(am.model("base"))
  T.eq(h:name(), "base", "usable inside its block")
  closed = h
end
T.eq(tostring(closed), "amalgam.Model (closed)", "tostring of a closed model")
T.checkerr("attempt to use a closed model", closed.id, closed)
T.checkerr("attempt to use a closed model", closed.encode, closed, "x")
T.checkerr("attempt to use a closed model", am.name, "x", closed)
T.ok(closed ~= base, "a closed model equals nothing")
bt:close()
bt:close() -- twice is fine
T.checkerr("attempt to use a closed model", bt.tensors, bt)
T.checkerr("amalgam.Model expected, got table", base.id, {})
local line = debug.getinfo(1, "l").currentline + 1
local function bad_self() return base.id(42) end
T.checkerr("test_model.lua:" .. line .. ": bad argument #1 to 'id' (amalgam.Model expected, got number)", bad_self)


-- ------------------------------------------------------------------ API contract additions
-- a model whose weights are gone from the store: every method that loads them fails with
-- ENOTFOUND, the ones that only read the meta still answer
do
  local gone = assert(am.init_model { name = "gone", seed = 77 })
  assert(am.store.default():delete("gone"))
  T.eq(gone:kind(), "init", "kind() reads the meta kept by the handle")
  T.eq(#gone:names(), 0, "names() of a deleted model is empty")
  T.checkfail("ENOTFOUND", gone.tensors, gone)
  T.checkfail("ENOTFOUND", gone.tensor, gone, "embeddings.LayerNorm.weight")
  T.checkfail("ENOTFOUND", gone.encode, gone, "x")
  T.checkfail("ENOTFOUND", gone.similarity, gone, "a", "b")
  T.checkfail("ENOTFOUND", gone.embed, gone, "a")
  T.checkfail("ENOTFOUND", gone.export, gone, T.tmpdir("gone_export"))
end
-- similarity / embed: encode options are checked here, naming the method, at the caller's line
T.near(base:similarity("a cat", "a cat", { dim = 16, normalize = true }), 1, 1e-5, "similarity with options")
T.eq(#base:embed("a cat", { dim = 16 }), 16, "embed with options")
T.checkfail("EUTF8", base.similarity, base, "ok", "\xff")
T.checkerr("similarity: unknown option 'pool'", function() base:similarity("a", "b", { pool = "cls" }) end)
T.checkerr("embed: option 'pooling' must be one of mean|cls, got 'max'", function() base:embed("a", { pooling = "max" }) end)
do
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, err = pcall(function() base:embed("a", { layer = 9 }) end)
  T.ok(not ok and err:find("test_model.lua:" .. line .. ": embed: option 'layer': 9 out of range 0..2", 1, true),
    "embed: a layer out of range raises at the caller: " .. tostring(err))
end
T.checkerr("embed: option 'dim': 999 out of range", function() base:embed("a", { dim = 999 }) end)
T.checkerr("bad argument #1 to 'embed' (string expected, got table)", function() base:embed({}) end)
T.checkerr("calling 'embed' on bad self (Model expected, got integer)", function() base.embed(5, "x") end)
-- the other methods: misuse of self
for name, call in pairs {
  id = function() base.id(5) end, name = function() base.name(5) end, names = function() base.names(5) end,
  kind = function() base.kind(5) end, meta = function() base.meta(5) end, config = function() base.config(5) end,
  layers = function() base.layers(5) end, dim = function() base.dim(5) end, tensors = function() base.tensors(5) end,
  tensor = function() base.tensor(5) end, encode = function() base.encode(5) end, export = function() base.export(5) end,
  close = function() base.close(5) end,
} do
  T.checkerr("bad argument #1 to '" .. name .. "' (amalgam.Model expected, got number)", call)
end
T.eq(base:meta().kind, base:kind(), "meta().kind")
T.ok(type(base:config()) == "table", "config() is a table")
T.checkerr("bad argument #1 to 'export' (string expected, got table)", function() base:export({}) end)
T.checkfail("EEXIST", base.export, base, arg[0])   -- a file

-- raw primitives (what am.init_model / am.import wrap)
do
  local st = am.store.default()
  local r = assert(am.raw_init_model(st, "tiny", "raw-init", 7, nil, 128))
  T.eq(r:id(), base:id(), "raw_init_model = init_model with the same config and seed")
  T.eq(assert(am.raw_init_model(st, "tiny")):id(), am.init_model {}:id(), "raw_init_model defaults (seed 42, 128)")
  T.checkfail("ENOTFOUND", am.raw_init_model, st, "tiny", nil, 1, "/nonexistent/vocab.txt", 128)
  T.checkfail("EINVAL", am.raw_init_model, st, "tiny", "-bad")
  T.checkerr("bad argument #2 to 'raw_init_model' (invalid option 'huge')", function() am.raw_init_model(st, "huge") end)
  T.checkerr("bad argument #1 to 'raw_init_model' (amalgam.Store expected, got nil)", function() am.raw_init_model(nil, "tiny") end)
  T.checkerr("bad argument #6 to 'raw_init_model' (max_seq_length must be >= 2)", function() am.raw_init_model(st, "tiny", nil, 1, nil, 1) end)
  local ri = assert(am.raw_import(st, HF, nil))
  T.eq(ri:dim(), 32, "raw_import")
  T.checkfail("ENOTFOUND", am.raw_import, st, TD .. "/ref/hf/no_such_model")
  T.checkerr("bad argument #2 to 'raw_import' (string expected, got nil)", function() am.raw_import(st, nil) end)
end

T.done()
