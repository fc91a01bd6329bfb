/*
 * io/config.c - model configurations (see config.h): reading the mobileclip repo's
 * config.json and OpenCLIP's open_clip_config.json into one mc_config, the
 * built-in official configurations, and locating a model's checkpoint and
 * config on disk.
 */
#include "io/config.h"
#include "core/json.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONFIG_MAX_BYTES (1u << 20)

static const float openai_mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float openai_std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Built-in configurations, as JSON in the layouts the files use.
 * v1: apple/ml-mobileclip mobileclip/configs/<name>.json (mobileclip_blt is
 * the mobileclip_b architecture).  MobileCLIP2: mobileclip2/model_configs/
 * <name>.json, with the preprocessing of the official releases (bilinear with
 * no mean/std for S0/S2/B, bilinear with OpenAI mean/std for S3/S4, bicubic
 * with OpenAI mean/std for L-14). */
#define V1_TEXT(layers, causal, arch)                                                          \
    "\"text_cfg\":{\"context_length\":77,\"vocab_size\":49408,\"dim\":512,"                    \
    "\"ffn_multiplier_per_layer\":4.0,\"n_heads_per_layer\":8,\"n_transformer_layers\":" layers \
    ",\"norm_layer\":\"layer_norm_fp32\",\"causal_masking\":" causal ",\"model_name\":\"" arch "\"}"
#define V1(image, size, layers, causal, arch)                                                  \
    "{\"embed_dim\":512,\"image_cfg\":{\"image_size\":" size ",\"model_name\":\"" image "\"},"  \
    V1_TEXT(layers, causal, arch) "}"
#define OC(embed, timm, pool, size, width, heads, nocausal, pre)                               \
    "{\"model_cfg\":{\"embed_dim\":" embed ",\"vision_cfg\":{\"timm_model_name\":\"" timm       \
    "\",\"timm_model_pretrained\":false,\"timm_pool\":\"" pool "\",\"timm_proj\":null,"         \
    "\"image_size\":" size "},\"text_cfg\":{\"context_length\":77,\"vocab_size\":49408,"        \
    "\"width\":" width ",\"heads\":" heads ",\"layers\":12,\"no_causal_mask\":" nocausal "},"   \
    "\"custom_text\":true},\"preprocess_cfg\":" pre "}"
#define PRE_MC "{\"mean\":[0,0,0],\"std\":[1,1,1],\"interpolation\":\"bilinear\",\"resize_mode\":\"shortest\"}"
#define PRE_OAI(interp)                                                                        \
    "{\"mean\":[0.48145466,0.4578275,0.40821073],\"std\":[0.26862954,0.26130258,0.27577711],"  \
    "\"interpolation\":\"" interp "\",\"resize_mode\":\"shortest\"}"

/* OpenCLIP's ViT-L-14 / ViT-L-14-quickgelu (model_configs/ViT-L-14*.json): the
 * CLIP teachers of DataCompDR and DFNDR, OpenAI mean/std, bicubic. */
#define VIT_L14(quick)                                                                           \
    "{\"model_cfg\":{\"embed_dim\":768,\"quick_gelu\":" quick ",\"vision_cfg\":{\"image_size\":224," \
    "\"layers\":24,\"width\":1024,\"patch_size\":14},\"text_cfg\":{\"context_length\":77,"          \
    "\"vocab_size\":49408,\"width\":768,\"heads\":12,\"layers\":12}},\"preprocess_cfg\":"            \
    PRE_OAI("bicubic") "}"

