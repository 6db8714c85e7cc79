-- stand-in for recipes/train_tasks.lua (tests/cli/demo_fixture/README.md)
local p = am.params { steps = 200, sts_steps = 600 }
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local c = dofile(dir .. "/common.lua")
for _, t in ipairs { "wn-def", "deb-desc", "wn-sts" } do
  c.train("base-tiny+" .. t, "base-tiny", t == "wn-sts" and p.sts_steps or p.steps)
end
