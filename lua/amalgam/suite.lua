-- amalgam/suite.lua - the default benchmark's task definitions (docs/benchmark-sources.md): how
-- the records of the source adapters become datasets, with fixed seeded splits that never
-- leak. Policy only: the datasets themselves are am.dataset handles (src/data), written and
-- registered by amalgam/prepare.lua.
--
-- Every builder is   build(ctx) -> { files = { role = {ds = Dataset, path = "train.jsonl", fmt = "jsonl"} },
--                                    evals = {...}, extra = {...}, units = {role = {unit ids}} }
-- where ctx gives the parsed sources (ctx:wordnet(), ctx:debian(), ...; see prepare.lua).
--
-- Splits (the whole suite shares them, so no ID task's test item is in any ID task's training
-- data, nor in the pretraining corpus):
--   WordNet  by synset, sibling groups kept together (wordnet.group_of: synsets sharing their first
--            hypernym; satellites with their head adjective): train 0.8 / test 0.2, seed SEED_WN
--   Debian   by source package: train 0.65 / test 0.35, seed SEED_DEB
--   OOD      test only (classification/clustering tasks also get a "probe" part for the
--            logistic-regression probe, MTEB-style, split by document/thread)
-- Samples are drawn by sorting on XXH3-64(key, seed), so they do not depend on table order.
--
-- Files: suite/common.lua (seeds, sizes, sampling helpers), suite/wordnet.lua and suite/debian.lua
-- (ID tasks and their splits), suite/pretrain.lua (MLM corpus), suite/ood.lua (OOD tasks). This
-- module is all of them in one table, as prepare.lua and the tests use it.

local M = {}
for _, part in ipairs { "common", "wordnet", "debian", "pretrain", "ood" } do
  for k, v in pairs(require("amalgam.suite." .. part)) do
    assert(M[k] == nil, "amalgam.suite: " .. k .. " defined twice")
    M[k] = v
  end
end

return M
