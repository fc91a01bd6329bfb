/*
 * train/ckpt.c - training-state checkpoints: weights and BatchNorm buffers
 * under their checkpoint names (safetensors, float32; counters int64), AdamW
 * moments as "optim.exp_avg.<name>" / "optim.exp_avg_sq.<name>", the
 * optimizer step and a CRC-32 of all tensor bytes in the metadata, plus any
 * metadata the caller adds.  Written atomically (mc_safetensors_write);
 * resume checks everything before it changes the trainer, then restores it
 * exactly.
 */
#include "train/ckpt.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* The tensors of a state, in file order: per parameter the value (or the
 * counter), then its two moments. */
typedef struct state_list {
    mc_st_entry *e;
    char **names;
    size_t ne, nn;
} state_list;

static void state_list_free(state_list *s) {
    for (size_t i = 0; i < s->nn; i++) free(s->names[i]);
    free(s->names);
    free(s->e);
}

static mc_status state_list_make(mc_trainer *t, state_list *s, mc_error *err) {
    size_t np = mc_trainer_count(t);
    memset(s, 0, sizeof *s);
    s->e = calloc(3 * np + 1, sizeof *s->e);
    s->names = calloc(2 * np + 1, sizeof *s->names);
    if (!s->e || !s->names) { state_list_free(s); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < np; i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        mc_st_entry *x = &s->e[s->ne++];
        x->name = p->name;
        x->ndim = p->ndim;
        memcpy(x->shape, p->shape, sizeof x->shape);
        if (p->is_counter) { x->dtype = MC_DTYPE_I64; x->data = &p->count; continue; }
        x->dtype = MC_DTYPE_F32;
        x->data = p->w;
        if (!p->m) continue;
        for (int k = 0; k < 2; k++) {
            size_t len = strlen(p->name) + 24;
            char *nm = malloc(len);
            if (!nm) { state_list_free(s); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
            snprintf(nm, len, "optim.%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            s->names[s->nn++] = nm;
            mc_st_entry *y = &s->e[s->ne++];
            *y = *x;
            y->name = nm;
            y->data = k ? p->v : p->m;
        }
    }
    return MC_OK;
}

static size_t entry_bytes(const mc_st_entry *x) {
    size_t nb = mc_dtype_size(x->dtype);
    for (int k = 0; k < x->ndim; k++) nb *= (size_t)x->shape[k];
    return nb;
}

static uint32_t crc_add(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = data;
    while (n > 0) {   /* zlib's length is a uInt */
        uInt c = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, p, c);
        p += c;
        n -= c;
    }
    return crc;
}

mc_status mc_trainer_save_meta(const mc_trainer *tc, const char *path, const mc_meta_kv *extra,
                               size_t n_extra, mc_error *err) {
    mc_trainer *t = (mc_trainer *)tc;
    state_list s;
    mc_status st = state_list_make(t, &s, err);
    if (st != MC_OK) return st;
    uint32_t crc = (uint32_t)crc32(0, NULL, 0);
    for (size_t i = 0; i < s.ne; i++) crc = crc_add(crc, s.e[i].data, entry_bytes(&s.e[i]));
    mc_meta_kv *meta = calloc(n_extra + 3, sizeof *meta);
    if (!meta) { state_list_free(&s); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    char step[32], crcs[16];
    snprintf(step, sizeof step, "%d", mc_trainer_steps_done(t));
    snprintf(crcs, sizeof crcs, "%08x", (unsigned)crc);
    meta[0] = (mc_meta_kv){(char *)"step", step};
    meta[1] = (mc_meta_kv){(char *)"format", (char *)"mobileclip.c training state"};
    meta[2] = (mc_meta_kv){(char *)"data_crc32", crcs};
    for (size_t i = 0; i < n_extra; i++) meta[3 + i] = extra[i];
    st = mc_safetensors_write(path, s.e, s.ne, meta, n_extra + 3, err);
    free(meta);
    state_list_free(&s);
    return st;
}

mc_status mc_trainer_save(const mc_trainer *t, const char *path, mc_error *err) {
    return mc_trainer_save_meta(t, path, NULL, 0, err);
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < ndim && n < cap; k++) n += (size_t)snprintf(buf + n, cap - n, "%s%lld", k ? ", " : "", (long long)shape[k]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

mc_status mc_trainer_resume_open(mc_trainer *t, const mc_checkpoint *ck, const char *path, mc_error *err) {
    const char *sv = mc_checkpoint_metadata(ck, "step");
    const char *fmt = mc_checkpoint_metadata(ck, "format");
    if (!sv || !fmt || strcmp(fmt, "mobileclip.c training state"))
        return mc_fail(err, MC_ERR_FORMAT, "%s: not a training state (no 'format' / 'step' metadata of one)", path);
    char *endp = NULL;
    long stepv = strtol(sv, &endp, 10);
    if (!endp || *endp || stepv < 0 || stepv > 2000000000L)
        return mc_fail(err, MC_ERR_FORMAT, "%s: bad 'step' metadata '%.40s'", path, sv);
    state_list s;
    mc_status st = state_list_make(t, &s, err);
    if (st != MC_OK) return st;
    /* 1. every tensor present with the trainer's dtype and shape; the CRC */
    uint32_t crc = (uint32_t)crc32(0, NULL, 0);
    const mc_tensor_info **found = calloc(s.ne + 1, sizeof *found);
    if (!found) { state_list_free(&s); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    for (size_t i = 0; i < s.ne && st == MC_OK; i++) {
        const mc_st_entry *x = &s.e[i];
        const mc_tensor_info *ti = mc_checkpoint_find(ck, x->name);
        char want[128], have[128];
        shape_str(want, sizeof want, x->ndim, x->shape);
        if (!ti) {
            st = mc_fail(err, MC_ERR_MISSING_TENSOR, "%s: no tensor '%s' %s: the checkpoint is of another model",
                         path, x->name, want);
            break;
        }
        shape_str(have, sizeof have, ti->ndim, ti->shape);
        int same = ti->dtype == x->dtype && ti->ndim == x->ndim;
        for (int k = 0; same && k < x->ndim; k++) same = ti->shape[k] == x->shape[k];
        if (!same || ti->nbytes != entry_bytes(x)) {
            st = mc_fail(err, MC_ERR_SHAPE, "%s: tensor '%s' is %s %s, the model's is %s %s: the checkpoint is of "
                         "another model", path, x->name, mc_dtype_name(ti->dtype), have, mc_dtype_name(x->dtype), want);
            break;
        }
        found[i] = ti;
        crc = crc_add(crc, ti->data, ti->nbytes);
    }
    const char *crc_meta = mc_checkpoint_metadata(ck, "data_crc32");
    if (st == MC_OK && crc_meta) {
        char crcs[16];
        snprintf(crcs, sizeof crcs, "%08x", (unsigned)crc);
        if (strcmp(crcs, crc_meta))
            st = mc_fail(err, MC_ERR_FORMAT, "%s: corrupt: the tensor bytes' CRC-32 is %s, the file says %.16s", path,
                         crcs, crc_meta);
    }
    /* 2. only then the copy */
    if (st == MC_OK) {
        for (size_t i = 0; i < s.ne; i++) memcpy((void *)s.e[i].data, found[i]->data, found[i]->nbytes);
        mc_trainer_set_step(t, (int)stepv);
        mc_trainer_zero_grad(t);
    }
    free(found);
    state_list_free(&s);
    return st;
}

mc_status mc_trainer_resume(mc_trainer *t, const char *path, mc_error *err) {
    mc_checkpoint *ck = NULL;
    mc_status st = mc_checkpoint_open(path, &ck, err);
    if (st != MC_OK) return st;
    st = mc_trainer_resume_open(t, ck, path, err);
    mc_checkpoint_close(ck);
    return st;
}
