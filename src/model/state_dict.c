/*
 * model/state_dict.c - the reference state dict of a checkpoint (state_dict.h):
 * its unfused tensors as they are named, training-state tensors left out,
 * fused files refused, the rest checked by binding it into a model; and the
 * torch.save file made of it.
 */
#include "model/state_dict.h"
#include "io/checkpoint.h"
#include "io/torchsave.h"
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

/* A tensor only the reference's re-parameterised (inference-mode) modules have. */
static int is_fused_name(const char *name) {
    return strstr(name, ".reparam_conv.") != NULL || strstr(name, ".lkb_reparam.") != NULL;
}

/* Binds the kept tensors (a checkpoint viewing ck's data) into a model, as
 * mc_model_load would: every tensor must be used, each with its exact shape. */
static mc_status check_binds(const mc_checkpoint *ck, const mc_config *cfg, const mc_st_entry *e, size_t n,
                             mc_error *err) {
    mc_checkpoint *view = calloc(1, sizeof *view);
    if (!view) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = MC_OK;
    if (!(view->path = strdup(ck->path ? ck->path : "<memory>"))) st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
    view->format = ck->format;
    for (size_t i = 0; i < n && st == MC_OK; i++) {
        size_t nbytes = mc_dtype_size(e[i].dtype); /* the sizes ck checked when it was read */
        for (int d = 0; d < e[i].ndim; d++) nbytes *= (size_t)e[i].shape[d];
        st = mc_checkpoint_add(view, e[i].name, e[i].dtype, e[i].ndim, e[i].shape, e[i].data, nbytes, err);
    }
    if (st == MC_OK) {
        mc_model_params mp = mc_model_default_params();
        mp.load_tokenizer = 0;
        mp.vocab_path = NULL;
        mp.weight_dtype = MC_WEIGHTS_F32;
        mc_model *m = NULL;
        st = mc_model_load_checkpoint(view, cfg, &mp, &m, err);
        mc_model_free(m);
    }
    mc_checkpoint_close(view);
    return st;
}

mc_status mc_state_dict_reference(const mc_checkpoint *ck, const mc_config *cfg, mc_st_entry **entries,
                                  size_t *n, size_t *n_left_out, mc_error *err) {
    if (!ck || !cfg || !entries || !n)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_state_dict_reference: ck, cfg, entries and n are required");
    *entries = NULL;
    *n = 0;
    if (n_left_out) *n_left_out = 0;
    const char *path = ck->path ? ck->path : "<memory>";
    const char *layout = mc_checkpoint_metadata(ck, "mobileclip.layout");
    if (layout && !strcmp(layout, "folded"))
        return mc_fail(err, MC_ERR_UNSUPPORTED,
                       "%s: holds the folded (re-parameterised) weights that 'mobileclip convert' writes by "
                       "default; the reference's unfused model cannot load them: convert the original "
                       "checkpoint (or a file written with --unfolded)", path);
    if (layout && strcmp(layout, "original"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: tensor layout '%s' is not supported", path, layout);
    size_t total = mc_checkpoint_count(ck), kept = 0, left = 0;
    mc_st_entry *e = mc_calloc_array(total ? total : 1, sizeof *e);
    if (!e) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    for (size_t i = 0; i < total; i++) {
        const mc_tensor_info *t = mc_checkpoint_tensor(ck, i);
        if (!strncmp(t->name, MC_STATE_DICT_OPTIM_PREFIX, strlen(MC_STATE_DICT_OPTIM_PREFIX))) {
            left++;
            continue;
        }
        if (is_fused_name(t->name)) {
            free(e);
            return mc_fail(err, MC_ERR_UNSUPPORTED,
                           "%s: tensor '%s' belongs to a re-parameterised (fused) model; the train-time "
                           "branches the reference's unfused model needs are gone: convert the original "
                           "checkpoint", path, t->name);
        }
        mc_st_entry *x = &e[kept++];
        x->name = t->name;
        x->dtype = t->dtype;
        x->ndim = t->ndim;
        memcpy(x->shape, t->shape, sizeof x->shape);
        x->data = t->data;
    }
    if (kept == 0) {
        free(e);
        return mc_fail(err, MC_ERR_FORMAT, "%s: no model tensors", path);
    }
    mc_status st = check_binds(ck, cfg, e, kept, err);
    if (st != MC_OK) { free(e); return st; }
    *entries = e;
    *n = kept;
    if (n_left_out) *n_left_out = left;
    return MC_OK;
}

static int is_float(mc_dtype d) {
    return d == MC_DTYPE_F32 || d == MC_DTYPE_F16 || d == MC_DTYPE_BF16 || d == MC_DTYPE_F64;
}

/* n values of dtype src converted to float_dtype, in a new buffer (NULL: out of memory). */
static void *convert_float(const void *src, mc_dtype from, size_t n, mc_dtype to) {
    float *f = mc_malloc_array(n ? n : 1, sizeof(float));
    if (!f) return NULL;
    if (mc_convert_to_f32(from, src, n, f) != MC_OK) { free(f); return NULL; }
    if (to == MC_DTYPE_F32) return f;
    uint16_t *h = mc_malloc_array(n ? n : 1, sizeof(uint16_t));
    if (h)
        for (size_t k = 0; k < n; k++) h[k] = to == MC_DTYPE_F16 ? mc_f32_to_f16(f[k]) : mc_f32_to_bf16(f[k]);
    free(f);
    return h;
}

mc_status mc_state_dict_save_pt(const char *ckpt_path, const mc_config *cfg, const char *out_path,
                                mc_dtype float_dtype, size_t *n_written, size_t *n_left_out, mc_error *err) {
    if (n_written) *n_written = 0;
    if (n_left_out) *n_left_out = 0;
    if (!ckpt_path || !cfg || !out_path)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_state_dict_save_pt: ckpt_path, cfg and out_path are required");
    if (float_dtype != MC_DTYPE_F32 && float_dtype != MC_DTYPE_F16 && float_dtype != MC_DTYPE_BF16)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: floating-point tensors are written as F32, F16 or BF16, not %s",
                       out_path, mc_dtype_name(float_dtype));
    mc_checkpoint *ck = NULL;
    mc_status st = mc_checkpoint_open(ckpt_path, &ck, err);
    if (st != MC_OK) return st;
    mc_st_entry *e = NULL;
    size_t n = 0, left = 0;
    void **bufs = NULL;
    st = mc_state_dict_reference(ck, cfg, &e, &n, &left, err);
    if (st == MC_OK && !(bufs = mc_calloc_array(n, sizeof *bufs)))
        st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", out_path);
    for (size_t i = 0; i < n && st == MC_OK; i++) {
        if (!is_float(e[i].dtype) || e[i].dtype == float_dtype) continue;
        size_t cnt = 1;
        for (int d = 0; d < e[i].ndim; d++) cnt *= (size_t)e[i].shape[d]; /* bounded by the checkpoint */
        if (!(bufs[i] = convert_float(e[i].data, e[i].dtype, cnt, float_dtype))) {
            st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", out_path);
            break;
        }
        e[i].data = bufs[i];
        e[i].dtype = float_dtype;
    }
    if (st == MC_OK) st = mc_torchsave_write(out_path, e, n, NULL, err);
    if (st == MC_OK) {
        if (n_written) *n_written = n;
        if (n_left_out) *n_left_out = left;
    }
    if (bufs)
        for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(e);
    mc_checkpoint_close(ck);
    return st;
}