static const struct { const char *name; const char *json; } builtins[] = {
    {"mobileclip_s0", V1("mci0", "256", "4", "false", "mct")},
    {"mobileclip_s1", V1("mci1", "256", "12", "false", "base")},
    {"mobileclip_s2", V1("mci2", "256", "12", "false", "base")},
    {"mobileclip_b", V1("vit_b16", "224", "12", "true", "base")},
    {"mobileclip_blt", V1("vit_b16", "224", "12", "true", "base")},
    {"MobileCLIP2-S0", OC("512", "fastvit_mci0", "avg", "256", "512", "8", "true", PRE_MC)},
    {"MobileCLIP2-S2", OC("512", "fastvit_mci2", "avg", "256", "512", "8", "true", PRE_MC)},
    {"MobileCLIP2-B", OC("512", "vit_base_mci_224", "token", "224", "512", "8", "false", PRE_MC)},
    {"MobileCLIP2-S3", OC("768", "fastvit_mci3", "avg", "256", "768", "12", "true", PRE_OAI("bilinear"))},
    {"MobileCLIP2-S4", OC("768", "fastvit_mci4", "avg", "256", "768", "12", "true", PRE_OAI("bilinear"))},
    {"MobileCLIP2-L-14", OC("768", "vit_large_patch14_clip_224", "token", "224", "768", "12", "true",
                            PRE_OAI("bicubic"))},
    /* teachers (open_clip pretrained.py: openai and dfn2b are quick-gelu) */
    {"ViT-L-14-openai", VIT_L14("true")},
    {"ViT-L-14-datacomp_xl_s13b_b90k", VIT_L14("false")},
    {"DFN2B-CLIP-ViT-L-14", VIT_L14("true")},
    {"DFN2B-CLIP-ViT-L-14-39B", VIT_L14("false")},
};
#define N_BUILTINS (sizeof builtins / sizeof builtins[0])

const char *mc_config_family_name(mc_config_family family) {
    switch (family) {
    case MC_CONFIG_FAMILY_MOBILECLIP: return "mobileclip";
    case MC_CONFIG_FAMILY_OPENCLIP: return "open_clip";
    default: return "unknown";
    }
}

const char *const *mc_config_builtin_names(void) {
    static const char *names[N_BUILTINS + 1];
    for (size_t i = 0; i < N_BUILTINS; i++) names[i] = builtins[i].name;
    names[N_BUILTINS] = NULL;
    return names;
}

static void copy_str(char *dst, size_t cap, const char *src) {
    snprintf(dst, cap, "%s", src ? src : "");
}

/* An integer field: a number, or a list of equal numbers (per-layer values). */
static int get_int(const mc_json *v, int dflt, int *ok) {
    if (!v) return dflt;
    if (v->type == MC_JSON_ARRAY && v->len > 0) {
        for (size_t i = 1; i < v->len; i++)
            if (mc_json_number(&v->items[i], -1) != mc_json_number(&v->items[0], -2)) *ok = 0;
        v = &v->items[0];
    }
    double x = mc_json_number(v, -1e300);
    if (!(x >= -2147483647.0 && x <= 2147483647.0) || x != (double)(int)x) { *ok = 0; return dflt; }
    return (int)x;
}

static float get_float(const mc_json *v, float dflt, int *ok) {
    if (!v) return dflt;
    if (v->type == MC_JSON_ARRAY && v->len > 0) {
        for (size_t i = 1; i < v->len; i++)
            if (mc_json_number(&v->items[i], -1) != mc_json_number(&v->items[0], -2)) *ok = 0;
        v = &v->items[0];
    }
    if (v->type != MC_JSON_NUMBER) { *ok = 0; return dflt; }
    return (float)v->number;
}

static int get_bool(const mc_json *v, int dflt, int *ok) {
    if (!v || v->type == MC_JSON_NULL) return dflt;
    if (v->type != MC_JSON_BOOL) { *ok = 0; return dflt; }
    return v->boolean;
}

static mc_status bad(mc_error *err, const char *source, const char *field) {
    return mc_fail(err, MC_ERR_CONFIG, "%s: field '%s' is missing or invalid", source, field);
}

/* image_size may be a number or [h, w] with h == w. */
static int get_size(const mc_json *v, int dflt, int *ok) {
    if (v && v->type == MC_JSON_ARRAY) {
        if (v->len != 2 || mc_json_number(&v->items[0], -1) != mc_json_number(&v->items[1], -2)) {
            *ok = 0;
            return dflt;
        }
    }
    return get_int(v, dflt, ok);
}

