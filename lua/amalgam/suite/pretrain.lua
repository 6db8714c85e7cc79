-- amalgam/suite/pretrain.lua - the MLM pretraining corpus: the train side of the WordNet and
-- Debian splits, State of the Union and Moby-Dick.
local core = require "amalgam.core"
local S = core.source
local D = core.dataset
local C = require "amalgam.suite.common"
local nwords, add_ok = C.nwords, C.add_ok
local W = require "amalgam.suite.wordnet"
local Deb = require "amalgam.suite.debian"

local M = {}

-- ------------------------------------------------------------------ pretraining text

function M.pretrain(ctx)
  local Z = C.SIZES
  local ds = D.new("text")
  local counts = {}
  local function add(src, text)
    text = S.squash(text)
    if #text == 0 then return end
    add_ok(ds:add_text(text))
    local c = counts[src] or { docs = 0, words = 0 }
    c.docs = c.docs + 1
    c.words = c.words + nwords(text)
    counts[src] = c
  end
  local db = ctx:wordnet()
  W.wordnet_split(db)
  for _, syn in ipairs(db.list) do
    if syn.side == 1 and #syn.gloss > 0 then add("wordnet", table.concat(syn.lemmas, ", ") .. ": " .. syn.gloss) end
  end
  local pkgs = ctx:debian()
  Deb.debian_split(pkgs)
  for _, p in ipairs(pkgs) do
    if p.side == 1 then add("debian", p.short .. ". " .. p.long) end
  end
  local prose = require "amalgam.sources.prose"
  for _, sp in ipairs(ctx:sotu()) do
    for _, c in ipairs(prose.chunks(sp.text, Z.chunk_words)) do add("sotu", c) end
  end
  for _, ch in ipairs(ctx:moby()) do
    local cur, cw = {}, 0
    for _, para in ipairs(ch.paragraphs) do
      for _, c in ipairs(prose.chunks(para, Z.chunk_words)) do
        local w = nwords(c)
        if cw > 0 and cw + w > Z.chunk_words then add("moby-dick", table.concat(cur, " ")); cur, cw = {}, 0 end
        cur[#cur + 1] = c
        cw = cw + w
      end
    end
    if cw > 0 then add("moby-dick", table.concat(cur, " ")) end
  end
  return {
    files = { corpus = { ds = ds, path = "corpus.txt", fmt = "lines" } },
    evals = {},
    train = "corpus",
    split = { by = "the train side of the WordNet and Debian splits only; SOTU and Moby-Dick whole", seed = C.SEED },
    extra = { sources = counts },
  }
end

return M
