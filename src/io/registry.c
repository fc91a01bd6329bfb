/*
 * io/registry.c - the table of official models, the cache folder layout, and
 * turning a MODEL argument (path or official name) into a loadable path.
 * Downloading itself is in download.c.
 */
#include "io/registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define OC_FILES {"open_clip_model.safetensors", "open_clip_config.json"}
#define TEACHER_FILES {"open_clip_pytorch_model.bin", NULL}

/* Parameter counts (millions, image + text) are the ones Apple's ml-mobileclip
 * README publishes; sizes and dims come from the configs of each release. */
static const mc_registry_entry registry[] = {
    /* v1: Apple's mobileclip repo checkpoints (config built in by name) */
    {"mobileclip_s0", "mobileclip", MC_SOURCE_APPLE, NULL, {"mobileclip_s0.pt", NULL}, "mci0", 256, 512, 11.4, 42.4},
    {"mobileclip_s1", "mobileclip", MC_SOURCE_APPLE, NULL, {"mobileclip_s1.pt", NULL}, "mci1", 256, 512, 21.5, 63.4},
    {"mobileclip_s2", "mobileclip", MC_SOURCE_APPLE, NULL, {"mobileclip_s2.pt", NULL}, "mci2", 256, 512, 35.7, 63.4},
    {"mobileclip_b", "mobileclip", MC_SOURCE_APPLE, NULL, {"mobileclip_b.pt", NULL}, "vit_b16", 224, 512, 86.3, 63.4},
    {"mobileclip_blt", "mobileclip", MC_SOURCE_APPLE, NULL, {"mobileclip_blt.pt", NULL}, "vit_b16", 224, 512, 86.3, 63.4},
    /* OpenCLIP releases (open_clip's pretrained.py hf_hub entries) */
    {"MobileCLIP-S1", "open_clip", MC_SOURCE_HF, "apple/MobileCLIP-S1-OpenCLIP", OC_FILES, "fastvit_mci1", 256, 512, 21.5, 63.4},
    {"MobileCLIP-S2", "open_clip", MC_SOURCE_HF, "apple/MobileCLIP-S2-OpenCLIP", OC_FILES, "fastvit_mci2", 256, 512, 35.7, 63.4},
    {"MobileCLIP-B", "open_clip", MC_SOURCE_HF, "apple/MobileCLIP-B-OpenCLIP", OC_FILES, "vit_base_mci_224", 224, 512, 86.3, 63.4},
    {"MobileCLIP-B-LT", "open_clip", MC_SOURCE_HF, "apple/MobileCLIP-B-LT-OpenCLIP", OC_FILES, "vit_base_mci_224", 224, 512, 86.3, 63.4},
    {"MobileCLIP2-S0", "open_clip", MC_SOURCE_HF, "timm/MobileCLIP2-S0-OpenCLIP", OC_FILES, "fastvit_mci0", 256, 512, 11.4, 63.4},
    {"MobileCLIP2-S2", "open_clip", MC_SOURCE_HF, "timm/MobileCLIP2-S2-OpenCLIP", OC_FILES, "fastvit_mci2", 256, 512, 35.7, 63.4},
    {"MobileCLIP2-B", "open_clip", MC_SOURCE_HF, "timm/MobileCLIP2-B-OpenCLIP", OC_FILES, "vit_base_mci_224", 224, 512, 86.3, 63.4},
    {"MobileCLIP2-S3", "open_clip", MC_SOURCE_HF, "timm/MobileCLIP2-S3-OpenCLIP", OC_FILES, "fastvit_mci3", 256, 768, 125.1, 123.6},
    {"MobileCLIP2-S4", "open_clip", MC_SOURCE_HF, "timm/MobileCLIP2-S4-OpenCLIP", OC_FILES, "fastvit_mci4", 256, 768, 321.6, 123.6},
    {"MobileCLIP2-L-14", "open_clip", MC_SOURCE_HF, "timm/MobileCLIP2-L-14-OpenCLIP", OC_FILES, "vit_large_patch14_clip_224", 224, 768, 304.3, 123.6},
    /* CLIP teachers of dataset reinforcement (open_clip pretrained.py hf_hub entries; the
     * weights file open_clip falls back to, config built in by name; counts: open_clip's
     * model profile of ViT-L-14) */
    {"ViT-L-14-openai", "open_clip", MC_SOURCE_HF, "timm/vit_large_patch14_clip_224.openai", TEACHER_FILES, "vit", 224, 768, 304.0, 123.7},
    {"ViT-L-14-datacomp_xl_s13b_b90k", "open_clip", MC_SOURCE_HF, "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K", TEACHER_FILES, "vit", 224, 768, 304.0, 123.7},
    {"DFN2B-CLIP-ViT-L-14", "open_clip", MC_SOURCE_HF, "apple/DFN2B-CLIP-ViT-L-14", TEACHER_FILES, "vit", 224, 768, 304.0, 123.7},
    {"DFN2B-CLIP-ViT-L-14-39B", "open_clip", MC_SOURCE_HF, "apple/DFN2B-CLIP-ViT-L-14-39B", TEACHER_FILES, "vit", 224, 768, 304.0, 123.7},
};

