-- amalgam/recipe.lua - how `amalgam run RECIPE.lua [key=value ...]` runs a recipe.
--
-- 1. The recipe file is loaded in a strict environment (M.env): reading a global that was
--    never assigned raises "undefined global 'x'" at the reading line, so a typo fails loudly
--    instead of reading nil. Assigning globals is allowed (they live in the recipe's own
--    environment, not in _G).
-- 2. It is called with the argument table (M.start; also the globals `args` and `arg`):
--    key=value arguments become fields (numbers and true/false converted), other arguments are
--    args[1..n], args[0] is the recipe path. A recipe declares its parameters with
--    am.params{name = default, ...} (M.params): an unknown key or a wrong type is an error before
--    anything runs. For a recipe that does not, reads are tracked and M.finish warns about
--    key=value arguments it never read.
-- 3. If it returns a table, M.run(spec, args) runs it: the first registered handler whose
--    match(spec) is true runs it (the training layer registers one); otherwise spec may have
--    lifecycle hooks setup(args), run(args) and done(result), called in that order.

local M = {}

-- "bad argument #n to 'fname' (want expected, got T)" at the caller of the API function
local function argerror(n, fname, want, v)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(n, fname, want, type(v)), 3)
end

--- M.env([base]) -> a fresh strict environment reading through to base (default _G)
function M.env(base)
  if base ~= nil and type(base) ~= "table" then argerror(1, "env", "table", base) end
  base = base or _G
  local declared = {}
  return setmetatable({}, {
    __index = function(_, k)
      local v = base[k]
      if v == nil and not declared[k] then
        error(("undefined global '%s'"):format(tostring(k)), 2)
      end
      return v
    end,
    __newindex = function(t, k, v)
      declared[k] = true
      rawset(t, k, v)
    end,
  })
end

-- The argument tables parse_args made: proxy -> { vals = parsed values, raw = the text of each
-- key=value, read = keys the recipe read, script = path }. A recipe reads its arguments through
-- the proxy, so the host can tell (M.finish) which key=value arguments were never read.
local tracked = setmetatable({}, { __mode = "k" })

