-- amalgam/sources/wordnet.lua - WordNet 3.0 (Debian wordnet-base).
--
--   local wn = require "amalgam.sources.wordnet"
--   local db = wn.read(root [, progress])      -- root = the unpacked package (usr/share/wordnet/)
--   db.list        synsets in file order (noun, verb, adj, adv), each
--                  { id = "n02084071", pos = "n"|"v"|"a"|"s"|"r", lexfile = 5,
--                    lemmas = {"dog", "domestic dog", "Canis familiaris"}, gloss = "...",
--                    definition = "a member of the genus Canis ...", examples = {"the dog barked all night"},
--                    hypernyms = {"n02083346", ...} (@ and @i), similar = {"a00019131"} (& of satellites) }
--   db.by_id[id]   the synset
--   wn.group_of(db, syn)   sibling group key: the first hypernym (nouns, verbs), the head adjective
--                          (satellites and heads share it), else the synset itself
--   wn.wup(db, a, b)       Wu-Palmer similarity (NLTK's definition, virtual root for verbs)
--   wn.parse_line(line, filepos) / wn.split_gloss(gloss)   (unit tests)
--
-- Ids are the data file's POS letter (n, v, a, r; satellites live in data.adj and get "a") plus
-- the 8-digit byte offset, so they are unique and stable for WordNet 3.0.

local M = {}

M.package = { registry = "apt", name = "wordnet-base", pin = "1:3.0-37",
  license = "WordNet 3.0 license (BSD-like, permissive)" }

local files = { { "noun", "n" }, { "verb", "v" }, { "adj", "a" }, { "adv", "r" } }

--- split a gloss into the definition and the quoted examples
function M.split_gloss(gloss)
  gloss = gloss:gsub("%s+$", "")
  local def, rest = gloss, ""
  local s = gloss:find('; "', 1, true)
  if gloss:sub(1, 1) == '"' then s = 0 end
  if s then
    def = gloss:sub(1, s == 0 and 0 or s - 1)
    rest = gloss:sub(s == 0 and 1 or s + 2)
  end
  local ex = {}
  for e in rest:gmatch('"(.-)"') do
    e = e:gsub("^%s+", ""):gsub("%s+$", "")
    if #e > 0 then ex[#ex + 1] = e end
  end
  def = def:gsub("^%s+", ""):gsub("[%s;]+$", "")
  return def, ex
end

--- parse one data.* line; returns a synset table or nil (header/license lines)
function M.parse_line(line, filepos)
  if line:sub(1, 2) == "  " or #line < 10 then return nil end
  local bar = line:find(" | ", 1, true)
  local head = bar and line:sub(1, bar - 1) or line
  local gloss = bar and line:sub(bar + 3) or ""
  local offset, lexfile, pos, nwx, at = head:match("^(%d+) (%d+) (%a) (%x+) ()")
  if not offset then return nil end
  local lemmas = {}
  for k = 1, tonumber(nwx, 16) do
    local w, e = head:match("^(%S+) %x+ ()", at)
    if not w then error("lemma " .. k .. " missing") end
    lemmas[k] = w:gsub("%(%a+%)$", ""):gsub("_", " ")
    at = e
  end
  -- pointers: "sym offset pos src/tgt"; only hypernyms (@, @i) and similar-to (&) are kept
  local hyper, similar = {}, {}
  for sym, off, ppos in head:gmatch("%f[%S]([@&]i?) (%d%d%d%d%d%d%d%d) (%a) %x%x%x%x", at) do
    local key = (ppos == "s" and "a" or ppos) .. off
    if sym == "&" then similar[#similar + 1] = key else hyper[#hyper + 1] = key end
  end
  local def, ex = M.split_gloss(gloss)
  return { id = filepos .. offset, pos = pos, lexfile = tonumber(lexfile), lemmas = lemmas,
    gloss = gloss:gsub("%s+$", ""), definition = def, examples = ex, hypernyms = hyper, similar = similar }
end

--- read the four data files under root/usr/share/wordnet (or root itself)
function M.read(root, bar)
  local dir = root .. "/usr/share/wordnet"
  if not io.open(dir .. "/data.noun") then dir = root end
  local db = { list = {}, by_id = {}, dir = dir }
  for _, fp in ipairs(files) do
    local path = dir .. "/data." .. fp[1]
    local f, err = io.open(path, "rb")
    if not f then error(("wordnet: cannot open %s: %s"):format(path, err), 0) end
    local n = 0
    for line in f:lines() do
      n = n + 1
      local ok, syn = pcall(M.parse_line, line, fp[2])
      if not ok then error(("%s:%d: malformed synset line: %s"):format(path, n, tostring(syn)), 0) end
      if syn then
        db.list[#db.list + 1] = syn
        db.by_id[syn.id] = syn
        if bar and #db.list % 2000 == 0 then bar:set(#db.list) end
      end
    end
    f:close()
  end
  if bar then bar:set(#db.list) end
  return db
end

function M.group_of(db, syn)
  if syn.pos == "s" and syn.similar[1] then return syn.similar[1] end
  if syn.pos == "a" then return syn.id end
  if syn.hypernyms[1] and db.by_id[syn.hypernyms[1]] then return syn.hypernyms[1] end
  return syn.id
end

-- ------------------------------------------------------------------ Wu-Palmer

-- ancestors(db, id) -> {ancestor id -> shortest distance} (including id itself at 0), memoised
local function ancestors(db, id)
  db._anc = db._anc or {}
  local a = db._anc[id]
  if a then return a end
  a = { [id] = 0 }
  local frontier, d = { id }, 0
  while #frontier > 0 do
    d = d + 1
    local nxt = {}
    for _, s in ipairs(frontier) do
      local syn = db.by_id[s]
      for _, h in ipairs(syn and syn.hypernyms or {}) do
        if a[h] == nil and db.by_id[h] then
          a[h] = d
          nxt[#nxt + 1] = h
        end
      end
    end
    frontier = nxt
  end
  db._anc[id] = a
  return a
end

-- max_depth(db, id): the longest hypernym path to a root (roots have depth 0), memoised
local function max_depth(db, id)
  db._md = db._md or {}
  local v = db._md[id]
  if v then return v end
  db._md[id] = 0 -- cycle guard
  local best = 0
  local syn = db.by_id[id]
  for _, h in ipairs(syn and syn.hypernyms or {}) do
    if db.by_id[h] then best = math.max(best, max_depth(db, h) + 1) end
  end
  db._md[id] = best
  return best
end

-- min_depth(db, id): the shortest hypernym path to a root, memoised
local function min_depth(db, id)
  db._mind = db._mind or {}
  local v = db._mind[id]
  if v then return v end
  db._mind[id] = 0 -- cycle guard
  local best
  local syn = db.by_id[id]
  for _, h in ipairs(syn and syn.hypernyms or {}) do
    if db.by_id[h] then
      local d = min_depth(db, h) + 1
      if not best or d < best then best = d end
    end
  end
  db._mind[id] = best or 0
  return best or 0
end

-- NLTK's synset name "lemma.pos.NN" (NN = the synset's rank in the index entry of its first
-- lemma), used only to break ties between lowest common hypernyms exactly as NLTK sorts them.
local function synset_name(db, id)
  if not db._sense then
    db._sense = {}
    for _, fp in ipairs(files) do
      local f = db.dir and io.open(db.dir .. "/index." .. fp[1], "rb")
      if f then
        for line in f:lines() do
          if line:sub(1, 2) ~= "  " then
            local w = {}
            for x in line:gmatch("%S+") do w[#w + 1] = x end
            local n = tonumber(w[3])
            if n then
              for k = 1, n do db._sense[w[1] .. "|" .. fp[2] .. w[#w - n + k]] = k end
            end
          end
        end
        f:close()
      end
    end
  end
  local syn = db.by_id[id]
  local lemma = syn.lemmas[1]:lower():gsub(" ", "_")
  local sense = db._sense[lemma .. "|" .. id] or 0
  return ("%s.%s.%02d"):format(lemma, syn.pos, sense)
end
M.synset_name = synset_name

--- Wu-Palmer similarity exactly as NLTK 3.8 computes it (wup_similarity, simulate_root=True):
--- the lowest common hypernyms are the common ancestors (a synset counts as its own) with the
--- largest min_depth (use_min_depth=True), sorted by name, and a synset that is itself one of
--- them wins; verbs get a fake root (min_depth 0, sorted first). depth = max_depth(lcs) + 1
--- (1 for the fake root); len_i = shortest distance(s_i, lcs) + depth, where the fake root is at
--- (largest shortest distance to any ancestor) + 1; wup = 2*depth / (len_1 + len_2). The
--- distance to the lcs is NLTK's: the shortest path through any common ancestor of s_i and lcs.
--- Nouns with nouns and verbs with verbs only (nil otherwise).
function M.wup(db, a, b)
  local sa, sb = db.by_id[a], db.by_id[b]
  if not sa or not sb or sa.pos ~= sb.pos or (sa.pos ~= "n" and sa.pos ~= "v") then return nil end
  local need_root = sa.pos ~= "n"
  local aa, ab = ancestors(db, a), ancestors(db, b)
  local best, set = -1, {}
  for anc in pairs(aa) do
    if ab[anc] then
      local md = min_depth(db, anc)
      if md > best then best, set = md, { anc } elseif md == best then set[#set + 1] = anc end
    end
  end
  local fake = need_root and best <= 0
  if need_root and best < 0 then set = {} end
  local lcs
  for _, x in ipairs(set) do if x == a then lcs = a end end
  if not lcs and fake then lcs = "*ROOT*" end
  if not lcs then
    if #set == 0 then return nil end
    table.sort(set, function(x, y) return synset_name(db, x) < synset_name(db, y) end)
    lcs = set[1]
  end
  local depth, l1, l2
  if lcs == "*ROOT*" then
    depth = 1
    local m1, m2 = 0, 0
    for _, d in pairs(aa) do m1 = math.max(m1, d) end
    for _, d in pairs(ab) do m2 = math.max(m2, d) end
    l1, l2 = m1 + 1, m2 + 1
  else
    depth = max_depth(db, lcs) + 1
    -- NLTK's shortest_path_distance(s, lcs): the shortest route through any ancestor of lcs
    local al = ancestors(db, lcs)
    l1, l2 = math.huge, math.huge
    for x, d in pairs(al) do
      if aa[x] then l1 = math.min(l1, aa[x] + d) end
      if ab[x] then l2 = math.min(l2, ab[x] + d) end
    end
  end
  return 2.0 * depth / (l1 + depth + l2 + depth)
end

return M
