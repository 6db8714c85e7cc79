-- amalgam/loss.lua - am.loss.<kind>{...}: the training losses' option specs and their checks
-- (src/lua/l_train.c reads the options; am.train checks a loss written by hand or stored with
-- check_loss).
--   am.loss.infonce{temperature=0.05, symmetric=, hard_negatives=} / cosent{scale=20} /
--     codiemb_sts{...} / matryoshka{dims=, inner=} / starbucks{pairs=, inner=} / random_2d{...} / mlm{} /
--     entropy{temperature=0.05} (label-free: the in-batch softmax's entropy, AdaMerging's objective)
local core = require "amalgam.core"

local M = {}

-- the options of each loss (src/lua/l_train.c reads them; a typo must not silently train with a default)
local sim = { "cos", "dot" }
local m2d = { pairs = "table", weights = "table", dims = "table", w_full = "number", w_sub = "number",
  kl_weight = "number", kl_softmax_temperature = "number", kl_mode = { "scores", "embeddings" }, kl_normalize = "boolean",
  kl_detach = "boolean", kl_full_dim = "boolean", layer_weighting = { "linear", "uniform" },
  random_full_dim = "boolean", inner = "table" }
local loss_specs = {
  infonce = { temperature = "number", scale = "number", sim = sim, symmetric = "boolean", multi_pos = { "avg", "lse" },
    threshold = "number", hard_negatives = "boolean" },
  cosent = { scale = "number", sim = sim },
  codiemb_sts = { w_mid = "number", w_pro = "number", w_pearson = "number", w_rankkl = "number",
    pro_temperature = "number", rankkl_temperature = "number", mid_threshold = "number", mid_scale = "number",
    mid_threshold_frac = "number", score_range = "table", mid_layer = "integer" },
  matryoshka = { dims = "table", weights = "table", n_dims_per_step = "integer", inner = "table" },
  starbucks = m2d, random_2d = m2d,
  mlm = { prob = "number", mask_frac = "number", random_frac = "number" },
  entropy = { temperature = "number", scale = "number", sim = sim },
}
M.loss = {}
local loss_full = {} -- kind -> the options spec of am.loss.<kind> (plus weight)
for _, k in ipairs { "infonce", "cosent", "codiemb_sts", "matryoshka", "starbucks", "random_2d", "mlm", "entropy" } do
  local spec = { weight = "number" }
  for key, t in pairs(loss_specs[k]) do spec[key] = t end
  loss_full[k] = spec
  M.loss[k] = function(o)
    if o ~= nil and type(o) ~= "table" then error(("loss.%s: options must be a table"):format(k), 2) end
    if o and o.kl_temperature ~= nil then -- ST's kl_temperature divides and multiplies, Starbucks' only multiplies
      error(("loss.%s: 'kl_temperature' is ambiguous: use kl_weight (multiplies the KL term; Starbucks' "
        .. "kl_temperature 0.3) and kl_softmax_temperature (divides the logits; sentence-transformers' "
        .. "kl_temperature is both)"):format(k), 2)
    end
    o = core.check_options("loss." .. k, o, spec)
    if o.temperature and not (o.temperature > 0) then error(("loss.%s: temperature must be > 0"):format(k), 2) end
    if o.inner ~= nil and type(o.inner.kind) ~= "string" then
      error(("loss.%s: inner must be a loss (am.loss.infonce{...})"):format(k), 2)
    end
    if o.inner ~= nil then M.check_loss(o.inner, ("loss.%s: inner"):format(k), 2) end
    local s = { kind = k }
    for key, v in pairs(o) do s[key] = v end
    return s
  end
end

-- check a loss table written by hand ({kind = "infonce", temperature = ...}) or stored, as
-- am.loss.<kind> checks its options; `level` as error's, counted from check_loss's caller
local function check_loss(l, what, level)
  if type(l) ~= "table" or type(l.kind) ~= "string" or not loss_full[l.kind] then
    error(("%s must be an am.loss.* spec (am.loss.infonce{...}, ...)"):format(what), level + 1)
  end
  local o = {}
  for k, v in pairs(l) do if k ~= "kind" then o[k] = v end end
  core.check_options(("%s (loss.%s)"):format(what, l.kind), o, loss_full[l.kind], level + 1)
  if o.inner ~= nil then check_loss(o.inner, what .. ".inner", level + 1) end
end
M.check_loss = check_loss

return M
