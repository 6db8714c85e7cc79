/* roff.c - man(7) pages to plain text, section by section (the subset of roff that the Linux
 * man-pages use: man macros, font and size escapes, special characters, tables, no-fill
 * blocks; conditionals, macro definitions and number registers are dropped). */
#define _GNU_SOURCE
#include "source.h"
#include "src_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <strings.h>

/* ---------------------------------------------------------------- special characters */

static const struct { const char *name; const char *utf8; } specials[] = {
    {"em", "\xE2\x80\x94"}, {"en", "\xE2\x80\x93"}, {"hy", "-"},  {"aq", "'"},  {"dq", "\""},
    {"lq", "\xE2\x80\x9C"}, {"rq", "\xE2\x80\x9D"}, {"oq", "\xE2\x80\x98"}, {"cq", "\xE2\x80\x99"},
    {"bu", "\xE2\x80\xA2"}, {"co", "\xC2\xA9"}, {"rg", "\xC2\xAE"}, {"tm", "\xE2\x84\xA2"},
    {"mu", "\xC3\x97"}, {"di", "\xC3\xB7"}, {"+-", "\xC2\xB1"}, {">=", "\xE2\x89\xA5"}, {"<=", "\xE2\x89\xA4"},
    {"!=", "\xE2\x89\xA0"}, {"->", "\xE2\x86\x92"}, {"<-", "\xE2\x86\x90"}, {"ua", "\xE2\x86\x91"},
    {"da", "\xE2\x86\x93"}, {"de", "\xC2\xB0"}, {"ti", "~"}, {"ha", "^"}, {"rs", "\\"}, {"sl", "/"},
    {"ba", "|"}, {"br", "|"}, {"ul", "_"}, {"ru", "_"}, {"ga", "`"}, {"aa", "\xC2\xB4"}, {"dg", "\xE2\x80\xA0"},
    {"pl", "+"}, {"mi", "\xE2\x88\x92"}, {"eq", "="}, {"**", "*"}, {"Fo", "\xC2\xAB"}, {"Fc", "\xC2\xBB"},
    {"fo", "\xE2\x80\xB9"}, {"fc", "\xE2\x80\xBA"}, {"ss", "\xC3\x9F"}, {"'e", "\xC3\xA9"}, {"`e", "\xC3\xA8"},
    {":a", "\xC3\xA4"}, {":o", "\xC3\xB6"}, {":u", "\xC3\xBC"}, {":A", "\xC3\x84"}, {":O", "\xC3\x96"},
    {":U", "\xC3\x9C"}, {"'a", "\xC3\xA1"}, {"'o", "\xC3\xB3"}, {"'i", "\xC3\xAD"}, {"'u", "\xC3\xBA"},
    {",c", "\xC3\xA7"}, {"~n", "\xC3\xB1"}, {"ct", "\xC2\xA2"}, {"Po", "\xC2\xA3"}, {"Eu", "\xE2\x82\xAC"},
    {"ye", "\xC2\xA5"}, {"ps", "\xC2\xB6"}, {"sc", "\xC2\xA7"}, {"if", "\xE2\x88\x9E"}, {"*p", "\xCF\x80"},
    {"*a", "\xCE\xB1"}, {"*b", "\xCE\xB2"}, {"*m", "\xCE\xBC"}, {"sq", "\xE2\x96\xA1"}, {"OK", "\xE2\x9C\x93"},
    {"lB", "["}, {"rB", "]"}, {"lC", "{"}, {"rC", "}"}, {"la", "\xE2\x9F\xA8"}, {"ra", "\xE2\x9F\xA9"},
    {"at", "@"}, {"sh", "#"}, {"Do", "$"}, {"ci", "\xE2\x97\x8B"}, {"ap", "~"}, {"~~", "\xE2\x89\x88"},
    {"==", "\xE2\x89\xA1"}, {"tf", "\xE2\x88\xB4"}, {"fm", "\xE2\x80\xB2"}, {"sd", "\xE2\x80\xB3"},
    {"12", "\xC2\xBD"}, {"14", "\xC2\xBC"}, {"34", "\xC2\xBE"}, {"S1", "\xC2\xB9"}, {"S2", "\xC2\xB2"},
    {"S3", "\xC2\xB3"}, {"r!", "\xC2\xA1"}, {"r?", "\xC2\xBF"}, {"Sd", "\xC3\xB0"}, {"TP", "\xC3\x9E"},
    {"Tp", "\xC3\xBE"}, {"/o", "\xC3\xB8"}, {"/O", "\xC3\x98"}, {"oa", "\xC3\xA5"}, {"oA", "\xC3\x85"},
    {"ae", "\xC3\xA6"}, {"AE", "\xC3\x86"}, {"no", "\xC2\xAC"}, {"or", "|"}, {"lh", "\xE2\x98\x9C"},
    {"rh", "\xE2\x98\x9E"}, {"en", "\xE2\x80\x93"},
};

