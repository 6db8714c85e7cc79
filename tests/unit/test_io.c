/* test_io.c - safetensors, Hugging Face / sentence-transformers directories, .npy.
 *
 * Fixtures: tests/ref/hf/ (made by tests/ref/hf/gen_fixture.py with PyTorch; see its README).
 * Corrupt inputs are made here, in temp dirs, from copies of the good fixtures.
 * The import is checked end to end against PyTorch's outputs twice: with a naive float64
 * BERT forward written below (ref_forward, independent of src/model), and with src/model's
 * encoder (hf_encoder_parity: 1e-5, cosine >= 0.99999). */
#define _GNU_SOURCE
#include "am_base.h"
#include "encoder.h"
#include "harness.h"
#include "hf.h"
#include "model.h"
#include "npy.h"
#include "safetensors.h"
#include "wordpiece.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define HF_DIR AM_TEST_DIR "/ref/hf"

static const char *fixtures[] = {"bert_tiny", "bert_mlm_f16", "bert_pretrain_bf16", "st_cls_norm"};
#define N_FIXTURES 4

/* ---------------------------------------------------------------- helpers */

#define TEST_TMP_PREFIX "/tmp/am_test_io_"
#include "tmpdir.h"

/* Copy a fixture directory into a fresh temp dir; returns the copy's path (malloc'd). */
static char *copy_fixture(const char *name) {
    char *root = tmpdir(), *dst = xasprintf("%s/%s", root, name);
    char *cmd = xasprintf("cp -r '%s/%s' '%s'", HF_DIR, name, dst);
    AM_ASSERT(system(cmd) == 0);
    free(cmd);
    return dst;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    AM_ASSERT(f != NULL);
    AM_ASSERT(fwrite(p, 1, n, f) == n);
    fclose(f);
}

static char *read_bytes(const char *path, size_t *n) {
    char *buf = NULL;
    if (am_read_file(path, &buf, n) != AM_OK) return NULL;
    return buf;
}

/* Replace the first occurrence of `from` with `to` in a text file; returns 1 if replaced. */
static int file_replace(const char *path, const char *from, const char *to) {
    size_t n;
    char *s = read_bytes(path, &n);
    AM_ASSERT(s != NULL);
    char *p = memmem(s, n, from, strlen(from));
    if (!p) {
        free(s);
        return 0;
    }
    FILE *f = fopen(path, "wb");
    AM_ASSERT(f != NULL);
    fwrite(s, 1, (size_t)(p - s), f);
    fwrite(to, 1, strlen(to), f);
    size_t rest = n - (size_t)(p - s) - strlen(from);
    fwrite(p + strlen(from), 1, rest, f);
    fclose(f);
    free(s);
    return 1;
}

static int io_exists_test(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* file_replace on dir/name */
static int replace_in(const char *dir, const char *name, const char *from, const char *to) {
    char *p = xasprintf("%s/%s", dir, name);
    int r = file_replace(p, from, to);
    free(p);
    return r;
}

static void rm_file(const char *dir, const char *name) {
    char *p = xasprintf("%s/%s", dir, name);
    AM_ASSERT(unlink(p) == 0);
    free(p);
}

/* A safetensors file from a literal header (padded with spaces to 8 when pad) and data. */
static void write_st_raw(const char *path, const char *header, const void *data, size_t dlen, int pad) {
    size_t hl = strlen(header), padded = pad ? (hl + 7) / 8 * 8 : hl;
    uint64_t n = padded;
    char *buf = xmalloc(8 + padded + dlen);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    if (dlen) memcpy(buf + 8 + padded, data, dlen);
    write_bytes(path, buf, 8 + padded + dlen);
    free(buf);
}

static cJSON *load_json(const char *path) {
    size_t n;
    char *s = read_bytes(path, &n);
    if (!s) return NULL;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    return j;
}

/* Expect `rc` to be `code` and the message to contain every non-NULL string given.
 * AM_TEST_VERBOSE=1 prints each message. */
#define CHECK_ERR(rc, code, ...) do { int _r = (rc); CHECK_EQ_INT(_r, code); \
        if (getenv("AM_TEST_VERBOSE")) printf("    [%s] %s\n", am_strerror(_r), am_lasterror()); \
        const char *_want[] = {__VA_ARGS__}; \
        for (size_t _i = 0; _i < sizeof _want / sizeof _want[0]; _i++) \
            CHECKF(_want[_i] == NULL || strstr(am_lasterror(), _want[_i]) != NULL, \
                   "message lacks \"%s\": %s", _want[_i], am_lasterror()); } while (0)

static int json_true(const cJSON *o, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)); }
static int json_false(const cJSON *o, const char *k) { return cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, k)); }
static double json_num(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(it) ? it->valuedouble : (double)NAN;
}
static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(it) ? it->valuestring : "";
}

static int bits_equal(const float *a, const float *b, size_t n) { return n == 0 || memcmp(a, b, n * sizeof *a) == 0; }

/* ================================================================ safetensors */

TEST(st_roundtrip_awkward_shapes) {
    char *d = tmpdir(), *path = xasprintf("%s/t.safetensors", d);
    float scalar[1] = {3.25f}, v1[1] = {-1.0f}, big[3 * 5 * 7], odd[2 * 1 * 3 * 1], *none = NULL;
    for (int i = 0; i < 105; i++) big[i] = (float)i * 0.37f - 11.0f;
    for (int i = 0; i < 6; i++) odd[i] = 1.0f / (float)(i + 1);
    const int64_t s_scalar[1] = {0}, s_empty[1] = {0}, s_big[3] = {3, 5, 7}, s_v1[1] = {1}, s_odd[4] = {2, 1, 3, 1},
                  s_empty2[2] = {4, 0};
    const char *names[] = {"scalar", "empty", "a.b.c", "one", "we\"ird \\ name \xc3\xa9", "empty2"};
    const int64_t *shapes[] = {s_scalar, s_empty, s_big, s_v1, s_odd, s_empty2};
    const int ndims[] = {0, 1, 3, 1, 4, 2};
    const float *data[] = {scalar, none, big, v1, odd, none};
    CHECK_OK(safetensors_write(path, 6, names, shapes, ndims, data, NULL));

    /* header length is a multiple of 8 and padded with spaces */
    size_t n;
    char *raw = read_bytes(path, &n);
    uint64_t hl;
    memcpy(&hl, raw, 8);
    CHECK(hl % 8 == 0 && 8 + hl <= n);
    CHECK(raw[8] == '{');
    CHECK(n == 8 + hl + (1 + 105 + 1 + 6) * 4);
    free(raw);

    SafeTensors *st = NULL;
    CHECK_OK(safetensors_open(path, &st));
    if (st) {
        CHECK_EQ_INT(safetensors_count(st), 6);
        CHECK(safetensors_metadata(st, "format") == NULL);
        for (int i = 0; i < 6; i++) {
            const SafeTensorEntry *e = safetensors_find(st, names[i]);
            CHECKF(e != NULL, "tensor %s not found", names[i]);
            if (!e) continue;
            CHECK_EQ_INT(e->ndim, ndims[i]);
            size_t numel = 1;
            for (int k = 0; k < ndims[i]; k++) {
                CHECK_EQ_INT(e->shape[k], shapes[i][k]);
                numel *= (size_t)shapes[i][k];
            }
            CHECK_EQ_INT(e->numel, numel);
            CHECK(e->dtype == AM_DT_F32);
            float buf[128];
            CHECK_OK(safetensors_read_f32(st, e, buf, numel));
            CHECK(bits_equal(buf, data[i], numel));
        }
        CHECK(safetensors_find(st, "nope") == NULL);
        float buf[4];
        CHECK_ERR(safetensors_read_f32(st, safetensors_find(st, "a.b.c"), buf, 4), AM_ESHAPE, "a.b.c", path);
    }
    safetensors_close(st);

    /* metadata and zero tensors */
    CHECK_OK(safetensors_write(path, 0, NULL, NULL, NULL, NULL, "{\"format\":\"pt\",\"note\":\"x\\\"y\"}"));
    st = NULL;
    CHECK_OK(safetensors_open(path, &st));
    if (st) {
        CHECK_EQ_INT(safetensors_count(st), 0);
        CHECK(strcmp(safetensors_metadata(st, "format"), "pt") == 0);
        CHECK(strcmp(safetensors_metadata(st, "note"), "x\"y") == 0);
    }
    safetensors_close(st);
    CHECK_ERR(safetensors_write(path, 0, NULL, NULL, NULL, NULL, "{\"a\":1}"), AM_EINVAL, "metadata");
    const char *dup[] = {"x", "x"};
    const int64_t *dshape[] = {s_v1, s_v1};
    const int dnd[] = {1, 1};
    const float *ddata[] = {v1, v1};
    CHECK_ERR(safetensors_write(path, 2, dup, dshape, dnd, ddata, NULL), AM_EINVAL, "'x'");
    free(path);
}