static mc_status parse_v1(const mc_json *root, const char *src, mc_config *c, mc_error *err) {
    const mc_json *img = mc_json_get(root, "image_cfg"), *txt = mc_json_get(root, "text_cfg");
    int ok = 1;
    c->family = MC_CONFIG_FAMILY_MOBILECLIP;
    c->embed_dim = get_int(mc_json_get(root, "embed_dim"), 0, &ok);
    if (!ok) return bad(err, src, "embed_dim");
    c->image_size = get_size(mc_json_get(img, "image_size"), 0, &ok);
    if (!ok) return bad(err, src, "image_cfg.image_size");
    const char *im = mc_json_str(mc_json_get(img, "model_name"), NULL);
    if (!im) return bad(err, src, "image_cfg.model_name");
    copy_str(c->image_arch, sizeof c->image_arch, im);
    const char *tm = mc_json_str(mc_json_get(txt, "model_name"), NULL);
    if (!tm) return bad(err, src, "text_cfg.model_name");
    copy_str(c->text_arch, sizeof c->text_arch, tm);
    c->context_length = get_int(mc_json_get(txt, "context_length"), 77, &ok);
    if (!ok) return bad(err, src, "text_cfg.context_length");
    c->vocab_size = get_int(mc_json_get(txt, "vocab_size"), 49408, &ok);
    if (!ok) return bad(err, src, "text_cfg.vocab_size");
    c->text_width = get_int(mc_json_get(txt, "dim"), 0, &ok);
    if (!ok) return bad(err, src, "text_cfg.dim");
    c->text_heads = get_int(mc_json_get(txt, "n_heads_per_layer"), 0, &ok);
    if (!ok) return bad(err, src, "text_cfg.n_heads_per_layer");
    c->text_layers = get_int(mc_json_get(txt, "n_transformer_layers"), 0, &ok);
    if (!ok) return bad(err, src, "text_cfg.n_transformer_layers");
    c->text_mlp_ratio = get_float(mc_json_get(txt, "ffn_multiplier_per_layer"), 4.0f, &ok);
    if (!ok) return bad(err, src, "text_cfg.ffn_multiplier_per_layer");
    c->causal = get_bool(mc_json_get(txt, "causal_masking"), 0, &ok);
    if (!ok) return bad(err, src, "text_cfg.causal_masking");
    copy_str(c->norm_layer, sizeof c->norm_layer,
             mc_json_str(mc_json_get(txt, "norm_layer"), "layer_norm_fp32"));
    copy_str(c->text_pool, sizeof c->text_pool, "argmax");
    c->preprocess.size = c->image_size;
    c->preprocess.interp = MC_INTERP_BILINEAR;
    c->preprocess.resize_mode = MC_RESIZE_SHORTEST;
    for (int i = 0; i < 3; i++) { c->preprocess.mean[i] = 0.0f; c->preprocess.std[i] = 1.0f; }
    c->preprocess.apply_exif = 1;
    return MC_OK;
}

/* OpenCLIP's own VisionTransformer as the CLIP releases build it: class-token
 * pooling, learnable positions, the default block.  The options that change
 * the computation otherwise are refused by name. */
