/*
 * model/export.c - the list of named float32 tensors a tower's export hook
 * fills (export.h): tensors of the model, copies it holds, and weight
 * matrices held only pre-packed, unpacked exactly.
 */
#include "model/export.h"
#include "kernels/qmat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct export_item {
    char *name;
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    const float *data;
    float *own;               /* data held by the export, or NULL */
} export_item;

struct mc_export {
    export_item *v;
    size_t n, cap;
    float **tmp;              /* mc_export_mat's unpacked matrices */
    size_t n_tmp;
    mc_status status;
    mc_error *err;
};

static export_item *export_push(mc_export *ex, int ndim, const int64_t *shape, const char *fmt, va_list ap) {
    if (ex->status != MC_OK) return NULL;
    if (ndim < 0 || ndim > MC_MAX_DIMS) {
        ex->status = mc_fail(ex->err, MC_ERR_INTERNAL, "export: %d dims", ndim);
        return NULL;
    }
    if (ex->n == ex->cap) {
        size_t cap = ex->cap ? ex->cap * 2 : 256;
        export_item *v = realloc(ex->v, cap * sizeof *v);
        if (!v) { ex->status = mc_fail(ex->err, MC_ERR_NOMEM, "out of memory"); return NULL; }
        ex->v = v, ex->cap = cap;
    }
    char name[1024];
    vsnprintf(name, sizeof name, fmt, ap);
    export_item *it = &ex->v[ex->n];
    memset(it, 0, sizeof *it);
    if (!(it->name = strdup(name))) { ex->status = mc_fail(ex->err, MC_ERR_NOMEM, "out of memory"); return NULL; }
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++) it->shape[i] = shape[i];
    ex->n++;
    return it;
}

static size_t item_numel(const export_item *it) {
    size_t n = 1;
    for (int i = 0; i < it->ndim; i++) n *= (size_t)it->shape[i];
    return n;
}

void mc_export_add(mc_export *ex, const float *data, int ndim, const int64_t *shape, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    export_item *it = export_push(ex, ndim, shape, fmt, ap);
    va_end(ap);
    if (!it) return;
    if (!data) {
        ex->status = mc_fail(ex->err, MC_ERR_INTERNAL, "export: tensor '%s' has no data", it->name);
        return;
    }
    it->data = data;
}

float *mc_export_add_new(mc_export *ex, int ndim, const int64_t *shape, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    export_item *it = export_push(ex, ndim, shape, fmt, ap);
    va_end(ap);
    if (!it) return NULL;
    size_t n = item_numel(it);
    if (!(it->own = calloc(n ? n : 1, sizeof(float)))) {
        ex->status = mc_fail(ex->err, MC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    it->data = it->own;
    return it->own;
}

/* q's packed copy unpacked into a new [rows, cols] buffer (NULL: no copy or no memory; error set). */
static float *export_unpack(mc_export *ex, const mc_qmat *q, const char *name) {
    if (!q || q->type != MC_WT_F32 || !q->packed || q->rows <= 0 || q->cols <= 0 || q->rows > INT32_MAX ||
        q->cols > INT32_MAX) {
        ex->status = mc_fail(ex->err, MC_ERR_INTERNAL, "export: tensor '%s' has no data", name);
        return NULL;
    }
    float *d = malloc((size_t)q->rows * (size_t)q->cols * sizeof(float));
    if (!d) {
        ex->status = mc_fail(ex->err, MC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    mc_qmat_unpack(q, 0, (int)q->rows, 0, (int)q->cols, d, (size_t)q->cols);
    return d;
}

void mc_export_add_w(mc_export *ex, const float *w, const mc_qmat *q, int ndim, const int64_t *shape,
                     const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    export_item *it = export_push(ex, ndim, shape, fmt, ap);
    va_end(ap);
    if (!it) return;
    if (w) { it->data = w; return; }
    if (q && q->rows * q->cols != (int64_t)item_numel(it)) {
        ex->status = mc_fail(ex->err, MC_ERR_INTERNAL, "export: tensor '%s' has the wrong size", it->name);
        return;
    }
    it->data = it->own = export_unpack(ex, q, it->name);
}

const float *mc_export_mat(mc_export *ex, const float *w, const mc_qmat *q) {
    if (ex->status != MC_OK) return NULL;
    if (w) return w;
    float **t = realloc(ex->tmp, (ex->n_tmp + 1) * sizeof *t);
    if (!t) {
        ex->status = mc_fail(ex->err, MC_ERR_NOMEM, "out of memory");
        return NULL;
    }
    ex->tmp = t;
    float *d = export_unpack(ex, q, "(matrix)");
    if (d) ex->tmp[ex->n_tmp++] = d;
    return d;
}

mc_export *mc_export_new(mc_error *err) {
    mc_export *ex = calloc(1, sizeof *ex);
    if (ex) ex->status = MC_OK, ex->err = err;
    return ex;
}

void mc_export_free(mc_export *ex) {
    if (!ex) return;
    for (size_t i = 0; i < ex->n; i++) {
        free(ex->v[i].name);
        free(ex->v[i].own);
    }
    free(ex->v);
    for (size_t i = 0; i < ex->n_tmp; i++) free(ex->tmp[i]);
    free(ex->tmp);
    free(ex);
}

/* One allocation: the entries, then the names, then the held tensors (64-byte aligned). */
mc_status mc_export_pack(mc_export *ex, mc_st_entry **entries, size_t *n) {
    if (ex->status != MC_OK) return ex->status;
    size_t names = 0, held = 0;
    for (size_t i = 0; i < ex->n; i++) {
        names += strlen(ex->v[i].name) + 1;
        if (ex->v[i].own) held += (item_numel(&ex->v[i]) * sizeof(float) + 63) & ~(size_t)63;
    }
    size_t head = (ex->n * sizeof(mc_st_entry) + names + 63) & ~(size_t)63;
    char *blk = malloc(head + held + 64);
    if (!blk) return mc_fail(ex->err, MC_ERR_NOMEM, "out of memory");
    mc_st_entry *e = (mc_st_entry *)blk;
    char *np = blk + ex->n * sizeof(mc_st_entry);
    uintptr_t dp = ((uintptr_t)blk + head + 63) & ~(uintptr_t)63;
    for (size_t i = 0; i < ex->n; i++) {
        const export_item *it = &ex->v[i];
        memset(&e[i], 0, sizeof e[i]);
        size_t ln = strlen(it->name) + 1;
        memcpy(np, it->name, ln);
        e[i].name = np;
        np += ln;
        e[i].dtype = MC_DTYPE_F32;
        e[i].ndim = it->ndim;
        memcpy(e[i].shape, it->shape, sizeof it->shape);
        if (it->own) {
            size_t bytes = item_numel(it) * sizeof(float);
            memcpy((void *)dp, it->own, bytes);
            e[i].data = (const void *)dp;
            dp += (bytes + 63) & ~(size_t)63;
        } else {
            e[i].data = it->data;
        }
    }
    *entries = e;
    *n = ex->n;
    return MC_OK;
}