TEST(st_half_conversions) {
    static const struct { uint16_t h; float f; } f16[] = {
        {0x0000, 0.0f}, {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x7bff, 65504.0f}, {0x0001, 5.9604644775390625e-8f},
        {0x03ff, 6.0975551605224609375e-5f}, {0x0400, 6.103515625e-5f}, {0x3555, 0.333251953125f},
        {0x3bff, 0.99951171875f}, {0xfbff, -65504.0f}, {0x8001, -5.9604644775390625e-8f},
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++) {
        CHECKF(am_f16_to_f32(f16[i].h) == f16[i].f, "f16 %04x -> %.9g", f16[i].h, (double)am_f16_to_f32(f16[i].h));
        CHECK(am_f32_to_f16(f16[i].f) == f16[i].h);
    }
    CHECK(isinf(am_f16_to_f32(0x7c00)) && am_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(am_f16_to_f32(0xfc00)) && am_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(am_f16_to_f32(0x7e00)));
    CHECK(am_f16_to_f32(0x8000) == 0.0f && signbit(am_f16_to_f32(0x8000)));
    static const struct { uint16_t b; float f; } bf16[] = {
        {0x3f80, 1.0f}, {0xc0a0, -5.0f}, {0x7f7f, 3.3895313892515355e38f}, {0x0001, 9.183549615799121e-41f},
        {0x3eab, 0.333984375f}, {0x0080, 1.1754943508222875e-38f},
    };
    for (size_t i = 0; i < sizeof bf16 / sizeof bf16[0]; i++) {
        CHECKF(am_bf16_to_f32(bf16[i].b) == bf16[i].f, "bf16 %04x -> %.9g", bf16[i].b,
               (double)am_bf16_to_f32(bf16[i].b));
        CHECK(am_f32_to_bf16(bf16[i].f) == bf16[i].b);
    }
    CHECK(isinf(am_bf16_to_f32(0x7f80)) && isnan(am_bf16_to_f32(0x7fc0)));
    /* every non-NaN 16-bit pattern survives a round trip through float32 */
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = am_f16_to_f32((uint16_t)h), g = am_bf16_to_f32((uint16_t)h);
        if (!isnan(f) && am_f32_to_f16(f) != h) bad16++;
        if (!isnan(g) && am_f32_to_bf16(g) != h) badbf++;
    }
    CHECK_EQ_INT(bad16, 0);
    CHECK_EQ_INT(badbf, 0);
    /* rounding: ties to even, overflow to inf, underflow to subnormals / zero */
    CHECK(am_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(am_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(am_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(am_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(am_f32_to_f16(0x1p-25f) == 0x0000);
    CHECK(am_f32_to_f16(0x1.8p-25f) == 0x0001);
    CHECK(am_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80);
    CHECK(am_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);

    /* the reader converts F16 / BF16 / F64 tensors */
    char *d = tmpdir(), *path = xasprintf("%s/h.safetensors", d);
    unsigned char data[8 + 8 + 24];
    uint16_t h[4] = {0x3c00, 0xc000, 0x0001, 0x7bff}, b[4] = {0x3f80, 0xc0a0, 0x0001, 0x3eab};
    double f64[3] = {0.1, -1e300, 1.0 / 3.0};
    memcpy(data, h, 8);
    memcpy(data + 8, b, 8);
    memcpy(data + 16, f64, 24);
    write_st_raw(path,
                 "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[8,16]},"
                 "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[16,40]}}",
                 data, sizeof data, 0);
    SafeTensors *st = NULL;
    CHECK_OK(safetensors_open(path, &st));
    if (st) {
        float out[4];
        CHECK_OK(safetensors_read_f32(st, safetensors_find(st, "h"), out, 4));
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 5.9604644775390625e-8f && out[3] == 65504.0f);
        CHECK_OK(safetensors_read_f32(st, safetensors_find(st, "b"), out, 4));
        CHECK(out[0] == 1.0f && out[1] == -5.0f && out[2] == 9.183549615799121e-41f && out[3] == 0.333984375f);
        CHECK_OK(safetensors_read_f32(st, safetensors_find(st, "d"), out, 3));
        CHECK(out[0] == 0.1f && isinf(out[1]) && out[1] < 0 && out[2] == (float)(1.0 / 3.0));
        /* file order: entries sorted by offset */
        CHECK(strcmp(safetensors_entry(st, 0)->name, "h") == 0 && strcmp(safetensors_entry(st, 2)->name, "d") == 0);
    }
    safetensors_close(st);
    free(path);
}

/* Each malformed file: the right code, and a message naming the file and the problem. */
TEST(st_bad_inputs) {
    char *d = tmpdir(), *path = xasprintf("%s/model.safetensors", d);
    SafeTensors *st = (SafeTensors *)1;
    unsigned char zeros[1024] = {0};

    CHECK_ERR(safetensors_open(path, &st), AM_ENOTFOUND, path);
    CHECK(st == NULL);
    write_bytes(path, "", 0);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "too short");
    write_bytes(path, "\x10\0\0\0\0", 5);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "5 bytes");

    /* a good file, then truncated: inside the data section, and inside the header */
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const int64_t s8[1] = {8};
    const char *nm[1] = {"w"};
    const int64_t *sh[1] = {s8};
    const int nd[1] = {1};
    const float *dt[1] = {v};
    CHECK_OK(safetensors_write(path, 1, nm, sh, nd, dt, NULL));
    size_t n;
    char *good = read_bytes(path, &n);
    write_bytes(path, good, n - 5);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'w'", "past end of data (27 bytes)");
    write_bytes(path, good, 20);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "header length", "past end of file");
    free(good);

    /* header length past the end */
    unsigned char hdr[16];
    uint64_t big = 1000000;
    memcpy(hdr, &big, 8);
    memcpy(hdr + 8, "{}      ", 8);
    write_bytes(path, hdr, 16);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "header length 1000000 past end of file");
    uint64_t tiny = 1;
    memcpy(hdr, &tiny, 8);
    write_bytes(path, hdr, 16);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "too small");

    /* invalid JSON header, non-object header, garbage after the object */
    write_st_raw(path, "{\"w\":{\"dtype\":\"F32\",", zeros, 0, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "not valid JSON");
    write_st_raw(path, "[1,2,3]", zeros, 0, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "not a JSON object");
    write_st_raw(path, "{}xx", zeros, 0, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "not valid JSON");

    /* overlapping offsets */
    write_st_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", zeros, 24, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'a'", "'b'", "overlap");
    /* identical ranges overlap too; empty tensors own no bytes and may sit anywhere */
    write_st_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[0,16]}}", zeros, 16, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "overlap");
    write_st_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[8,8]}}", zeros, 16, 1);
    st = NULL;
    CHECK_OK(safetensors_open(path, &st));
    safetensors_close(st);

    /* out-of-range offsets, end before begin */
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,999]}}", zeros, 512, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "tensor 'x' data_offsets [0, 999] past end of data (512 bytes)");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[16,8]}}", zeros, 512, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "end before begin");

    /* byte size not matching shape x dtype */
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", zeros, 16, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "16 bytes", "needs 12");
    write_st_raw(path, "{\"x\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", zeros, 24, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "BF16 [2, 3] needs 12");

    /* dtypes: unknown string at open; known but not float at read */
    write_st_raw(path, "{\"x\":{\"dtype\":\"F12\",\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EDTYPE, path, "'x'", "F12");
    write_st_raw(path, "{\"q\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}", zeros, 8, 1);
    st = NULL;
    CHECK_OK(safetensors_open(path, &st));
    if (st) {
        float out[8];
        CHECK_ERR(safetensors_read_f32(st, safetensors_find(st, "q"), out, 8), AM_EDTYPE, path, "'q'", "I8");
    }
    safetensors_close(st);

    /* malformed entries */
    write_st_raw(path, "{\"x\":{\"shape\":[2],\"data_offsets\":[0,8]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "dtype");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "shape");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "data_offsets");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "shape");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "data_offsets");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "data_offsets");
    write_st_raw(path, "{\"x\":[1]}", zeros, 8, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "not a JSON object");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", zeros, 16, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "twice");
    write_st_raw(path, "{\"__metadata__\":{\"format\":1}}", zeros, 0, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "__metadata__", "format");
    write_st_raw(path, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", zeros, 4, 1);
    CHECK_ERR(safetensors_open(path, &st), AM_EFORMAT, path, "'x'", "dimensions");
    /* unpadded header (allowed) and a null __metadata__ */
    write_st_raw(path, "{\"__metadata__\":null,\"x\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", v, 4, 0);
    st = NULL;
    CHECK_OK(safetensors_open(path, &st));
    if (st) CHECK(safetensors_find(st, "x") && safetensors_find(st, "x")->numel == 1);
    safetensors_close(st);
    free(path);
}

/* Random damage to a real file: every outcome is AM_OK or a clean error, never a crash
 * (run under AM_SANITIZE_ADDRESS to make "never" mean something). */
TEST(st_mutations_do_not_crash) {
    char *src = xasprintf("%s/bert_pretrain_bf16/model.safetensors", HF_DIR), *d = tmpdir(),
         *path = xasprintf("%s/m.safetensors", d);
    size_t n;
    unsigned char *good = (unsigned char *)read_bytes(src, &n), *buf = xmalloc(n);
    CHECK(good != NULL);
    if (!good) return;
    uint64_t hl;
    memcpy(&hl, good, 8);
    AmRng rng;
    am_rng_seed(&rng, 1234);
    int ok = 0, failed = 0, bad_code = 0;
    float *out = xmalloc(sizeof(float) * n);
    for (int it = 0; it < 600; it++) {
        memcpy(buf, good, n);
        size_t len = n;
        int kind = it % 3;
        if (kind == 0) { /* flip a few header bytes */
            for (int k = 0; k < 3; k++) buf[8 + am_rng_below(&rng, (uint32_t)hl)] = (unsigned char)am_rng_u32(&rng);
        } else if (kind == 1) { /* overwrite a header digit */
            size_t at = 8 + am_rng_below(&rng, (uint32_t)hl);
            while (at < 8 + hl && !(buf[at] >= '0' && buf[at] <= '9')) at++;
            if (at < 8 + hl) buf[at] = (unsigned char)('0' + am_rng_below(&rng, 10));
        } else { /* truncate anywhere */
            len = am_rng_below(&rng, (uint32_t)n);
        }
        write_bytes(path, buf, len);
        SafeTensors *st = NULL;
        int rc = safetensors_open(path, &st);
        if (rc == AM_OK) {
            ok++;
            for (int i = 0; i < safetensors_count(st); i++) {
                const SafeTensorEntry *e = safetensors_entry(st, i);
                int r = safetensors_read_f32(st, e, out, e->numel);
                if (r != AM_OK && r != AM_EDTYPE) bad_code++;
            }
        } else {
            failed++;
            if (rc != AM_EFORMAT && rc != AM_EDTYPE) bad_code++;
            if (!strstr(am_lasterror(), path)) bad_code++;
        }
        safetensors_close(st);
    }
    CHECK_EQ_INT(bad_code, 0);
    CHECK(ok > 0 && failed > 0);
    free(out);
    free(buf);
    free(good);
    free(src);
    free(path);
}

/* ================================================================ HF import */

/* Compare imported tensors with the generator's record: shape, first values, sums. */
static void check_tensors(const Model *m, const cJSON *tensors, const char *fixture) {
    int seen = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tensors) {
        const ParamInfo *p = param_table_find(&m->tab, t->string);
        CHECKF(p != NULL, "%s: tensor %s not in the model", fixture, t->string);
        if (!p) continue;
        seen++;
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
        CHECK_EQ_INT(cJSON_GetArraySize(shape), p->ndim);
        for (int d = 0; d < p->ndim; d++) CHECK_EQ_INT(cJSON_GetArrayItem(shape, d)->valuedouble, p->shape[d]);
        const float *w = m->params + p->offset;
        const cJSON *first = cJSON_GetObjectItemCaseSensitive(t, "first");
        for (int i = 0; i < cJSON_GetArraySize(first); i++)
            CHECKF(w[i] == (float)cJSON_GetArrayItem(first, i)->valuedouble, "%s: %s[%d] = %.9g, expected %.9g",
                   fixture, p->name, i, (double)w[i], cJSON_GetArrayItem(first, i)->valuedouble);
        double s = 0, s2 = 0;
        for (size_t i = 0; i < p->numel; i++) {
            s += (double)w[i];
            s2 += (double)w[i] * (double)w[i];
        }
        double es = json_num(t, "sum"), es2 = json_num(t, "sumsq");
        CHECKF(fabs(s - es) <= 1e-9 * (1 + fabs(es)) && fabs(s2 - es2) <= 1e-9 * (1 + es2),
               "%s: %s sum %.17g / %.17g, expected %.17g / %.17g", fixture, p->name, s, s2, es, es2);
    }
    /* the record covers the encoder; an MLM head's 5 tensors are checked by hf_mlm_head */
    CHECK_EQ_INT(seen, m->tab.n - (m->cfg.has_mlm_head ? 5 : 0));
}

/* ---- a naive float64 BERT forward (independent of src/model's encoder) ---- */

static const float *W(const Model *m, const char *fmt, int l) {
    char nm[AM_NAME_MAX];
    snprintf(nm, sizeof nm, fmt, l);
    const ParamInfo *p = param_table_find(&m->tab, nm);
    AM_ASSERT(p != NULL);
    return m->params + p->offset;
}

static void layernorm(double *x, int C, const float *w, const float *b, double eps) {
    double mu = 0, var = 0;
    for (int c = 0; c < C; c++) mu += x[c];
    mu /= C;
    for (int c = 0; c < C; c++) var += (x[c] - mu) * (x[c] - mu);
    var /= C;
    double r = 1.0 / sqrt(var + eps);
    for (int c = 0; c < C; c++) x[c] = (x[c] - mu) * r * (double)w[c] + (double)b[c];
}

/* out (OC) = W (OC, IC) . x (IC) + b */
static void linear(double *out, const double *x, const float *w, const float *b, int OC, int IC) {
    for (int o = 0; o < OC; o++) {
        double s = b[o];
        for (int i = 0; i < IC; i++) s += (double)w[(size_t)o * IC + i] * x[i];
        out[o] = s;
    }
}

/* One sequence (T tokens, mask of 0/1). hs: (L+1, T, C) hidden states; pooled (C) or NULL. */
static void ref_forward(const Model *m, const int *ids, const int *tt, const int *mask, int T, double *hs,
                        double *pooled) {
    const EncoderConfig *c = &m->cfg;
    const int C = c->hidden_size, NH = c->num_heads, HS = C / NH, FF = c->intermediate_size;
    const double eps = c->layer_norm_eps;
    double *x = hs, *q = xmalloc(sizeof(double) * T * C * 3), *k = q + T * C, *v = k + T * C;
    double *ctx = xmalloc(sizeof(double) * T * C), *tmp = xmalloc(sizeof(double) * (C + FF)), *att = xmalloc(sizeof(double) * T);
    const float *wte = W(m, "embeddings.word_embeddings.weight", 0), *wpe = W(m, "embeddings.position_embeddings.weight", 0),
                *wtt = W(m, "embeddings.token_type_embeddings.weight", 0);
    for (int t = 0; t < T; t++) {
        for (int ci = 0; ci < C; ci++)
            x[t * C + ci] = (double)wte[ids[t] * C + ci] + (double)wpe[t * C + ci] + (double)wtt[tt[t] * C + ci];
        layernorm(x + t * C, C, W(m, "embeddings.LayerNorm.weight", 0), W(m, "embeddings.LayerNorm.bias", 0), eps);
    }
    for (int l = 0; l < c->num_layers; l++) {
        double *y = x + (size_t)T * C;
#define LW(s) W(m, "encoder.layer.%d." s, l)
        for (int t = 0; t < T; t++) {
            linear(q + t * C, x + t * C, LW("attention.self.query.weight"), LW("attention.self.query.bias"), C, C);
            linear(k + t * C, x + t * C, LW("attention.self.key.weight"), LW("attention.self.key.bias"), C, C);
            linear(v + t * C, x + t * C, LW("attention.self.value.weight"), LW("attention.self.value.bias"), C, C);
        }
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                double mx = -INFINITY, sum = 0;
                for (int u = 0; u < T; u++) {
                    if (!mask[u]) continue; /* weight exp(finfo.min) == 0 */
                    double s = 0;
                    for (int i = 0; i < HS; i++) s += q[t * C + h * HS + i] * k[u * C + h * HS + i];
                    att[u] = s / sqrt((double)HS);
                    if (att[u] > mx) mx = att[u];
                }
                for (int u = 0; u < T; u++) sum += mask[u] ? (att[u] = exp(att[u] - mx)) : 0;
                for (int i = 0; i < HS; i++) {
                    double s = 0;
                    for (int u = 0; u < T; u++)
                        if (mask[u]) s += att[u] / sum * v[u * C + h * HS + i];
                    ctx[t * C + h * HS + i] = s;
                }
            }
        for (int t = 0; t < T; t++) {
            double *yt = y + t * C;
            linear(yt, ctx + t * C, LW("attention.output.dense.weight"), LW("attention.output.dense.bias"), C, C);
            for (int i = 0; i < C; i++) yt[i] += x[t * C + i];
            layernorm(yt, C, LW("attention.output.LayerNorm.weight"), LW("attention.output.LayerNorm.bias"), eps);
            linear(tmp, yt, LW("intermediate.dense.weight"), LW("intermediate.dense.bias"), FF, C);
            for (int i = 0; i < FF; i++) tmp[i] = 0.5 * tmp[i] * (1.0 + erf(tmp[i] / sqrt(2.0)));
            double *o = tmp + FF;
            linear(o, tmp, LW("output.dense.weight"), LW("output.dense.bias"), C, FF);
            for (int i = 0; i < C; i++) o[i] += yt[i];
            layernorm(o, C, LW("output.LayerNorm.weight"), LW("output.LayerNorm.bias"), eps);
            memcpy(yt, o, sizeof(double) * C);
        }
#undef LW
        x = y;
    }
    if (pooled) {
        linear(pooled, x, W(m, "pooler.dense.weight", 0), W(m, "pooler.dense.bias", 0), C, C);
        for (int i = 0; i < C; i++) pooled[i] = tanh(pooled[i]);
    }
    free(q);
    free(ctx);
    free(tmp);
    free(att);
}