static mc_status check_native_vit(const mc_json *vis, const char *src, mc_error *err) {
    static const char *const flags[] = {"attentional_pool", "qk_norm", "scaled_cosine_attn", "scale_heads",
                                        "scale_attn_inner", "scale_attn", "scale_fc"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        const mc_json *v = mc_json_get(vis, flags[i]);
        if (v && v->type != MC_JSON_NULL && !(v->type == MC_JSON_BOOL && !v->boolean))
            return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: vision_cfg.%s is not supported", src, flags[i]);
    }
    static const char *const nulls[] = {"ls_init_value", "act_kwargs", "norm_kwargs"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++) {
        const mc_json *v = mc_json_get(vis, nulls[i]);
        if (v && v->type != MC_JSON_NULL)
            return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: vision_cfg.%s is not supported", src, nulls[i]);
    }
    const char *pool = mc_json_str(mc_json_get(vis, "pool_type"), "tok");
    if (strcmp(pool, "tok"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: vision_cfg.pool_type '%s' is not supported (tok)", src, pool);
    const char *pe = mc_json_str(mc_json_get(vis, "pos_embed_type"), "learnable");
    if (strcmp(pe, "learnable"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: vision_cfg.pos_embed_type '%s' is not supported (learnable)",
                       src, pe);
    const char *bt = mc_json_str(mc_json_get(vis, "block_type"), "default");
    if (strcmp(bt, "default"))
        return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: vision_cfg.block_type '%s' is not supported (default)", src, bt);
    return MC_OK;
}

static mc_status parse_openclip(const mc_json *mc, const mc_json *pre, const char *src, mc_config *c,
                                mc_error *err) {
    const mc_json *vis = mc_json_get(mc, "vision_cfg"), *txt = mc_json_get(mc, "text_cfg");
    int ok = 1;
    c->family = MC_CONFIG_FAMILY_OPENCLIP;
    c->embed_dim = get_int(mc_json_get(mc, "embed_dim"), 0, &ok);
    if (!ok) return bad(err, src, "embed_dim");
    c->quick_gelu = get_bool(mc_json_get(mc, "quick_gelu"), 0, &ok);
    c->custom_text = get_bool(mc_json_get(mc, "custom_text"), 0, &ok);
    if (!ok) return bad(err, src, "quick_gelu/custom_text");
    /* vision: timm tower or OpenCLIP's own ViT (defaults from OpenCLIP's CLIPVisionCfg) */
    const char *timm = mc_json_str(mc_json_get(vis, "timm_model_name"), NULL);
    copy_str(c->image_arch, sizeof c->image_arch, timm ? timm : "vit");
    c->image_size = get_size(mc_json_get(vis, "image_size"), 224, &ok);
    if (!ok) return bad(err, src, "vision_cfg.image_size");
    copy_str(c->image_pool, sizeof c->image_pool, mc_json_str(mc_json_get(vis, "timm_pool"), timm ? "avg" : ""));
    copy_str(c->image_proj, sizeof c->image_proj, mc_json_str(mc_json_get(vis, "timm_proj"), ""));
    c->vision_layers = get_int(mc_json_get(vis, "layers"), 12, &ok);
    c->vision_width = get_int(mc_json_get(vis, "width"), 768, &ok);
    c->vision_patch_size = get_int(mc_json_get(vis, "patch_size"), 16, &ok);
    c->vision_head_width = get_int(mc_json_get(vis, "head_width"), 64, &ok);
    c->vision_mlp_ratio = get_float(mc_json_get(vis, "mlp_ratio"), 4.0f, &ok);
    if (!ok) return bad(err, src, "vision_cfg (layers/width/patch_size/head_width/mlp_ratio)");
    if (!timm) {
        mc_status st = check_native_vit(vis, src, err);
        if (st != MC_OK) return st;
    }
    /* text: OpenCLIP's CLIPTextCfg defaults */
    copy_str(c->text_arch, sizeof c->text_arch, "open_clip");
    c->context_length = get_int(mc_json_get(txt, "context_length"), 77, &ok);
    if (!ok) return bad(err, src, "text_cfg.context_length");
    c->vocab_size = get_int(mc_json_get(txt, "vocab_size"), 49408, &ok);
    if (!ok) return bad(err, src, "text_cfg.vocab_size");
    c->text_width = get_int(mc_json_get(txt, "width"), 512, &ok);
    if (!ok) return bad(err, src, "text_cfg.width");
    c->text_heads = get_int(mc_json_get(txt, "heads"), 8, &ok);
    if (!ok) return bad(err, src, "text_cfg.heads");
    c->text_layers = get_int(mc_json_get(txt, "layers"), 12, &ok);
    if (!ok) return bad(err, src, "text_cfg.layers");
    c->text_mlp_ratio = get_float(mc_json_get(txt, "mlp_ratio"), 4.0f, &ok);
    if (!ok) return bad(err, src, "text_cfg.mlp_ratio");
    c->causal = !get_bool(mc_json_get(txt, "no_causal_mask"), 0, &ok);
    if (!ok) return bad(err, src, "text_cfg.no_causal_mask");
    c->text_embed_cls = get_bool(mc_json_get(txt, "embed_cls"), 0, &ok);
    c->text_proj_bias = get_bool(mc_json_get(txt, "proj_bias"), 0, &ok);
    if (!ok) return bad(err, src, "text_cfg.embed_cls/proj_bias");
    copy_str(c->text_pool, sizeof c->text_pool, mc_json_str(mc_json_get(txt, "pool_type"), "argmax"));
    copy_str(c->norm_layer, sizeof c->norm_layer, "layer_norm");
    /* preprocessing: OpenCLIP's PreprocessCfg defaults are OpenAI mean/std, bicubic, shortest */
    mc_preprocess_params *p = &c->preprocess;
    p->size = get_size(mc_json_get(pre, "size"), c->image_size, &ok);
    if (!ok) return bad(err, src, "preprocess_cfg.size");
    p->apply_exif = 1;
    for (int i = 0; i < 3; i++) { p->mean[i] = openai_mean[i]; p->std[i] = openai_std[i]; }
    const mc_json *jm = mc_json_get(pre, "mean"), *js = mc_json_get(pre, "std");
    for (int k = 0; k < 2; k++) {
        const mc_json *a = k ? js : jm;
        float *dst = k ? p->std : p->mean;
        if (!a || a->type == MC_JSON_NULL) continue;
        if (a->type == MC_JSON_NUMBER) { for (int i = 0; i < 3; i++) dst[i] = (float)a->number; continue; }
        if (a->type != MC_JSON_ARRAY || a->len != 3) return bad(err, src, k ? "preprocess_cfg.std" : "preprocess_cfg.mean");
        for (int i = 0; i < 3; i++) {
            if (a->items[i].type != MC_JSON_NUMBER)
                return bad(err, src, k ? "preprocess_cfg.std" : "preprocess_cfg.mean");
            dst[i] = (float)a->items[i].number;
        }
    }
    for (int i = 0; i < 3; i++)
        if (!(p->std[i] > 0)) return bad(err, src, "preprocess_cfg.std");
    const char *interp = mc_json_str(mc_json_get(pre, "interpolation"), "bicubic");
    if (!strcmp(interp, "bicubic")) p->interp = MC_INTERP_BICUBIC;
    else if (!strcmp(interp, "bilinear")) p->interp = MC_INTERP_BILINEAR;
    else return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: interpolation '%s' is not supported (bilinear, bicubic)", src, interp);
    const char *rm = mc_json_str(mc_json_get(pre, "resize_mode"), "shortest");
    if (!strcmp(rm, "shortest")) p->resize_mode = MC_RESIZE_SHORTEST;
    else if (!strcmp(rm, "squash")) p->resize_mode = MC_RESIZE_SQUASH;
    else return mc_fail(err, MC_ERR_UNSUPPORTED, "%s: resize_mode '%s' is not supported (shortest, squash)", src, rm);
    return MC_OK;
}

static mc_status validate(const mc_config *c, const char *src, mc_error *err) {
    if (c->embed_dim <= 0 || c->embed_dim > 65536) return bad(err, src, "embed_dim");
    if (c->image_size < 16 || c->image_size > 8192) return bad(err, src, "image_size");
    if (!c->image_arch[0]) return bad(err, src, "image model name");
    if (c->context_length < 1 || c->context_length > 16384) return bad(err, src, "context_length");
    if (c->vocab_size < 1 || c->vocab_size > 10000000) return bad(err, src, "vocab_size");
    if (c->text_width <= 0 || c->text_width > 65536) return bad(err, src, "text width");
    if (c->text_heads <= 0 || c->text_width % c->text_heads) return bad(err, src, "text heads");
    if (c->text_layers < 0 || c->text_layers > 1024) return bad(err, src, "text layers");
    if (!(c->text_mlp_ratio > 0 && c->text_mlp_ratio <= 64)) return bad(err, src, "text mlp ratio");
    if (c->preprocess.size < 1 || c->preprocess.size > 8192) return bad(err, src, "preprocess size");
    return MC_OK;
}

mc_status mc_config_parse(const char *json, size_t len, const char *source, mc_config *out,
                          mc_error *err) {
    if (!source) source = "config";
    memset(out, 0, sizeof *out);
    copy_str(out->source, sizeof out->source, source);
    mc_json *root = NULL;
    mc_status st = mc_json_parse(json, len, &root, err);
    if (st != MC_OK) {
        mc_error_prefix(err, "%s", source);
        if (err) err->status = MC_ERR_CONFIG;
        return MC_ERR_CONFIG;
    }
    if (root->type != MC_JSON_OBJECT) {
        st = mc_fail(err, MC_ERR_CONFIG, "%s: not a JSON object", source);
    } else if (mc_json_get(root, "model_cfg")) {
        st = parse_openclip(mc_json_get(root, "model_cfg"), mc_json_get(root, "preprocess_cfg"), source,
                            out, err);
    } else if (mc_json_get(root, "vision_cfg")) {
        st = parse_openclip(root, mc_json_get(root, "preprocess_cfg"), source, out, err);
    } else if (mc_json_get(root, "image_cfg") && mc_json_get(root, "text_cfg")) {
        st = parse_v1(root, source, out, err);
    } else {
        st = mc_fail(err, MC_ERR_CONFIG,
                     "%s: neither a mobileclip config (image_cfg, text_cfg) nor an OpenCLIP one (model_cfg)",
                     source);
    }
    mc_json_free(root);
    if (st == MC_OK) st = validate(out, source, err);
    return st;
}

/* Reads and parses a config file; its text goes to *text (malloc'd) when text is non-NULL. */
static mc_status load_file_text(const char *path, mc_config *out, char **text_out, mc_error *err) {
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    mc_status st = mc_file_read_all(path, CONFIG_MAX_BYTES, &text, &len, err);
    if (st != MC_OK) return st;
    st = mc_config_parse(text, len, path, out, err);
    if (st == MC_OK && text_out) *text_out = text;
    else free(text);
    return st;
}

mc_status mc_config_load_file(const char *path, mc_config *out, mc_error *err) {
    return load_file_text(path, out, NULL, err);
}

/* Lower case, '-' as '_': "MobileCLIP2-S0" == "mobileclip2_s0". */
static int name_eq(const char *a, const char *b) {
    for (;; a++, b++) {
        int x = tolower((unsigned char)*a), y = tolower((unsigned char)*b);
        if (x == '-') x = '_';
        if (y == '-') y = '_';
        if (x != y) return 0;
        if (!x) return 1;
    }
}

/* A built-in by name; its JSON text is copied to *text_out when non-NULL. */
static mc_status builtin_text(const char *name, mc_config *out, char **text_out, mc_error *err) {
    memset(out, 0, sizeof *out);
    if (!name) return mc_fail(err, MC_ERR_INVALID_ARG, "model name is NULL");
    for (size_t i = 0; i < N_BUILTINS; i++) {
        if (!name_eq(name, builtins[i].name)) continue;
        mc_status st = mc_config_parse(builtins[i].json, strlen(builtins[i].json), "built-in", out, err);
        if (st != MC_OK) return st;
        copy_str(out->name, sizeof out->name, builtins[i].name);
        if (text_out && !(*text_out = strdup(builtins[i].json)))
            return mc_fail(err, MC_ERR_NOMEM, "out of memory");
        return MC_OK;
    }
    return mc_fail(err, MC_ERR_NOT_FOUND,
                   "no built-in configuration named '%s' (known: mobileclip_s0, mobileclip_s1, "
                   "mobileclip_s2, mobileclip_b, mobileclip_blt, MobileCLIP2-S0/S2/B/S3/S4/L-14, ViT-L-14-openai, "
                   "ViT-L-14-datacomp_xl_s13b_b90k, DFN2B-CLIP-ViT-L-14, DFN2B-CLIP-ViT-L-14-39B)", name);
}

mc_status mc_config_builtin(const char *name, mc_config *out, mc_error *err) {
    return builtin_text(name, out, NULL, err);
}

/* ---------------------------------------------------------------- finding files */

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int str_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The checkpoint inside a folder; MC_ERR_NOT_FOUND when none. */
/* Rank of a checkpoint file name at equal steps: epoch_N before step_N before epoch_latest. */
static int name_rank(const char *n) {
    if (!strncmp(n, "epoch_latest", 12)) return 0;
    if (!strncmp(n, "step_", 5)) return 1;
    return 2;
}

mc_status mc_config_latest_run_checkpoint(const char *run_folder, char *out, size_t cap, mc_error *err) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_folder);
    if (!mc_path_is_dir(dir)) snprintf(dir, sizeof dir, "%s", run_folder);
    DIR *d = opendir(dir);
    if (!d) return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no checkpoints folder", run_folder);
    long best_step = -1;
    int best_rank = -1;
    char best[4400] = "";
    mc_status st = MC_OK;
    struct dirent *de;
    while ((de = readdir(d)) && st == MC_OK) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".safetensors")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        if (!mc_path_is_file(path)) continue;
        mc_checkpoint *ck = NULL;
        if ((st = mc_checkpoint_open(path, &ck, err)) != MC_OK) {
            mc_error_prefix(err, "%s: unreadable checkpoint in the run (move it away, or name another with "
                                 "--resume PATH / -m PATH)", path);
            break;
        }
        const char *sv = mc_checkpoint_metadata(ck, "step");
        long step = sv ? strtol(sv, NULL, 10) : -1;
        mc_checkpoint_close(ck);
        if (step < 0) continue;            /* not a training state */
        int rank = name_rank(de->d_name);
        if (step > best_step || (step == best_step && rank > best_rank)) {
            best_step = step;
            best_rank = rank;
            snprintf(best, sizeof best, "%s", path);
        }
    }
    closedir(d);
    if (st != MC_OK) return st;
    if (!best[0]) return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no training checkpoint", dir);
    if (strlen(best) >= cap) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: path too long", best);
    copy_str(out, cap, best);
    return MC_OK;
}

