/* safetensors.h - read and write Hugging Face .safetensors files.
 *
 * File layout (https://github.com/huggingface/safetensors):
 *   u64 N (little-endian) | N bytes of UTF-8 JSON header | data section
 * The header is one JSON object: tensor name -> {"dtype": "F32", "shape": [a, b],
 * "data_offsets": [begin, end]} with offsets relative to the start of the data section,
 * plus an optional "__metadata__" object of string -> string.
 *
 * The reader validates everything before any tensor is touched: file size, header length,
 * JSON syntax, every entry's fields, offsets inside the data section, byte size equal to
 * numel x dtype size, and no two tensors sharing bytes. Every error names the file and the
 * problem. Tensors of any safetensors dtype are listed; only F32, F16, BF16 and F64 can be
 * read as float32 (F16/BF16 exactly, F64 rounded to nearest); reading any other dtype is
 * AM_EDTYPE naming the tensor and the dtype.
 *
 * The writer produces F32 tensors, pads the header with spaces to a multiple of 8 bytes as
 * the safetensors library does, and writes atomically (tmp file + fsync + rename).
 *
 * Assumes a little-endian host (checked at compile time).
 */
#ifndef AM_SAFETENSORS_H
#define AM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define AM_ST_MAX_DIMS 8
#define AM_ST_MAX_HEADER (100u * 1000u * 1000u) /* the safetensors library's own limit */

typedef enum {
    AM_DT_BOOL, AM_DT_U8, AM_DT_I8, AM_DT_F8_E5M2, AM_DT_F8_E4M3, AM_DT_I16, AM_DT_U16,
    AM_DT_F16, AM_DT_BF16, AM_DT_I32, AM_DT_U32, AM_DT_F32, AM_DT_F64, AM_DT_I64, AM_DT_U64,
} AmDtype;

typedef struct {
    const char *name;            /* borrowed: valid until safetensors_close */
    AmDtype dtype;
    int ndim;                    /* 0 = scalar */
    int64_t shape[AM_ST_MAX_DIMS];
    size_t numel;                /* product of shape (1 for a scalar) */
    uint64_t begin, end;         /* byte range inside the data section */
} SafeTensorEntry;

typedef struct SafeTensors SafeTensors; /* opaque; holds the mapped file */

const char *safetensors_dtype_name(AmDtype dt); /* "F32", ... */

/* Map and validate `path`. On failure *out is NULL and the code is AM_EIO / AM_ENOTFOUND
 * (cannot open), AM_EFORMAT (malformed), AM_EDTYPE (a dtype string safetensors does not
 * define) or AM_ENOMEM. */
int safetensors_open(const char *path, SafeTensors **out /* OUT: */);
void safetensors_close(SafeTensors *st); /* NULL is fine */

int safetensors_count(const SafeTensors *st);
/* Entries sorted by begin offset (file order). Borrowed until close. */
const SafeTensorEntry *safetensors_entry(const SafeTensors *st, int i);
const SafeTensorEntry *safetensors_find(const SafeTensors *st, const char *name); /* NULL if absent */
/* "__metadata__" value for key, or NULL. Borrowed until close. */
const char *safetensors_metadata(const SafeTensors *st, const char *key);

/* Convert an entry to float32 into dst. n must equal e->numel (AM_ESHAPE otherwise).
 * AM_EDTYPE for dtypes other than F32/F16/BF16/F64. */
int safetensors_read_f32(const SafeTensors *st, const SafeTensorEntry *e, float *dst /* OUT: n */, size_t n);

/* Write n F32 tensors: names[i] with shapes[i][0..ndims[i]-1] and data[i] holding the
 * product of the shape floats. metadata_json is NULL or a JSON object of string values
 * (stored as "__metadata__"). Names must be unique and must not be "__metadata__".
 * Atomic: either the whole file appears at `path` or nothing changes. */
int safetensors_write(const char *path, int n, const char *const names[], const int64_t *const shapes[],
                      const int ndims[], const float *const data[], const char *metadata_json);

/* Exact scalar conversions (exposed for tests). */
float am_f16_to_f32(uint16_t h);
float am_bf16_to_f32(uint16_t b);
uint16_t am_f32_to_f16(float f);  /* round to nearest even; used by tests/tools */
uint16_t am_f32_to_bf16(float f); /* round to nearest even */

#endif
