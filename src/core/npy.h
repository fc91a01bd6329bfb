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

#endif /* MC_CORE_NPY_H */