--- M.parse_args(list [, script]) -> args table from {"k=v", "pos", ...}
function M.parse_args(list, script)
  if type(list) ~= "table" then argerror(1, "parse_args", "table", list) end
  for i, a in ipairs(list) do
    if type(a) ~= "string" then
      error(("bad argument #1 to 'parse_args' (list of strings expected, item %d is a %s)"):format(i, type(a)), 2)
    end
  end
  local vals, raw, read = { [0] = script }, {}, {}
  for _, a in ipairs(list) do
    local k, v = a:match("^([%a_][%w_%.%-]*)=(.*)$")
    if k then
      raw[k] = v
      if v == "true" then v = true
      elseif v == "false" then v = false
      else v = tonumber(v) or v end
      vals[k] = v
    else
      vals[#vals + 1] = a
    end
  end
  local proxy = setmetatable({}, {
    __index = function(_, k) read[k] = true; return vals[k] end,
    __newindex = function(_, k, v) vals[k] = v end,
    __len = function() return #vals end,
    __pairs = function() -- iterating reads everything
      for k in pairs(vals) do read[k] = true end
      return next, vals, nil
    end,
  })
  tracked[proxy] = { vals = vals, raw = raw, read = read, script = script }
  return proxy
end

--- M.start(list, script) -> args: parse_args, and make it the running recipe's arguments (am.params)
function M.start(list, script)
  local args = M.parse_args(list, script)
  M.current = args
  return args
end

-- a usage error: the message without a traceback, exit code 2 (the host's msghandler, l_host.c)
local usage_mt = { __tostring = function(e) return e.msg end }
local function usage_error(msg) error(setmetatable({ msg = msg, exit = 2 }, usage_mt), 0) end

--- M.usage_error(msg): raise a usage error (no traceback, exit code 2), as am.params does for
--- a bad argument; for recipes that check their parameters further
M.usage_error = usage_error

--- M.key(parts) -> 6 hex characters naming a list of settings (FNV-1a 64 of the parts joined
--- with "|"), so a recipe's models change name when a setting that made them changes
function M.key(parts)
  local h, s = 0xcbf29ce484222325, table.concat(parts, "|")
  for i = 1, #s do h = (h ~ s:byte(i)) * 0x100000001b3 end
  return ("%016x"):format(h):sub(1, 6)
end

--- M.run_of(id) -> the last finished run whose final model is id (its record holds the data
--- manifest: the samples a recipe drew), or nil
function M.run_of(id)
  local best
  for _, r in ipairs(require("amalgam.runs").runs()) do
    if r.status == "done" and r.models and r.models.final == id then best = r end
  end
  return best
end

local function who(t) return t and t.script and (tostring(t.script) .. ": ") or "" end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

local param_types = { string = true, number = true, integer = true, boolean = true }

--- M.params(spec [, args]) -> the recipe's parameters
-- spec: name -> default (its type is the parameter's type: string, integer, number, boolean) or
-- {type=, default=} (no default: nil unless given). Checks every key=value argument of args
-- (default: the running recipe's) up front: an unknown key, a positional argument or a value of
-- the wrong type is a usage error (no traceback, exit 2) naming the known parameters. Reading
-- an undeclared name from the result raises (a typo in the recipe).
function M.params(spec, args)
  if type(spec) ~= "table" then argerror(1, "params", "table", spec) end
  local types, out = {}, {}
  for k, d in pairs(spec) do
    if type(k) ~= "string" then error("bad argument #1 to 'params' (parameter names must be strings)", 2) end
    local want, def = math.type(d) == "integer" and "integer" or type(d), d
    if type(d) == "table" then want, def = d.type, d.default end
    if not param_types[want] then
      error(("bad argument #1 to 'params' (parameter '%s': a default or {type=string|number|integer|boolean, default=})")
        :format(k), 2)
    end
    types[k], out[k] = want, def
  end
  local t = tracked[args or M.current]
  if t then
    local known = table.concat(sorted_keys(types), ", ")
    for k, v in pairs(t.vals) do
      if k == 0 then -- the script path
      elseif type(k) ~= "string" then
        usage_error(("%sunexpected argument '%s' (arguments are key=value; known: %s)"):format(who(t), tostring(v), known))
      elseif not types[k] then
        usage_error(("%sunknown argument '%s' (known: %s)"):format(who(t), k, known))
      else
        local want, text = types[k], t.raw[k] or tostring(v)
        if want == "string" then v = text
        elseif want == "boolean" and type(v) ~= "boolean" then
          usage_error(("%sargument '%s' must be true or false, got '%s'"):format(who(t), k, text))
        elseif want == "integer" and not math.tointeger(v) then
          usage_error(("%sargument '%s' must be an integer, got '%s'"):format(who(t), k, text))
        elseif want == "number" and type(v) ~= "number" then
          usage_error(("%sargument '%s' must be a number, got '%s'"):format(who(t), k, text))
        end
        if want == "integer" then v = math.tointeger(v) end
        out[k] = v
        t.read[k] = true
      end
    end
  end
  return setmetatable(out, {
    __index = function(_, k)
      if types[k] then return nil end -- declared without a default, not given
      error(("'%s' is not a parameter of this recipe (declared: %s)"):format(tostring(k),
        table.concat(sorted_keys(types), ", ")), 2)
    end,
  })
end

--- M.finish(args) -> list of the key=value keys the recipe never read (also warned on stderr)
function M.finish(args)
  local t = tracked[args]
  if not t then return {} end
  local unread, seen = {}, {}
  for k in pairs(t.vals) do
    if type(k) == "string" then
      if t.read[k] then seen[#seen + 1] = k else unread[#unread + 1] = k end
    end
  end
  table.sort(unread)
  table.sort(seen)
  for _, k in ipairs(unread) do
    io.stderr:write(("amalgam: warning: %sargument '%s' was never read by the recipe%s\n"):format(who(t), k,
      #seen > 0 and (" (it read: " .. table.concat(seen, ", ") .. ")") or ""))
  end
  return unread
end

M.handlers = {}

--- M.register{match=function(spec) ... end, run=function(spec, args) ... end}
function M.register(h)
  if not (type(h) == "table" and type(h.match) == "function" and type(h.run) == "function") then
    error("bad argument #1 to 'register' (recipe.register expects {match=function, run=function})", 2)
  end
  M.handlers[#M.handlers + 1] = h
end

local hooks = { setup = true, run = true, done = true, name = true, description = true }

--- M.run(spec, args) -> result of the recipe
function M.run(spec, args)
  if type(spec) ~= "table" then return spec end
  for _, h in ipairs(M.handlers) do
    if h.match(spec) then return h.run(spec, args) end
  end
  local who = (args and args[0]) and (tostring(args[0]) .. ": ") or ""
  for k in pairs(spec) do
    if not hooks[k] then
      error(("%srecipe returned a table with unknown key '%s' (known: description, done, name, run, setup)")
        :format(who, tostring(k)), 0)
    end
  end
  for _, k in ipairs({ "setup", "run", "done" }) do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      error(("%srecipe hook '%s' must be a function, got %s"):format(who, k, type(spec[k])), 0)
    end
  end
  if spec.setup then spec.setup(args) end
  local result
  if spec.run then result = spec.run(args) end
  if spec.done then spec.done(result) end
  return result
end

return M
