-- amalgam/suite/common.lua - what every suite task shares: seeds, split ratios, sizes, and the
-- seeded sampling helpers (hash order, water-filling quotas, stratified samples, leak checks).

local core = require "amalgam.core"
local S = core.source
local D = core.dataset

local M = {}

M.SEED = 20240601
M.SEED_WN = M.SEED + 1
M.SEED_DEB = M.SEED + 2
M.WN_RATIOS = { 0.8, 0.2 }
M.DEB_RATIOS = { 0.65, 0.35 }

-- sizes (eval corpora <= 12k docs, <= 1k queries, <= 5k training pairs per ID task)
M.SIZES = {
  train_pairs = 5000, test_queries = 1000, corpus = 10000, ood_corpus = 12000,
  sts_train = 5000, sts_test = 1000, sense_train = 4000, sense_test = 1000,
  section_train = 4000, section_test = 2000, kjv_queries = 1000, kjv_corpus = 5000,
  brown = 3000, foldoc_cat = 3000, foldoc_cats = 12, spam_class = 2000, spam_cluster = 1500, max_words = 300, man_words = 100, chunk_words = 96,
}

M.DEB_SECTIONS = { "admin", "database", "devel", "doc", "editors", "electronics", "fonts", "games", "graphics",
  "hamradio", "mail", "math", "net", "science", "sound", "text", "utils", "video", "web", "x11" }

-- ------------------------------------------------------------------ helpers

local function h(key, seed) return S.hash64(key, seed) end
M.hash = h

--- list sorted by hash of key(x) with seed (a seeded shuffle independent of table order)
local function hsort(list, seed, key)
  local keyed = {}
  for i, x in ipairs(list) do keyed[i] = { h(key(x), seed), x } end
  table.sort(keyed, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i, k in ipairs(keyed) do out[i] = k[2] end
  return out
end
M.hsort = hsort

local function take(list, k)
  local out = {}
  for i = 1, math.min(k, #list) do out[i] = list[i] end
  return out
end
M.take = take

local function nwords(s)
  local n = 0
  for _ in s:gmatch("%S+") do n = n + 1 end
  return n
end
M.nwords = nwords

--- the first n words of s
local function clip(s, n)
  local k, last = 0, #s
  for e in s:gmatch("%S+()") do
    k = k + 1
    if k == n then last = e - 1 break end
  end
  return s:sub(1, last)
end
M.clip = clip

--- quotas per class for `total` items: equal shares, classes with fewer items give the rest
--- to the others (water-filling). counts: {label = available}; returns {label = quota}
function M.waterfill(counts, total)
  local labels = {}
  for l in pairs(counts) do labels[#labels + 1] = l end
  table.sort(labels)
  local quota, left, open = {}, total, {}
  for _, l in ipairs(labels) do quota[l] = 0; open[#open + 1] = l end
  while left > 0 and #open > 0 do
    local share = math.max(1, left // #open)
    local still = {}
    for _, l in ipairs(open) do
      local give = math.min(share, counts[l] - quota[l], left)
      quota[l] = quota[l] + give
      left = left - give
      if quota[l] < counts[l] then still[#still + 1] = l end
    end
    open = still
  end
  return quota
end

--- stratified sample: items grouped by label(x), `total` drawn with waterfill quotas, each
--- class in hash order; the result is in hash order too
local function stratified(items, label, total, seed, key)
  local by, counts = {}, {}
  for _, x in ipairs(items) do
    local l = label(x)
    by[l] = by[l] or {}
    table.insert(by[l], x)
    counts[l] = (counts[l] or 0) + 1
  end
  local quota = M.waterfill(counts, total)
  local out = {}
  for l, list in pairs(by) do
    for _, x in ipairs(take(hsort(list, seed, key), quota[l])) do out[#out + 1] = x end
  end
  return hsort(out, seed + 7, key)
end
M.stratified = stratified

--- check that no unit is on both sides and that every group is on one side only; raises
function M.assert_disjoint(task, train_units, test_units, group_of)
  local side, gside = {}, {}
  for _, u in ipairs(train_units) do side[u] = 1; if group_of then gside[group_of(u)] = 1 end end
  for _, u in ipairs(test_units) do
    if side[u] == 1 then error(("%s: split leak: '%s' is in train and test"):format(task, u), 0) end
    if group_of and gside[group_of(u)] == 1 then
      error(("%s: split leak: group '%s' of '%s' is in train and test"):format(task, group_of(u), u), 0)
    end
  end
end

local function add_ok(ok, msg, what)
  if not ok then error(("%s: %s"):format(what, msg), 0) end
end
M.add_ok = add_ok

local function new_pairs() return D.new("pairs") end
M.new_pairs = new_pairs

-- xorshift64* for the few places that need a stream of random numbers
local function rng(seed)
  local x = seed ~ 0x9E3779B97F4A7C15
  if x == 0 then x = 1 end
  return function(n)
    x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
    local r = (x * 2685821657736338717) >> 11
    return r % n + 1
  end
end
M.rng = rng

return M