static mc_status find_checkpoint(const char *dir, char *out, size_t cap, mc_error *err) {
    /* a training run's folder (LOGS/NAME): its newest checkpoint */
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/checkpoints", dir);
    if (mc_path_is_dir(sub)) return mc_config_latest_run_checkpoint(dir, out, cap, err);
    static const char *const preferred[] = {"open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                                            "model.safetensors", "model.pt"};
    char buf[4096];
    for (size_t i = 0; i < sizeof preferred / sizeof preferred[0]; i++) {
        snprintf(buf, sizeof buf, "%s/%s", dir, preferred[i]);
        if (mc_path_is_file(buf)) { copy_str(out, cap, buf); return MC_OK; }
    }
    DIR *d = opendir(dir);
    if (!d) return mc_fail(err, MC_ERR_IO, "%s: cannot list the folder", dir);
    char *names[512];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 512) {
        if (de->d_name[0] == '.') continue;
        if (!(names[n] = strdup(de->d_name))) break;
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, str_cmp);
    static const char *const exts[] = {".pt", ".pth", ".bin", ".safetensors"};
    mc_status st = MC_ERR_NOT_FOUND;
    for (size_t e = 0; e < 4 && st != MC_OK; e++)
        for (size_t i = 0; i < n && st != MC_OK; i++) {
            if (!ends_with(names[i], exts[e]) || !strcmp(names[i], "expected.safetensors")) continue;
            snprintf(buf, sizeof buf, "%s/%s", dir, names[i]);
            if (mc_path_is_file(buf)) { copy_str(out, cap, buf); st = MC_OK; }
        }
    for (size_t i = 0; i < n; i++) free(names[i]);
    if (st != MC_OK)
        return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no checkpoint (*.pt, *.pth, *.bin, *.safetensors) in the folder", dir);
    return MC_OK;
}