static double max_diff_row(const double *a, const cJSON *row, int C) {
    double md = 0;
    for (int i = 0; i < C; i++) {
        double d = fabs(a[i] - cJSON_GetArrayItem(row, i)->valuedouble);
        if (d > md || d != d) md = d;
    }
    return md;
}

/* import -> naive forward -> PyTorch's outputs (mean, CLS, pooler, per-layer mean, ST embedding) */
static void check_parity(const Model *m, const HfInfo *info, const cJSON *exp, const char *fixture) {
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(exp, "input_ids"),
                *tts = cJSON_GetObjectItemCaseSensitive(exp, "token_type_ids"),
                *masks = cJSON_GetObjectItemCaseSensitive(exp, "attention_mask");
    const int B = cJSON_GetArraySize(ids), T = cJSON_GetArraySize(cJSON_GetArrayItem(ids, 0));
    const int C = m->cfg.hidden_size, L = m->cfg.num_layers;
    double *hs = xmalloc(sizeof(double) * (size_t)(L + 1) * T * C), pooled[1024], md = 0;
    AM_ASSERT(C <= 1024);
    for (int b = 0; b < B; b++) {
        int id[512], tt[512], mk[512], n = 0;
        AM_ASSERT(T <= 512);
        for (int t = 0; t < T; t++) {
            id[t] = (int)cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valuedouble;
            tt[t] = (int)cJSON_GetArrayItem(cJSON_GetArrayItem(tts, b), t)->valuedouble;
            mk[t] = (int)cJSON_GetArrayItem(cJSON_GetArrayItem(masks, b), t)->valuedouble;
            n += mk[t];
        }
        ref_forward(m, id, tt, mk, T, hs, m->cfg.has_pooler ? pooled : NULL);
        double mean[1024], se[1024];
        for (int l = 0; l <= L; l++) {
            for (int i = 0; i < C; i++) {
                double s = 0;
                for (int t = 0; t < T; t++) s += mk[t] ? hs[((size_t)l * T + t) * C + i] : 0;
                mean[i] = s / n;
            }
            const cJSON *lm = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(exp, "layer_mean"), l);
            md = fmax(md, max_diff_row(mean, cJSON_GetArrayItem(lm, b), C));
        }
        const double *cls = hs + (size_t)L * T * C;
        md = fmax(md, max_diff_row(mean, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(exp, "mean"), b), C));
        md = fmax(md, max_diff_row(cls, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(exp, "cls"), b), C));
        const cJSON *pe = cJSON_GetObjectItemCaseSensitive(exp, "pooler");
        CHECK(cJSON_IsNull(pe) == !m->cfg.has_pooler);
        if (m->cfg.has_pooler) md = fmax(md, max_diff_row(pooled, cJSON_GetArrayItem(pe, b), C));
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(exp, "sentence_embedding");
        if (st) {
            double nrm = 0;
            for (int i = 0; i < C; i++) {
                se[i] = info->pooling == AM_POOL_CLS ? cls[i] : mean[i];
                nrm += se[i] * se[i];
            }
            for (int i = 0; i < C && info->normalize; i++) se[i] /= fmax(sqrt(nrm), 1e-12);
            md = fmax(md, max_diff_row(se, cJSON_GetArrayItem(st, b), C));
        }
    }
    CHECKF(md <= 1e-5, "%s: max |diff| vs PyTorch %.3g", fixture, md);
    printf("  %-20s import -> float64 forward vs PyTorch: max |diff| %.2e\n", fixture, md);
    free(hs);
}

