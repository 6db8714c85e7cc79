-- check.lua - tiny test helper for tests/lua/test_*.lua (Lua testes style).
--   local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
--   T.ok(cond, what)               T.eq(got, want, what)        T.near(got, want, tol, what)
--   T.checkerr(msg, f, ...)        f(...) must raise an error containing msg (plain text)
--   T.checkfail(code, f, ...)      f(...) must return nil, <string message>, code
--   T.done()                       prints "N passed, N failed" and exits non-zero on failure
-- Failures print the file:line of the check.
local T = { passed = 0, failed = 0 }

local function where()
  local info = debug.getinfo(3, "Sl")
  return info.short_src .. ":" .. info.currentline
end

local function record(ok, what, detail)
  if ok then
    T.passed = T.passed + 1
  else
    T.failed = T.failed + 1
    print(("FAIL %s: %s%s"):format(where(), what or "?", detail and (" (" .. detail .. ")") or ""))
  end
  return ok
end

function T.ok(cond, what) return record(not not cond, what) end

function T.eq(got, want, what)
  return record(got == want, what, ("got %s, want %s"):format(tostring(got), tostring(want)))
end

function T.near(got, want, tol, what)
  local ok = type(got) == "number" and math.abs(got - want) <= tol
  return record(ok, what, ("got %s, want %s +- %g"):format(tostring(got), tostring(want), tol))
end

function T.checkerr(msg, f, ...)
  local ok, err = pcall(f, ...)
  if ok then return record(false, "expected an error containing '" .. msg .. "'", "no error") end
  err = tostring(err)
  return record(err:find(msg, 1, true) ~= nil, "error message contains '" .. msg .. "'", "got: " .. err)
end

function T.checkfail(code, f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] then return record(false, "expected nil, msg, " .. code, "raised: " .. tostring(r[2])) end
  local ok = r[2] == nil and type(r[3]) == "string" and #r[3] > 0 and r[4] == code
  return record(ok, "returns nil, msg, " .. code, ("got %s, %s, %s"):format(tostring(r[2]), tostring(r[3]), tostring(r[4])))
end

--- a fresh temporary directory path (not created)
function T.tmpdir(tag)
  local p = os.tmpname()
  os.remove(p)
  T.cleanup = T.cleanup or {}
  p = p .. "_" .. (tag or "d")
  T.cleanup[#T.cleanup + 1] = p
  return p
end

function T.done()
  for _, p in ipairs(T.cleanup or {}) do os.execute("rm -rf '" .. p .. "'") end
  print(("%d passed, %d failed"):format(T.passed, T.failed))
  os.exit(T.failed == 0)
end

return T
