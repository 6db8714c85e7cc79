-- recipes/train_tasks.lua - one fine-tuned model per ID task from the base (default base-tiny):
-- InfoNCE on the retrieval pair tasks, CoSENT on the graded STS task.
--   amalgam run recipes/train_tasks.lua [base=base-tiny] [steps=200] [batch=32] [tasks=wn-def,deb-desc,wn-sts]
--       [force=false]
-- A task model that already exists for this base is kept unless force=true.
local p = am.params { base = "base-tiny", steps = 200, batch = 32, tasks = "wn-def,deb-desc,wn-sts", force = false }
local base, steps, batch = p.base, p.steps, p.batch
local list = {}
for t in p.tasks:gmatch("[^,]+") do list[#list + 1] = t end

for _, task in ipairs(list) do
  local have = am.model(base .. "+" .. task)
  if have and not p.force and have:meta().parents and have:meta().parents[1].id == am.model(base):id() then
    print(("%-12s already trained from %s: %s (force=true retrains)"):format(task, base, have:id():sub(1, 12)))
    goto continue
  end
  local loss = task:match("sts") and am.loss.cosent { scale = 20 } or am.loss.infonce { temperature = 0.05 }
  local run, msg = am.train {
    name = base .. "+" .. task, init = base, steps = steps, seed = 1, lr = 1e-4, warmup = steps // 10,
    max_len = 64, tasks = { { data = task, loss = loss, batch = batch } },
  }
  if not run then
    am.log.warn("train_tasks: " .. task .. ": " .. tostring(msg))
  else
    print(("%-12s run %s  loss %.4f -> %.4f  model %s  task vector %s"):format(task, run.id, run.losses[1],
      run.losses[#run.losses], run.model:id():sub(1, 12), tostring(run.task_vector):sub(1, 12)))
  end
  ::continue::
end
