/*
 * model/text.h - text towers: the OpenCLIP text transformer (text.* or root
 * names), and the mobileclip repo's "base" (pre-norm transformer) and "mct"
 * (RepMixer blocks around transformer layers) text encoders.  RepMixer
 * branches are folded into one depthwise conv at load (and exported folded:
 * token_mixer.reparam_conv, convffn.conv.reparam_conv).  Depth, width, MLP
 * size and context length come from the tensors; heads, causal mask,
 * pooling and activation from the config.
 */
#ifndef MC_TEXT_H
#define MC_TEXT_H

#include "model/binder.h"
#include "model/tower.h"

typedef enum mc_text_layout {
    MC_TEXT_LAYOUT_OPENCLIP = 0,   /* token_embedding, positional_embedding, transformer.resblocks.N,
                                      ln_final, text_projection */
    MC_TEXT_LAYOUT_MOBILECLIP      /* embedding_layer, positional_embedding.pos_embed.pos_embed,
                                      transformer.N, final_layer_norm, projection_layer */
} mc_text_layout;

typedef enum mc_text_pool {
    MC_TEXT_POOL_ARGMAX = 0,   /* the position of the largest token id (EOT) */
    MC_TEXT_POOL_FIRST,
    MC_TEXT_POOL_LAST,
    MC_TEXT_POOL_EOS           /* the first position holding eos_id */
} mc_text_pool;

typedef struct mc_text_params {
    const char *arch;          /* "open_clip", "base", "mct" (copied) */
    const char *prefix;        /* "text.", "" or "text_encoder." */
    mc_text_layout layout;
    int heads;                 /* attention heads (from the config) */
    int causal;                /* 1: causal attention mask */
    mc_act act;                /* MLP activation (GELU; QuickGELU for quick_gelu configs) */
    float ln_eps;
    float bn_eps;
    mc_text_pool pool;
    int eos_id;                /* for MC_TEXT_POOL_EOS */
    /* From the config; 0: read off the tensors.  Every tensor is checked
     * against them, so a mis-shaped one is named itself. */
    int width, vocab, context;
    int embed_dim;             /* the embedding width; 0: the projection's shape decides */
} mc_text_params;

/* Defaults: OpenCLIP layout under "text.", 8 heads, causal, GELU, eps 1e-5, argmax. */
mc_text_params mc_text_default_params(void);

mc_status mc_text_tower_load(mc_binder *b, const mc_text_params *p, mc_text_tower **out);

#endif /* MC_TEXT_H */
