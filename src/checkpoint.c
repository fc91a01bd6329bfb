/*
 * checkpoint.c - the mc_checkpoint object: opening a file, deciding its
 * format by content, the tensor table, and the safetensors reader and
 * writer.  The torch.save (zip + pickle) reader lives in torchzip.c.
 */
#include "json.h"
#include "mc_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MC_ST_MAX_HEADER (100u * 1024u * 1024u) /* safetensors' own limit */

static const struct { const char *name; size_t size; } dtype_table[MC_DTYPE_COUNT] = {
    [MC_DTYPE_F32] = {"F32", 4}, [MC_DTYPE_F16] = {"F16", 2}, [MC_DTYPE_BF16] = {"BF16", 2},
    [MC_DTYPE_F64] = {"F64", 8}, [MC_DTYPE_I64] = {"I64", 8}, [MC_DTYPE_I32] = {"I32", 4},
    [MC_DTYPE_I16] = {"I16", 2}, [MC_DTYPE_I8] = {"I8", 1},   [MC_DTYPE_U8] = {"U8", 1},
    [MC_DTYPE_BOOL] = {"BOOL", 1},
};

const char *mc_dtype_name(mc_dtype dtype) {
    return (unsigned)dtype < MC_DTYPE_COUNT ? dtype_table[dtype].name : "?";
}
size_t mc_dtype_size(mc_dtype dtype) {
    return (unsigned)dtype < MC_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

mc_status mc_checkpoint_own(mc_checkpoint *ckpt, void *buf, mc_error *err) {
    if (ckpt->n_owned == ckpt->cap_owned) {
        size_t nc = ckpt->cap_owned ? ckpt->cap_owned * 2 : 64;
        void **no = realloc(ckpt->owned, nc * sizeof *no);
        if (!no) { free(buf); return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", ckpt->path); }
        ckpt->owned = no;
        ckpt->cap_owned = nc;
    }
    ckpt->owned[ckpt->n_owned++] = buf;
    return MC_OK;
}

mc_status mc_checkpoint_add(mc_checkpoint *ckpt, const char *name, mc_dtype dtype, int ndim,
                            const int64_t *shape, const void *data, size_t nbytes, mc_error *err) {
    if (ndim < 0 || ndim > MC_MAX_DIMS)
        return mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (at most %d)",
                       ckpt->path, name, ndim, MC_MAX_DIMS);
    if ((unsigned)dtype >= MC_DTYPE_COUNT)
        return mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has an unknown dtype", ckpt->path, name);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || !mc_size_mul(numel, (size_t)shape[i], &numel))
            return mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' has an invalid shape", ckpt->path, name);
    }
    size_t need;
    if (!mc_size_mul(numel, mc_dtype_size(dtype), &need) || need != nbytes)
        return mc_fail(err, MC_ERR_FORMAT,
                       "%s: tensor '%s' shape needs %zu elements but its data holds %zu bytes",
                       ckpt->path, name, numel, nbytes);
    if (mc_checkpoint_find(ckpt, name))
        return mc_fail(err, MC_ERR_FORMAT, "%s: tensor '%s' appears twice", ckpt->path, name);
    if (ckpt->n_tensors == ckpt->cap_tensors) {
        size_t nc = ckpt->cap_tensors ? ckpt->cap_tensors * 2 : 64;
        mc_tensor_info *nt = realloc(ckpt->tensors, nc * sizeof *nt);
        if (!nt) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", ckpt->path);
        ckpt->tensors = nt;
        ckpt->cap_tensors = nc;
    }
    char *nm = strdup(name);
    if (!nm) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", ckpt->path);
    mc_status st = mc_checkpoint_own(ckpt, nm, err);
    if (st != MC_OK) return st;
    mc_tensor_info *t = &ckpt->tensors[ckpt->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->numel = (int64_t)numel;
    t->nbytes = nbytes;
    t->data = data;
    return MC_OK;
}

void mc_checkpoint_close(mc_checkpoint *ckpt) {
    if (!ckpt) return;
    for (size_t i = 0; i < ckpt->n_owned; i++) free(ckpt->owned[i]);
    free(ckpt->owned);
    free(ckpt->tensors);
    for (size_t i = 0; i < ckpt->n_meta; i++) {
        free(ckpt->meta[i].key);
        free(ckpt->meta[i].value);
    }
    free(ckpt->meta);
    mc_file_map_close(&ckpt->map);
    free(ckpt->path);
    free(ckpt);
}

mc_status mc_checkpoint_open(const char *path, mc_checkpoint **out, mc_error *err) {
    *out = NULL;
    if (!path) return mc_fail(err, MC_ERR_INVALID_ARG, "checkpoint path is NULL");
    mc_checkpoint *ckpt = calloc(1, sizeof *ckpt);
    if (!ckpt || !(ckpt->path = strdup(path))) {
        free(ckpt);
        return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    }
    mc_status st = mc_file_map_open(path, &ckpt->map, err);
    if (st != MC_OK) { mc_checkpoint_close(ckpt); return st; }
    const uint8_t *d = ckpt->map.data;
    size_t n = ckpt->map.size;
    if (n >= 4 && d[0] == 'P' && d[1] == 'K' && d[2] == 3 && d[3] == 4) {
        ckpt->format = MC_FORMAT_TORCH_ZIP;
        st = mc_torchzip_parse(ckpt, err);
    } else if (n >= 9 && d[8] == '{') {
        ckpt->format = MC_FORMAT_SAFETENSORS;
        st = mc_safetensors_parse(ckpt, err);
    } else if (n >= 2 && d[0] == 0x80) {
        st = mc_fail(err, MC_ERR_UNSUPPORTED,
                     "%s: legacy (non-zip) torch.save format; re-save it with PyTorch >= 1.6", path);
    } else {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: neither a torch.save zip nor a safetensors file", path);
    }
    if (st != MC_OK) { mc_checkpoint_close(ckpt); return st; }
    *out = ckpt;
    return MC_OK;
}

mc_file_format mc_checkpoint_format(const mc_checkpoint *ckpt) { return ckpt->format; }
size_t mc_checkpoint_count(const mc_checkpoint *ckpt) { return ckpt->n_tensors; }

const mc_tensor_info *mc_checkpoint_tensor(const mc_checkpoint *ckpt, size_t i) {
    return i < ckpt->n_tensors ? &ckpt->tensors[i] : NULL;
}

const mc_tensor_info *mc_checkpoint_find(const mc_checkpoint *ckpt, const char *name) {
    for (size_t i = 0; i < ckpt->n_tensors; i++)
        if (!strcmp(ckpt->tensors[i].name, name)) return &ckpt->tensors[i];
    return NULL;
}

const char *mc_checkpoint_metadata(const mc_checkpoint *ckpt, const char *key) {
    for (size_t i = 0; i < ckpt->n_meta; i++)
        if (!strcmp(ckpt->meta[i].key, key)) return ckpt->meta[i].value;
    return NULL;
}

/* ---------------------------------------------------------------- safetensors */

static int st_dtype(const char *s, mc_dtype *out) {
    for (int i = 0; i < MC_DTYPE_COUNT; i++)
        if (!strcmp(s, dtype_table[i].name)) { *out = (mc_dtype)i; return 1; }
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

static int json_escape(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
    return 0;
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
            json_escape(h, meta[i].key);
            fputc(':', h);
            json_escape(h, meta[i].value);
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
        json_escape(h, entries[i].name);
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
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
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
    if (fclose(f) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return mc_fail(err, MC_ERR_IO, "%s: write failed", path);
    }
    return MC_OK;
}
