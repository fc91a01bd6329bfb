/*
 * io/config.h - model configurations: the mobileclip repo's config.json, OpenCLIP's
 * open_clip_config.json (or a bare OpenCLIP model config), the built-in official
 * configurations, and finding a model's checkpoint and config on disk.
 * Internal: not installed.
 */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include "core/core.h"

typedef enum mc_config_family {
    MC_CONFIG_FAMILY_UNKNOWN = 0,
    MC_CONFIG_FAMILY_MOBILECLIP,   /* apple/ml-mobileclip layout (config.json, model.pt) */
    MC_CONFIG_FAMILY_OPENCLIP      /* OpenCLIP layout (open_clip_config.json) */
} mc_config_family;

#define MC_CONFIG_STR 64

typedef struct mc_config {
    mc_config_family family;
    char name[MC_CONFIG_STR];        /* official name when built in ("mobileclip_s0"), else "" */
    char source[512];                /* the config file read, or "built-in" */
    int embed_dim;

    /* image tower */
    char image_arch[MC_CONFIG_STR];  /* v1: "mci0" "mci1" "mci2" "vit_b16"; OpenCLIP: the
                                        timm name ("fastvit_mci0".."fastvit_mci4",
                                        "vit_base_mci_224", "vit_large_patch14_clip_224"),
                                        or "vit" for OpenCLIP's own VisionTransformer */
    int image_size;
    char image_pool[16];             /* OpenCLIP timm_pool ("avg", "token"); "" for v1 */
    char image_proj[16];             /* OpenCLIP timm_proj ("linear", "mlp"); "" = none */
    /* OpenCLIP's own ViT (no timm_model_name): */
    int vision_layers, vision_width, vision_patch_size, vision_head_width;
    float vision_mlp_ratio;

    /* text tower */
    char text_arch[MC_CONFIG_STR];   /* v1: "mct" or "base"; OpenCLIP: "open_clip" */
    int context_length;              /* 77 */
    int vocab_size;                  /* 49408 */
    int text_width;                  /* v1 text_cfg.dim, OpenCLIP text_cfg.width */
    int text_heads;                  /* v1 n_heads_per_layer, OpenCLIP heads */
    int text_layers;                 /* v1 n_transformer_layers, OpenCLIP layers */
    float text_mlp_ratio;            /* v1 ffn_multiplier_per_layer, OpenCLIP mlp_ratio (4) */
    int causal;                      /* 1: causal attention mask (v1 causal_masking,
                                        OpenCLIP !no_causal_mask) */
    char norm_layer[32];             /* v1 "layer_norm_fp32"; OpenCLIP "layer_norm" */
    char text_pool[16];              /* OpenCLIP pool_type ("argmax" default); v1 "argmax" */
    int text_embed_cls;              /* OpenCLIP embed_cls */
    int text_proj_bias;              /* OpenCLIP proj_bias */
    int quick_gelu;                  /* OpenCLIP model_cfg.quick_gelu */
    int custom_text;                 /* OpenCLIP model_cfg.custom_text */

    mc_preprocess_params preprocess; /* v1: bilinear, mean 0, std 1, shortest, image_size */
} mc_config;

/* "mobileclip" / "open_clip" / "unknown" (the strings mc_model_info uses). */
const char *mc_config_family_name(mc_config_family family);

/* Parses config.json / open_clip_config.json text (or a bare OpenCLIP model
 * config with vision_cfg/text_cfg at the top).  source labels messages. */
mc_status mc_config_parse(const char *json, size_t len, const char *source, mc_config *out,
                          mc_error *err);
mc_status mc_config_load_file(const char *path, mc_config *out, mc_error *err);

/* A built-in official configuration: mobileclip_s0, mobileclip_s1, mobileclip_s2,
 * mobileclip_b, mobileclip_blt (apple/ml-mobileclip mobileclip/configs),
 * MobileCLIP2-S0/S2/B/S3/S4/L-14 (mobileclip2/model_configs), and the
 * reinforcement teachers ViT-L-14-openai, ViT-L-14-datacomp_xl_s13b_b90k,
 * DFN2B-CLIP-ViT-L-14, DFN2B-CLIP-ViT-L-14-39B (OpenCLIP's ViT-L-14, with
 * QuickGELU where open_clip's pretrained.py says quick_gelu).  The match
 * ignores case and treats '-' as '_'.  MC_ERR_NOT_FOUND when unknown. */
mc_status mc_config_builtin(const char *name, mc_config *out, mc_error *err);
/* Names of the built-ins, NULL-terminated. */
const char *const *mc_config_builtin_names(void);

/* The newest training state of a run folder (LOGS/NAME/checkpoints/ *.safetensors,
 * or the folder itself when it has no checkpoints/): the largest "step"
 * metadata; at equal steps epoch_N before step_N before epoch_latest.  A file
 * that cannot be read is an error naming it, never skipped.  MC_ERR_NOT_FOUND
 * when there is none. */
mc_status mc_config_latest_run_checkpoint(const char *run_folder, char *out, size_t cap, mc_error *err);

/* Finds a model's checkpoint and configuration.
 *   model_path:  a checkpoint file, or a folder holding one (open_clip_model.safetensors,
 *                open_clip_pytorch_model.bin, model.safetensors, model.pt, then the
 *                first *.pt, *.pth, *.bin, *.safetensors by name), or a training run's
 *                folder (LOGS/NAME: its newest checkpoint, whose metadata holds the config);
 *   config_path: explicit config file, or NULL: open_clip_config.json or
 *                config.json beside the checkpoint, else the checkpoint's own
 *                metadata (see mc_config_resolve_text), else a built-in chosen by
 *                name_hint, else by the checkpoint's file stem (mobileclip_s0.pt),
 *                else by the folder's name.
 * Writes the checkpoint path into ckpt_path_out (cap bytes) when non-NULL. */
mc_status mc_config_resolve(const char *model_path, const char *config_path, const char *name_hint,
                            mc_config *out, char *ckpt_path_out, size_t cap, mc_error *err);
/* The same; *text_out (when non-NULL) receives the config JSON text used,
 * malloc'd (the caller frees it).  Order: config_path; a config file beside the
 * checkpoint; a safetensors checkpoint's own metadata ("mobileclip.config", else
 * "mobileclip.model_name" as a built-in: files written by 'mobileclip convert');
 * name_hint; the file and folder names. */
mc_status mc_config_resolve_text(const char *model_path, const char *config_path, const char *name_hint,
                                 mc_config *out, char *ckpt_path_out, size_t cap, char **text_out,
                                 mc_error *err);

#endif /* MC_CONFIG_H */
