-- amalgam/sources/faq.lua - programming FAQs: perlfaq1-9 (POD, Debian perl-doc)
-- and the Python FAQ (reStructuredText, Debian python3.11-doc).
--
--   local faq = require "amalgam.sources.faq"
--   faq.read_perl(root)    -> list of { id = "perlfaq4-12", section = "Data Manipulation",
--                                       question = "Why is int() broken?", answer = "..." }
--   faq.read_python(root)  -> list of { id = "python-windows-3", section = "windows", question, answer }
--   faq.parse_pod(text, name) / faq.parse_rst(text, name)   (one file; unit tests)

local S = require("amalgam.core").source

local M = {}

M.perl = { registry = "apt", name = "perl-doc", pin = "5.36.0-7+deb12u4",
  license = "GPL-1+ or Artistic (Perl documentation)" }
M.python = { registry = "apt", name = "python3.11-doc", pin = "3.11.2-6+deb12u8",
  license = "PSF License (Python documentation)" }

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- ------------------------------------------------------------------ POD

--- parse one perlfaqN.pod: every =head2 is a question, its paragraphs up to the next
--- =head1/=head2 the answer. Returns the list and the file's NAME title.
function M.parse_pod(text, name)
  local paras = {}
  text = text:gsub("\r\n", "\n")
  for p in (text .. "\n\n"):gmatch("(.-)\n[ \t]*\n+") do
    if p:match("%S") then paras[#paras + 1] = p end
  end
  local out, title, cur, head1 = {}, nil, nil, nil
  local skip_until, in_name = nil, false
  local function flush()
    if cur then
      local a = S.squash(table.concat(cur.parts, " "))
      if #a > 0 then
        cur.answer = a
        cur.parts = nil
        out[#out + 1] = cur
      end
    end
    cur = nil
  end
  for _, p in ipairs(paras) do
    local cmd, rest = p:match("^=(%a+%d*)%s*(.-)%s*$")
    if skip_until then
      if cmd == "end" then skip_until = nil end
    elseif cmd then
      if cmd == "head1" then
        flush()
        head1 = S.pod_inline(rest)
        in_name = head1 == "NAME"
      elseif cmd == "head2" then
        flush()
        in_name = false
        cur = { question = S.squash(S.pod_inline(rest)), parts = {}, head1 = head1 }
      elseif cmd == "begin" then
        skip_until = "end"
      elseif cmd == "item" and cur then
        local it = S.pod_inline(rest)
        if it ~= "*" and it ~= "" then cur.parts[#cur.parts + 1] = it end
      end
      -- =over, =back, =for, =pod, =cut, =head3/4 (kept out: sub-headings are part of the text)
      if (cmd == "head3" or cmd == "head4") and cur then cur.parts[#cur.parts + 1] = S.pod_inline(rest) end
    elseif in_name and not title then
      title = S.squash(S.pod_inline(p))
    elseif cur then
      if p:match("^[ \t]") then cur.parts[#cur.parts + 1] = p -- verbatim (code) as is
      else cur.parts[#cur.parts + 1] = S.pod_inline(p) end
    end
  end
  flush()
  local section = title and (title:match("^%S+%s+%-+%s+(.*)$") or title) or name
  for i, q in ipairs(out) do
    q.id = ("%s-%d"):format(name, i)
    q.section = section
    q.head1 = nil
  end
  return out, section
end

local function has_perlfaq(d)
  for _, f in ipairs(S.listdir(d) or {}) do
    if f:match("^perlfaq%d%.pod$") then return true end
  end
  return false
end

function M.read_perl(root)
  -- root/usr/share/perl/<version>/pod, or a pod directory itself
  local dir
  local base = root .. "/usr/share/perl"
  for _, v in ipairs(S.listdir(base) or {}) do
    if has_perlfaq(base .. "/" .. v .. "/pod") then dir = base .. "/" .. v .. "/pod" end
  end
  if not dir and has_perlfaq(root .. "/pod") then dir = root .. "/pod" end
  if not dir and has_perlfaq(root) then dir = root end
  if not dir then error(("perlfaq: no perlfaqN.pod under %s/usr/share/perl/<version>/pod"):format(root), 0) end
  local all = {}
  for i = 1, 9 do
    local path = ("%s/perlfaq%d.pod"):format(dir, i)
    local text = S.read(path)
    if text then
      for _, q in ipairs((M.parse_pod(S.utf8_clean(text), "perlfaq" .. i))) do all[#all + 1] = q end
    end
  end
  return all
end

-- ------------------------------------------------------------------ reST

local function is_underline(l, c)
  l = l:gsub("%s+$", "")
  local ch = l:match("^[%-=~%^\"%*%+#]")
  if #l < 3 or not ch or l ~= ch:rep(#l) then return false end
  return not c or ch == c
end

--- reST inline markup to text
function M.rst_inline(s)
  s = s:gsub(":[%w:%-]+:`~?([^`]-)%s*<[^`>]*>`", "%1")   -- :role:`text <target>`
  s = s:gsub(":[%w:%-]+:`~?!?([^`]-)`", "%1")            -- :role:`text`
  s = s:gsub("`([^`]-)%s*<[^`>]+>`__?", "%1")            -- `text <url>`_
  s = s:gsub("``(.-)``", "%1")
  s = s:gsub("`([^`]-)`_?_?", "%1")
  s = s:gsub("%*%*(.-)%*%*", "%1")
  s = s:gsub("%f[%w%*]%*([^%*%s][^%*]-)%*", "%1")
  s = s:gsub("::%s*$", ":")
  s = s:gsub("|(%w+)|", "%1")
  return s
end

--- parse one FAQ .rst: a title underlined with '-' is a question; '=' lines
--- are the page title and section headings. Directive and comment lines (".. x::", ".. _x:")
--- are dropped; their indented content (code) is kept as text.
function M.parse_rst(text, name)
  local lines = {}
  text = text:gsub("\r\n", "\n")
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local out, cur = {}, nil
  local function flush()
    if cur then
      local a = S.squash(M.rst_inline(table.concat(cur.parts, "\n")))
      if #a > 0 then
        cur.answer = a
        cur.parts = nil
        out[#out + 1] = cur
      end
    end
    cur = nil
  end
  local i = 1
  while i <= #lines do
    local l, nxt = lines[i], lines[i + 1] or ""
    if #trim(l) > 0 and not is_underline(l) and is_underline(nxt) and #nxt:gsub("%s+$", "") >= #trim(l) then
      flush()
      if is_underline(nxt, "-") then
        cur = { question = S.squash(M.rst_inline(trim(l))), parts = {} }
      end
      i = i + 2
    elseif is_underline(l) then
      i = i + 1 -- overline of a title
    else
      if cur and not l:match("^%.%. ") and not l:match("^%.%.$") then cur.parts[#cur.parts + 1] = l end
      i = i + 1
    end
  end
  flush()
  for k, q in ipairs(out) do
    q.id = ("python-%s-%d"):format(name, k)
    q.section = name
  end
  return out
end

function M.read_python(root)
  local dir
  for _, d in ipairs({ root .. "/usr/share/doc", root }) do
    local list = S.listdir(d)
    for _, v in ipairs(list or {}) do
      if v:match("^python3") and S.stat(d .. "/" .. v .. "/html/_sources/faq") then dir = d .. "/" .. v .. "/html/_sources/faq" end
    end
    if not dir and S.stat(d .. "/html/_sources/faq") then dir = d .. "/html/_sources/faq" end
    if not dir and list then
      for _, v in ipairs(list) do if v:match("%.rst%.txt$") then dir = d end end
    end
    if dir then break end
  end
  if not dir then error(("python faq: no html/_sources/faq under %s/usr/share/doc/python3.*"):format(root), 0) end
  local all = {}
  for _, f in ipairs(S.listdir(dir)) do
    local stem = f:match("^(.-)%.rst%.txt$")
    if stem and stem ~= "index" then
      local text = assert(S.read(dir .. "/" .. f))
      for _, q in ipairs(M.parse_rst(S.utf8_clean(text), stem)) do all[#all + 1] = q end
    end
  end
  return all
end

return M
