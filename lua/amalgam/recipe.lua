-- amalgam/recipe.lua - how `amalgam run RECIPE.lua [key=value ...]` runs a recipe.
--
-- 1. The recipe file is loaded in a strict environment (M.env): reading a global that was
--    never assigned raises "undefined global 'x'" at the reading line, so a typo fails loudly
--    instead of reading nil. Assigning globals is allowed (they live in the recipe's own
--    environment, not in _G).
-- 2. It is called with the argument table (also the globals `args` and `arg`): key=value
--    arguments become fields (numbers and true/false converted), other arguments are
--    args[1..n], args[0] is the recipe path.
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

--- M.parse_args(list) -> args table from {"k=v", "pos", ...}
function M.parse_args(list, script)
  if type(list) ~= "table" then argerror(1, "parse_args", "table", list) end
  for i, a in ipairs(list) do
    if type(a) ~= "string" then
      error(("bad argument #1 to 'parse_args' (list of strings expected, item %d is a %s)"):format(i, type(a)), 2)
    end
  end
  local args = { [0] = script }
  for _, a in ipairs(list) do
    local k, v = a:match("^([%a_][%w_%.%-]*)=(.*)$")
    if k then
      if v == "true" then v = true
      elseif v == "false" then v = false
      else v = tonumber(v) or v end
      args[k] = v
    else
      args[#args + 1] = a
    end
  end
  return args
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