#define N_REGISTRY (sizeof registry / sizeof registry[0])

size_t mc_registry_count(void) { return N_REGISTRY; }

const mc_registry_entry *mc_registry_get(size_t i) { return i < N_REGISTRY ? &registry[i] : NULL; }

const mc_registry_entry *mc_registry_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (!strcmp(registry[i].name, name)) return &registry[i];
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (!strcasecmp(registry[i].name, name)) return &registry[i];
    return NULL;
}

static int path_fmt(char *out, size_t cap, const char *fmt, const char *a, const char *b) {
    int n = snprintf(out, cap, fmt, a, b);
    return n >= 0 && (size_t)n < cap;
}

mc_status mc_registry_cache_dir(char *out, size_t cap, mc_error *err) {
    const char *e = getenv("MOBILECLIP_CACHE");
    int ok;
    if (e && *e) {
        ok = path_fmt(out, cap, "%s%s", e, "");
    } else if ((e = getenv("XDG_CACHE_HOME")) && *e) {
        ok = path_fmt(out, cap, "%s/%s", e, "mobileclip");
    } else if ((e = getenv("HOME")) && *e) {
        ok = path_fmt(out, cap, "%s/%s", e, ".cache/mobileclip");
    } else {
        return mc_fail(err, MC_ERR_CONFIG,
                       "no cache folder: set MOBILECLIP_CACHE, XDG_CACHE_HOME or HOME");
    }
    if (!ok) return mc_fail(err, MC_ERR_INVALID_ARG, "cache folder path too long");
    return MC_OK;
}

mc_status mc_registry_model_dir(const mc_registry_entry *e, char *out, size_t cap, mc_error *err) {
    char root[4096];
    mc_status st = mc_registry_cache_dir(root, sizeof root, err);
    if (st) return st;
    if (!path_fmt(out, cap, "%s/%s", root, e->name))
        return mc_fail(err, MC_ERR_INVALID_ARG, "cache folder path too long");
    return MC_OK;
}

int mc_registry_is_cached(const mc_registry_entry *e) {
    char dir[4096], p[8192];
    if (mc_registry_model_dir(e, dir, sizeof dir, NULL)) return 0;
    for (int i = 0; i < MC_REGISTRY_MAX_FILES && e->files[i]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, e->files[i]);
        if (!mc_path_is_file(p)) return 0;
    }
    snprintf(p, sizeof p, "%s/%s", dir, MC_VOCAB_FILENAME);
    return mc_path_is_file(p);
}

static const char *env_or(const char *a, const char *b, const char *dflt) {
    const char *v = a ? getenv(a) : NULL;
    if (v && *v) return v;
    v = b ? getenv(b) : NULL;
    if (v && *v) return v;
    return dflt;
}

mc_status mc_registry_url(const mc_registry_entry *e, const char *file, char *out, size_t cap,
                          mc_error *err) {
    int n;
    if (!strcmp(file, MC_VOCAB_FILENAME)) {
        const char *v = getenv("MOBILECLIP_VOCAB_URL");
        const char *b = getenv("MOBILECLIP_BASE_URL");
        if (v && *v) n = snprintf(out, cap, "%s", v);
        else if (b && *b) n = snprintf(out, cap, "%s/%s", b, MC_VOCAB_FILENAME);
        else n = snprintf(out, cap, "%s", MC_VOCAB_URL_DEFAULT);
    } else if (e->source == MC_SOURCE_APPLE) {
        const char *base = env_or("MOBILECLIP_APPLE_BASE", "MOBILECLIP_BASE_URL", MC_APPLE_BASE_DEFAULT);
        n = snprintf(out, cap, "%s/%s", base, file);
    } else {
        const char *base = env_or("MOBILECLIP_HF_BASE", "MOBILECLIP_BASE_URL", MC_HF_BASE_DEFAULT);
        n = snprintf(out, cap, "%s/%s/resolve/main/%s", base, e->repo, file);
    }
    if (n < 0 || (size_t)n >= cap) return mc_fail(err, MC_ERR_INVALID_ARG, "URL too long");
    return MC_OK;
}

