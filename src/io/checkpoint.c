/*
 * io/checkpoint.c - the mc_checkpoint object: its tensor table, owned
 * buffers, metadata and dtypes.  The format readers (safetensors.c,
 * torchzip.c) fill it; ckpt_open.c opens a file or buffer and picks the
 * reader by content.
 */
#include "io/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
