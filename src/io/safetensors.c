/*
 * io/safetensors.c - the safetensors reader (header JSON, dtype and
 * offset checks, non-overlapping ranges, memory-mapped data) and writer.
 */
#include "io/safetensors.h"
#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MC_ST_MAX_HEADER (100u * 1024u * 1024u) /* safetensors' own limit */

static int st_dtype(const char *s, mc_dtype *out) {
    for (int i = 0; i < MC_DTYPE_COUNT; i++)
        if (!strcmp(s, mc_dtype_name((mc_dtype)i))) { *out = (mc_dtype)i; return 1; }
    return 0;
}

static int range_cmp(const void *a, const void *b) {
    const mc_tensor_info *x = *(const mc_tensor_info *const *)a, *y = *(const mc_tensor_info *const *)b;
    const uint8_t *p = x->data, *q = y->data;
    return p < q ? -1 : p > q ? 1 : 0;
}

/* The format forbids tensors whose bytes overlap. */
static mc_status st_check_overlap(mc_checkpoint *ckpt, mc_error *err) {
    if (ckpt->n_tensors < 2) return MC_OK;
    const mc_tensor_info **v = mc_malloc_array(ckpt->n_tensors, sizeof *v);
    if (!v) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", ckpt->path);
    size_t n = 0;
    for (size_t i = 0; i < ckpt->n_tensors; i++)
        if (ckpt->tensors[i].nbytes) v[n++] = &ckpt->tensors[i];
    qsort(v, n, sizeof *v, range_cmp);
    mc_status st = MC_OK;
    for (size_t i = 1; i < n && st == MC_OK; i++)
        if ((const uint8_t *)v[i - 1]->data + v[i - 1]->nbytes > (const uint8_t *)v[i]->data)
            st = mc_fail(err, MC_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", ckpt->path,
                         v[i - 1]->name, v[i]->name);
    free(v);
    return st;
}

mc_status mc_safetensors_parse(mc_checkpoint *ckpt, mc_error *err) {
    const uint8_t *d = ckpt->map.data;
    size_t size = ckpt->map.size;
    const char *path = ckpt->path;
    if (size < 8) return mc_fail(err, MC_ERR_FORMAT, "%s: truncated safetensors header", path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | d[i];
    if (hlen > MC_ST_MAX_HEADER || hlen > size - 8)
        return mc_fail(err, MC_ERR_FORMAT, "%s: safetensors header length %llu exceeds the file (%zu bytes)",
                       path, (unsigned long long)hlen, size);
    mc_json *root = NULL;
    mc_status st = mc_json_parse((const char *)d + 8, (size_t)hlen, &root, err);
    if (st != MC_OK) { mc_error_prefix(err, "%s: safetensors header", path); return st; }
    if (root->type != MC_JSON_OBJECT) {
        mc_json_free(root);
        return mc_fail(err, MC_ERR_FORMAT, "%s: safetensors header is not an object", path);
    }
    const uint8_t *base = d + 8 + hlen;
    size_t data_len = size - 8 - (size_t)hlen;
    for (size_t i = 0; i < root->len && st == MC_OK; i++) {
        const char *name = root->keys[i];
        const mc_json *v = &root->items[i];
        if (!strcmp(name, "__metadata__")) {
            if (v->type != MC_JSON_OBJECT) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            ckpt->meta = calloc(v->len ? v->len : 1, sizeof *ckpt->meta);
            if (!ckpt->meta) { st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); break; }
            for (size_t j = 0; j < v->len; j++) {
                if (v->items[j].type != MC_JSON_STRING) {
                    st = mc_fail(err, MC_ERR_FORMAT, "%s: metadata '%s' is not a string", path, v->keys[j]);
                    break;
                }
                ckpt->meta[j].key = strdup(v->keys[j]);
                ckpt->meta[j].value = strdup(v->items[j].string);
                ckpt->n_meta = j + 1;
                if (!ckpt->meta[j].key || !ckpt->meta[j].value) {
                    st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
            }
            continue;
        }
        const mc_json *jd = mc_json_get(v, "dtype");
        const mc_json *js = mc_json_get(v, "shape");
        const mc_json *jo = mc_json_get(v, "data_offsets");
        mc_dtype dtype;
        if (!jd || jd->type != MC_JSON_STRING || !st_dtype(jd->string, &dtype)) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has a missing or unsupported dtype (%s)",
                         path, name, jd && jd->type == MC_JSON_STRING ? jd->string : "none");
            break;
        }
        if (!js || js->type != MC_JSON_ARRAY || js->len > MC_MAX_DIMS) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has a missing or invalid shape", path, name);
            break;
        }
        int64_t shape[MC_MAX_DIMS];
        for (size_t k = 0; k < js->len; k++) {
            double x = mc_json_number(&js->items[k], -1);
            if (!(x >= 0 && x <= 9.0e15) || x != (double)(int64_t)x) {
                st = mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has an invalid dimension", path, name);
                break;
            }
            shape[k] = (int64_t)x;
        }
        if (st != MC_OK) break;
        if (!jo || jo->type != MC_JSON_ARRAY || jo->len != 2) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has invalid data_offsets", path, name);
            break;
        }
        double b = mc_json_number(&jo->items[0], -1), e = mc_json_number(&jo->items[1], -1);
        if (!(b >= 0 && e >= b && e <= (double)data_len) || b != (double)(uint64_t)b ||
            e != (double)(uint64_t)e) {
            st = mc_fail(err, MC_ERR_FORMAT,
                         "%s: tensor '%s' data_offsets [%.0f, %.0f] lie outside the data (%zu bytes)",
                         path, name, b, e, data_len);
            break;
        }
        st = mc_checkpoint_add(ckpt, name, dtype, (int)js->len, shape, base + (size_t)b,
                               (size_t)e - (size_t)b, err);
    }
    mc_json_free(root);
    if (st == MC_OK) st = st_check_overlap(ckpt, err);
    return st;
}

