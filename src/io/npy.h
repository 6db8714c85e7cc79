/* npy.h - NumPy .npy files (format version 1.0) of float32 matrices.
 *
 * Layout written: "\x93NUMPY" 0x01 0x00, u16 little-endian header length, then the header
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (rows, cols), }
 * padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes
 * (as numpy.lib.format writes it), then rows*cols little-endian float32 values, row-major.
 */
#ifndef AM_NPY_H
#define AM_NPY_H

#include <stdint.h>
#include <stdio.h>

/* Write a (rows, cols) float32 array to an open stream (e.g. stdout). `what` names the
 * destination in error messages ("<stdout>"). AM_EIO on a failed write. */
int npy_write_f32(FILE *f, const char *what, const float *data, int64_t rows, int64_t cols);
/* Same, to a file path, atomically (tmp + fsync + rename). */
int npy_save_f32(const char *path, const float *data, int64_t rows, int64_t cols);

/* Read a '<f4' C-order array of 1 or 2 dimensions. A 1-D array (n,) gives rows = n,
 * cols = 1. *data is malloc'd (free()). AM_EFORMAT naming the file and the problem,
 * AM_EDTYPE for another descr, AM_ENOTFOUND / AM_EIO. */
int npy_load_f32(const char *path, float **data /* OUT: */, int64_t *rows /* OUT: */, int64_t *cols /* OUT: */);

#endif