TEST(hf_import_fixtures) {
    static const struct {
        int pooling, normalize, is_st, max_seq, lower, has_pooler, n_ignored, layers, has_mlm_head;
        const char *dtype;
    } want[N_FIXTURES] = {
        {AM_POOL_MEAN, 0, 0, 32, 1, 1, 0, 2, 0, "F32"},
        {AM_POOL_MEAN, 0, 0, 32, 0, 0, 0, 1, 1, "F16"},  /* model_max_length 1e30 clamped to 32; MLM head */
        {AM_POOL_MEAN, 0, 0, 32, 1, 1, 3, 1, 1, "BF16"}, /* cls.seq_relationship.* x2 + position_ids ignored */
        {AM_POOL_CLS, 1, 1, 16, 1, 1, 0, 1, 0, "F32"},
    };
    for (int f = 0; f < N_FIXTURES; f++) {
        char *dir = xasprintf("%s/%s", HF_DIR, fixtures[f]), *ep = xasprintf("%s/expected/%s.json", HF_DIR, fixtures[f]);
        Model *m = NULL;
        Vocab *v = NULL;
        HfInfo info;
        int rc = hf_import(dir, &m, &v, &info);
        CHECKF(rc == AM_OK, "%s: %s", fixtures[f], am_lasterror());
        cJSON *exp = load_json(ep);
        CHECKF(exp != NULL, "cannot read %s", ep);
        if (rc == AM_OK && exp) {
            CHECK_EQ_INT(info.pooling, want[f].pooling);
            CHECK_EQ_INT(info.normalize, want[f].normalize);
            CHECK_EQ_INT(info.is_sentence_transformers, want[f].is_st);
            CHECK_EQ_INT(info.max_seq_length, want[f].max_seq);
            CHECK_EQ_INT(info.do_lower_case, want[f].lower);
            CHECK_EQ_INT(info.strip_accents, -1);
            CHECK_EQ_INT(m->cfg.has_pooler, want[f].has_pooler);
            CHECK_EQ_INT(m->cfg.has_mlm_head, want[f].has_mlm_head);
            CHECK_EQ_INT(info.n_ignored, want[f].n_ignored);
            CHECK_EQ_INT(m->cfg.num_layers, want[f].layers);
            CHECKF(strcmp(info.dtype, want[f].dtype) == 0, "%s: dtype %s", fixtures[f], info.dtype);
            CHECK(strcmp(info.source, dir) == 0);
            CHECK_EQ_INT(m->cfg.vocab_size, 100);
            CHECK_NEAR(m->cfg.layer_norm_eps, 1e-12, 1e-20);
            CHECK_EQ_INT(vocab_size(v), 100);
            size_t vl, fl;
            const char *vt = vocab_text(v, &vl);
            char *vp = xasprintf("%s/vocab.txt", dir), *ft = read_bytes(vp, &fl);
            CHECK(ft && vl == fl && memcmp(vt, ft, fl) == 0);
            free(ft);
            free(vp);
            check_tensors(m, cJSON_GetObjectItemCaseSensitive(exp, "tensors"), fixtures[f]);
            check_parity(m, &info, exp, fixtures[f]);
        }
        cJSON_Delete(exp);
        model_delete(m);
        vocab_delete(v);
        free(dir);
        free(ep);
    }
}

/* import -> src/model's encoder (encoder_embed) -> PyTorch's outputs, to 1e-5 and cosine
 * >= 0.99999 per sentence: the "Done when" parity of issue 3 on every fixture dtype/layout. */
static double parity_md, parity_mincos;