static const struct { const char *name; const char *utf8; } strings_tab[] = {
    {"lq", "\xE2\x80\x9C"}, {"rq", "\xE2\x80\x9D"}, {"Lq", "\xE2\x80\x9C"}, {"Rq", "\xE2\x80\x9D"},
    {"Aq", "'"}, {"aq", "'"}, {"R", "\xC2\xAE"}, {"Tm", "\xE2\x84\xA2"}, {"S", ""}, {"HF", ""},
};

static void add_special(SrcBuf *o, const char *name, size_t n) {
    /* \[u00E9] and \[u0041_0301] */
    if (n >= 5 && name[0] == 'u' && isxdigit((unsigned char)name[1])) {
        uint32_t cp = 0;
        size_t i = 1;
        for (; i < n && isxdigit((unsigned char)name[i]); i++)
            cp = cp * 16 + (uint32_t)(isdigit((unsigned char)name[i]) ? name[i] - '0' : (tolower(name[i]) - 'a' + 10));
        sbuf_cp(o, cp);
        return;
    }
    for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++)
        if (strlen(specials[k].name) == n && memcmp(specials[k].name, name, n) == 0) {
            sbuf_adds(o, specials[k].utf8);
            return;
        }
    /* unknown: nothing */
}

static void add_string(SrcBuf *o, const char *name, size_t n) {
    for (size_t k = 0; k < sizeof strings_tab / sizeof strings_tab[0]; k++)
        if (strlen(strings_tab[k].name) == n && memcmp(strings_tab[k].name, name, n) == 0) {
            sbuf_adds(o, strings_tab[k].utf8);
            return;
        }
}

/* Read an escape's name argument at s[i]: "x", "(xx" or "[name]". Sets *ns and *nl to the name
 * and returns the index after it. */
static size_t esc_name(const char *s, size_t len, size_t i, size_t *ns, size_t *nl) {
    if (i >= len) { *ns = i; *nl = 0; return i; }
    if (s[i] == '(') {
        *ns = i + 1;
        *nl = i + 3 <= len ? 2 : len - i - 1;
        return i + 1 + *nl;
    }
    if (s[i] == '[') {
        size_t j = i + 1;
        while (j < len && s[j] != ']') j++;
        *ns = i + 1;
        *nl = j - i - 1;
        return j < len ? j + 1 : len;
    }
    *ns = i;
    *nl = 1;
    return i + 1;
}

/* skip a delimited argument 'xxx' starting at s[i] (the delimiter is s[i]) */
static size_t esc_delim(const char *s, size_t len, size_t i) {
    if (i >= len) return i;
    char d = s[i];
    size_t j = i + 1;
    while (j < len && s[j] != d) j++;
    return j < len ? j + 1 : len;
}

/* Render the escapes of one line of text into o. */
static void render(const char *s, size_t len, SrcBuf *o) {
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c != '\\') {
            sbuf_addc(o, c == '\t' ? ' ' : c);
            i++;
            continue;
        }
        if (i + 1 >= len) { i++; continue; }
        char e = s[i + 1];
        i += 2;
        size_t ns, nl;
        switch (e) {
        case '\\': case 'e': case 'E': sbuf_addc(o, '\\'); break;
        case '-': sbuf_addc(o, '-'); break;
        case '\'': sbuf_addc(o, '\''); break;
        case '`': sbuf_addc(o, '`'); break;
        case '.': sbuf_addc(o, '.'); break;
        case ' ': case '~': case '0': case 't': sbuf_addc(o, ' '); break;
        case '"': case '#': return; /* comment: rest of the line */
        case '|': case '^': case '&': case ')': case '%': case ':': case '/': case ',': case 'c': case 'd':
        case 'u': case 'r': case 'a': case '{': case '}': case '!': case 'p': case 'z': case 'j':
            break;
        case 'f': case 'F': case 'n': case 'k': case 'g': case 'm': case 'M': case 'V': case 'Y': case 'O':
        case '$':
            if (e == 'n' && i < len && (s[i] == '+' || s[i] == '-')) i++;
            i = esc_name(s, len, i, &ns, &nl);
            break;
        case 's':
            if (i < len && (s[i] == '+' || s[i] == '-')) i++;
            if (i < len && (s[i] == '(' || s[i] == '[')) i = esc_name(s, len, i, &ns, &nl);
            else if (i < len && s[i] == '\'') i = esc_delim(s, len, i);
            else while (i < len && isdigit((unsigned char)s[i])) { i++; if (i < len && isdigit((unsigned char)s[i])) i++; break; }
            break;
        case '(': case '[':
            i = esc_name(s, len, i - 1, &ns, &nl);
            add_special(o, s + ns, nl);
            break;
        case 'C':
            if (i < len && s[i] == '\'') {
                size_t st = i + 1;
                i = esc_delim(s, len, i);
                add_special(o, s + st, i - st - 1);
            }
            break;
        case '*':
            i = esc_name(s, len, i, &ns, &nl);
            add_string(o, s + ns, nl);
            break;
        case 'h': case 'v': case 'w': case 'l': case 'L': case 'D': case 'o': case 'x': case 'Z': case 'N':
        case 'X': case 'b': case 'H': case 'S': case 'R': case 'A': case 'B':
            i = esc_delim(s, len, i);
            break;
        default:
            sbuf_addc(o, e);
            break;
        }
    }
}

