/*
 * core/npy.c - a small reader and writer of NumPy .npy files (version 1.0/2.0,
 * float32 or float64, little-endian, C order; any plain dtype written).
 */
#include "core/npy.h"

#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

int mc_npy_header(uint8_t *out, size_t cap, const char *descr, int ndim, const int64_t *shape, size_t *count) {
    if (ndim < 0 || ndim > MC_MAX_DIMS || !descr || strlen(descr) > 16) return 0;
    char hdr[512];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t c = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !mc_size_mul(c, (size_t)shape[i], &c)) return 0;
        n += snprintf(hdr + n, sizeof hdr - (size_t)n, "%lld%s", (long long)shape[i],
                      (ndim == 1 || i < ndim - 1) ? "," : "");
        if (i < ndim - 1) n += snprintf(hdr + n, sizeof hdr - (size_t)n, " ");
    }
    n += snprintf(hdr + n, sizeof hdr - (size_t)n, "), }");
    /* pad so that magic(6)+version(2)+len(2)+header is a multiple of 64, ending in '\n' */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    for (size_t i = 0; i < pad; i++) hdr[n++] = ' ';
    hdr[n++] = '\n';
    if ((size_t)n + 10 > cap) return 0;
    const uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(n & 0xFF), (uint8_t)(n >> 8)};
    memcpy(out, pre, 10);
    memcpy(out + 10, hdr, (size_t)n);
    if (count) *count = c;
    return n + 10;
}

mc_status mc_npy_write(const char *path, const char *descr, size_t elem_size, const void *data, int ndim,
                       const int64_t *shape, mc_error *err) {
    uint8_t hdr[MC_NPY_HEADER_MAX];
    size_t count = 0;
    int n = mc_npy_header(hdr, sizeof hdr, descr, ndim, shape, &count);
    if (n <= 0) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: bad dtype or shape for .npy", path);
    char tmp[4096];
    FILE *f = mc_temp_name(path, tmp, sizeof tmp) == 0 ? fopen(tmp, "wb") : NULL;
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot create", path);
    int ok = fwrite(hdr, 1, (size_t)n, f) == (size_t)n && fwrite(data, elem_size, count, f) == count;
    return mc_file_commit(f, tmp, path, ok, err);
}

mc_status mc_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                           mc_error *err) {
    return mc_npy_write(path, "<f4", sizeof(float), data, ndim, shape, err);
}

mc_status mc_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[MC_MAX_DIMS],
                          mc_error *err) {
    *data = NULL;
    *ndim = 0;
    mc_file_map m;
    mc_status st = mc_file_map_open(path, &m, err);
    if (st != MC_OK) return st;
    const uint8_t *d = m.data;
    size_t hl, off;
    if (m.size < 10 || memcmp(d, "\x93NUMPY", 6) != 0) { st = MC_ERR_FORMAT; goto bad; }
    if (d[6] == 1) { hl = (size_t)d[8] | ((size_t)d[9] << 8); off = 10; }
    else if (d[6] == 2 || d[6] == 3) {
        if (m.size < 12) { st = MC_ERR_FORMAT; goto bad; }
        hl = (size_t)d[8] | ((size_t)d[9] << 8) | ((size_t)d[10] << 16) | ((size_t)d[11] << 24);
        off = 12;
    } else { st = MC_ERR_FORMAT; goto bad; }
    if (hl > m.size - off || hl > 65536) { st = MC_ERR_FORMAT; goto bad; }
    char hdr[65537];
    memcpy(hdr, d + off, hl);
    hdr[hl] = 0;
    int f64;
    if (strstr(hdr, "'<f4'")) f64 = 0;
    else if (strstr(hdr, "'<f8'")) f64 = 1;
    else { mc_file_map_close(&m); return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: only float32/float64 .npy", path); }
    if (strstr(hdr, "'fortran_order': True")) { mc_file_map_close(&m); return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: Fortran order", path); }
    char *sp = strstr(hdr, "'shape':");
    char *lp = sp ? strchr(sp, '(') : NULL;
    if (!lp) { st = MC_ERR_FORMAT; goto bad; }
    lp++;
    size_t count = 1;
    int nd = 0;
    while (*lp && *lp != ')') {
        while (*lp == ' ' || *lp == ',') lp++;
        if (*lp == ')') break;
        char *end;
        long long v = strtoll(lp, &end, 10);
        if (end == lp || v < 0 || nd >= MC_MAX_DIMS || !mc_size_mul(count, (size_t)v, &count)) { st = MC_ERR_FORMAT; goto bad; }
        shape[nd++] = v;
        lp = end;
    }
    size_t es = f64 ? 8 : 4, need;
    off += hl;
    if (!mc_size_mul(count, es, &need) || need > m.size - off) { st = MC_ERR_FORMAT; goto bad; }
    float *out = mc_malloc_array(count, sizeof(float));
    if (!out) { mc_file_map_close(&m); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); }
    mc_convert_to_f32(f64 ? MC_DTYPE_F64 : MC_DTYPE_F32, d + off, count, out);
    mc_file_map_close(&m);
    *data = out;
    *ndim = nd;
    return MC_OK;
bad:
    mc_file_map_close(&m);
    return mc_fail(err, st, "%s: not a valid .npy file", path);
}
