-- amalgam/progress.lua - one progress bar per source/step on stderr (amalgam prepare).
--
--   local P = require "amalgam.progress"
--   local bar = P.new("wordnet", "parse", 117659)   -- label, what, total (nil = unknown)
--   bar:set(n [, detail]) / bar:add(k)               -- redrawn at most every 0.1 s on a terminal
--   bar:done(summary)                                -- final line with the elapsed time
--   bar:fail(msg)
--
-- On a terminal the bar is redrawn in place with \r; otherwise (logs, CI, tests) only the
-- final line of each bar is printed. P.quiet(true) silences everything (unit tests).

local source = require("amalgam.core").source

local P = {}
local quiet = false
local tty = source.isatty(2)

function P.quiet(q) quiet = q and true or false end
function P.is_tty() return tty end

local Bar = {}
Bar.__index = Bar

local function fmt_count(n)
  if n == nil then return "?" end
  local s = tostring(math.floor(n))
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end
P.fmt_count = fmt_count

local function fmt_time(t)
  if t < 60 then return ("%.1fs"):format(t) end
  return ("%dm%02ds"):format(math.floor(t / 60), math.floor(t % 60))
end
P.fmt_time = fmt_time

function P.new(label, what, total)
  local b = setmetatable({ label = label, what = what or "", total = total, n = 0, t0 = source.now(),
    last = -1, detail = nil }, Bar)
  b:draw(true)
  return b
end

function Bar:line()
  local head = ("  %-14s %-9s"):format(self.label, self.what)
  if self.total and self.total > 0 then
    local frac = math.min(1, self.n / self.total)
    local w = 24
    local fill = math.floor(frac * w + 0.5)
    return ("%s [%s%s] %3d%% %s/%s%s"):format(head, ("#"):rep(fill), ("-"):rep(w - fill), math.floor(frac * 100 + 0.5),
      fmt_count(self.n), fmt_count(self.total), self.detail and ("  " .. self.detail) or "")
  end
  local spin = ("|/-\\"):sub(self.n % 4 + 1, self.n % 4 + 1)
  return ("%s %s %s%s"):format(head, spin, self.n > 0 and fmt_count(self.n) or "",
    self.detail and ("  " .. self.detail) or "")
end

function Bar:draw(force)
  if quiet or not tty then return end
  local now = source.now()
  if not force and now - self.last < 0.1 then return end
  self.last = now
  local l = self:line()
  io.stderr:write("\r", l, (" "):rep(math.max(0, 100 - #l)), "\r")
  io.stderr:flush()
end

function Bar:set(n, detail)
  self.n = n
  if detail then self.detail = detail end
  self:draw(false)
end

function Bar:add(k, detail) self:set(self.n + (k or 1), detail) end

function Bar:finish_line(status, summary)
  if quiet then return end
  local l = ("  %-14s %-9s %s %s (%s)"):format(self.label, self.what, status, summary or "",
    fmt_time(source.now() - self.t0))
  if tty then
    io.stderr:write("\r", l, (" "):rep(math.max(0, 100 - #l)), "\n")
  else
    io.stderr:write(l, "\n")
  end
  io.stderr:flush()
end

function Bar:done(summary) self:finish_line("ok  ", summary) end
function Bar:skip(summary) self:finish_line("skip", summary) end
function Bar:fail(msg) self:finish_line("FAIL", msg) end

--- P.say(fmt, ...) prints one line on stderr (unless quiet)
function P.say(fmt, ...)
  if quiet then return end
  io.stderr:write(select("#", ...) > 0 and fmt:format(...) or fmt, "\n")
  io.stderr:flush()
end

return P
