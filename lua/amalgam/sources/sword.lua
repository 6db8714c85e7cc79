-- amalgam/sources/sword.lua - SWORD zText Bible modules (Debian sword-text-kjv, sword-text-web)
-- read verse by verse, and the KJV/WEB verse alignment.
--
--   local sw = require "amalgam.sources.sword"
--   local kjv = sw.read(root)   -- root = unpacked package; finds modules/texts/ztext/<mod>/
--     -> { module = "engKJV2006eb", verses = { {ref = "Gen.1.1", text = "In the beginning ..."}, ... },
--          by_ref = { ["Gen.1.1"] = index } }
--   sw.walk(slots)  -- raw slot texts (ot or nt, in order) -> list of {ref, osis} for the verse slots
--   sw.align(a, b [, min_jaccard]) -> list of { ref, a = text, b = text, jaccard }
--
-- Verse references come from the module itself: in a zText module every chapter has a heading
-- slot holding <chapter osisID="Gen.1" sID=...>, followed by one slot per verse; a book has
-- one heading slot before its first chapter. So verse k after chapter slot c is "<chapter>.k"
-- whatever the versification (KJV or NRSVA) is, and the two translations are aligned by
-- reference (then checked by word overlap: pairs below min_jaccard are dropped as versification
-- shifts).

local S = require("amalgam.core").source

local M = {}

M.packages = {
  { registry = "apt", name = "sword-text-kjv", pin = "14.3-1", license = "public domain (King James Version)" },
  { registry = "apt", name = "sword-text-web", pin = "426.0-1", license = "public domain (World English Bible)" },
}

function M.walk(slots)
  local out = {}
  local chapter, verse, chapter_slot = nil, 0, nil
  for i, raw in ipairs(slots) do
    local cid = raw:match("<chapter[^>]-osisID=\"([^\"]+)\"[^>]-sID=") or raw:match("<chapter[^>]-sID=\"[^\"]+\"[^>]-osisID=\"([^\"]+)\"")
    if cid then
      -- the slot before chapter 1 of a book is the book heading, not a verse
      if cid:match("%.1$") and #out > 0 and out[#out].slot == i - 1 then table.remove(out) end
      chapter, verse, chapter_slot = cid, 0, i
    elseif chapter then
      verse = verse + 1
      if #raw > 0 then out[#out + 1] = { ref = chapter .. "." .. verse, osis = raw, slot = i } end
    end
  end
  return out
end

local function find_module(root)
  local base = root .. "/usr/share/sword/modules/texts/ztext"
  local list = S.listdir(base)
  if list and list[1] then return base .. "/" .. list[1], list[1] end
  if S.stat(root .. "/nt.bzs") or S.stat(root .. "/ot.bzs") then return root, root:match("([^/]+)$") end
  error(("sword: no zText module under %s"):format(base), 0)
end

function M.read(root)
  local dir, name = find_module(root)
  local res = { module = name, verses = {}, by_ref = {} }
  for _, t in ipairs({ "ot", "nt" }) do
    if S.stat(dir .. "/" .. t .. ".bzs") then
      local slots, msg = S.sword_ztext(dir, t)
      if not slots then error(msg, 0) end
      for _, v in ipairs(M.walk(slots)) do
        local text = S.osis_text(v.osis)
        if #text > 0 and not res.by_ref[v.ref] then
          res.verses[#res.verses + 1] = { ref = v.ref, text = text }
          res.by_ref[v.ref] = #res.verses
        end
      end
    end
  end
  return res
end

local function wordset(s)
  local set, n = {}, 0
  for w in s:lower():gmatch("[%a']+") do
    if not set[w] then set[w] = true; n = n + 1 end
  end
  return set, n
end

function M.jaccard(a, b)
  local sa, na = wordset(a)
  local sb, nb = wordset(b)
  local inter = 0
  for w in pairs(sa) do if sb[w] then inter = inter + 1 end end
  local union = na + nb - inter
  return union > 0 and inter / union or 0
end

--- pairs of verses with the same reference in both translations, in a's order
function M.align(a, b, min_jaccard)
  min_jaccard = min_jaccard or 0.1
  local out = {}
  for _, v in ipairs(a.verses) do
    local k = b.by_ref[v.ref]
    if k then
      local j = M.jaccard(v.text, b.verses[k].text)
      if j >= min_jaccard then out[#out + 1] = { ref = v.ref, a = v.text, b = b.verses[k].text, jaccard = j } end
    end
  end
  return out
end

return M
