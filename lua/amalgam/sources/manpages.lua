-- amalgam/sources/manpages.lua - Linux man pages (Debian manpages + manpages-dev).
--
--   local man = require "amalgam.sources.manpages"
--   man.read(root [, pkg]) -> list of { page = "insque.3", section = "3", package = pkg,
--                                       names = "insque, remque", summary = "insert/remove an item from a queue",
--                                       description = "The insque() and remque() functions ..." }
--   Skips symlinks and ".so" link pages; keeps pages with a NAME line "names - summary" and a
--   DESCRIPTION of more than 10 words.
--   man.page(roff, file) -> record | nil, why    (one page; unit tests)

local S = require("amalgam.core").source

local M = {}

M.packages = {
  { registry = "apt", name = "manpages", pin = "6.03-2" },
  { registry = "apt", name = "manpages-dev", pin = "6.03-2" },
}
M.license = "Linux man-pages licenses (Linux-man-pages-copyleft, BSD, GPL; per page)"

local function words(s)
  local n = 0
  for _ in s:gmatch("%S+") do n = n + 1 end
  return n
end
M.words = words

function M.page(roff, file)
  local p = S.man(roff)
  if p.link then return nil, "link" end
  local name, desc
  for _, sec in ipairs(p.sections) do
    local n = sec.name:upper()
    if n == "NAME" and not name then name = sec.text end
    if n == "DESCRIPTION" and not desc then desc = sec.text end
  end
  if not name then return nil, "no NAME section" end
  if not desc then return nil, "no DESCRIPTION section" end
  name = S.squash(name)
  local names, summary = name:match("^(.-)%s+%-+%s+(.+)$")
  if not names then names, summary = name:match("^(.-)%s+\u{2014}%s+(.+)$") end
  if not names then return nil, "NAME line without ' - '" end
  desc = S.squash(desc)
  if words(desc) <= 10 then return nil, "short DESCRIPTION" end
  return { page = file, section = p.section ~= "" and p.section or (file:match("%.(%w+)$") or ""), names = names,
    summary = summary, description = desc }
end

function M.read(root, pkg)
  local mandir = root .. "/usr/share/man"
  if not S.stat(mandir) then mandir = root end
  local out = {}
  for _, sub in ipairs(S.listdir(mandir) or {}) do
    if sub:match("^man%w+$") then
      local d = mandir .. "/" .. sub
      for _, f in ipairs(S.listdir(d) or {}) do
        local path = d .. "/" .. f
        local st = S.stat(path)
        if st and st.type == "file" then
          local roff, msg = S.read(path)
          if not roff then error(msg, 0) end
          local rec = M.page(roff, (f:gsub("%.gz$", "")))
          if rec then
            rec.package = pkg
            out[#out + 1] = rec
          end
        end
      end
    end
  end
  return out
end

return M
