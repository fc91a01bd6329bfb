/*
 * model/binder.c - binding checkpoint tensors to model weights by name (see binder.h).
 */
#include "model/binder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The names looked for and not found (at most MAX_MISSES, the first ones). */
#define MAX_MISSES 1024
struct mc_binder_misses {
    size_t n;
    char *name[MAX_MISSES];
};

/* Remembers a name not found; a failed allocation only loses a hint. */
static void note_miss(const mc_binder *b, const char *name) {
    struct mc_binder_misses *m = b->misses;
    if (!m || m->n == MAX_MISSES) return;
    if ((m->name[m->n] = strdup(name)) != NULL) m->n++;
}

mc_status mc_binder_init(mc_binder *b, const mc_checkpoint *ckpt, const char *path, mc_arena *arena,
                         mc_error *err) {
    memset(b, 0, sizeof *b);
    b->ckpt = ckpt;
    b->path = path;
    b->arena = arena;
    b->err = err;
    b->used = calloc(mc_checkpoint_count(ckpt) + 1, 1);
    b->misses = calloc(1, sizeof *b->misses);
    if (!b->used || !b->misses) {
        mc_binder_free(b);
        return b->status = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    }
    return MC_OK;
}

void mc_binder_free(mc_binder *b) {
    free(b->used);
    b->used = NULL;
    if (b->misses)
        for (size_t i = 0; i < b->misses->n; i++) free(b->misses->name[i]);
    free(b->misses);
    b->misses = NULL;
}

static long find_index(const mc_binder *b, const char *name) {
    size_t n = mc_checkpoint_count(b->ckpt);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(mc_checkpoint_tensor(b->ckpt, i)->name, name)) return (long)i;
    return -1;
}

const mc_tensor_info *mc_binder_peek(const mc_binder *b, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const mc_tensor_info *t = mc_checkpoint_find(b->ckpt, name);
    if (!t) note_miss(b, name);
    return t;
}

int mc_binder_has_prefix(const mc_binder *b, const char *fmt, ...) {
    char pre[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    size_t lp = strlen(pre);
    for (size_t i = 0, n = mc_checkpoint_count(b->ckpt); i < n; i++)
        if (!strncmp(mc_checkpoint_tensor(b->ckpt, i)->name, pre, lp)) return 1;
    return 0;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static float *bind_v(mc_binder *b, int optional, int ndim, const int64_t *shape, const char *fmt,
                     va_list ap) {
    if (b->status != MC_OK) return NULL;
    char name[512];
    vsnprintf(name, sizeof name, fmt, ap);
    long idx = find_index(b, name);
    if (idx < 0) {
        note_miss(b, name);
        if (optional) return NULL;
        b->status = mc_fail(b->err, MC_ERR_MISSING_TENSOR, "%s: missing tensor '%s'", b->path, name);
        return NULL;
    }
    const mc_tensor_info *t = mc_checkpoint_tensor(b->ckpt, (size_t)idx);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[160], want[160];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s", b->path,
                            name, got, want);
        return NULL;
    }
    if (t->dtype != MC_DTYPE_F32 && t->dtype != MC_DTYPE_F16 && t->dtype != MC_DTYPE_BF16 &&
        t->dtype != MC_DTYPE_F64) {
        b->status = mc_fail(b->err, MC_ERR_SHAPE, "%s: tensor '%s' has dtype %s, expected a float type",
                            b->path, name, mc_dtype_name(t->dtype));
        return NULL;
    }
    float *dst = mc_arena_floats(b->arena, (size_t)t->numel);
    if (!dst) {
        b->status = mc_fail(b->err, MC_ERR_NOMEM, "%s: out of memory binding '%s'", b->path, name);
        return NULL;
    }
    mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, dst);
    for (int64_t i = 0; i < t->numel; i++) {
        float v = dst[i];
        if (v != v || (!b->allow_inf && isinf(v))) {
            b->status = mc_fail(b->err, MC_ERR_FORMAT, "%s: tensor '%s' holds %s (element %lld)", b->path, name,
                                v != v ? "NaN" : "an infinity", (long long)i);
            return NULL;
        }
    }
    b->used[idx] = 1;
    b->n_params += t->numel;
    return dst;
}

