-- recipes/train_joint.lua - the joint multi-task baseline: one model trained from the base on all
-- ID tasks at once, with the per-task models' budget (train_tasks.lua: `steps` per task), so a
-- merge of the per-task models can be compared with training on everything together.
-- InfoNCE on the retrieval pair tasks, CoSENT on the graded STS task, tasks in turn (round robin),
-- at train_tasks.lua's learning rate.
--   amalgam run recipes/train_joint.lua [base=base-tiny] [steps=200] [batch=32] [lr=3e-4]
--       [tasks=wn-def,deb-desc,wn-sts] [seed=1] [name=BASE+joint] [force=false]
-- `steps` is per task (the run has steps x #tasks updates). A model already trained from this base
-- under `name` is kept unless force=true (the demo calls this recipe on every run).
local p = am.params { base = "base-tiny", steps = 200, batch = 32, lr = 3e-4, tasks = "wn-def,deb-desc,wn-sts", seed = 1,
  name = { type = "string" }, force = false }
local name = p.name or (p.base .. "+joint")
local list = {}
for t in p.tasks:gmatch("[^,]+") do list[#list + 1] = t end

local have, base = am.model(name), am.model(p.base)
if not base then error(("train_joint: no model '%s' (run recipes/pretrain_base.lua first)"):format(p.base)) end
if have and not p.force and have:meta().parents and have:meta().parents[1].id == base:id() then
  print(("joint        already trained from %s: %s (force=true retrains)"):format(p.base, have:id():sub(1, 12)))
  return
end

local tasks = {}
for i, task in ipairs(list) do
  tasks[i] = { data = task, batch = p.batch, name = task,
    loss = task:match("sts") and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 } }
end
local steps = p.steps * #list
local run = assert(am.train {
  name = name, init = base, steps = steps, seed = p.seed, lr = p.lr, warmup = steps // 10, max_len = 64,
  tasks = tasks, schedule = am.schedule.round_robin(),
})
print(("joint        run %s  %d steps over %s  loss %.4f -> %.4f  model %s"):format(run.id, #run.losses, p.tasks,
  run.losses[1], run.losses[#run.losses], run.model:id():sub(1, 12)))
