/* source.h - format helpers for the benchmark's source adapters (docs/benchmark-sources.md).
 *
 * The adapters in lua/amalgam/sources/ (one file per source) decide what to keep (policy); this layer does the
 * byte-level work they should not do in Lua (mechanism):
 *
 *   gzip / zlib        src_gunzip (gzip incl. dictzip and multi-member, zlib, raw deflate)
 *   dictd              src_dictd_b64 (index offsets/lengths)
 *   roff / man         src_man_parse: sections of a man(7) page as plain text
 *   RFC-822 / MIME     src_mail_parse: decoded headers and the readable body of a mail
 *                      (multipart walk, quoted-printable, base64, RFC 2047 words, charsets,
 *                      HTML to text); src_qp_decode, src_b64_decode, src_html_text
 *   POD                src_pod_inline: B<> C<> I<> L<> E<> F<> S<> X<> Z<> codes to text
 *   Debian indexes     src_stanzas: RFC-822 stanzas (Packages, Translation-en) field by field
 *   SWORD zText        src_sword_ztext: the raw OSIS text of every verse slot of ot/nt;
 *                      src_osis_text: OSIS/XML to plain text (<note> and non-canonical
 *                      <title> dropped with their content, entities decoded)
 *   text               src_utf8_clean (invalid bytes -> U+FFFD), src_to_utf8 (charsets),
 *                      src_squash (collapse white space)
 *
 * Conventions: functions return AM_OK or a negative AM_E* code with am_lasterror() set;
 * OUT strings are malloc'd, NUL-terminated and owned by the caller (free()).
 * Every text this layer returns is valid UTF-8. Nothing here does network I/O; only
 * src_sword_ztext and src_read_file read files.
 */
#ifndef AM_SOURCE_H
#define AM_SOURCE_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- compression */

/* Decompress a gzip stream (all members, so dictzip .dz and concatenated .gz work), a zlib
 * stream, or (when neither header is present) raw deflate. AM_EFORMAT with the zlib message on
 * corrupt or truncated input. OUT: *out (malloc'd, NUL-terminated), *out_len. */
int src_gunzip(const void *data, size_t len, char **out, size_t *out_len);
/* 1 if data starts with the gzip magic (1f 8b). */
int src_is_gzip(const void *data, size_t len);
/* Read a file, gunzipping it when it starts with the gzip magic. AM_EIO / AM_EFORMAT name it. */
int src_read_file(const char *path, char **out, size_t *out_len);

/* ---------------------------------------------------------------- dictd */

/* The dictd index number encoding (base64 digits, most significant first): "Gb9L" -> 6.6 M.
 * Returns the value, or -1 for an empty string, a character outside [A-Za-z0-9+/] or overflow. */
int64_t src_dictd_b64(const char *s, size_t len);

/* ---------------------------------------------------------------- man pages */

typedef struct {
    char *name;   /* "NAME", "DESCRIPTION", ... as written after .SH (quotes removed) */
    char *text;   /* plain text; paragraphs separated by "\n\n", no trailing newline */
} SrcSection;

typedef struct {
    char *title;          /* .TH first argument ("insque"), "" if none */
    char *section;        /* .TH second argument ("3"), "" if none */
    char *link;           /* target of a ".so man3/x.3" page (then n_sections == 0), else NULL */
    SrcSection *sections; /* (n_sections) in page order; text before the first .SH is dropped */
    int n_sections;
} SrcManPage;

/* Render man(7) roff to plain text: requests (.B .I .BR .IR .TP .IP .PP .RS .nf .EX .TS ...)
 * become text and paragraph breaks, escapes (\fB \- \(em \[aq] \e \& \*(lq \s-1 ...) become
 * characters or nothing, comments, macro definitions and conditionals are dropped, tables keep
 * their cells separated by spaces. Filled text is joined into lines of words; no-fill blocks
 * (.nf/.EX) keep their line breaks. Never fails on any input except AM_EUTF8-free cleanup:
 * returns AM_OK. Free with src_man_free. */
int src_man_parse(const char *roff, size_t len, SrcManPage *out);
void src_man_free(SrcManPage *p);

/* ---------------------------------------------------------------- mail (RFC 822 / MIME) */

typedef struct {
    char *name;   /* lower-cased field name */
    char *value;  /* unfolded, RFC 2047 encoded words decoded, UTF-8 */
} SrcHeader;

typedef struct {
    SrcHeader *headers;   /* (n_headers) top-level headers in order (without the mbox "From " line) */
    int n_headers;
    char *body;           /* readable text: every text/plain part (decoded, UTF-8), or the
                             text of the text/html parts when there is no text/plain; "" if none */
    int n_parts;          /* leaf MIME parts seen */
    int html;             /* 1 if body came from HTML */
} SrcMail;

/* Parse a raw message. Multipart bodies are walked recursively (nested multipart, message/rfc822),
 * Content-Transfer-Encoding quoted-printable / base64 decoded, charsets converted (UTF-8,
 * US-ASCII, ISO-8859-1/15, windows-1252; anything else is treated as Latin-1 when it is not
 * valid UTF-8). Never fails on malformed mail (it reads what it can): returns AM_OK.
 * Free with src_mail_free. */