mc_status mc_registry_fetch(const mc_registry_entry *e, const mc_download_params *params,
                            char *dir_out, size_t cap, mc_error *err) {
    char dir[4096], dest[8192], url[8192];
    mc_status st = mc_registry_model_dir(e, dir, sizeof dir, err);
    if (st) return st;
    if ((st = mc_make_dirs(dir, err))) return st;
    const char *want[MC_REGISTRY_MAX_FILES + 1];
    int n = 0;
    for (int i = 0; i < MC_REGISTRY_MAX_FILES && e->files[i]; i++) want[n++] = e->files[i];
    want[n++] = MC_VOCAB_FILENAME;
    for (int i = 0; i < n; i++) {
        snprintf(dest, sizeof dest, "%s/%s", dir, want[i]);
        if (mc_path_is_file(dest)) {
            mc_remove_stale_temps(dest);   /* partial downloads of killed runs */
            continue;
        }
        if ((st = mc_registry_url(e, want[i], url, sizeof url, err))) return st;
        mc_download_params p = params ? *params : mc_download_default_params();
        if (!p.label) p.label = want[i];
        if ((st = mc_download_file(url, dest, &p, err))) {
            mc_error_prefix(err, "%s", e->name);
            return st;
        }
    }
    if (strlen(dir) >= cap) return mc_fail(err, MC_ERR_INVALID_ARG, "cache folder path too long");
    memcpy(dir_out, dir, strlen(dir) + 1);
    return MC_OK;
}

/* The registry entry a path's last component names ("…/mobileclip_s0.pt",
 * "…/MobileCLIP2-S0/"), or NULL. */
static const mc_registry_entry *entry_of_path(const char *path) {
    char buf[4096];
    size_t len = strlen(path);
    if (len >= sizeof buf) return NULL;
    memcpy(buf, path, len + 1);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
    char *base = strrchr(buf, '/');
    base = base ? base + 1 : buf;
    const mc_registry_entry *e = mc_registry_find(base);
    if (e) return e;
    char *dot = strrchr(base, '.');
    if (dot && dot != base) {
        *dot = 0;
        e = mc_registry_find(base);
        if (e) return e;
    }
    /* a file inside a cache folder: the folder's name */
    if (base != buf && mc_path_is_file(path)) {
        base[-1] = 0;
        char *b2 = strrchr(buf, '/');
        return mc_registry_find(b2 ? b2 + 1 : buf);
    }
    return NULL;
}

mc_status mc_registry_resolve(const char *model, int allow_download,
                              const mc_download_params *params, char *path_out, size_t cap,
                              const mc_registry_entry **entry_out, mc_error *err) {
    if (entry_out) *entry_out = NULL;
    if (!model || !*model) return mc_fail(err, MC_ERR_INVALID_ARG, "no model given");
    struct stat sb;
    if (stat(model, &sb) == 0) {
        if (strlen(model) >= cap) return mc_fail(err, MC_ERR_INVALID_ARG, "%s: path too long", model);
        memcpy(path_out, model, strlen(model) + 1);
        if (entry_out) *entry_out = entry_of_path(model);
        return MC_OK;
    }
    const mc_registry_entry *e = mc_registry_find(model);
    if (!e)
        return mc_fail(err, MC_ERR_NOT_FOUND,
                       "%s: no such file, folder or official model name (see 'mobileclip list')",
                       model);
    if (entry_out) *entry_out = e;
    if (mc_registry_is_cached(e)) return mc_registry_model_dir(e, path_out, cap, err);
    if (!allow_download) {
        char dir[4096];
        mc_status st = mc_registry_model_dir(e, dir, sizeof dir, err);
        if (st) return st;
        return mc_fail(err, MC_ERR_NOT_FOUND, "%s: not in the cache (%s) and downloads are off",
                       e->name, dir);
    }
    return mc_registry_fetch(e, params, path_out, cap, err);
}

/* ---- the public face of the registry (mobileclip.h) ---- */

const char *mc_official_model_name(size_t i) {
    const mc_registry_entry *e = mc_registry_get(i);
    return e ? e->name : NULL;
}

mc_status mc_model_resolve(const char *model, int allow_download, char *path_out, size_t cap,
                           const char **name_out, mc_error *err) {
    const mc_registry_entry *e = NULL;
    if (name_out) *name_out = NULL;
    if (!path_out || cap == 0) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_model_resolve: no path buffer");
    mc_download_params dp = mc_download_default_params();
    mc_status st = mc_registry_resolve(model, allow_download, &dp, path_out, cap, &e, err);
    if (st == MC_OK && name_out) *name_out = e ? e->name : NULL;
    return st;
}