static void check_embed(const float *got, const cJSON *want, int B, int C, const char *what, const char *fixture) {
    double md = 0, mincos = 1;
    for (int b = 0; b < B; b++) {
        const cJSON *row = cJSON_GetArrayItem(want, b);
        double dot = 0, n1 = 0, n2 = 0;
        for (int i = 0; i < C; i++) {
            double g = got[(size_t)b * C + i], w = cJSON_GetArrayItem(row, i)->valuedouble;
            md = fmax(md, fabs(g - w));
            dot += g * w;
            n1 += g * g;
            n2 += w * w;
        }
        mincos = fmin(mincos, dot / sqrt(n1 * n2));
    }
    CHECKF(md <= 1e-5 && mincos >= 0.99999, "%s %s: max |diff| %.3g, min cosine %.9f", fixture, what, md, mincos);
    parity_md = fmax(parity_md, md);
    parity_mincos = fmin(parity_mincos, mincos);
}

TEST(hf_encoder_parity) {
    for (int f = 0; f < N_FIXTURES; f++) {
        char *dir = xasprintf("%s/%s", HF_DIR, fixtures[f]), *ep = xasprintf("%s/expected/%s.json", HF_DIR, fixtures[f]);
        Model *m = NULL;
        Vocab *v = NULL;
        HfInfo info;
        Encoder *enc = NULL;
        cJSON *exp = load_json(ep);
        CHECK_OK(hf_import(dir, &m, &v, &info));
        parity_md = 0;
        parity_mincos = 1;
        if (m && exp && encoder_new(m, &enc) == AM_OK) {
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(exp, "input_ids"),
                        *tts = cJSON_GetObjectItemCaseSensitive(exp, "token_type_ids"),
                        *masks = cJSON_GetObjectItemCaseSensitive(exp, "attention_mask");
            const int B = cJSON_GetArraySize(ids), T = cJSON_GetArraySize(cJSON_GetArrayItem(ids, 0));
            const int C = m->cfg.hidden_size, L = m->cfg.num_layers;
            int32_t *id = xmalloc(sizeof(int32_t) * B * T), *tt = xmalloc(sizeof(int32_t) * B * T);
            float *mk = xmalloc(sizeof(float) * B * T), *out = xmalloc(sizeof(float) * B * C);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    id[b * T + t] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(ids, b), t)->valuedouble;
                    tt[b * T + t] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(tts, b), t)->valuedouble;
                    mk[b * T + t] = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(masks, b), t)->valuedouble;
                }
            CHECK_OK(encoder_embed(enc, id, tt, mk, B, T, AM_POOL_MEAN, 0, -1, 0, out));
            check_embed(out, cJSON_GetObjectItemCaseSensitive(exp, "mean"), B, C, "mean", fixtures[f]);
            CHECK_OK(encoder_embed(enc, id, tt, mk, B, T, AM_POOL_CLS, 0, -1, 0, out));
            check_embed(out, cJSON_GetObjectItemCaseSensitive(exp, "cls"), B, C, "cls", fixtures[f]);
            for (int l = 0; l <= L; l++) {
                char what[32];
                snprintf(what, sizeof what, "layer %d mean", l);
                CHECK_OK(encoder_embed(enc, id, tt, mk, B, T, AM_POOL_MEAN, 0, l, 0, out));
                check_embed(out, cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(exp, "layer_mean"), l), B, C, what,
                            fixtures[f]);
            }
            const cJSON *se = cJSON_GetObjectItemCaseSensitive(exp, "sentence_embedding");
            if (se) {
                /* the HfInfo pooling ids are the encoder's AM_POOL_* values */
                CHECK_OK(encoder_embed(enc, id, tt, mk, B, T, info.pooling, info.normalize, -1, 0, out));
                check_embed(out, se, B, C, "sentence_embedding", fixtures[f]);
            }
            printf("  %-20s import -> encoder_embed vs PyTorch: max |diff| %.2e, min cosine %.9f\n", fixtures[f],
                   parity_md, parity_mincos);
            free(id);
            free(tt);
            free(mk);
            free(out);
        }
        encoder_delete(enc);
        cJSON_Delete(exp);
        model_delete(m);
        vocab_delete(v);
        free(dir);
        free(ep);
    }
}

/* ================================================================ HF export */

static int count_tmp_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) n += strstr(de->d_name, ".tmp") != NULL;
    if (d) closedir(d);
    return n;
}

/* BertForMaskedLM: cls.predictions.transform.* and cls.predictions.bias are imported into the
 * head (values as in the file), exported back in the BertForMaskedLM layout, and a model
 * without a head exports none. */
TEST(hf_mlm_head) {
    static const char *const head[] = {"cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
                                       "cls.predictions.transform.LayerNorm.weight",
                                       "cls.predictions.transform.LayerNorm.bias", "cls.predictions.bias"};
    char *src = xasprintf("%s/bert_mlm_f16", HF_DIR), *wp = xasprintf("%s/model.safetensors", src);
    char *root = tmpdir(), *out = xasprintf("%s/mlm_out", root), *out2 = xasprintf("%s/plain_out", root);
    Model *m = NULL, *plain = NULL;
    Vocab *v = NULL;
    HfInfo info;
    SafeTensors *st = NULL;
    CHECK_OK(hf_import(src, &m, &v, &info));
    CHECK_OK(safetensors_open(wp, &st));
    if (!m || !st) return;
    CHECK_EQ_INT(m->cfg.has_mlm_head, 1);
    CHECK(m->p.mlmbias != NULL);
    for (int i = 0; i < 5; i++) {
        const ParamInfo *p = param_table_find(&m->tab, head[i]);
        const SafeTensorEntry *e = safetensors_find(st, head[i]);
        CHECKF(p && e, "%s missing", head[i]);
        if (!p || !e) continue;
        float *want = xmalloc(p->numel * sizeof(float));
        CHECK_OK(safetensors_read_f32(st, e, want, p->numel));
        CHECKF(bits_equal(m->params + p->offset, want, p->numel), "%s: values differ from the file", head[i]);
        free(want);
    }
    safetensors_close(st);
    st = NULL;
    /* export: BertForMaskedLM layout ("bert." encoder, head at cls.predictions.*) */
    CHECK_OK(hf_export(out, m, v, &info));
    char *op = xasprintf("%s/model.safetensors", out), *cp = xasprintf("%s/config.json", out);
    CHECK_OK(safetensors_open(op, &st));
    if (st) {
        CHECK_EQ_INT(safetensors_count(st), m->tab.n);
        for (int i = 0; i < 5; i++) CHECKF(safetensors_find(st, head[i]) != NULL, "export lacks %s", head[i]);
        CHECK(safetensors_find(st, "bert.embeddings.word_embeddings.weight") != NULL);
        CHECK(safetensors_find(st, "embeddings.word_embeddings.weight") == NULL);
        safetensors_close(st);
        st = NULL;
    }
    cJSON *cfg = load_json(cp);
    CHECK(cfg && strcmp(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(cfg, "architectures"), 0)->valuestring,
                        "BertForMaskedLM") == 0);
    cJSON_Delete(cfg);
    /* the same encoder without its head exports no cls.* tensor */
    EncoderConfig ec = m->cfg;
    ec.has_mlm_head = 0;
    CHECK_OK(model_new(&ec, &plain));
    if (plain) {
        memcpy(plain->params, m->params, plain->tab.total * sizeof(float));
        CHECK_OK(hf_export(out2, plain, v, &info));
        char *pp = xasprintf("%s/model.safetensors", out2);
        CHECK_OK(safetensors_open(pp, &st));
        if (st) {
            CHECK(safetensors_find(st, "cls.predictions.bias") == NULL);
            CHECK(safetensors_find(st, "embeddings.word_embeddings.weight") != NULL);
            safetensors_close(st);
        }
        free(pp);
    }
    model_delete(plain);
    model_delete(m);
    vocab_delete(v);
    free(op);
    free(cp);
    free(out);
    free(out2);
    free(wp);
    free(src);
}

