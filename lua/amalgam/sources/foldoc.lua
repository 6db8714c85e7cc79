-- amalgam/sources/foldoc.lua - FOLDOC, the Free On-line Dictionary of Computing (Debian
-- dict-foldoc, dictd format: foldoc.index + foldoc.dict.dz).
--
--   local fd = require "amalgam.sources.foldoc"
--   local entries = fd.read(root)   -- root = unpacked package (usr/share/dictd/) or the dictd dir
--     -> list of { headword = "channel", aliases = {"chat room", "room"}, category = "chat",
--                  text = "(Or \"chat room\", ...) The basic unit of group discussion ..." }
--        one per distinct entry body, in dictionary order; the 00-database-* entries are skipped
--   fd.read_dictd(index_path, dict_path) -> list of {headwords = {...}, body = raw}   (any dictd dictionary)
--   fd.clean(body) -> headword, aliases, category, text

local S = require("amalgam.core").source

local M = {}

M.package = { registry = "apt", name = "dict-foldoc", pin = "20230119-1", license = "GFDL 1.1 or later" }

--- a dictd dictionary: entries grouped by body (several index headwords may share one body)
function M.read_dictd(index_path, dict_path)
  local idx = io.open(index_path, "rb")
  if not idx then error(("foldoc: cannot open %s"):format(index_path), 0) end
  local data, msg = S.read(dict_path)
  if not data then error(msg, 0) end
  local by_key, list, n = {}, {}, 0
  for line in idx:lines() do
    n = n + 1
    local hw, o, l = line:match("^(.-)\t([%w+/]+)\t([%w+/]+)$")
    if not hw then
      idx:close()
      error(("%s:%d: expected 'headword<TAB>offset<TAB>length'"):format(index_path, n), 0)
    end
    local off, len = S.dictd_b64(o), S.dictd_b64(l)
    if not off or not len or off + len > #data then
      idx:close()
      error(("%s:%d: entry '%s' points outside %s (%s+%s > %d bytes)"):format(index_path, n, hw, dict_path,
        tostring(off), tostring(len), #data), 0)
    end
    local key = off .. ":" .. len
    local e = by_key[key]
    if not e then
      e = { headwords = {}, off = off, body = data:sub(off + 1, off + len) }
      by_key[key] = e
      list[#list + 1] = e
    end
    e.headwords[#e.headwords + 1] = hw
  end
  idx:close()
  table.sort(list, function(a, b) return a.off < b.off end)
  return list
end

--- clean one FOLDOC entry body: the headword lines, the <category>, the text without
--- {cross-reference} braces, [source] notes and (YYYY-MM-DD) dates
function M.clean(body)
  local head, rest = body:match("^(.-)\n%s*\n(.*)$")
  if not head then head, rest = body:match("^([^\n]*)\n?(.*)$") end
  local names = {}
  for l in head:gmatch("[^\n]+") do
    l = S.squash(l)
    if #l > 0 then names[#names + 1] = l end
  end
  local text = rest
  -- the first <category> tag names the category; drop every category-like tag
  local category = text:match("^%s*<([%w%s,%-%.'/]+)>")
  text = text:gsub("<([%w][%w%s,%-%.'/]*)>", function(c)
    if c:find("@", 1, true) then return nil end
    return ""
  end)
  -- {text (url)} -> text ; {text} -> text
  text = text:gsub("{([^{}]-)%s*%(([^()]*)%)}", function(t, u)
    if u:match("^%a+:") or u:match("%.html?$") or u:match("/") then return t end
    return nil
  end)
  text = text:gsub("{([^{}]*)}", "%1")
  -- [Jargon File] / [{Jargon File}] source notes and trailing dates
  text = text:gsub("%[%s*Jargon File%s*%]", "")
  text = text:gsub("%(%d%d%d%d%-%d%d%-%d%d%)", "")
  text = S.squash(text)
  local hw = table.remove(names, 1) or ""
  return hw, names, category and S.squash(category) or nil, text
end

function M.read(root, bar)
  local dir = root .. "/usr/share/dictd"
  if not io.open(dir .. "/foldoc.index") then dir = root end
  local raw = M.read_dictd(dir .. "/foldoc.index", dir .. "/foldoc.dict.dz")
  local out = {}
  for i, e in ipairs(raw) do
    local first = e.headwords[1]
    if not first:match("^00%-?database") and not first:match("^00database") then
      local hw, aliases, cat, text = M.clean(e.body)
      if #hw > 0 and #text > 0 then
        out[#out + 1] = { headword = hw, aliases = aliases, category = cat, text = text }
      end
    end
    if bar and i % 2000 == 0 then bar:set(i) end
  end
  return out
end

return M
