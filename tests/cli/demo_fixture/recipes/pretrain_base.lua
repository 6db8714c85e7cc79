-- stand-in for recipes/pretrain_base.lua (tests/cli/demo_fixture/README.md)
local p = am.params { steps = 1500 }
if not am.model("init-tiny") then assert(am.init_model { config = "tiny", name = "init-tiny", seed = 1, vocab = os.getenv("DEMO_VOCAB") }) end
local dir = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
dofile(dir .. "/common.lua").train("base-tiny", "init-tiny", p.steps)
