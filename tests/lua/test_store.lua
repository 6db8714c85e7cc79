-- test_store.lua - am.store.open/default and Store methods (models, names, key/values).
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

-- the default store is the one --store named
local st = assert(am.store.default())
T.eq(am.type(st), "Store", "am.type of a store")
T.eq(am.store.default(), st, "default() returns the same handle")
T.ok(st:dir():match("lua_test_stores/test_store$") or #st:dir() > 0, "dir(): " .. st:dir())
T.eq(st:readonly(), false, "default store is read-write")
T.ok(tostring(st):match("^amalgam.Store %("), "tostring: " .. tostring(st))

-- open: success and expected failures
local dir = T.tmpdir("store")
local s2 = assert(am.store.open(dir))
T.eq(s2:dir(), dir, "open(dir)")
T.checkfail("ENOTFOUND", am.store.open, T.tmpdir("none"), { readonly = true })
local f = io.open(dir .. "_file", "w"); f:write("x"); f:close()
T.cleanup[#T.cleanup + 1] = dir .. "_file"
T.checkfail("ESTORE", am.store.open, dir .. "_file")         -- a file, not a directory
T.checkfail("EINVAL", am.store.open, dir, { readonly = true }) -- already open read-write here
T.checkerr("unknown option 'ro'", am.store.open, dir, { ro = true })
T.checkerr("option 'readonly': boolean expected, got number", am.store.open, dir, { readonly = 1 })
T.checkerr("string expected, got no value", am.store.open)

-- stat
local stat = s2:stat()
T.ok(stat.mapsize > 0 and stat.page_size > 0 and stat.entries.models == 0, "stat of an empty store")

-- models, names
local m = assert(am.init_model { store = s2, name = "base", seed = 3 })
T.eq(s2:stat().entries.models, 1, "one model after init_model")
local id = m:id()
T.eq(s2:resolve("base"), id, "resolve a name")
T.eq(s2:resolve(id:sub(1, 8)), id, "resolve an id prefix")
T.checkfail("ENOTFOUND", s2.resolve, s2, "nope")
T.checkfail("ENOTFOUND", s2.resolve, s2, "ffffffff")
local mm = assert(s2:model("base"))
T.eq(mm, m, "model() by name gives an equal handle")
T.eq(mm:name(), "base", "model() label")
T.checkfail("ENOTFOUND", s2.model, s2, "nope")
T.eq(s2:name("alias", m), id, "name(name, Model)")
T.eq(s2:name("alias2", "base"), id, "name(name, string)")
T.checkfail("ENOTFOUND", s2.name, s2, "x", "nope")
T.checkfail("EINVAL", s2.name, s2, "-bad", m)
T.checkfail("EINVAL", s2.name, s2, "", m)
local names = s2:names(m)
table.sort(names)
T.eq(table.concat(names, ","), "alias,alias2,base", "names(model)")
local all = s2:names()
T.ok(#all == 3 and all[1].name == "alias" and all[1].id == id, "names() lists {name, id}")
T.eq(s2:unname("alias2"), true, "unname")
T.checkfail("ENOTFOUND", s2.unname, s2, "alias2")
local list = s2:models()
T.eq(#list, 1, "models()")
T.eq(list[1].id, id, "models()[1].id")
T.eq(list[1].name, "base", "models()[1].name")
T.eq(list[1].kind, "init", "models()[1].kind")
T.eq(list[1].layers, 2, "models()[1].layers")
T.eq(list[1].hidden, 128, "models()[1].hidden")
T.eq(#list[1].names, 2, "models()[1].names")
T.checkerr("amalgam.Model or string expected, got number", s2.name, s2, "x", 5)
T.checkerr("string expected, got no value", s2.model, s2)

-- generic key/values
T.eq(s2:put("runs", "r1", '{"a":1}'), true, "put")
T.eq(s2:put("runs", "r2", "bin\0ary"), true, "put binary value")
T.eq(s2:get("runs", "r1"), '{"a":1}', "get")
T.eq(s2:get("runs", "r2"), "bin\0ary", "get binary value")
T.checkfail("ENOTFOUND", s2.get, s2, "runs", "r9")
local keys = s2:keys("runs")
T.eq(table.concat(keys, ","), "r1,r2", "keys")
T.eq(#s2:keys("runs", "r2"), 1, "keys with a prefix")
T.eq(#s2:keys("runs", "", 1), 1, "keys with a limit")
T.eq(#s2:keys("models"), 1, "the model databases can be read")
T.eq(s2:del("runs", "r1"), true, "del")
T.checkfail("ENOTFOUND", s2.del, s2, "runs", "r1")
T.checkerr("unknown database 'nope'", s2.get, s2, "nope", "k")
T.checkerr("database 'models' is written through the model API", s2.put, s2, "models", "k", "v")
T.checkerr("database 'names' is written through the model API", s2.del, s2, "names", "base")
T.checkerr("key length must be 1..", s2.put, s2, "runs", "", "v")
T.checkerr("string expected, got no value", s2.put, s2, "runs", "k")
T.checkerr("limit must be >= 0", s2.keys, s2, "runs", "", -1)

-- delete
local m2 = assert(am.init_model { store = s2, name = "other", seed = 4 })
local before = s2:stat()
T.ok(before.pages.tensors > 0 and before.file_size >= before.used, "stat: pages per database, file size")
T.eq(s2:delete("other"), true, "delete by name")
local after = s2:stat()
T.ok(after.free_pages > before.free_pages and after.file_size >= before.file_size,
  ("stat: a delete frees pages, the file keeps its size (%d -> %d free pages)"):format(before.free_pages, after.free_pages))
T.checkfail("ENOTFOUND", s2.resolve, s2, "other")
T.checkfail("ENOTFOUND", s2.delete, s2, "other")
T.checkfail("ENOTFOUND", s2.delete, s2, m2) -- the handle still knows its id, the store does not
T.eq(#s2:models(), 1, "deleted model is gone")

-- closing: models keep their own reference on the store
s2:close()
s2:close() -- twice is fine
T.checkerr("attempt to use a closed store", s2.models, s2)
T.checkerr("attempt to use a closed store", s2.dir, s2)
T.eq(tostring(s2), "amalgam.Store (closed)", "tostring of a closed store")
T.eq(m:kind(), "init", "a model outlives the store handle it came from")
T.eq(#m:tensors(), 39, "and can still load its weights")
-- <close>
local s3
do
  local h <close> = assert(am.store.open(dir))
  T.eq(#h:models(), 1, "reopened store sees the model")
  s3 = h
end
T.checkerr("attempt to use a closed store", s3.stat, s3)
T.checkerr("amalgam.Store expected, got table", st.dir, {})
-- a read-only store refuses writes with EINVAL
m:close()
mm:close()
local ro_dir = T.tmpdir("ro")
assert(am.store.open(ro_dir)):close()
collectgarbage()
local ro = assert(am.store.open(ro_dir, { readonly = true }))
T.eq(ro:readonly(), true, "readonly()")
T.checkfail("EINVAL", ro.put, ro, "runs", "k", "v")
ro:close()


-- ------------------------------------------------------------------ API contract additions
do
  local d = T.tmpdir("store_api")
  local sa = assert(am.store.open(d))
  local m = assert(am.init_model { store = sa, name = "sa-base", seed = 5 })
  -- resolve / names / unname / delete / keys / stat: the cases not covered above
  T.checkerr("bad argument #1 to 'resolve' (string expected, got no value)", function() sa:resolve() end)
  T.checkfail("ENOTFOUND", sa.names, sa, "no-such-model")
  T.checkerr("bad argument #1 to 'names' (amalgam.Model or string expected, got number)", function() sa:names(5) end)
  T.checkerr("bad argument #1 to 'unname' (string expected, got nil)", function() sa:unname(nil) end)
  T.checkerr("bad argument #1 to 'delete' (value expected)", function() sa:delete() end)
  T.checkerr("bad argument #1 to 'delete' (amalgam.Model or string expected, got table)", function() sa:delete({}) end)
  T.checkfail("EINVAL", sa.keys, sa, "runs", string.rep("k", 600))  -- a prefix longer than any key
  T.checkerr("bad argument #1 to 'keys' (unknown database 'nope'", function() sa:keys("nope") end)
  T.checkerr("bad argument #1 to 'stat' (amalgam.Store expected, got number)", function() sa.stat(5) end)
  T.checkerr("bad argument #1 to 'get' (string expected, got nil)", function() sa:get(nil, "k") end)
  T.checkerr("bad argument #3 to 'put' (string expected, got table)", function() sa:put("runs", "k", {}) end)
  T.checkerr("bad argument #1 to 'dir' (amalgam.Store expected, got string)", function() sa.dir("x") end)
  T.checkerr("bad argument #1 to 'readonly' (amalgam.Store expected, got no value)", function() sa.readonly() end)
  T.checkerr("bad argument #1 to 'model' (string expected, got table)", function() sa:model({}) end)
  T.checkerr("bad argument #1 to 'models' (amalgam.Store expected, got number)", function() sa.models(1) end)
  -- a read-only store refuses every write with EINVAL
  m:close()
  sa:close()
  collectgarbage()
  local ro = assert(am.store.open(d, { readonly = true }))
  T.checkfail("EINVAL", ro.name, ro, "x", "sa-base")
  T.checkfail("EINVAL", ro.unname, ro, "sa-base")
  T.checkfail("EINVAL", ro.delete, ro, "sa-base")
  T.checkfail("EINVAL", ro.del, ro, "runs", "k")
  T.eq(#ro:models(), 1, "a read-only store can be read")
  -- a closed store passed to the Lua wrappers raises at the caller's line
  ro:close()
  local line = debug.getinfo(1, "l").currentline + 1
  local ok, err = pcall(function() am.model("sa-base", ro) end)
  T.ok(not ok and err:find("test_store.lua:" .. line .. ": attempt to use a closed store", 1, true),
    "am.model(name, closed store) raises at the caller: " .. tostring(err))
  T.checkerr("attempt to use a closed store", function() am.init_model { store = ro } end)
end
-- am.store.default(): a default store that cannot be opened is nil, msg, code (another process)
do
  local bin = io.popen("readlink /proc/" .. am.source.getpid() .. "/exe"):read("l")
  local p = io.popen(("'%s' --store /dev/null/nope lua -e 'print(am.store.default())' 2>&1"):format(bin))
  local out = p:read("a")
  p:close()
  T.ok(out:match("^nil\t.+\tE%u+\n$"), "store.default() of an unusable directory -> nil, msg, code: " .. out)
end

T.done()
