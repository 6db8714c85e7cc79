-- stand-in for recipes/train_joint.lua (tests/cli/demo_fixture/README.md)
local p = am.params { steps = 200 }
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
dofile(dir .. "/common.lua").train("base-tiny+joint", "base-tiny", p.steps * 3)
