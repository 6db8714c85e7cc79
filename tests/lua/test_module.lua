-- test_module.lua - the module itself: version, errors, type helpers, option checking, log,
-- the recipe runner (strict env, args, returned tables). Run: amalgam --store DIR run test_module.lua
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"

-- module identity
T.ok(am == require "amalgam.core", "require 'amalgam' and 'amalgam.core' are one table")
T.ok(_G.am == am, "global am is the module")
T.ok(type(am.version) == "string" and am.version:match("^%d+%.%d+%.%d+$"), "am.version is x.y.z")
T.ok(am.lua_version:match("^Lua 5%.4"), "am.lua_version")

-- args (ctest passes none; arg[0] is the script)
T.ok(args == arg, "args and arg are the same table")
T.ok(args[0]:match("test_module%.lua$"), "args[0] is the recipe path")
T.eq(select("#", ...), 1, "the recipe gets the args table as ...")
T.ok((...) == args, "... is args")

-- error codes
T.eq(am.errcodes.ENOTFOUND, -32004, "errcodes.ENOTFOUND")
T.eq(am.errcodes.EINVAL, -32005, "errcodes.EINVAL")
T.eq(am.strerror("ENOTFOUND"), "not found", "strerror by name")
T.eq(am.strerror(-32005), "invalid argument", "strerror by number")
T.checkerr("unknown error code name", am.strerror, "ENOPE")
do -- am.errcodes is generated from the C list (AM_ERRORS): names, numbers and texts agree
  local names = {}
  for name, code in pairs(am.errcodes) do names[#names + 1] = name end
  table.sort(names)
  T.eq(table.concat(names, " "), "EDTYPE EEXIST EFORMAT EINTR EINVAL EIO EMAPFULL ENOMEM ENOTFOUND "
       .. "ESHAPE ESTORE EUTF8 EVOCAB", "errcodes names")
  local texts = {}
  for _, name in ipairs(names) do
    local code = am.errcodes[name]
    T.ok(math.type(code) == "integer" and code <= -32000 and code >= -32099, name .. " in the range")
    local text = am.strerror(name)
    T.eq(am.strerror(code), text, name .. ": strerror by name and number agree")
    T.ok(text ~= "unknown error" and not texts[text], name .. " has its own text")
    texts[text] = true
  end
end
T.checkerr("number expected", am.strerror, {})

-- type helpers
T.eq(am.type(42), nil, "am.type of a number")
T.eq(am.typeof(42), "integer", "typeof integer")
T.eq(am.typeof(4.5), "number", "typeof float")
T.eq(am.typeof("x"), "string", "typeof string")
T.checkerr("type' (value expected)", am.type)

-- check_options / check_arg (used by the Lua library and recipes)
local spec = { n = "integer", s = "string", e = { "a", "b" }, m = "Model|string" }
T.ok(next(am.check_options("f", nil, spec)) == nil, "nil options -> {}")
local o = am.check_options("f", { n = 3, s = "x", e = "a", m = "name" }, spec)
T.eq(o.n, 3, "options pass through")
T.checkerr("f: unknown option 'zz' (known: e, m, n, s)", am.check_options, "f", { zz = 1 }, spec)
T.checkerr("f: option 'n' must be integer, got string", am.check_options, "f", { n = "1" }, spec)
T.checkerr("f: option 'e' must be one of a|b, got 'c'", am.check_options, "f", { e = "c" }, spec)
T.checkerr("f: option 'm' must be Model or string, got integer", am.check_options, "f", { m = 1 }, spec)
T.checkerr("f: options must be a table, got string", am.check_options, "f", "x", spec)
T.ok(am.check_options("f", { n = 2.0 }, spec), "an integral float is an integer")
T.checkerr("bad argument #2 to 'g' (string expected, got nil)", am.check_arg, nil, 2, "g", "string")
-- the error points at the caller's line
local line = debug.getinfo(1, "l").currentline + 1
local ok, err = pcall(function() am.model(42) end)
T.ok(not ok and err:find("test_module.lua:" .. line .. ": bad argument #1 to 'model' (string expected, got integer)", 1, true),
  "misuse errors name the caller's file:line: " .. tostring(err))

-- log
am.log("from", "test_module", 1)
am.log.warn("a warning", true)
am.log.debug("debug line")
local tail = am.log.tail(5)
T.eq(type(tail), "table", "log.tail returns a table")
local found_info, found_warn = false, false
for _, l in ipairs(tail) do
  found_info = found_info or l == "info: from test_module 1"
  found_warn = found_warn or l == "warn: a warning true"
end
T.ok(found_info, "am.log(...) logs at info with tostring'd args")
T.ok(found_warn, "am.log.warn")
T.eq(#am.log.tail(0), 0, "log.tail(0)")
T.checkerr("bad argument #1 to 'tail' (integer expected, got string)", am.log.tail, "x")
T.checkerr("raw_log' (invalid option 'loud')", am.raw_log, "loud", "x")

-- recipe runner pieces
local R = am.recipe
T.ok(R == require "amalgam.recipe", "am.recipe is amalgam.recipe")
local a = R.parse_args({ "lr=0.5", "steps=10", "name=x", "flag=true", "off=false", "pos", "k=" }, "r.lua")
T.eq(a.lr, 0.5, "k=v number")
T.eq(math.type(a.steps), "integer", "k=v integer stays integer")
T.eq(a.name, "x", "k=v string")
T.eq(a.flag, true, "k=true")
T.eq(a.off, false, "k=false")
T.eq(a[1], "pos", "positional")
T.eq(a.k, "", "k= gives an empty string")
T.eq(a[0], "r.lua", "args[0]")

local env = R.env()
T.eq(env.print, print, "strict env reads through to _G")
T.checkerr("undefined global 'nope'", function() return env.nope end)
env.x = nil
T.eq(env.x, nil, "a global assigned nil is defined")
env.y = 5
T.eq(env.y, 5, "assigning globals is allowed")
-- our own env: undefined globals raise here too, at the reading line
local line2 = debug.getinfo(1, "l").currentline + 1
local ok2, err2 = pcall(function() return undefined_global_here end)
T.ok(not ok2 and err2:find("test_module.lua:" .. line2 .. ": undefined global 'undefined_global_here'", 1, true),
  "recipes run strict: " .. tostring(err2))

-- returned tables: lifecycle hooks
local calls = {}
local res = R.run({
  setup = function(x) calls[#calls + 1] = "setup:" .. tostring(x.v) end,
  run = function() calls[#calls + 1] = "run"; return 7 end,
  done = function(r) calls[#calls + 1] = "done:" .. r end,
}, { v = 1 })
T.eq(table.concat(calls, ","), "setup:1,run,done:7", "hooks run in order")
T.eq(res, 7, "run's result is returned")
T.eq(R.run(5), 5, "non-table results pass through")
T.checkerr("unknown key 'stpes'", R.run, { stpes = 10 })
T.checkerr("recipe hook 'run' must be a function", R.run, { run = 1 })
R.register { match = function(s) return s.custom end, run = function(s, x) return "handled " .. s.custom .. x.n end }
T.eq(R.run({ custom = "yes" }, { n = 1 }), "handled yes1", "registered handlers take matching specs")
table.remove(R.handlers)
T.checkerr("recipe.register expects", R.register, { match = 1 })

-- bundled sources: the library is compiled in (chunk names start with lua/amalgam/)
local info = debug.getinfo(am.init_model, "S")
T.ok(info.short_src:match("lua/amalgam/init%.lua$"), "init.lua chunk name: " .. info.short_src)
local ok3, err3 = pcall(require, "amalgam.nope")
T.ok(not ok3 and err3:find("no bundled module 'amalgam.nope'", 1, true), "missing bundled module")


-- ------------------------------------------------------------------ API contract additions
-- (lua/API.md "Module", "Log", "Recipes", "Raw primitives of the module": success, failure, misuse)
T.eq(am.type(am.dataset.new("text")), "Dataset", "am.type of a Dataset")
T.eq(am.type(setmetatable({}, { __name = "amalgam.Model" })), nil, "am.type of a table is nil")
T.eq(am.typeof(am.matrix(1, 1)), "Matrix", "typeof a handle")
T.eq(am.typeof(nil), "nil", "typeof nil")
T.ok(am.check_options("f", { d = am.dataset.new("pairs") }, { d = "Dataset" }).d, "check_options: Dataset type")
T.checkerr("bad argument #1 to 'check_options' (string expected, got nil)", function() am.check_options(nil, {}, {}) end)
T.checkerr("bad argument #3 to 'check_options' (table expected, got nil)", function() am.check_options("f", {}, nil) end)
T.eq(am.check_arg(5, 1, "g", "integer"), 5, "check_arg returns the value")
T.eq(am.check_arg("s", 1, "g", "Model|string"), "s", "check_arg with alternatives")
T.checkerr("bad argument #4 to 'check_arg' (string expected, got nil)", function() am.check_arg(5, 1, "g", nil) end)
T.checkerr("bad argument #2 to 'check_arg' (integer expected, got string)", function() am.check_arg(5, "1", "g", "integer") end)
do -- check_arg's error points at the caller of the function that called it
  local function greet(name) am.check_arg(name, 1, "greet", "string") return name end
  local l = debug.getinfo(1, "l").currentline + 1
  local ok4, err4 = pcall(function() greet(42) end)
  T.ok(not ok4 and err4:find("test_module.lua:" .. l .. ": bad argument #1 to 'greet' (string expected, got integer)", 1, true),
    "check_arg blames the caller: " .. tostring(err4))
end
am.log.info("an info line")
am.log.error("an error line")
local t2 = am.log.tail(2)
T.ok(t2[1] == "info: an info line" and t2[2] == "error: an error line", "log.info / log.error")
T.eq(#am.log.tail(), math.min(20, #am.log.tail(4096)), "log.tail() = the last 20")
T.checkerr("bad argument #1 to 'tail' (expected 0..4096, got 5000)", function() am.log.tail(5000) end)
T.checkerr("bad argument #1 to 'tail' (expected 0..4096, got -1)", function() am.log.tail(-1) end)
-- raw primitives of the module
am.raw_log("warn", "raw warning")
T.eq(am.raw_log_tail(1)[1], "warn: raw warning", "raw_log + raw_log_tail")
T.checkerr("bad argument #1 to 'raw_log_tail' (expected 0..4096)", function() am.raw_log_tail(-1) end)
T.checkerr("bad argument #2 to 'raw_log' (string expected, got no value)", function() am.raw_log("info") end)
local Mm = am.raw_methods("Matrix")
T.ok(type(Mm) == "table" and Mm.rows ~= nil, "raw_methods('Matrix') is the method table")
T.ok(am.raw_methods("Model").similarity ~= nil, "raw_methods('Model') has the Lua methods")
T.ok(am.raw_methods("Store").dir ~= nil, "raw_methods('Store')")
T.checkerr("bad argument #1 to 'raw_methods' (invalid option 'Dataset')", function() am.raw_methods("Dataset") end)
-- recipe pieces: misuse
T.checkerr("bad argument #1 to 'env' (table expected, got number)", function() R.env(5) end)
local env2 = R.env({ x = 1 })
T.eq(env2.x, 1, "env(base) reads through to base")
T.checkerr("undefined global 'print'", function() return env2.print end)
T.checkerr("bad argument #1 to 'parse_args' (table expected, got nil)", function() R.parse_args(nil) end)
T.checkerr("bad argument #1 to 'parse_args' (list of strings expected, item 1 is a number)", function() R.parse_args({ 5 }) end)
T.eq(type(R.handlers), "table", "am.recipe.handlers is the list of handlers")

T.done()
