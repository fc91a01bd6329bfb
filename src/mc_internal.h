/*
 * mc_internal.h - helpers shared by the library's source files: error
 * reporting, overflow-checked sizes, file mapping, checkpoint internals.
 * Not installed; users include only mobileclip.h.
 */
#ifndef MC_INTERNAL_H
#define MC_INTERNAL_H

#include "mobileclip.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define MC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MC_UNUSED __attribute__((unused))
#else
#define MC_PRINTF(a, b)
#define MC_UNUSED
#endif

/* Sets err (when non-NULL) and returns status, so callers can write
 * `return mc_fail(err, MC_ERR_IO, "%s: cannot open", path);`. */
mc_status mc_fail(mc_error *err, mc_status status, const char *fmt, ...) MC_PRINTF(3, 4);
mc_status mc_failv(mc_error *err, mc_status status, const char *fmt, va_list ap);
/* Prefixes the existing message of err with "prefix: ". */
void mc_error_prefix(mc_error *err, const char *fmt, ...) MC_PRINTF(2, 3);

/* Overflow-checked size arithmetic: return false on overflow. */
static inline bool mc_size_mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool mc_size_add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
/* malloc(n * size) with overflow check; NULL on overflow or failure. */
void *mc_malloc_array(size_t n, size_t size);
void *mc_calloc_array(size_t n, size_t size);

/* A whole file read into memory or mapped read-only. */
typedef struct mc_file_map {
    const uint8_t *data;
    size_t size;
    int mapped;     /* 1: munmap on close, 0: free */
} mc_file_map;

mc_status mc_file_map_open(const char *path, mc_file_map *out, mc_error *err);
void mc_file_map_close(mc_file_map *map);
/* Reads a whole file (up to max_size bytes) into a malloc'd, NUL-terminated buffer. */
mc_status mc_file_read_all(const char *path, size_t max_size, char **out, size_t *len,
                           mc_error *err);

/* 1 when path names an existing regular file / folder. */
int mc_path_is_file(const char *path);
int mc_path_is_dir(const char *path);

/* Half-precision conversions. */
float mc_f16_to_f32(uint16_t h);
float mc_bf16_to_f32(uint16_t b);
uint16_t mc_f32_to_f16(float f);
uint16_t mc_f32_to_bf16(float f);   /* round to nearest even */

/* Converts n elements of any float dtype to float32. */
mc_status mc_convert_to_f32(mc_dtype dtype, const void *src, size_t n, float *dst);

/* ---- checkpoint internals (src/checkpoint.c, zip/pickle/safetensors readers) ---- */

typedef struct mc_meta_kv {
    char *key;
    char *value;
} mc_meta_kv;

struct mc_checkpoint {
    char *path;
    mc_file_format format;
    mc_file_map map;          /* the file's bytes */
    mc_tensor_info *tensors;  /* names and copies owned by the checkpoint */
    size_t n_tensors;
    size_t cap_tensors;
    void **owned;             /* buffers to free (names, de-strided copies) */
    size_t n_owned;
    size_t cap_owned;
    mc_meta_kv *meta;
    size_t n_meta;
};

/* Adds a tensor (name copied); data must stay valid while ckpt is open. */
mc_status mc_checkpoint_add(mc_checkpoint *ckpt, const char *name, mc_dtype dtype, int ndim,
                            const int64_t *shape, const void *data, size_t nbytes, mc_error *err);
/* Records a malloc'd buffer that the checkpoint frees on close. */
mc_status mc_checkpoint_own(mc_checkpoint *ckpt, void *buf, mc_error *err);

mc_status mc_safetensors_parse(mc_checkpoint *ckpt, mc_error *err);
mc_status mc_torchzip_parse(mc_checkpoint *ckpt, mc_error *err);

/* Opens a checkpoint (torch.save zip or safetensors) held in memory, e.g. a
 * decompressed .pth.gz.  The bytes are copied; name labels error messages
 * (NULL: "<memory>").  (src/torchzip.c) */
mc_status mc_checkpoint_open_memory(const void *data, size_t len, const char *name,
                                    mc_checkpoint **out, mc_error *err);

/* safetensors writer: tensors given as name/dtype/shape/data. */
typedef struct mc_st_entry {
    const char *name;
    mc_dtype dtype;
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    const void *data;
} mc_st_entry;
mc_status mc_safetensors_write(const char *path, const mc_st_entry *entries, size_t n,
                               const mc_meta_kv *meta, size_t n_meta, mc_error *err);

#endif /* MC_INTERNAL_H */
