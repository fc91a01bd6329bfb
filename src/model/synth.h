/*
 * model/synth.h - architecture descriptions of the official MobileCLIP / MobileCLIP2
 * models, in-memory checkpoints with seeded random weights in their exact
 * release layouts (tensor names and full-size shapes), and multiply-accumulate
 * counts per tower.  Used by the benchmark, so that it runs offline on the
 * code users run.  Internal: not installed.
 */
#ifndef MC_SYNTH_H
#define MC_SYNTH_H

#include "io/config.h"
#include "model/model.h"

enum { MC_ARCH_NONE = 0, MC_ARCH_MCI, MC_ARCH_VIT };
enum { MC_ARCH_TEXT_NONE = 0, MC_ARCH_TEXT_BASE, MC_ARCH_TEXT_MCT, MC_ARCH_TEXT_OPENCLIP };

#define MC_ARCH_MAX_STAGES 5

/* What fixes a model's tensor names and shapes (and its compute). */
typedef struct mc_arch_spec {
    char name[MC_CONFIG_STR];  /* official name, or the arch names when inferred */
    int v1;                    /* 1: apple/ml-mobileclip layout; 0: OpenCLIP/timm layout */
    int embed_dim;

    int image_kind;            /* MC_ARCH_MCI, MC_ARCH_VIT or MC_ARCH_NONE */
    int image_size;
    /* MCi (FastViT) */
    int n_stages;
    int depth[MC_ARCH_MAX_STAGES], width[MC_ARCH_MAX_STAGES];
    int attn[MC_ARCH_MAX_STAGES];      /* 1: attention stage with conditional pos. encoding */
    int se_down[MC_ARCH_MAX_STAGES];   /* 1: the downsample into this stage has squeeze-excite */
    int mlp_ratio;                     /* ConvFFN hidden = width * mlp_ratio */
    int ln2d;                          /* attention blocks use LayerNorm2d (else BatchNorm) */
    int stem_scale;                    /* stem blocks have 1x1 scale branches */
    /* ViT */
    int vit_width, vit_layers, vit_patch, vit_mlp;
    int vit_conv_stem;         /* 4-2-2 convolutional stem (MobileCLIP-B) instead of a patch conv */
    int vit_norm_pre;          /* LayerNorm before the blocks (CLIP ViT-L/14) */
    int vit_pos_cls;           /* position embedding includes the class token */
    int vit_openclip;          /* OpenCLIP's own ViT (visual.conv1 ... visual.proj; the CLIP teachers),
                                  its text tower at the root (token_embedding, ...) */

    int text_kind;             /* MC_ARCH_TEXT_* */
    int text_width, text_layers, text_mlp, context_length, vocab_size, causal;
} mc_arch_spec;

/* The spec of a built-in official model (names as mc_config_builtin: mobileclip_s0,
 * mobileclip_s1, mobileclip_s2, mobileclip_b, mobileclip_blt, MobileCLIP2-S0/S2/B/S3/S4/L-14, and
 * the CLIP teachers ViT-L-14-openai, ViT-L-14-datacomp_xl_s13b_b90k, DFN2B-CLIP-ViT-L-14(-39B)).
 * cfg (may be NULL) receives the matching built-in configuration. */
mc_status mc_arch_spec_builtin(const char *name, mc_arch_spec *out, mc_config *cfg, mc_error *err);

/* Infers the spec of a checkpoint from its tensors (depths and widths) and its
 * configuration (family, architecture names, image size). */
mc_status mc_arch_spec_infer(const mc_checkpoint *ck, const mc_config *cfg, mc_arch_spec *out,
                             mc_error *err);

/* Builds an in-memory checkpoint holding the tensors of the spec's image tower
 * (want_image) and/or text tower (want_text), plus logit_scale, with
 * deterministic pseudo-random float32 values of sensible scale (weights
 * ~ 1/sqrt(fan_in), norms near 1, BatchNorm running_var positive). */
mc_status mc_synth_checkpoint(const mc_arch_spec *s, uint64_t seed, int want_image, int want_text,
                              mc_checkpoint **out, mc_error *err);

/* A built-in model with random weights, loaded through the model loader. */
mc_status mc_synth_model_load(const char *name, uint64_t seed, const mc_model_params *params,
                              mc_model **out, mc_error *err);

/* Multiply-accumulates of one item through a tower of the folded (inference)
 * network.  with_attention 0 leaves out the attention score and value products
 * (the convention of layer-counting tools). */
double mc_arch_macs_image(const mc_arch_spec *s, int with_attention);
double mc_arch_macs_text(const mc_arch_spec *s, int with_attention);
/* The same for a forward over the first `positions` positions (causal text
 * towers stop at the last pooled token: mc_model_text_positions). */
double mc_arch_macs_text_run(const mc_arch_spec *s, int with_attention, int positions);

#endif /* MC_SYNTH_H */