int src_mail_parse(const char *raw, size_t len, SrcMail *out);
void src_mail_free(SrcMail *m);
/* The value of the first header `name` (case-insensitive), or NULL. Borrowed from m. */
const char *src_mail_header(const SrcMail *m, const char *name);

/* Quoted-printable decoding (RFC 2045; header = 1: RFC 2047 'Q' where '_' is a space).
 * Writes at most len bytes to out (out may equal in); returns the decoded length. */
size_t src_qp_decode(const char *in, size_t len, char *out, int header);
/* Base64 decoding, skipping white space and stopping at '=' or the first invalid character.
 * Writes at most len*3/4+3 bytes; returns the decoded length. */
size_t src_b64_decode(const char *in, size_t len, unsigned char *out);
/* HTML to text: drops <script>/<style>/<head> content, comments and tags, turns block tags
 * (p, br, div, tr, li, h1-6, ...) into line breaks, decodes entities. OUT malloc'd UTF-8. */
char *src_html_text(const char *html, size_t len);

/* ---------------------------------------------------------------- POD */

/* Expand POD formatting codes in one paragraph: B<x> I<x> C<x> F<x> S<x> -> x,
 * L<text|target> -> text, L<name/"sec"> -> "sec" in name, L<name> -> name, E<gt> E<lt>
 * E<verbar> E<sol> E<quot> E<amp> E<NNN> E<0xHH> -> the character, X<> Z<> -> nothing;
 * nested codes and the C<< x >> form. OUT malloc'd. */
char *src_pod_inline(const char *s, size_t len);

/* ---------------------------------------------------------------- RFC-822 stanzas */

typedef struct {
    const char *name;   /* field name, not NUL-terminated: name[0..name_len) */
    size_t name_len;
    const char *value;  /* value with continuation lines: "short\n line\n ." as in the file,
                           leading blank after ':' skipped, trailing newline dropped */
    size_t value_len;
} SrcField;

/* Call fn once per stanza (paragraphs separated by blank lines) of a Debian control-style
 * file, with its fields in order (borrowed pointers into text, valid during the call).
 * fn returns 0 to go on, non-zero to stop (and src_stanzas returns that value).
 * Lines that are neither "Name: value" nor continuations give AM_EFORMAT "origin:LINE: ...". */
typedef int (*SrcStanzaFn)(void *ud, const SrcField *fields, int n);
int src_stanzas(const char *text, size_t len, const char *origin, SrcStanzaFn fn, void *ud);

/* ---------------------------------------------------------------- SWORD zText */

/* Read every verse slot of a zText module testament: dir holds <t>.bzs (12-byte records:
 * u32 offset, u32 compressed size, u32 uncompressed size of a zlib block in <t>.bzz) and
 * <t>.bzv (10-byte records per slot: u32 block, u32 offset, u16 size), little-endian.
 * OUT: *slots (n) malloc'd strings ("" for empty slots; the raw OSIS markup as stored),
 * free with src_slots_free. AM_ENOTFOUND / AM_EIO (files), AM_EFORMAT (record pointing
 * outside its block, corrupt zlib block: names file and record). */
int src_sword_ztext(const char *dir, const char *testament /* "ot" | "nt" */, char ***slots,
                    int64_t *n);
void src_slots_free(char **slots, int64_t n);

/* OSIS (or any XML fragment) to plain text: <note>...</note> and <title> without
 * canonical="true" are removed with their content (a space left instead), other tags removed,
 * entities (&amp; &lt; &gt; &quot; &apos; &#N; &#xH;) decoded, white space squashed. */
char *src_osis_text(const char *s, size_t len);

/* ---------------------------------------------------------------- text */

/* Copy s, replacing every invalid UTF-8 sequence by U+FFFD and dropping NUL bytes. */
char *src_utf8_clean(const char *s, size_t len);
/* 1 if s is valid UTF-8 without NUL bytes. */
int src_utf8_valid(const char *s, size_t len);
/* Convert from a charset label (case-insensitive: utf-8, us-ascii, iso-8859-1, latin1,
 * iso-8859-15, windows-1252, cp1252; NULL or unknown: UTF-8 if valid, else windows-1252)
 * to UTF-8. Invalid UTF-8 in a "utf-8" text falls back to windows-1252. */
char *src_to_utf8(const char *s, size_t len, const char *charset);
/* Collapse runs of white space (ASCII and U+00A0) into one space and trim both ends. */
char *src_squash(const char *s, size_t len);
/* src_squash every line, drop leading blank lines and keep at most one blank line in a row
 * (paragraph breaks survive). Returns a new malloc'd string. */
char *src_tidy_lines(const char *s);
/* Decode one HTML/XML entity at s (s[0] == '&'); on success writes UTF-8 to out (<= 4 bytes
 * + NUL), sets *used to the bytes consumed and returns the output length; 0 if not an entity. */
int src_entity(const char *s, size_t len, char out[8], size_t *used);

#endif
