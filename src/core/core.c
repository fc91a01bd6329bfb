/*
 * core/core.c - status strings, error records, overflow-checked allocation,
 * file mapping and half-precision conversion shared by the whole library.
 */
#include "core/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const status_strings[MC_STATUS_COUNT] = {
    [MC_OK] = "ok",
    [MC_ERR_INVALID_ARG] = "invalid argument",
    [MC_ERR_IO] = "I/O error",
    [MC_ERR_FORMAT] = "malformed file",
    [MC_ERR_UNSUPPORTED] = "unsupported",
    [MC_ERR_MISSING_TENSOR] = "missing tensor",
    [MC_ERR_UNEXPECTED_TENSOR] = "unexpected tensor",
    [MC_ERR_SHAPE] = "wrong tensor shape or dtype",
    [MC_ERR_NOMEM] = "out of memory",
    [MC_ERR_IMAGE] = "image decoding failed",
    [MC_ERR_TOKENIZER] = "tokenizer error",
    [MC_ERR_CONFIG] = "invalid model configuration",
    [MC_ERR_NETWORK] = "network error",
    [MC_ERR_CHECKSUM] = "checksum mismatch",
    [MC_ERR_NOT_FOUND] = "not found",
    [MC_ERR_INTERNAL] = "internal error",
};

const char *mc_status_string(mc_status status) {
    if ((unsigned)status >= MC_STATUS_COUNT || !status_strings[status]) return "unknown status";
    return status_strings[status];
}

const char *mc_version(void) { return MC_VERSION_STRING; }

void mc_error_clear(mc_error *err) {
    if (!err) return;
    err->status = MC_OK;
    err->message[0] = 0;
}

mc_status mc_failv(mc_error *err, mc_status status, const char *fmt, va_list ap) {
    if (err) {
        err->status = status;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    }
    return status;
}

mc_status mc_fail(mc_error *err, mc_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mc_failv(err, status, fmt, ap);
    va_end(ap);
    return status;
}

void mc_error_prefix(mc_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[MC_ERROR_MESSAGE_MAX];
    memcpy(old, err->message, sizeof old);
    size_t pl = strlen(prefix);
    if (pl > sizeof err->message - 3) pl = sizeof err->message - 3;
    memcpy(err->message, prefix, pl);
    memcpy(err->message + pl, ": ", 2);
    size_t room = sizeof err->message - pl - 3, ol = strlen(old);
    if (ol > room) ol = room;
    memcpy(err->message + pl + 2, old, ol);
    err->message[pl + 2 + ol] = 0;
}

void *mc_malloc_array(size_t n, size_t size) {
    size_t total;
    if (!mc_size_mul(n, size, &total)) return NULL;
    return malloc(total ? total : 1);
}

void *mc_calloc_array(size_t n, size_t size) {
    size_t total;
    if (!mc_size_mul(n, size, &total)) return NULL;
    return calloc(total ? n : 1, total ? size : 1);
}

mc_status mc_file_map_open(const char *path, mc_file_map *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return mc_fail(err, MC_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return mc_fail(err, MC_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) {
        close(fd);
        out->data = (const uint8_t *)"";
        out->size = 0;
        out->mapped = 0;
        return MC_OK;
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return mc_fail(err, MC_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
    out->data = p;
    out->size = size;
    out->mapped = 1;
    return MC_OK;
}

void mc_file_map_close(mc_file_map *map) {
    if (!map) return;
    if (map->mapped && map->data) munmap((void *)map->data, map->size);
    memset(map, 0, sizeof *map);
}

mc_status mc_file_read_all(const char *path, size_t max_size, char **out, size_t *len,
                           mc_error *err) {
    *out = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) { fclose(f); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); }
    for (;;) {
        if (n == cap) {
            if (cap >= max_size) {
                free(buf); fclose(f);
                return mc_fail(err, MC_ERR_FORMAT, "%s: larger than %zu bytes", path, max_size);
            }
            size_t nc = cap * 2 > max_size ? max_size : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) { free(buf); fclose(f); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return mc_fail(err, MC_ERR_IO, "%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return MC_OK;
}

int mc_path_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int mc_path_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

float mc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float mc_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t mc_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x40); /* NaN */
    uint32_t rounding = 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + rounding) >> 16);
}

