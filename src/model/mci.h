/*
 * model/mci.h - the MCi image towers: Apple's FastViT-based MobileCLIP encoders
 * (mci0/mci1/mci2 in the mobileclip repo layout, fastvit_mci0..fastvit_mci4
 * in timm/OpenCLIP layout).  Depths, widths, kernel sizes, which branches and
 * blocks exist (scale/identity branches, squeeze-excite, positional encoding,
 * attention vs RepMixer, BatchNorm vs LayerNorm2d) all come from the tensors;
 * the parameters give only what tensors cannot tell.  Every train-time branch
 * is folded at load (src/model/reparam.h); already-folded checkpoints
 * (reparam_conv / lkb_reparam names) are accepted as they are.  The tower's
 * export_weights writes the folded network back in those names (see
 * docs/reparameterization.md, "Folded files").
 */
#ifndef MC_MCI_H
#define MC_MCI_H

#include "model/binder.h"
#include "model/tower.h"

/* Tensor-name layout of an MCi checkpoint. */
typedef enum mc_layout {
    MC_LAYOUT_V1 = 1,   /* mobileclip repo: image_encoder.model.{patch_embed,network.N,conv_exp,head.proj} */
    MC_LAYOUT_TIMM = 2  /* timm FastVit: visual.trunk.{stem,stages.N.{downsample,pos_emb,blocks},final_conv,head.fc} */
} mc_layout;

typedef struct mc_mci_params {
    mc_layout layout;
    const char *prefix;     /* tensor-name prefix with trailing dot: "image_encoder.model.", "visual.trunk." */
    const char *arch;       /* "mci0".."mci2", "fastvit_mci0".."fastvit_mci4" (copied) */
    int image_size;         /* input side (e.g. 256) */
    int head_dim;           /* channels per attention head; 0 = 32 (the official MCi value) */
    int embed_dim;          /* the config's embedding width; 0: the projection's shape decides */
    int folded;             /* 1: a file of 'mobileclip convert' (layout "folded"): an attention
                               block without norm tensors has its BatchNorm folded into qkv */
} mc_mci_params;

/* Builds an MCi image tower from the tensors under p->prefix, binding every one of
 * them through b (weights in b->arena).  The tower's forward runs the folded network:
 * pixels [n, 3, S, S] -> features [n, out_dim] (before L2 normalisation).
 * *out is malloc'd (the caller frees it, as for every tower); its impl and all
 * weights live in b->arena, so destroy is NULL. */
mc_status mc_mci_tower_load(mc_binder *b, const mc_mci_params *p, mc_image_tower **out);

/* Called after each named module during a traced forward: name is the module path
 * below the prefix ("stem", "stages.2", "final_conv", "patch_embed", "network.3",
 * "conv_exp"), x its output [n, c, h, w]. */
typedef void (*mc_mci_trace_fn)(void *ctx, const char *name, const float *x, int n, int c, int h,
                                int w);

/* The tower's forward with a trace callback (fn may be NULL). */
mc_status mc_mci_forward_trace(const mc_image_tower *t, float *ws, const float *pixels, int n,
                               float *out, mc_mci_trace_fn fn, void *ctx, mc_error *err);

/* Whether an arch name is an MCi tower (mci0.., fastvit_mci0..). */
int mc_mci_is_arch(const char *arch);

#endif /* MC_MCI_H */
