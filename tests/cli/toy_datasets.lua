-- toy_datasets.lua - the toy training datasets of the merge CLI suites (test_boom.sh,
-- test_merge_data.sh), registered in the default store: pairs "pa" and "pb", graded "gs".
--   amalgam run tests/cli/toy_datasets.lua dir=DIR [rows=40]     (files written into DIR)
local st = am.store.default()
local rows = tonumber(args.rows) or 40
local function reg(name, file, kind)
  assert(st:put("datasets", name, am.json.encode { path = args.dir, files = { train = { path = file, kind = kind } } }))
end
for _, name in ipairs { "pa", "pb" } do
  local ds = am.dataset.new("pairs")
  for i = 1, rows do ds:add_pair(("%s query %d about thing %d"):format(name, i, i % 7), ("answer %d on thing %d"):format(i, i % 7)) end
  assert(ds:write(args.dir .. "/" .. name .. ".jsonl"))
  reg(name, name .. ".jsonl", "pairs")
end
local g = am.dataset.new("graded")
for i = 1, rows do g:add_graded("sentence " .. i, "another sentence " .. (i % 5), (i % 5) / 4) end
assert(g:write(args.dir .. "/gs.jsonl"))
reg("gs", "gs.jsonl", "graded")
