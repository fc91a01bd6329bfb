/*
 * core/npy.h - writing any plain little-endian array as .npy (the float32
 * reader and writer are in mobileclip.h).
 */
#ifndef MC_CORE_NPY_H
#define MC_CORE_NPY_H

#include "core/core.h"

/* Writes data (prod(shape) elements of elem_size bytes, C order) with the
 * NumPy dtype descr ("<f4", "|u1", ...), atomically: temporary file, fsync,
 * rename. */
mc_status mc_npy_write(const char *path, const char *descr, size_t elem_size, const void *data, int ndim,
                       const int64_t *shape, mc_error *err);

/* Bytes an .npy header may take (magic, version, length, padded dict). */
#define MC_NPY_HEADER_MAX 600

/* The version-1.0 header of such an array (the magic through the padded,
 * newline-ended dict, a multiple of 64 bytes as NumPy writes it) into out;
 * its length, or 0 for a bad descr / shape or too small a buffer.  *count
 * (may be NULL) receives the element count. */
int mc_npy_header(uint8_t *out, size_t cap, const char *descr, int ndim, const int64_t *shape, size_t *count);

#endif /* MC_CORE_NPY_H */