TEST(hf_export_roundtrip) {
    for (int f = 0; f < N_FIXTURES; f++) {
        char *src = xasprintf("%s/%s", HF_DIR, fixtures[f]), *root = tmpdir(), *out = xasprintf("%s/out/%s", root, fixtures[f]);
        Model *m = NULL, *m2 = NULL;
        Vocab *v = NULL, *v2 = NULL;
        HfInfo a, b;
        CHECK_OK(hf_import(src, &m, &v, &a));
        if (!m) continue;
        CHECK_OK(hf_export(out, m, v, &a));
        CHECK_OK(hf_import(out, &m2, &v2, &b));
        if (m2) {
            CHECK(memcmp(&m->cfg, &m2->cfg, sizeof m->cfg) == 0);
            CHECK_EQ_INT(m->tab.total, m2->tab.total);
            CHECKF(m->tab.total == m2->tab.total && bits_equal(m->params, m2->params, m->tab.total),
                   "%s: tensors differ after export -> import", fixtures[f]);
            size_t l1, l2;
            const char *t1 = vocab_text(v, &l1), *t2 = vocab_text(v2, &l2);
            CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0);
            CHECK_EQ_INT(b.pooling, a.pooling);
            CHECK_EQ_INT(b.normalize, a.normalize);
            CHECK_EQ_INT(b.max_seq_length, a.max_seq_length);
            CHECK_EQ_INT(b.do_lower_case, a.do_lower_case);
            CHECK_EQ_INT(b.strip_accents, a.strip_accents);
            CHECK_EQ_INT(b.is_sentence_transformers, 1);
            CHECK_EQ_INT(b.n_ignored, 0);
            CHECK(strcmp(b.dtype, "F32") == 0);
            /* vocab.txt byte-identical to the source file */
            char *p1 = xasprintf("%s/vocab.txt", src), *p2 = xasprintf("%s/vocab.txt", out);
            size_t n1, n2;
            char *s1 = read_bytes(p1, &n1), *s2 = read_bytes(p2, &n2);
            CHECK(s1 && s2 && n1 == n2 && memcmp(s1, s2, n1) == 0);
            free(s1);
            free(s2);
            free(p1);
            free(p2);
        }
        char *parent = xasprintf("%s/out", root);
        CHECK_EQ_INT(count_tmp_leftovers(parent), 0);
        free(parent);
        model_delete(m);
        model_delete(m2);
        vocab_delete(v);
        vocab_delete(v2);
        free(src);
        free(out);
    }
}

/* The files sentence-transformers and transformers read, with the keys they need. */
TEST(hf_export_files) {
    char *src = xasprintf("%s/st_cls_norm", HF_DIR), *root = tmpdir(), *out = xasprintf("%s/exp", root);
    Model *m = NULL;
    Vocab *v = NULL;
    HfInfo info;
    CHECK_OK(hf_import(src, &m, &v, &info));
    if (!m) return;
    CHECK_OK(hf_export(out, m, v, &info));
    char *p;
#define LOAD(var, name) p = xasprintf("%s/%s", out, name); cJSON *var = load_json(p); \
        CHECKF(var != NULL, "%s missing or not JSON", p); free(p); if (!var) goto done
    {
        LOAD(cfg, "config.json");
        CHECK(strcmp(json_str(cfg, "model_type"), "bert") == 0);
        CHECK(strcmp(json_str(cfg, "hidden_act"), "gelu") == 0);
        CHECK(strcmp(json_str(cfg, "position_embedding_type"), "absolute") == 0);
        CHECK(strcmp(json_str(cfg, "torch_dtype"), "float32") == 0);
        const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
        CHECK(cJSON_GetArraySize(arch) == 1 && strcmp(cJSON_GetArrayItem(arch, 0)->valuestring, "BertModel") == 0);
        CHECK(json_num(cfg, "vocab_size") == 100 && json_num(cfg, "hidden_size") == 16 &&
              json_num(cfg, "num_hidden_layers") == 1 && json_num(cfg, "num_attention_heads") == 2 &&
              json_num(cfg, "intermediate_size") == 32 && json_num(cfg, "max_position_embeddings") == 16 &&
              json_num(cfg, "type_vocab_size") == 2 && json_num(cfg, "pad_token_id") == 0);
        CHECK(json_num(cfg, "layer_norm_eps") == 1e-12); /* printed as 1e-12, not 9.99999996e-13 */
        CHECK(json_num(cfg, "hidden_dropout_prob") == 0.1 && json_num(cfg, "attention_probs_dropout_prob") == 0.1);
        CHECK(json_num(cfg, "initializer_range") == 0.02);
        cJSON_Delete(cfg);

        LOAD(mods, "modules.json");
        static const char *types[] = {"sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                                      "sentence_transformers.models.Normalize"};
        static const char *paths[] = {"", "1_Pooling", "2_Normalize"};
        CHECK_EQ_INT(cJSON_GetArraySize(mods), 3);
        for (int i = 0; i < 3 && i < cJSON_GetArraySize(mods); i++) {
            const cJSON *mo = cJSON_GetArrayItem(mods, i);
            char nm[16];
            snprintf(nm, sizeof nm, "%d", i);
            CHECK(json_num(mo, "idx") == i && strcmp(json_str(mo, "name"), nm) == 0);
            CHECK(strcmp(json_str(mo, "path"), paths[i]) == 0 && strcmp(json_str(mo, "type"), types[i]) == 0);
        }
        cJSON_Delete(mods);

        LOAD(pool, "1_Pooling/config.json");
        CHECK(json_num(pool, "word_embedding_dimension") == 16);
        CHECK(json_true(pool, "pooling_mode_cls_token") && json_false(pool, "pooling_mode_mean_tokens"));
        CHECK(json_false(pool, "pooling_mode_max_tokens") && json_false(pool, "pooling_mode_mean_sqrt_len_tokens"));
        CHECK(json_false(pool, "pooling_mode_weightedmean_tokens") && json_false(pool, "pooling_mode_lasttoken"));
        CHECK(cJSON_GetObjectItemCaseSensitive(pool, "include_prompt") == NULL); /* breaks ST < 2.4 */
        cJSON_Delete(pool);

        LOAD(sb, "sentence_bert_config.json");
        CHECK(json_num(sb, "max_seq_length") == 16 && json_false(sb, "do_lower_case"));
        cJSON_Delete(sb);

        LOAD(cst, "config_sentence_transformers.json");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(cst, "__version__");
        CHECK(strlen(json_str(ver, "sentence_transformers")) > 0);
        CHECK(strcmp(json_str(cst, "similarity_fn_name"), "cosine") == 0);
        cJSON_Delete(cst);

        LOAD(tok, "tokenizer_config.json");
        CHECK(strcmp(json_str(tok, "tokenizer_class"), "BertTokenizer") == 0);
        CHECK(json_true(tok, "do_lower_case") && json_num(tok, "model_max_length") == 16);
        CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(tok, "strip_accents")));
        CHECK(strcmp(json_str(tok, "cls_token"), "[CLS]") == 0 && strcmp(json_str(tok, "sep_token"), "[SEP]") == 0 &&
              strcmp(json_str(tok, "unk_token"), "[UNK]") == 0 && strcmp(json_str(tok, "pad_token"), "[PAD]") == 0 &&
              strcmp(json_str(tok, "mask_token"), "[MASK]") == 0);
        cJSON_Delete(tok);

        LOAD(spec, "special_tokens_map.json");
        CHECK(strcmp(json_str(spec, "cls_token"), "[CLS]") == 0 && strcmp(json_str(spec, "mask_token"), "[MASK]") == 0);
        cJSON_Delete(spec);
    }
    p = xasprintf("%s/2_Normalize", out);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK_EQ_INT(count_tmp_leftovers(p), 0);
    free(p);
    {
        p = xasprintf("%s/model.safetensors", out);
        SafeTensors *st = NULL;
        CHECK_OK(safetensors_open(p, &st));
        if (st) {
            CHECK(safetensors_metadata(st, "format") && strcmp(safetensors_metadata(st, "format"), "pt") == 0);
            CHECK_EQ_INT(safetensors_count(st), m->tab.n);
            for (int i = 0; i < safetensors_count(st); i++) CHECK(safetensors_entry(st, i)->dtype == AM_DT_F32);
            CHECK(safetensors_find(st, "encoder.layer.0.attention.self.query.weight") != NULL);
            CHECK(safetensors_find(st, "pooler.dense.weight") != NULL);
        }
        safetensors_close(st);
        free(p);
    }

    /* mean pooling without Normalize: no 2_Normalize, two modules */
    {
        char *out2 = xasprintf("%s/mean", root);
        HfInfo i2 = info;
        i2.pooling = AM_POOL_MEAN;
        i2.normalize = 0;
        i2.strip_accents = 1;
        CHECK_OK(hf_export(out2, m, v, &i2));
        p = xasprintf("%s/2_Normalize", out2);
        CHECK(!io_exists_test(p));
        free(p);
        p = xasprintf("%s/modules.json", out2);
        cJSON *mods = load_json(p);
        free(p);
        CHECK(mods && cJSON_GetArraySize(mods) == 2);
        cJSON_Delete(mods);
        p = xasprintf("%s/1_Pooling/config.json", out2);
        cJSON *pool = load_json(p);
        free(p);
        CHECK(pool && json_true(pool, "pooling_mode_mean_tokens") && json_false(pool, "pooling_mode_cls_token"));
        cJSON_Delete(pool);
        p = xasprintf("%s/tokenizer_config.json", out2);
        cJSON *tok = load_json(p);
        free(p);
        CHECK(tok && json_true(tok, "strip_accents"));
        cJSON_Delete(tok);
        Model *m3 = NULL;
        Vocab *v3 = NULL;
        HfInfo i3;
        CHECK_OK(hf_import(out2, &m3, &v3, &i3));
        CHECK(i3.pooling == AM_POOL_MEAN && i3.normalize == 0 && i3.strip_accents == 1);
        model_delete(m3);
        vocab_delete(v3);
        free(out2);
    }