mc_status mc_safetensors_write(const char *path, const mc_st_entry *entries, size_t n,
                               const mc_meta_kv *meta, size_t n_meta, mc_error *err) {
    /* header first into a memory stream, then pad to 8 bytes as the format suggests */
    char *hbuf = NULL;
    size_t hsize = 0;
    FILE *h = open_memstream(&hbuf, &hsize);
    if (!h) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    fputc('{', h);
    int first = 1;
    if (n_meta) {
        fputs("\"__metadata__\":{", h);
        for (size_t i = 0; i < n_meta; i++) {
            if (i) fputc(',', h);
            mc_json_write_str(h, meta[i].key);
            fputc(':', h);
            mc_json_write_str(h, meta[i].value);
        }
        fputc('}', h);
        first = 0;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nb = mc_dtype_size(entries[i].dtype);
        for (int k = 0; k < entries[i].ndim; k++) nb *= (size_t)entries[i].shape[k];
        if (!first) fputc(',', h);
        first = 0;
        mc_json_write_str(h, entries[i].name);
        fprintf(h, ":{\"dtype\":\"%s\",\"shape\":[", mc_dtype_name(entries[i].dtype));
        for (int k = 0; k < entries[i].ndim; k++)
            fprintf(h, "%s%lld", k ? "," : "", (long long)entries[i].shape[k]);
        fprintf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    fputc('}', h);
    fclose(h);
    while (hsize % 8) { /* pad with spaces */
        char *nb = realloc(hbuf, hsize + 1);
        if (!nb) { free(hbuf); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); }
        hbuf = nb;
        hbuf[hsize++] = ' ';
    }
    char tmp[4096];
    FILE *f = mc_temp_name(path, tmp, sizeof tmp) == 0 ? fopen(tmp, "wb") : NULL;
    if (!f) { free(hbuf); return mc_fail(err, MC_ERR_IO, "%s: cannot create", tmp); }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hsize >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(hbuf, 1, hsize, f) == hsize;
    free(hbuf);
    for (size_t i = 0; ok && i < n; i++) {
        size_t nb = mc_dtype_size(entries[i].dtype);
        for (int k = 0; k < entries[i].ndim; k++) nb *= (size_t)entries[i].shape[k];
        ok = fwrite(entries[i].data, 1, nb, f) == nb;
    }
    return mc_file_commit(f, tmp, path, ok, err);
}
