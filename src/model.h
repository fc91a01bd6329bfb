/*
 * model.h - internal structure of a loaded model: an image tower and a text
 * tower behind small interfaces, their weights in one arena, and the pieces
 * (config, tokenizer, logit scale) the public API exposes.
 *
 * A tower is read-only after load.  Its forward pass runs in a caller-given
 * workspace of tower->workspace_floats(tower, n) floats (planned once per batch
 * size by the context) and allocates nothing.
 */
#ifndef MC_MODEL_H
#define MC_MODEL_H

#include "kernels.h"
#include "mc_internal.h"
#include "weights.h"

/* A growing list of named float32 tensors that a tower's export hook fills
 * (see mc_model_export).  Errors are sticky: after the first, adds do nothing. */
typedef struct mc_export mc_export;

/* Adds a tensor whose data lives in the model (not copied). */
void mc_export_add(mc_export *ex, const float *data, int ndim, const int64_t *shape, const char *fmt, ...)
    MC_PRINTF(5, 6);
/* Adds a tensor held by the export (e.g. a transposed copy): returns its zeroed
 * buffer of prod(shape) floats to fill, or NULL after an error. */
float *mc_export_add_new(mc_export *ex, int ndim, const int64_t *shape, const char *fmt, ...) MC_PRINTF(4, 5);
/* A weight matrix that may be held only as q's pre-packed copy (w NULL; see
 * mc_lower_mat): with w, mc_export_add; otherwise the matrix unpacked, exactly,
 * into a tensor held by the export.  shape's product is q's rows x cols. */
void mc_export_add_w(mc_export *ex, const float *w, const mc_qmat *q, int ndim, const int64_t *shape,
                     const char *fmt, ...) MC_PRINTF(6, 7);
/* w, or q's packed copy unpacked into [q->rows, q->cols] floats that live
 * until the export ends (for hooks that rearrange a matrix); NULL after an error. */
const float *mc_export_mat(mc_export *ex, const float *w, const mc_qmat *q);

struct mc_lower;
typedef struct mc_image_tower mc_image_tower;
struct mc_image_tower {
    const char *arch;        /* "mci0", "fastvit_mci3", "vit_b16", ... */
    int image_size;          /* input side */
    int out_dim;             /* embedding dim after projection */
    int64_t n_params;
    void *impl;              /* the architecture's own struct (weights point into the arena) */
    /* pixels [n, 3, S, S] -> out [n, out_dim] (before L2 normalisation) */
    mc_status (*forward)(const mc_image_tower *t, float *ws, const float *pixels, int n, float *out,
                         mc_error *err);
    size_t (*workspace_floats)(const mc_image_tower *t, int n);
    void (*destroy)(mc_image_tower *t);   /* frees impl (not the arena); may be NULL */
    /* adds the tower's weights as held (folded), under names its loader reads back
     * from a file whose "mobileclip.layout" is "folded"; NULL: not exportable */
    mc_status (*export_weights)(const mc_image_tower *t, mc_export *ex);
    /* replaces the big matrices by reduced copies (src/lowp.h); NULL: keeps float32 */
    void (*lower)(mc_image_tower *t, struct mc_lower *L);
};

typedef struct mc_text_tower mc_text_tower;
struct mc_text_tower {
    const char *arch;        /* "mct", "base", "open_clip" */
    int context_length;
    int vocab_size;
    int out_dim;
    int64_t n_params;
    void *impl;
    /* tokens [n, context_length] -> out [n, out_dim] (before L2 normalisation) */
    mc_status (*forward)(const mc_text_tower *t, float *ws, const int32_t *tokens, int n, float *out,
                         mc_error *err);
    size_t (*workspace_floats)(const mc_text_tower *t, int n);
    /* how many leading positions forward runs for these tokens [n, context_length]
     * (a causal stack stops at the last pooled position) */
    int (*positions)(const mc_text_tower *t, const int32_t *tokens, int n);
    void (*destroy)(mc_text_tower *t);
    mc_status (*export_weights)(const mc_text_tower *t, mc_export *ex);   /* as for the image tower */
    void (*lower)(mc_text_tower *t, struct mc_lower *L);                   /* as for the image tower */
};

/* The positions the loaded text tower runs for tokens [n, context_length]
 * (its positions hook); 0 without a text tower.  (src/model.c) */
int mc_model_text_positions(const mc_model *m, const int32_t *tokens, int n);

/* L2-normalises each row of x[n, d] in place (as F.normalize, eps 1e-12). */
void mc_l2_normalize_rows(float *x, int n, int d);

/* Export of a loaded model's weights as the engine holds them (train-time
 * branches folded), for 'mobileclip convert'.
 * Contract (implemented by the model loader, src/model.c):
 *   - *entries: a malloc'd array of *n tensors; names and the few derived
 *     tensors (transposed projections) live in the same allocation, other data
 *     points into the model: valid while both live; the caller frees only the
 *     array.  dtype F32; names are the loader's own, so that mc_model_load
 *     reads them back (with "mobileclip.layout" = "folded").
 *   - *meta: a malloc'd array of *n_meta key/values (strings owned by the
 *     model) that the loader needs to rebuild the model from that file alone:
 *     at least "mobileclip.config" (config JSON text), "mobileclip.layout"
 *     ("folded") and "mobileclip.model_name" when known.
 *     ("mobileclip.config" is absent when the config was a built-in: then the
 *     model name tells it), plus "mobileclip.config_file" when read from a file.
 *   - MC_ERR_UNSUPPORTED when the model cannot be exported (a tower not loaded).
 * The CLI writes them with mc_safetensors_write after converting to the
 * requested dtype. */
mc_status mc_model_export(const mc_model *m, mc_st_entry **entries, size_t *n, mc_meta_kv **meta,
                          size_t *n_meta, mc_error *err);
/* Loads a model from an already-open checkpoint (e.g. one built in memory by
 * src/synth.c) with a given configuration, binding the towers exactly as
 * mc_model_load does.  The tokenizer is loaded only when params->vocab_path is
 * set.  ck may be closed once this returns.  (src/model.c) */
#include "config.h"
mc_status mc_model_load_checkpoint(const mc_checkpoint *ck, const mc_config *cfg, const mc_model_params *params,
                                   mc_model **out, mc_error *err);

#endif /* MC_MODEL_H */
