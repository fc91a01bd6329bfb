/*
 * model/tower.h - the interface every image and text tower implements
 * (mci.c, vit.c, text.c): a forward pass into a caller-given workspace,
 * its size, export of the weights, and the load-time lowering hook.
 *
 * A tower is read-only after load.  Its forward pass runs in a caller-given
 * workspace of tower->workspace_floats(tower, n) floats (planned once per batch
 * size by the context) and allocates nothing.
 */
#ifndef MC_MODEL_TOWER_H
#define MC_MODEL_TOWER_H

#include "core/core.h"
#include "model/export.h"

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
    /* replaces the big matrices by reduced copies (src/kernels/lowp.h); NULL: keeps float32 */
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

#endif /* MC_MODEL_TOWER_H */
