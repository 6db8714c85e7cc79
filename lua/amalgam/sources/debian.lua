-- amalgam/sources/debian.lua - Debian package descriptions: the apt indexes
-- Packages (Section, Source, Description-md5, Tag) and Translation-en (the long descriptions),
-- joined on (Package, Description-md5).
--
--   local deb = require "amalgam.sources.debian"
--   local pkgs = deb.read(packages_texts, translation_texts [, bar])
--       -- packages_texts / translation_texts: lists of {text = ..., origin = "file name"}
--       -> list of { package, source, version, section, short, long, tags } (one per binary
--          package that has a long description), sorted by package name
--   local one = deb.dedup(pkgs)   -- one package per source package (34,169 in bookworm), then
--                                 -- one per distinct long description
--   deb.long_text(desc)           -- Description-en continuation lines -> one line of text

local S = require("amalgam.core").source

local M = {}

M.package = { registry = "apt-index", name = "Packages + Translation-en (main)",
  license = "per-package licenses (public archive metadata)" }

--- Description continuation lines (" line", " ." = blank line, "  verbatim") -> one line of text
function M.long_text(lines)
  local t = "\n" .. lines .. "\n"
  t = t:gsub("\n %.%s*\n", "\n"):gsub("\n %.%s*\n", "\n") -- twice: " ." lines may follow each other
  return (S.squash(t))
end

--- split a Description-en value into (short, long)
function M.split_description(v)
  local short, rest = v:match("^([^\n]*)\n?(.*)$")
  return (S.squash(short or "")), M.long_text(rest or "")
end

local section_of = function(s)
  s = s or ""
  return s:match("/(.+)$") or s
end

function M.read(packages, translations, bar)
  -- Translation-en: (package, md5) -> description
  local desc = {}
  local nt = 0
  for _, t in ipairs(translations) do
    local n, msg = S.stanzas(t.text, t.origin, { "Package", "Description-md5", "Description-en" }, function(f)
      if f.Package and f["Description-md5"] and f["Description-en"] then
        desc[f.Package .. "\0" .. f["Description-md5"]] = f["Description-en"]
      end
      nt = nt + 1
      if bar and nt % 5000 == 0 then bar:set(nt) end
    end)
    if not n then error(msg, 0) end
  end
  local out, seen = {}, {}
  for _, t in ipairs(packages) do
    local n, msg = S.stanzas(t.text, t.origin,
      { "Package", "Source", "Version", "Section", "Description", "Description-md5", "Tag" }, function(f)
        local name = f.Package
        if not name or seen[name] then return end
        local md5 = f["Description-md5"]
        local d = md5 and desc[name .. "\0" .. md5]
        if not d and f.Description and f.Description:find("\n", 1, true) then d = f.Description end
        if not d then return end
        local short, long = M.split_description(d)
        if #long == 0 then return end
        seen[name] = true
        local src = f.Source and f.Source:match("^(%S+)") or name
        local tags = {}
        for tag in (f.Tag or ""):gmatch("[^,%s]+") do tags[#tags + 1] = tag end
        out[#out + 1] = { package = name, source = src, version = f.Version, section = section_of(f.Section),
          short = short, long = long, tags = tags }
        nt = nt + 1
        if bar and nt % 5000 == 0 then bar:set(nt) end
      end)
    if not n then error(msg, 0) end
  end
  table.sort(out, function(a, b) return a.package < b.package end)
  if bar then bar:set(nt) end
  return out
end

local aux = { "%-dev$", "%-doc$", "%-dbg$", "%-dbgsym$", "%-data$", "%-common$", "%-examples$", "%-tests$" }
local function is_aux(name)
  for _, p in ipairs(aux) do if name:match(p) then return true end end
  return false
end

--- one package per source package: the binary named like the source, else the first
--- non -dev/-doc/-dbg/-data/-common binary with the shortest name, else the shortest name;
--- then drop later packages whose long description repeats an earlier one
function M.dedup(pkgs)
  local by_src, order = {}, {}
  for _, p in ipairs(pkgs) do
    local cur = by_src[p.source]
    if not cur then
      by_src[p.source] = p
      order[#order + 1] = p.source
    else
      local function rank(x)
        return (x.package == x.source and 0 or 2) + (is_aux(x.package) and 1 or 0)
      end
      local rc, rp = rank(cur), rank(p)
      if rp < rc or (rp == rc and (#p.package < #cur.package or (#p.package == #cur.package and p.package < cur.package))) then
        by_src[p.source] = p
      end
    end
  end
  table.sort(order)
  local out, seen = {}, {}
  for _, s in ipairs(order) do
    local p = by_src[s]
    if not seen[p.long] then
      seen[p.long] = true
      out[#out + 1] = p
    end
  end
  return out
end

return M