/* The last path component without its extension. */
static void stem_of(const char *path, char *out, size_t cap) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    size_t e = len;
    for (size_t k = len; k > b; k--)
        if (path[k - 1] == '.') { e = k - 1; break; }
    if (e == b) e = len;
    size_t n = e - b < cap - 1 ? e - b : cap - 1;
    memcpy(out, path + b, n);
    out[n] = 0;
}

/* Whether a file starts as a safetensors file does (8-byte header size, then '{'). */
static int looks_safetensors(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char h[9];
    int ok = fread(h, 1, sizeof h, f) == sizeof h && h[8] == '{';
    fclose(f);
    return ok;
}

/* The config a converted file carries: "mobileclip.config" (JSON text) or else
 * "mobileclip.model_name" (a built-in).  MC_ERR_NOT_FOUND when it has neither. */
static mc_status config_from_metadata(const char *ckpt, mc_config *out, char **text_out, mc_error *err) {
    if (!looks_safetensors(ckpt)) return MC_ERR_NOT_FOUND;
    mc_checkpoint *ck = NULL;
    mc_status st = mc_checkpoint_open(ckpt, &ck, err);
    if (st != MC_OK) return st;
    const char *cfg = mc_checkpoint_metadata(ck, "mobileclip.config");
    const char *name = mc_checkpoint_metadata(ck, "mobileclip.model_name");
    if (cfg) {
        char src[4200];
        snprintf(src, sizeof src, "%s (metadata mobileclip.config)", ckpt);
        st = mc_config_parse(cfg, strlen(cfg), src, out, err);
        if (st == MC_OK && name) copy_str(out->name, sizeof out->name, name);
        if (st == MC_OK && text_out && !(*text_out = strdup(cfg))) st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
    } else if (name) {
        st = builtin_text(name, out, text_out, err);
    } else {
        st = MC_ERR_NOT_FOUND;
    }
    mc_checkpoint_close(ck);
    return st;
}