/* ---------------------------------------------------------------- page state */

typedef struct {
    SrcManPage *page;
    SrcBuf text;         /* current section text */
    char *name;          /* current section name (NULL before the first .SH) */
    int nofill;
    int heading_next;    /* .SH without arguments: the next text line is the name */
    int table;           /* 0 none, 1 reading format lines, 2 rows */
    int join;            /* the previous text line ended in \c: no space before the next */
    int cap_sections;
} Man;

static void trim_end(SrcBuf *b) {
    while (b->n && (b->p[b->n - 1] == ' ' || b->p[b->n - 1] == '\n')) b->p[--b->n] = 0;
}

static void para(Man *m) {
    trim_end(&m->text);
    if (m->text.n) sbuf_adds(&m->text, "\n\n");
}

static void line_break(Man *m) {
    while (m->text.n && m->text.p[m->text.n - 1] == ' ') m->text.p[--m->text.n] = 0;
    if (m->text.n && m->text.p[m->text.n - 1] != '\n') sbuf_addc(&m->text, '\n');
}

static void emit(Man *m, const char *s, size_t n) {
    if (m->nofill || m->table == 2) {
        sbuf_add(&m->text, s, n);
        sbuf_addc(&m->text, '\n');
        return;
    }
    while (n && (s[n - 1] == ' ')) n--;
    if (!n) return;
    int join = m->join;
    m->join = 0;
    if (!join && m->text.n && m->text.p[m->text.n - 1] != ' ' && m->text.p[m->text.n - 1] != '\n')
        sbuf_addc(&m->text, ' ');
    size_t k = 0;
    while (k < n && s[k] == ' ' && (!m->text.n || m->text.p[m->text.n - 1] == ' ' || m->text.p[m->text.n - 1] == '\n'))
        k++;
    sbuf_add(&m->text, s + k, n - k);
}

static void end_section(Man *m) {
    if (!m->name) {
        sbuf_free(&m->text);
        return;
    }
    trim_end(&m->text);
    SrcManPage *p = m->page;
    if (p->n_sections == m->cap_sections) {
        m->cap_sections = m->cap_sections ? 2 * m->cap_sections : 8;
        p->sections = xrealloc(p->sections, (size_t)m->cap_sections * sizeof *p->sections);
    }
    char *raw = sbuf_take(&m->text);
    /* squash spaces inside each line, keep line structure */
    char *tidy = src_tidy_lines(raw);
    free(raw);
    p->sections[p->n_sections].name = m->name;
    p->sections[p->n_sections].text = tidy;
    p->n_sections++;
    m->name = NULL;
}

/* Split request arguments (after the name) honouring "quotes" ("" inside quotes is a quote). */
static int split_args(const char *s, size_t len, char **argv, int max) {
    int n = 0;
    size_t i = 0;
    while (i < len && n < max) {
        while (i < len && (s[i] == ' ' || s[i] == '\t')) i++;
        if (i >= len) break;
        SrcBuf a = {0};
        if (s[i] == '"') {
            i++;
            while (i < len) {
                if (s[i] == '"') {
                    if (i + 1 < len && s[i + 1] == '"') { sbuf_addc(&a, '"'); i += 2; continue; }
                    i++;
                    break;
                }
                if (s[i] == '\\' && i + 1 < len && s[i + 1] == '"') break; /* comment */
                sbuf_addc(&a, s[i++]);
            }
        } else {
            while (i < len && s[i] != ' ' && s[i] != '\t') {
                if (s[i] == '\\' && i + 1 < len) {
                    if (s[i + 1] == '"') { i = len; break; }
                    sbuf_add(&a, s + i, 2);
                    i += 2;
                    continue;
                }
                sbuf_addc(&a, s[i++]);
            }
        }
        argv[n++] = sbuf_take(&a);
    }
    return n;
}

