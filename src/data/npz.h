/*
 * data/npz.h - float arrays from a sample's embedding member: NumPy .npz (a zip
 * of .npy files, stored or deflated) and .pth.gz (gzip of a torch.save
 * dict of tensors).  Every array comes back as float32 in C order, with the
 * dtype it was stored in.
 *
 * Untrusted input: zip offsets, sizes and CRCs are checked; a deflated member
 * must inflate to exactly its declared size, and declared sizes are bounded
 * by max_bytes (zip bombs refused); .npy headers are parsed strictly (the
 * three keys descr / fortran_order / shape, nothing else); gzip output is
 * bounded by max_bytes.  Errors are MC_ERR_FORMAT (malformed),
 * MC_ERR_UNSUPPORTED (valid but not handled: big-endian, Fortran order,
 * integer dtypes, encrypted or other compression methods) or MC_ERR_NOMEM
 * (over max_bytes), with messages "LABEL: MEMBER: what".
 */
#ifndef MC_DATA_NPZ_H
#define MC_DATA_NPZ_H

#include "core/core.h"
#include "io/safetensors.h"

/* One array.  data: numel float32 values, malloc'd, owned by the set. */
typedef struct mc_array {
    char *name;               /* npz: member name without ".npy"; pth: the dict key */
    mc_dtype stored;          /* MC_DTYPE_F32, F16, BF16 or F64 as stored */
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    size_t numel;
    float *data;
} mc_array;

typedef struct mc_array_set {
    mc_array *arrays;
    size_t n;
} mc_array_set;

void mc_array_set_free(mc_array_set *set);   /* frees the contents; set itself may be on the stack */
const mc_array *mc_array_set_find(const mc_array_set *set, const char *name);

/* Default bound on the decompressed bytes of one member / one .pth.gz (1 GiB). */
#define MC_ARRAY_MAX_BYTES ((size_t)1 << 30)

/* Parses one .npy file held in data[0..len) (versions 1, 2, 3; descr <f4,
 * <f2 or <f8; C order; the data must be exactly prod(shape) elements).
 * Fills out (name set to NULL; the caller names it).  label names it in errors. */
mc_status mc_npy_parse_memory(const void *data, size_t len, const char *label, mc_array *out,
                              mc_error *err);

/* Reads every "*.npy" member of a .npz held in data[0..len) into out (other
 * members are ignored).  max_bytes (0: MC_ARRAY_MAX_BYTES) bounds each
 * member's uncompressed size and their sum. */
mc_status mc_npz_read_memory(const void *data, size_t len, const char *label, size_t max_bytes,
                             mc_array_set *out, mc_error *err);

/* Decompresses a gzip stream (concatenated members allowed, trailing zero
 * bytes ignored) into a malloc'd buffer of at most max_bytes (0: default). */
mc_status mc_gunzip_memory(const void *data, size_t len, const char *label, size_t max_bytes,
                           uint8_t **out, size_t *out_len, mc_error *err);

/* Reads a .pth.gz held in data[0..len): gunzip, then the torch.save zip;
 * every floating-point tensor (f32, f16, bf16, f64) becomes an array. */
mc_status mc_pthgz_read_memory(const void *data, size_t len, const char *label, size_t max_bytes,
                               mc_array_set *out, mc_error *err);

/* ---------------------------------------------------------------- writing */

/* A .npz as numpy.savez writes it (a zip of stored, uncompressed NAME.npy
 * members, version-1.0 headers, CRC-32 filled in) of float32 (or float16,
 * float64) arrays entries[0..n), into *out (malloc'd, *out_len bytes). */
mc_status mc_npz_write_memory(const mc_st_entry *entries, size_t n, uint8_t **out, size_t *out_len,
                              mc_error *err);

/* gzip (RFC 1952, one member, no name, mtime 0) of data[0..len) into *out. */
mc_status mc_gzip_memory(const void *data, size_t len, int level, uint8_t **out, size_t *out_len, mc_error *err);

/* A .pth.gz: gzip of the torch.save archive of entries[0..n) (any dtype the
 * writer knows; the reinforced shards store bfloat16), into *out. */
mc_status mc_pthgz_write_memory(const mc_st_entry *entries, size_t n, uint8_t **out, size_t *out_len,
                                mc_error *err);

#endif /* MC_DATA_NPZ_H */