done:
    model_delete(m);
    vocab_delete(v);
    free(src);
    free(out);
}

TEST(hf_export_refuses_and_leaves_nothing) {
    char *src = xasprintf("%s/bert_tiny", HF_DIR), *root = tmpdir();
    Model *m = NULL;
    Vocab *v = NULL;
    CHECK_OK(hf_import(src, &m, &v, NULL));
    if (!m) return;
    /* a non-empty target is refused and left untouched */
    char *full = xasprintf("%s/full", root), *keep = xasprintf("%s/full/keep.txt", root);
    mkdir(full, 0755);
    write_bytes(keep, "x", 1);
    CHECK_ERR(hf_export(full, m, v, NULL), AM_EEXIST, full, "HINT");
    size_t n;
    char *s = read_bytes(keep, &n);
    CHECK(s && n == 1);
    free(s);
    /* an empty directory is fine (replaced atomically); trailing slashes too */
    char *empty = xasprintf("%s/empty/", root);
    mkdir(empty, 0755);
    CHECK_OK(hf_export(empty, m, v, NULL));
    char *cfgp = xasprintf("%s/empty/config.json", root);
    CHECK(io_exists_test(cfgp));
    free(cfgp);
    /* a vocab without [CLS], or with more tokens than the model's vocab_size */
    char *bad = xasprintf("%s/bad", root);
    CHECK_ERR(hf_export_vocab_text(bad, m, "[PAD]\n[SEP]\n[UNK]\n", 18, NULL), AM_EVOCAB, "[CLS]");
    CHECK(!io_exists_test(bad));
    /* a write failure half-way (file size limit hit while writing model.safetensors):
     * no target directory, no temporary directory left behind */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 20000;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = hf_export(bad, m, v, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    CHECK_ERR(rc, AM_EIO, "model.safetensors");
    CHECK(!io_exists_test(bad));
    CHECK_EQ_INT(count_tmp_leftovers(root), 0);
    free(bad);
    free(empty);
    free(full);
    free(keep);
    free(src);
    model_delete(m);
    vocab_delete(v);
}

/* ================================================================ HF bad inputs */

/* Rewrite dir/model.safetensors as F32 without `drop` and with `reshape` given a new shape. */
static void rewrite_weights(const char *dir, const char *drop, const char *reshape, int nd, const int64_t *shape) {
    char *path = xasprintf("%s/model.safetensors", dir);
    SafeTensors *st = NULL;
    AM_ASSERT(safetensors_open(path, &st) == AM_OK);
    int n = safetensors_count(st), k = 0;
    const char **names = xcalloc((size_t)n, sizeof *names);
    const int64_t **shapes = xcalloc((size_t)n, sizeof *shapes);
    int *ndims = xcalloc((size_t)n, sizeof *ndims);
    float **data = xcalloc((size_t)n, sizeof *data);
    for (int i = 0; i < n; i++) {
        const SafeTensorEntry *e = safetensors_entry(st, i);
        if (drop && strcmp(e->name, drop) == 0) continue;
        names[k] = xstrdup(e->name);
        data[k] = xmalloc(e->numel * sizeof(float) + 4);
        AM_ASSERT(safetensors_read_f32(st, e, data[k], e->numel) == AM_OK);
        int64_t *sh = xmalloc(sizeof(int64_t) * AM_ST_MAX_DIMS);
        memcpy(sh, e->shape, sizeof(int64_t) * AM_ST_MAX_DIMS);
        ndims[k] = e->ndim;
        if (reshape && strcmp(e->name, reshape) == 0) {
            memcpy(sh, shape, sizeof(int64_t) * (size_t)nd);
            ndims[k] = nd;
        }
        shapes[k++] = sh;
    }
    safetensors_close(st);
    AM_ASSERT(safetensors_write(path, k, names, shapes, ndims, (const float *const *)data, "{\"format\":\"pt\"}") == AM_OK);
    for (int i = 0; i < k; i++) {
        free((void *)names[i]);
        free((void *)shapes[i]);
        free(data[i]);
    }
    free(names);
    free(shapes);
    free(ndims);
    free(data);
    free(path);
}

/* hf_import must fail with `code`, leave both outputs NULL, and name every given string. */
#define CHECK_IMPORT_FAILS(dir, code, ...) do { Model *_m = (Model *)1; Vocab *_v = (Vocab *)1; \
        CHECK_ERR(hf_import(dir, &_m, &_v, NULL), code, __VA_ARGS__); \
        CHECK(_m == NULL && _v == NULL); } while (0)

TEST(hf_bad_inputs) {
    char *d = NULL;
#define copy_fixture(name) (free(d), copy_fixture(name))
    /* tensor shape not matching config.json (same element count, transposed) */
    d = copy_fixture("bert_tiny");
    rewrite_weights(d, NULL, "encoder.layer.1.intermediate.dense.weight", 2, (const int64_t[]){32, 64});
    CHECK_IMPORT_FAILS(d, AM_ESHAPE, "model.safetensors", "'encoder.layer.1.intermediate.dense.weight'", "[32, 64]",
                       "[64, 32]", "config.json");
    /* ... and a config.json that disagrees with the weights */
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"intermediate_size\": 64", "\"intermediate_size\": 48"));
    CHECK_IMPORT_FAILS(d, AM_ESHAPE, "model.safetensors", "intermediate.dense.weight", "[64, 32]", "[48, 32]");
    /* missing required tensor (and with the bert. prefix) */
    d = copy_fixture("bert_tiny");
    rewrite_weights(d, "encoder.layer.1.output.dense.bias", NULL, 0, NULL);
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "model.safetensors", "required tensor 'encoder.layer.1.output.dense.bias'");
    d = copy_fixture("bert_mlm_f16");
    rewrite_weights(d, "bert.encoder.layer.0.attention.self.key.weight", NULL, 0, NULL);
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "'bert.encoder.layer.0.attention.self.key.weight'");
    d = copy_fixture("bert_tiny");
    rewrite_weights(d, "embeddings.word_embeddings.weight", NULL, 0, NULL);
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "model.safetensors", "embeddings.word_embeddings.weight");
    /* unsupported dtype of a required tensor: patch F32 -> I32 in the header (same size) */
    d = copy_fixture("bert_tiny");
    rewrite_weights(d, NULL, NULL, 0, NULL);
    CHECK(replace_in(d, "model.safetensors", "\"encoder.layer.0.output.dense.bias\":{\"dtype\":\"F32\"",
                       "\"encoder.layer.0.output.dense.bias\":{\"dtype\":\"I32\""));
    CHECK_IMPORT_FAILS(d, AM_EDTYPE, "model.safetensors", "'encoder.layer.0.output.dense.bias'", "I32");
    /* corrupt safetensors inside a model dir */
    d = copy_fixture("bert_tiny");
    {
        char *p = xasprintf("%s/model.safetensors", d);
        CHECK(truncate(p, 50000) == 0);
        CHECK_IMPORT_FAILS(d, AM_EFORMAT, p, "past end of data");
        free(p);
    }
    /* missing config.json / vocab.txt / weights; a missing directory */
    d = copy_fixture("bert_tiny");
    rm_file(d, "config.json");
    CHECK_IMPORT_FAILS(d, AM_ENOTFOUND, "config.json", "not found");
    d = copy_fixture("bert_tiny");
    rm_file(d, "vocab.txt");
    CHECK_IMPORT_FAILS(d, AM_ENOTFOUND, "vocab.txt", "not found");
    d = copy_fixture("bert_tiny");
    rm_file(d, "model.safetensors");
    CHECK_IMPORT_FAILS(d, AM_ENOTFOUND, "model.safetensors", "not found");
    d = copy_fixture("bert_tiny");
    rm_file(d, "model.safetensors");
    {
        char *p = xasprintf("%s/pytorch_model.bin", d);
        write_bytes(p, "PK\x03\x04", 4);
        free(p);
    }
    CHECK_IMPORT_FAILS(d, AM_ENOTFOUND, "model.safetensors", "pytorch_model.bin", "HINT", "save_file");
    CHECK_IMPORT_FAILS("/nonexistent/amalgam/model", AM_ENOTFOUND, "/nonexistent/amalgam/model");
    /* vocab without [CLS] / [SEP] / [UNK]; a vocab larger than vocab_size */
    static const char *specials[] = {"[CLS]", "[SEP]", "[UNK]"};
    for (int i = 0; i < 3; i++) {
        d = copy_fixture("bert_tiny");
        char *line = xasprintf("%s\n", specials[i]), *repl = xasprintf("[x%d]\n", i);
        CHECK(replace_in(d, "vocab.txt", line, repl));
        CHECK_IMPORT_FAILS(d, AM_EVOCAB, "vocab.txt", specials[i]);
        free(line);
        free(repl);
    }
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "vocab.txt", "##r\n", "##r\n##x\n##y\n"));
    CHECK_IMPORT_FAILS(d, AM_EVOCAB, "vocab.txt", "102 tokens", "vocab_size 100");
    /* config.json: activation, model type, syntax, missing key, bad values */
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"gelu\"", "\"relu\""));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "hidden_act 'relu'", "gelu");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"gelu\"", "\"gelu_new\""));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "gelu_new");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"bert\"", "\"roberta\""));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "model_type 'roberta'");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"absolute\"", "\"relative_key\""));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "relative_key");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"hidden_size\": 32,", "\"hidden_size\": 32"));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "invalid JSON");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"hidden_size\"", "\"hidden_sizes\""));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "\"hidden_size\"", "missing");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"num_attention_heads\": 2", "\"num_attention_heads\": 3"));
    CHECK_IMPORT_FAILS(d, AM_EINVAL, "config.json", "not a multiple");
    d = copy_fixture("bert_tiny");
    CHECK(replace_in(d, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": \"2\""));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "config.json", "num_hidden_layers");
    /* sentence-transformers layout problems */
    d = copy_fixture("st_cls_norm");
    CHECK(replace_in(d, "1_Pooling/config.json", "\"pooling_mode_max_tokens\": false",
                       "\"pooling_mode_max_tokens\": true"));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "1_Pooling/config.json", "pooling_mode_max_tokens", "not supported");
    d = copy_fixture("st_cls_norm");
    CHECK(replace_in(d, "modules.json", "sentence_transformers.models.Normalize",
                       "sentence_transformers.models.Dense"));
    CHECK_IMPORT_FAILS(d, AM_EFORMAT, "modules.json", "sentence_transformers.models.Dense", "HINT");
    d = copy_fixture("st_cls_norm");
    CHECK(replace_in(d, "1_Pooling/config.json", "\"word_embedding_dimension\": 16",
                       "\"word_embedding_dimension\": 32"));
    CHECK_IMPORT_FAILS(d, AM_ESHAPE, "1_Pooling/config.json", "word_embedding_dimension 32");
    d = copy_fixture("st_cls_norm");
    rm_file(d, "1_Pooling/config.json");
    CHECK_IMPORT_FAILS(d, AM_ENOTFOUND, "1_Pooling/config.json");
    free(d);