uint16_t mc_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7FFFFFFFu;
    if (absx > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);          /* NaN */
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);         /* overflow -> inf */
    if (absx < 0x38800000u) {                                            /* subnormal or zero */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t e = absx >> 23;
        uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t e = (absx >> 23) - 112;
    uint32_t m = absx & 0x7FFFFFu;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

mc_status mc_convert_to_f32(mc_dtype dtype, const void *src, size_t n, float *dst) {
    const uint8_t *s = src;
    switch (dtype) {
    case MC_DTYPE_F32: memcpy(dst, src, n * 4); return MC_OK;
    case MC_DTYPE_F16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = mc_f16_to_f32(h); }
        return MC_OK;
    case MC_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = mc_bf16_to_f32(h); }
        return MC_OK;
    case MC_DTYPE_F64:
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, s + 8 * i, 8); dst[i] = (float)d; }
        return MC_OK;
    default: return MC_ERR_SHAPE;
    }
}

double mc_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int mc_fsync_parent(const char *path) {
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) return -1;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) slash[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The pid at s ("<digits>" followed by '-' or the end), or 0. */
static long temp_pid(const char *s) {
    long pid = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9' && pid < 1L << 40) pid = pid * 10 + (*p++ - '0');
    return p > s && (*p == '-' || *p == 0) ? pid : 0;
}

int mc_remove_stale_temps(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    size_t bl = strlen(base);
    DIR *d = opendir(dir);
    if (!d || bl == 0) {
        if (d) closedir(d);
        return 0;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *name = de->d_name;
        if (strncmp(name, base, bl)) continue;
        long pid = 0;
        if (!strncmp(name + bl, ".tmp-", 5)) pid = temp_pid(name + bl + 5);
        else if (!strncmp(name + bl, ".part-", 6)) pid = temp_pid(name + bl + 6);
        if (pid <= 0 || pid == (long)getpid() || pid > 0x7fffffffL) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;   /* running (or not ours to ask) */
        char full[8192];
        int len = snprintf(full, sizeof full, "%s/%s", dir, name);
        if (len > 0 && (size_t)len < sizeof full && unlink(full) == 0) n++;
    }
    closedir(d);
    return n;
}

int mc_temp_name(const char *path, char *tmp, size_t cap) {
    static unsigned counter;
    mc_remove_stale_temps(path);
    unsigned k = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    int len = snprintf(tmp, cap, "%s.tmp-%ld-%u", path, (long)getpid(), k);
    return len < 0 || (size_t)len >= cap ? -1 : 0;
}

mc_status mc_file_commit(FILE *f, const char *tmp_path, const char *path, int write_ok, mc_error *err) {
    int ok = write_ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        remove(tmp_path);
        return mc_fail(err, MC_ERR_IO, "%s: write failed (%s)", path, strerror(errno ? errno : EIO));
    }
    if (rename(tmp_path, path) != 0) {
        int e = errno;
        remove(tmp_path);
        return mc_fail(err, MC_ERR_IO, "%s: cannot rename %s into place (%s)", path, tmp_path, strerror(e));
    }
    mc_fsync_parent(path);
    return MC_OK;
}

mc_status mc_make_dirs(const char *path, mc_error *err) {
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: bad folder path", path);
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != 0) continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return mc_fail(err, MC_ERR_IO, "%s: cannot create folder: %s", tmp, strerror(errno));
        tmp[i] = c;
    }
    if (!mc_path_is_dir(path)) return mc_fail(err, MC_ERR_IO, "%s: not a folder", path);
    return MC_OK;
}
