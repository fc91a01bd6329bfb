/*
 * core/core.h - what every layer of the library uses: error reporting,
 * overflow-checked sizes, file reading and mapping, half-precision
 * conversions.  Not installed; users include only mobileclip.h.
 */
#ifndef MC_CORE_H
#define MC_CORE_H

#include "mobileclip.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* mkdir -p (mode 0755); MC_ERR_IO naming the part that could not be made. */
mc_status mc_make_dirs(const char *path, mc_error *err);

/* Seconds on a monotonic clock (differences only). */
double mc_now_s(void);

/* Atomic replacement of a file: f is an open stream on tmp_path (a temporary
 * name in the same folder as path).  Flushes it, fsyncs it, closes it (always),
 * renames it to path and fsyncs the folder, so that after a crash path holds
 * either its old or its new content.  write_ok = 0 reports an earlier write
 * error: the temporary file is removed and MC_ERR_IO returned. */
mc_status mc_file_commit(FILE *f, const char *tmp_path, const char *path, int write_ok, mc_error *err);
/* fsync of the folder holding path (after a rename or a new file in it). */
int mc_fsync_parent(const char *path);
/* The temporary name for an atomic write of path: "<path>.tmp-<pid>-<k>", in
 * path's folder, unique within the process.  First removes what writers that
 * were killed left of path (mc_remove_stale_temps).  0, or -1 when the name
 * does not fit in cap. */
int mc_temp_name(const char *path, char *tmp, size_t cap);
/* Removes the temporaries of path whose writer is no longer running:
 * "<path>.tmp-<pid>[-...]" and "<path>.part-<pid>-..." of a process <pid>
 * that does not exist.  A live writer's files are left alone.  Returns how
 * many were removed. */
int mc_remove_stale_temps(const char *path);

/* Half-precision conversions. */
float mc_f16_to_f32(uint16_t h);
float mc_bf16_to_f32(uint16_t b);
uint16_t mc_f32_to_f16(float f);
uint16_t mc_f32_to_bf16(float f);   /* round to nearest even */

/* Converts n elements of any float dtype to float32. */
mc_status mc_convert_to_f32(mc_dtype dtype, const void *src, size_t n, float *dst);

#endif /* MC_CORE_H */
