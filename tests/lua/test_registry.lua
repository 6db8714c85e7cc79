-- test_registry.lua - amalgam.registry's path rules (lua/amalgam/DATASETS.md "The registry"):
-- paths inside a store are written relative to it and resolved against the store that reads
-- them; absolute paths from stores written before resolve to this store's datasets/ when the
-- same file is there. The whole copy-a-store story runs in tests/cli/test_datasets.sh.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local R = require "amalgam.registry"

local root = T.tmpdir("registry")
local here = root .. "/here/store"
assert(am.source.mkdir_p(here .. "/datasets/wn-def"))
io.open(here .. "/datasets/vocab-pruned.txt", "w"):close()

-- relative
T.eq(R.relative(here, here .. "/datasets/wn-def"), "datasets/wn-def", "a path inside the store becomes relative")
T.eq(R.relative(here .. "/", here .. "/datasets/wn-def"), "datasets/wn-def", "trailing slash on the store")
T.eq(R.relative("store", "store/datasets/x/train.jsonl"), "datasets/x/train.jsonl", "a store named relative to the cwd")
T.eq(R.relative(here, "/elsewhere/file.txt"), "/elsewhere/file.txt", "a path outside the store stays")
T.eq(R.relative(here, here .. "x/datasets/a"), here .. "x/datasets/a", "a sibling whose name extends the store's stays")
local real = am.source.realpath(here)
T.eq(R.relative(root .. "/here/./store", real .. "/datasets/a"), "datasets/a", "the store's realpath counts too")

-- resolve
T.eq(R.resolve(here, "datasets/wn-def"), here .. "/datasets/wn-def", "relative paths are relative to the store")
T.eq(R.resolve(here, "/gone/store/datasets/wn-def"), here .. "/datasets/wn-def", "an old store's path, moved")
T.eq(R.resolve(here, "/gone/store/datasets/vocab-pruned.txt"), here .. "/datasets/vocab-pruned.txt", "a file in datasets/")
T.eq(R.resolve(here, "/gone/store/datasets"), here .. "/datasets", "the datasets dir itself (the vocab entry)")
T.eq(R.resolve(here, "/gone/store/datasets/missing"), "/gone/store/datasets/missing",
  "no copy here: the recorded path stays (its error names it)")
T.eq(R.resolve(here, "/usr/share/dict/words"), "/usr/share/dict/words", "an absolute path outside any datasets/ stays")
T.eq(R.resolve(here, here .. "/datasets/wn-def"), here .. "/datasets/wn-def", "this store's own absolute path")

-- get / names on a real store
local st = assert(am.store.open(root .. "/s"))
assert(am.source.mkdir_p(root .. "/s/datasets/a"))
assert(st:put("datasets", "b", am.json.encode { name = "b", path = "datasets/b", files = {} }))
assert(st:put("datasets", "a", am.json.encode { name = "a", path = "/old/store/datasets/a", files = { data = { path = "x" } } }))
T.eq(R.get(st, "a").dir, st:dir() .. "/datasets/a", "get: entry.dir resolved against the store")
T.eq(R.get(st, "nope"), nil, "get: unknown name")
T.eq(table.concat(R.names(st), ","), "a,b", "names sorted")
T.eq(R.names_text(st), "a", "names_text: only datasets with files")

T.done()
