/*
 * model/vit.h - ViT image towers: MobileCLIP-B's vit_b16 (mobileclip repo layout,
 * image_encoder.model.*) and the timm ViTs of the OpenCLIP releases
 * (visual.trunk.*: vit_base_mci_224 with its conv stem,
 * vit_large_patch14_clip_224 and other patch-embedding ViTs), and OpenCLIP's
 * own VisionTransformer (visual.conv1 ... visual.proj: the OpenAI, DataComp
 * and DFN CLIP ViTs, arch "vit").  Widths,
 * depths, stem stages and MLP sizes come from the checkpoint tensors.
 */
#ifndef MC_VIT_H
#define MC_VIT_H

#include "model/binder.h"
#include "model/tower.h"

typedef enum mc_vit_layout {
    MC_VIT_LAYOUT_TIMM = 0,      /* cls_token, pos_embed, patch_embed.*, blocks.N.*, norm, head */
    MC_VIT_LAYOUT_MOBILECLIP,    /* patch_emb.*, pos_embed.pos_embed.pos_embed, transformer.N.*,
                                    post_transformer_norm, classifier.proj */
    MC_VIT_LAYOUT_OPENCLIP       /* OpenCLIP's own VisionTransformer (the CLIP teachers):
                                    conv1, class_embedding, positional_embedding, ln_pre,
                                    transformer.resblocks.N.*, ln_post, proj */
} mc_vit_layout;

typedef struct mc_vit_params {
    const char *arch;        /* stored as tower->arch: must outlive the tower (a literal) */
    const char *prefix;      /* "visual.trunk." or "image_encoder.model." */
    mc_vit_layout layout;
    int image_size;          /* input side */
    int head_dim;            /* channels per attention head (64 in MobileCLIP ViTs) */
    int embed_dim;           /* the config's embedding width; 0: the projection's shape decides */
    float ln_eps;            /* LayerNorm eps */
    float bn_eps;            /* conv-stem BatchNorm eps */
    mc_act act;              /* MLP activation */
    int folded;              /* 1: a file of 'mobileclip convert' (layout "folded"): conv-stem
                                stages carry their BatchNorm folded into conv weight + bias */
} mc_vit_params;

/* Defaults for a known arch name ("vit_b16", "vit_base_mci_224",
 * "vit_large_patch14_clip_224", other "vit_*" timm names, "vit" for
 * OpenCLIP's own ViT: head size and activation then come from its config): layout, prefix,
 * eps and activation as the reference builds them.  *known is 0 when the
 * name is not a ViT this loader handles. */
mc_vit_params mc_vit_default_params(const char *arch, int *known);

/* Binds the tower's tensors (under p->prefix) and builds the tower. */
mc_status mc_vit_tower_load(mc_binder *b, const mc_vit_params *p, mc_image_tower **out);

#endif /* MC_VIT_H */