mc_status mc_config_resolve(const char *model_path, const char *config_path, const char *name_hint,
                            mc_config *out, char *ckpt_path_out, size_t cap, mc_error *err) {
    return mc_config_resolve_text(model_path, config_path, name_hint, out, ckpt_path_out, cap, NULL, err);
}

mc_status mc_config_resolve_text(const char *model_path, const char *config_path, const char *name_hint,
                                 mc_config *out, char *ckpt_path_out, size_t cap, char **text_out,
                                 mc_error *err) {
    memset(out, 0, sizeof *out);
    if (text_out) *text_out = NULL;
    if (!model_path) return mc_fail(err, MC_ERR_INVALID_ARG, "model path is NULL");
    char ckpt[4096], dir[4096];
    mc_status st;
    if (mc_path_is_dir(model_path)) {
        if ((st = find_checkpoint(model_path, ckpt, sizeof ckpt, err)) != MC_OK) return st;
        copy_str(dir, sizeof dir, model_path);
    } else {
        if (!mc_path_is_file(model_path)) return mc_fail(err, MC_ERR_IO, "%s: no such file or folder", model_path);
        copy_str(ckpt, sizeof ckpt, model_path);
        copy_str(dir, sizeof dir, model_path);
        char *slash = strrchr(dir, '/');
        if (slash) { if (slash == dir) slash[1] = 0; else *slash = 0; }
        else copy_str(dir, sizeof dir, ".");
    }
    if (ckpt_path_out && cap) copy_str(ckpt_path_out, cap, ckpt);
    if (config_path) return load_file_text(config_path, out, text_out, err);
    static const char *const beside[] = {"open_clip_config.json", "config.json"};
    char buf[4200];
    for (size_t i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf, "%s/%s", dir, beside[i]);
        if (mc_path_is_file(buf)) return load_file_text(buf, out, text_out, err);
    }
    st = config_from_metadata(ckpt, out, text_out, err);
    if (st != MC_ERR_NOT_FOUND) return st;
    if (name_hint) return builtin_text(name_hint, out, text_out, err);
    char stem[256];
    stem_of(ckpt, stem, sizeof stem);
    if (builtin_text(stem, out, text_out, NULL) == MC_OK) return MC_OK;
    stem_of(dir, stem, sizeof stem);
    if (builtin_text(stem, out, text_out, NULL) == MC_OK) return MC_OK;
    return mc_fail(err, MC_ERR_CONFIG,
                   "%s: no config.json or open_clip_config.json beside the checkpoint, none in its "
                   "metadata, and its name is not an official one; pass a config file or an official "
                   "model name (e.g. mobileclip_s0)",
                   ckpt);
}
