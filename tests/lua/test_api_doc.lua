-- test_api_doc.lua - lua/API.md documents the whole module: every public function (a key of `am`
-- or of one of its tables, not starting with `_`) has a `### am.x.y(...)` heading whose section
-- has a ```lua example using it, and every method of a handle class (the registry's
-- "amalgam.<Kind>" metatables) and of the Lua objects (Comparison, EvalResults) has a
-- "- `obj:name(...)`" line with an "e.g. `...`" example in its "### <Kind> methods" list.
-- Entries naming things the module does not have fail too (stale docs).
-- The file is found through AM_TEST_DIR (tests/, set by CTest): AM_TEST_DIR/../lua/API.md.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local TD = os.getenv("AM_TEST_DIR") or (arg[0]:match("^(.*)/lua/[^/]*$") or "tests")
local DOC = TD .. "/../lua/API.md"

local f = assert(io.open(DOC), "cannot open " .. DOC)
local text = f:read("a")
f:close()

local function word(s, w) return s:find("%f[%w_]" .. w:gsub("%p", "%%%0") .. "%f[^%w_]") ~= nil end

-- ------------------------------------------------------------------ the document: ### sections
-- { title = "am.x(...) → ...", body = {lines}, code = "text of its ```lua blocks" }
local sections = {}
do
  local cur, fence = nil, false
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line:match("^```") then
      fence = not fence
      if cur and fence and line:match("^```lua") then cur.in_lua = true end
      if cur and not fence then cur.in_lua = false end
    elseif not fence and line:match("^#+ ") then
      cur = nil
      local title = line:match("^### (.*)$")
      if title then
        cur = { title = title, body = {}, code = {} }
        sections[#sections + 1] = cur
      end
    elseif cur then
      cur.body[#cur.body + 1] = line
      if fence and cur.in_lua and line:match("%S") and not line:match("^%s*%-%-") then cur.code[#cur.code + 1] = line end
    end
  end
  T.ok(not fence, "API.md: every ``` fence is closed")
  for _, s in ipairs(sections) do s.code = table.concat(s.code, "\n") end
end

-- the am.* names of a function heading: headings that start with "am.", names before the "→",
-- outside (), {} and [] ("am.matrix(rows, cols) / am.matrix{...}", "am.log.debug(...), am.log.info(...)")
local documented = {}   -- name -> section
for _, s in ipairs(sections) do
  if s.title:match("^am%.") then
    local head = s.title:gsub("→.*$", ""):gsub("%b()", ""):gsub("%b{}", ""):gsub("%b[]", "")
    for name in head:gmatch("am%.[%w_%.]+") do
      name = name:gsub("%.$", "")
      documented[name] = s
    end
  end
end

-- ------------------------------------------------------------------ the module: public functions
local funcs = {}
do
  local seen = {}
  local function walk(t, prefix)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      if type(k) == "string" and not k:match("^_") then
        local name = prefix .. "." .. k
        local mt = type(v) == "table" and getmetatable(v)
        if type(v) == "function" or (mt and type(rawget(mt, "__call")) == "function") then funcs[#funcs + 1] = name end
        if type(v) == "table" then walk(v, name) end
      end
    end
  end
  walk(am, "am")
  table.sort(funcs)
end
T.ok(#funcs > 100, "the walk finds the module's functions: " .. #funcs)

local function resolve(name)
  local v = _G
  for part in name:gmatch("[^.]+") do
    if type(v) ~= "table" then return nil end
    v = rawget(v, part)
    if part == "am" and v == nil then v = am end
  end
  return v
end

for _, name in ipairs(funcs) do
  local s = documented[name]
  if T.ok(s, name .. " has a '### " .. name .. "(...)' heading in lua/API.md") then
    local last = name:match("([%w_]+)$")
    T.ok(#s.code > 0 and word(s.code, last), name .. ": its section has a ```lua example using '" .. last .. "'")
  end
end
-- documented names must exist, and value entries need an example too
local n_doc = 0
for name, s in pairs(documented) do
  n_doc = n_doc + 1
  T.ok(resolve(name) ~= nil, "lua/API.md documents '" .. name .. "', which the module does not have")
  if type(resolve(name)) ~= "function" then
    local last = name:match("([%w_]+)$")
    T.ok(word(s.code, last), name .. ": its section has a ```lua example using '" .. last .. "'")
  end
end

-- ------------------------------------------------------------------ handle classes and objects
-- kind -> { method = true }
local classes = {}
local function add_class(kind, index)
  if type(index) ~= "table" then return end
  local m = classes[kind] or {}
  classes[kind] = m
  for k, v in pairs(index) do
    if type(k) == "string" and not k:match("^_") and type(v) == "function" then m[k] = true end
  end
end
for k, v in pairs(debug.getregistry()) do
  local kind = type(k) == "string" and k:match("^amalgam%.(%u[%w_]*)$")
  if kind and type(v) == "table" then add_class(kind, rawget(v, "__index")) end
end
for _, kind in ipairs { "Store", "Model", "Matrix", "Dataset", "Trainer" } do
  T.ok(classes[kind], "the registry has the class amalgam." .. kind)
end
-- the Lua objects of the evaluation layer (no task: nothing is evaluated)
do
  local m = assert(am.import(TD .. "/ref/hf/bert_tiny", { name = "doc-bt" }))
  for _, obj in ipairs { assert(am.eval(m, { tasks = {} })), assert(am.compare { m, tasks = {} }) } do
    local mt = getmetatable(obj)
    local kind = mt and type(mt.__name) == "string" and mt.__name:match("^amalgam%.(%u[%w_]*)$")
    if T.ok(kind, "evaluation objects have an amalgam.<Kind> __name") then add_class(kind, mt.__index) end
  end
  T.ok(classes.Comparison and classes.EvalResults, "Comparison and EvalResults found")
end

local n_methods = 0
local kinds = {}
for kind in pairs(classes) do kinds[#kinds + 1] = kind end
table.sort(kinds)
for _, kind in ipairs(kinds) do
  local sec
  for _, s in ipairs(sections) do
    if s.title:match("^" .. kind .. " methods") then sec = s end
  end
  if T.ok(sec, "lua/API.md has a '### " .. kind .. " methods' list") then
    -- entries: "- `obj:name(" lines plus their indented continuation lines
    local entries, cur = {}, nil
    for _, line in ipairs(sec.body) do
      local mname = line:match("^%- `[%w_]+:([%w_]+)")
      if mname then
        cur = { line }
        entries[mname] = cur
      elseif cur and line:match("^  %S") then
        cur[#cur + 1] = line
      else
        cur = nil
      end
    end
    local methods = {}
    for mname in pairs(classes[kind]) do methods[#methods + 1] = mname end
    table.sort(methods)
    for _, mname in ipairs(methods) do
      n_methods = n_methods + 1
      local e = entries[mname]
      if T.ok(e, kind .. ":" .. mname .. " has a '- `x:" .. mname .. "(...)`' line in '### " .. kind .. " methods'") then
        local ok = false
        for code in table.concat(e, "\n"):gmatch("e%.g%. `(.-)`") do ok = ok or word(code, mname) end
        T.ok(ok, kind .. ":" .. mname .. ": its entry has an 'e.g. `...`' example using '" .. mname .. "'")
      end
    end
    for mname in pairs(entries) do
      T.ok(classes[kind][mname], ("lua/API.md lists %s:%s, which the class does not have"):format(kind, mname))
    end
  end
end

-- ------------------------------------------------------------------ error codes
-- am.errcodes comes from the one C list (AM_ERRORS in src/base/am_base.h); the table of codes
-- in the document names every one of them, and no other.
do
  local listed = {}
  for name in text:gmatch('`"(E[A-Z0-9]+)"`') do listed[name] = true end
  for name in pairs(am.errcodes) do T.ok(listed[name], "API.md lists the error code " .. name) end
  for name in pairs(listed) do T.ok(am.errcodes[name], "API.md's error code " .. name .. " exists") end
end

print(("lua/API.md: %d public functions (%d documented names), %d methods of %d kinds"):format(#funcs, n_doc,
  n_methods, #kinds))
T.done()
