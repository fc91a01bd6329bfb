/*
 * train/ckpt.c - training-state checkpoints: weights and BatchNorm buffers
 * under their mobileclip-repo names (safetensors, float32; counters int64),
 * AdamW moments as "optim.exp_avg.<name>" / "optim.exp_avg_sq.<name>", the
 * optimizer step in the metadata; resume restores all of them exactly.
 */
#include "train/ckpt.h"
#include "io/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mc_status mc_trainer_save(const mc_trainer *tc, const char *path, mc_error *err) {
    mc_trainer *t = (mc_trainer *)tc;
    size_t np = mc_trainer_count(t);
    mc_st_entry *e = calloc(3 * np + 1, sizeof *e);
    char **names = calloc(2 * np + 1, sizeof *names);
    if (!e || !names) { free(e); free(names); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    size_t ne = 0, nn = 0;
    mc_status st = MC_OK;
    for (size_t i = 0; i < np; i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        mc_st_entry *x = &e[ne++];
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
            if (!nm) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto done; }
            snprintf(nm, len, "optim.%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            names[nn++] = nm;
            mc_st_entry *y = &e[ne++];
            *y = *x;
            y->name = nm;
            y->data = k ? p->v : p->m;
        }
    }
    char step[32];
    snprintf(step, sizeof step, "%d", mc_trainer_steps_done(t));
    mc_meta_kv meta[2] = {{(char *)"step", step}, {(char *)"format", (char *)"mobileclip.c training state"}};
    st = mc_safetensors_write(path, e, ne, meta, 2, err);
done:
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    free(e);
    return st;
}

mc_status mc_trainer_resume(mc_trainer *t, const char *path, mc_error *err) {
    mc_checkpoint *ck = NULL;
    mc_status st = mc_checkpoint_open(path, &ck, err);
    if (st != MC_OK) return st;
    const char *sv = mc_checkpoint_metadata(ck, "step");
    if (!sv) { mc_checkpoint_close(ck); return mc_fail(err, MC_ERR_FORMAT, "%s: no 'step' in the metadata", path); }
    for (size_t i = 0; i < mc_trainer_count(t) && st == MC_OK; i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        for (int k = 0; k < 3; k++) {
            char nm[600];
            if (k == 0) snprintf(nm, sizeof nm, "%s", p->name);
            else if (!p->m || p->is_counter) break;
            else snprintf(nm, sizeof nm, "optim.%s.%s", k == 2 ? "exp_avg_sq" : "exp_avg", p->name);
            const mc_tensor_info *ti = mc_checkpoint_find(ck, nm);
            if (!ti) { st = mc_fail(err, MC_ERR_MISSING_TENSOR, "%s: no tensor '%s'", path, nm); break; }
            if (p->is_counter) {
                if (ti->dtype != MC_DTYPE_I64 || ti->numel != 1) { st = mc_fail(err, MC_ERR_SHAPE, "%s: '%s' is not one int64", path, nm); break; }
                memcpy(&p->count, ti->data, 8);
                break;
            }
            if (ti->dtype != MC_DTYPE_F32 || (size_t)ti->numel != p->n) {
                st = mc_fail(err, MC_ERR_SHAPE, "%s: tensor '%s' has the wrong dtype or size", path, nm);
                break;
            }
            memcpy(k == 0 ? p->w : k == 1 ? p->m : p->v, ti->data, p->n * sizeof(float));
        }
    }
    if (st == MC_OK) {
        mc_trainer_set_step(t, atoi(sv));
        mc_trainer_zero_grad(t);
    }
    mc_checkpoint_close(ck);
    return st;
}