/* Render args into one string: joined by spaces (sep = 1) or concatenated (sep = 0). */
static char *render_args(char **argv, int argc, int sep) {
    SrcBuf o = {0};
    for (int k = 0; k < argc; k++) {
        if (sep && k) sbuf_addc(&o, ' ');
        render(argv[k], strlen(argv[k]), &o);
    }
    return sbuf_take(&o);
}

int src_man_parse(const char *roff, size_t len, SrcManPage *out) {
    memset(out, 0, sizeof *out);
    Man m = {.page = out};
    char *clean = src_utf8_clean(roff, len);
    len = strlen(clean);
    /* join continuation lines (a backslash at the end of a line) */
    SrcBuf joined = {0};
    for (size_t i = 0; i < len; i++) {
        if (clean[i] == '\\' && i + 1 < len && clean[i + 1] == '\n') {
            /* an escaped backslash before the newline is not a continuation */
            size_t bs = 0;
            for (size_t k = i + 1; k-- > 0 && clean[k] == '\\';) bs++;
            if (bs % 2 == 1) { i++; continue; }
        }
        sbuf_addc(&joined, clean[i]);
    }
    free(clean);
    const char *s = joined.p ? joined.p : "";
    len = joined.n;
    int skip_until_dots = 0, skip_brace = 0;
    char *argv[32];
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(s + i, '\n', len - i);
        size_t e = nl ? (size_t)(nl - s) : len;
        const char *line = s + i;
        size_t ll = e - i;
        i = e + 1;
        if (ll && line[ll - 1] == '\r') ll--;
        if (skip_until_dots) {
            if (ll >= 2 && line[0] == '.' && line[1] == '.') skip_until_dots = 0;
            continue;
        }
        if (skip_brace) {
            if (memmem(line, ll, "\\}", 2)) skip_brace = 0;
            continue;
        }
        int is_req = ll && (line[0] == '.' || line[0] == '\'');
        if (m.table == 1) { /* table options and format lines, up to the one ending in '.' */
            size_t t = ll;
            while (t && (line[t - 1] == ' ' || line[t - 1] == '\t')) t--;
            if (t && line[t - 1] == '.') m.table = 2;
            continue;
        }
        if (!is_req) {
            if (m.heading_next) {
                SrcBuf h = {0};
                render(line, ll, &h);
                char *name = src_squash(h.p ? h.p : "", h.n);
                sbuf_free(&h);
                m.heading_next = 0;
                end_section(&m);
                m.name = name;
                continue;
            }
            if (ll == 0) { if (m.nofill) sbuf_addc(&m.text, '\n'); else para(&m); continue; }
            SrcBuf r = {0};
            if (m.table == 2) {
                /* cells: T{ and T} delimit multi-line cells, tabs separate cells */
                size_t a = 0, b = ll;
                if (ll >= 2 && line[0] == 'T' && line[1] == '}') a = 2;
                if (b >= a + 2 && line[b - 2] == 'T' && line[b - 1] == '{') b -= 2;
                render(line + a, b - a, &r);
                if (r.n) emit(&m, r.p, r.n);
                sbuf_free(&r);
                continue;
            }
            if (!m.nofill && (line[0] == ' ' || line[0] == '\t')) line_break(&m);
            render(line, ll, &r);
            if (r.n) emit(&m, r.p, r.n);
            else if (m.nofill) sbuf_addc(&m.text, '\n');
            if (ll >= 2 && line[ll - 2] == '\\' && line[ll - 1] == 'c') m.join = 1;
            sbuf_free(&r);
            continue;
        }
        /* a request: name, arguments */
        size_t k = 1;
        while (k < ll && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k + 1 < ll + 1 && k < ll && line[k] == '\\' && k + 1 < ll && (line[k + 1] == '"' || line[k + 1] == '#'))
            continue; /* comment */
        size_t ns = k;
        while (k < ll && line[k] != ' ' && line[k] != '\t') k++;
        char req[16];
        size_t rl = k - ns < sizeof req - 1 ? k - ns : sizeof req - 1;
        memcpy(req, line + ns, rl);
        req[rl] = 0;
        if (!rl) continue;
        const char *args = line + k;
        size_t al = ll - k;
        if (!strcmp(req, "de") || !strcmp(req, "de1") || !strcmp(req, "ig") || !strcmp(req, "am")) {
            skip_until_dots = 1;
            continue;
        }
        if (!strcmp(req, "if") || !strcmp(req, "ie") || !strcmp(req, "el") || !strcmp(req, "while")) {
            if (memmem(args, al, "\\{", 2) && !memmem(args, al, "\\}", 2)) skip_brace = 1;
            continue;
        }
        if (!strcmp(req, "so")) {
            if (out->n_sections == 0 && !m.name) { /* a link page: .so before any section */
                int argc = split_args(args, al, argv, 1);
                if (argc) {
                    free(out->link);
                    out->link = argv[0];
                }
            }
            continue;
        }
        if (!strcmp(req, "TH")) {
            int argc = split_args(args, al, argv, 32);
            free(out->title);
            free(out->section);
            out->title = argc > 0 ? render_args(argv, 1, 0) : xstrdup("");
            out->section = argc > 1 ? render_args(argv + 1, 1, 0) : xstrdup("");
            for (int a = 0; a < argc; a++) free(argv[a]);
            continue;
        }
        if (!strcmp(req, "SH")) {
            int argc = split_args(args, al, argv, 32);
            end_section(&m);
            m.nofill = 0;
            m.table = 0;
            if (argc) {
                char *h = render_args(argv, argc, 1);
                m.name = src_squash(h, strlen(h));
                free(h);
            } else {
                m.heading_next = 1;
            }
            for (int a = 0; a < argc; a++) free(argv[a]);
            continue;
        }
        if (!strcmp(req, "TS")) { para(&m); m.table = 1; continue; }
        if (!strcmp(req, "TE")) { m.table = 0; para(&m); continue; }
        if (!strcmp(req, "nf") || !strcmp(req, "EX")) { line_break(&m); m.nofill = 1; continue; }
        if (!strcmp(req, "fi") || !strcmp(req, "EE")) { m.nofill = 0; line_break(&m); continue; }
        if (!strcmp(req, "PP") || !strcmp(req, "P") || !strcmp(req, "LP") || !strcmp(req, "sp") ||
            !strcmp(req, "TP") || !strcmp(req, "HP") || !strcmp(req, "TQ")) {
            if (m.nofill) sbuf_addc(&m.text, '\n'); else para(&m);
            continue;
        }
        if (!strcmp(req, "br")) { line_break(&m); continue; }
        int bold = !strcmp(req, "B") || !strcmp(req, "I") || !strcmp(req, "SM") || !strcmp(req, "SB") ||
                   !strcmp(req, "SS") || !strcmp(req, "IP") || !strcmp(req, "SY") || !strcmp(req, "UR") ||
                   !strcmp(req, "MT") || !strcmp(req, "OP");
        int alt = !strcmp(req, "BR") || !strcmp(req, "BI") || !strcmp(req, "IB") || !strcmp(req, "IR") ||
                  !strcmp(req, "RB") || !strcmp(req, "RI") || !strcmp(req, "UE") || !strcmp(req, "ME");
        if (!bold && !alt) continue; /* RS RE in ti ne ft ad na nh hy ds ... */
        int argc = split_args(args, al, argv, 32);
        if (!strcmp(req, "UR") || !strcmp(req, "MT")) { /* the URL itself is not text */
            for (int a = 0; a < argc; a++) free(argv[a]);
            continue;
        }
        if (!strcmp(req, "IP")) { /* .IP tag [indent] */
            if (m.nofill) sbuf_addc(&m.text, '\n'); else para(&m);
            if (argc > 1) { free(argv[1]); argc = 1; }
        }
        if (!strcmp(req, "SS")) para(&m);
        char *t = render_args(argv, argc, bold);
        if (!strcmp(req, "OP")) {
            SrcBuf ob = {0};
            sbuf_addc(&ob, '[');
            sbuf_adds(&ob, t);
            sbuf_addc(&ob, ']');
            free(t);
            t = sbuf_take(&ob);
        }
        if (*t) emit(&m, t, strlen(t));
        if (!strcmp(req, "SS")) para(&m);
        free(t);
        for (int a = 0; a < argc; a++) free(argv[a]);
    }
    end_section(&m);
    free(m.name);
    sbuf_free(&m.text);
    sbuf_free(&joined);
    if (!out->title) out->title = xstrdup("");
    if (!out->section) out->section = xstrdup("");
    return AM_OK;
}

void src_man_free(SrcManPage *p) {
    if (!p) return;
    for (int i = 0; i < p->n_sections; i++) {
        free(p->sections[i].name);
        free(p->sections[i].text);
    }
    free(p->sections);
    free(p->title);
    free(p->section);
    free(p->link);
    memset(p, 0, sizeof *p);
}