float *mc_bind(mc_binder *b, int ndim, const int64_t *shape, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    float *r = bind_v(b, 0, ndim, shape, fmt, ap);
    va_end(ap);
    return r;
}

float *mc_bind_opt(mc_binder *b, int ndim, const int64_t *shape, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    float *r = bind_v(b, 1, ndim, shape, fmt, ap);
    va_end(ap);
    return r;
}

float *mc_bind1(mc_binder *b, int64_t d0, const char *fmt, ...) {
    int64_t s[1] = {d0};
    va_list ap;
    va_start(ap, fmt);
    float *r = bind_v(b, 0, 1, s, fmt, ap);
    va_end(ap);
    return r;
}

float *mc_bind2(mc_binder *b, int64_t d0, int64_t d1, const char *fmt, ...) {
    int64_t s[2] = {d0, d1};
    va_list ap;
    va_start(ap, fmt);
    float *r = bind_v(b, 0, 2, s, fmt, ap);
    va_end(ap);
    return r;
}

float *mc_bind4(mc_binder *b, int64_t d0, int64_t d1, int64_t d2, int64_t d3, const char *fmt, ...) {
    int64_t s[4] = {d0, d1, d2, d3};
    va_list ap;
    va_start(ap, fmt);
    float *r = bind_v(b, 0, 4, s, fmt, ap);
    va_end(ap);
    return r;
}

void mc_binder_skip(mc_binder *b, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    long idx = find_index(b, name);
    if (idx >= 0) b->used[idx] = 1;
}

static size_t count_dots(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += *s == '.';
    return n;
}

/* The name looked for and not found that shares the longest dotted prefix
 * with `name`, if that prefix reaches at least name's grandparent module and
 * both continue past it with as many components ("a.b.conv.weight" and
 * "a.b.bn.weight" qualify, "a.c.x" and "a.b.c.d.e" do not): the tensor that
 * `name` was meant to go with. */
static const char *missing_sibling(const mc_binder *b, const char *name) {
    size_t need = 0, dots = 0;
    for (size_t i = strlen(name); i-- > 0;)
        if (name[i] == '.' && ++dots == 2) {
            need = i + 1;
            break;
        }
    if (dots < 2) return NULL;
    const char *best = NULL;
    size_t best_len = 0;
    for (size_t k = 0; b->misses && k < b->misses->n; k++) {
        const char *m = b->misses->name[k];
        size_t common = 0;
        for (size_t i = 0; name[i] && name[i] == m[i]; i++)
            if (name[i] == '.') common = i + 1;
        if (common >= need && common > best_len && count_dots(m + common) == count_dots(name + common)) {
            best = m;
            best_len = common;
        }
    }
    return best;
}

mc_status mc_binder_finish(mc_binder *b, const char *const *prefixes) {
    if (b->status != MC_OK) return b->status;
    size_t n = mc_checkpoint_count(b->ckpt);
    /* a training state (train/ckpt.h) also holds the optimizer's moments */
    const char *fmt = mc_checkpoint_metadata(b->ckpt, "format");
    int train_state = fmt && !strcmp(fmt, "mobileclip.c training state");
    for (size_t i = 0; i < n; i++) {
        if (b->used[i]) continue;
        const char *name = mc_checkpoint_tensor(b->ckpt, i)->name;
        if (train_state && !strncmp(name, "optim.", 6)) continue;
        int match = prefixes == NULL;
        for (const char *const *p = prefixes; p && *p && !match; p++)
            match = !strncmp(name, *p, strlen(*p));
        if (!match) continue;
        const char *sib = missing_sibling(b, name);
        if (sib)
            return b->status = mc_fail(b->err, MC_ERR_UNEXPECTED_TENSOR,
                                       "%s: unexpected tensor '%s' (not used by the model: '%s' is missing)", b->path,
                                       name, sib);
        return b->status = mc_fail(b->err, MC_ERR_UNEXPECTED_TENSOR,
                                   "%s: unexpected tensor '%s' (not used by the model)", b->path, name);
    }
    return MC_OK;
}