#undef copy_fixture
}

/* Old sentence-transformers layout: the Transformer module in a subdirectory (0_BERT). */
TEST(hf_import_st_subdir) {
    char *root = tmpdir(), *d = xasprintf("%s/old", root);
    char *cmd = xasprintf("mkdir -p '%s/0_BERT' && cp -r '%s/st_cls_norm/'* '%s/0_BERT/' && mv '%s/0_BERT/modules.json' "
                          "'%s/0_BERT/1_Pooling' '%s/'", d, HF_DIR, d, d, d, d);
    CHECK(system(cmd) == 0);
    free(cmd);
    char *mp = xasprintf("%s/modules.json", d);
    CHECK(file_replace(mp, "\"path\": \"\"", "\"path\": \"0_BERT\""));
    CHECK(file_replace(mp, "sentence_transformers.models.Transformer", "sentence_transformers.models.BERT"));
    free(mp);
    Model *m = NULL;
    Vocab *v = NULL;
    HfInfo info;
    CHECK_OK(hf_import(d, &m, &v, &info));
    CHECK(m && info.is_sentence_transformers && info.pooling == AM_POOL_CLS && info.normalize && info.max_seq_length == 16);
    model_delete(m);
    vocab_delete(v);
    free(d);
}

/* ================================================================ npy */

TEST(npy_roundtrip) {
    char *d = tmpdir(), *path = xasprintf("%s/e.npy", d), *path2 = xasprintf("%s/s.npy", d);
    float x[3 * 5];
    for (int i = 0; i < 15; i++) x[i] = (float)i / 7.0f - 1.0f;
    CHECK_OK(npy_save_f32(path, x, 3, 5));
    size_t n;
    unsigned char *raw = (unsigned char *)read_bytes(path, &n);
    CHECK(raw && memcmp(raw, "\x93NUMPY\x01\x00", 8) == 0);
    size_t hl = raw[8] | (size_t)raw[9] << 8;
    CHECK((10 + hl) % 64 == 0);
    CHECK(raw[10 + hl - 1] == '\n');
    CHECK(n == 10 + hl + 15 * 4);
    char *h = strndup((char *)raw + 10, hl);
    CHECK(strstr(h, "'descr': '<f4'") && strstr(h, "'fortran_order': False") && strstr(h, "'shape': (3, 5)"));
    free(h);
    /* the FILE* writer gives the same bytes */
    FILE *f = fopen(path2, "wb");
    CHECK_OK(npy_write_f32(f, "<test>", x, 3, 5));
    fclose(f);
    size_t n2;
    char *raw2 = read_bytes(path2, &n2);
    CHECK(raw2 && n2 == n && memcmp(raw, raw2, n) == 0);
    free(raw2);
    free(raw);
    float *y = NULL;
    int64_t r, c;
    CHECK_OK(npy_load_f32(path, &y, &r, &c));
    CHECK(r == 3 && c == 5 && y && bits_equal(x, y, 15));
    free(y);
    CHECK_OK(npy_save_f32(path2, x, 0, 384));
    CHECK_OK(npy_load_f32(path2, &y, &r, &c));
    CHECK(r == 0 && c == 384);
    free(y);
    /* numpy itself reads it (when Debian's python3-numpy is installed) */
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0) {
        char *cmd = xasprintf("/usr/bin/python3 -c \"import numpy as np; a = np.load('%s'); "
                              "assert a.dtype == np.float32 and a.shape == (3, 5), (a.dtype, a.shape); "
                              "assert (a.ravel() == (np.arange(15, dtype=np.float32) / np.float32(7) - 1)).all(); "
                              "b = np.load('%s'); assert b.shape == (0, 384)\"", path, path2);
        CHECK(system(cmd) == 0);
        free(cmd);
        /* and we read what numpy writes */
        cmd = xasprintf("/usr/bin/python3 -c \"import numpy as np; np.save('%s', np.arange(6, dtype='<f4').reshape(2, 3))\"",
                        path2);
        CHECK(system(cmd) == 0);
        free(cmd);
        CHECK_OK(npy_load_f32(path2, &y, &r, &c));
        CHECK(r == 2 && c == 3 && y && y[5] == 5.0f);
        free(y);
    } else {
        printf("  (python3-numpy not installed: numpy.load check skipped)\n");
    }
    /* bad files */
    write_bytes(path2, raw2 = xstrdup("not numpy at all"), 16);
    free(raw2);
    CHECK_ERR(npy_load_f32(path2, &y, &r, &c), AM_EFORMAT, path2, "magic");
    raw = (unsigned char *)read_bytes(path, &n);
    write_bytes(path2, raw, n - 4);
    CHECK_ERR(npy_load_f32(path2, &y, &r, &c), AM_EFORMAT, path2, "needs 60");
    char *p = memmem(raw, n, "<f4", 3);
    p[2] = '8';
    write_bytes(path2, raw, n);
    CHECK_ERR(npy_load_f32(path2, &y, &r, &c), AM_EDTYPE, path2, "<f8");
    free(raw);
    CHECK_ERR(npy_load_f32("/nonexistent.npy", &y, &r, &c), AM_ENOTFOUND, "/nonexistent.npy");
    free(path);
    free(path2);
}

int main(void) {
    RUN(st_roundtrip_awkward_shapes);
    RUN(st_half_conversions);
    RUN(st_bad_inputs);
    RUN(st_mutations_do_not_crash);
    RUN(hf_import_fixtures);
    RUN(hf_encoder_parity);
    RUN(hf_mlm_head);
    RUN(hf_export_roundtrip);
    RUN(hf_export_files);
    RUN(hf_export_refuses_and_leaves_nothing);
    RUN(hf_bad_inputs);
    RUN(hf_import_st_subdir);
    RUN(npy_roundtrip);
    cleanup_tmp();
    return test_report();
}
