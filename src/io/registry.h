/*
 * io/registry.h - the official MobileCLIP / MobileCLIP2 models by name,
 * where they are published, the local cache that holds them, and fetching
 * them into it (download.h).
 *
 * Cache folder: $MOBILECLIP_CACHE, else $XDG_CACHE_HOME/mobileclip, else
 * ~/.cache/mobileclip; one sub-folder per model name holding the model's
 * files and the tokenizer vocabulary (MC_VOCAB_FILENAME).
 *
 * Download sources (base URLs overridable, for mirrors and tests):
 *   Apple (v1 .pt files):   $MOBILECLIP_APPLE_BASE, else $MOBILECLIP_BASE_URL,
 *                           else MC_APPLE_BASE_DEFAULT; URL = BASE/<file>
 *   Hugging Face (OpenCLIP): $MOBILECLIP_HF_BASE, else $MOBILECLIP_BASE_URL,
 *                           else MC_HF_BASE_DEFAULT; URL = BASE/<repo>/resolve/main/<file>
 *   vocabulary:             $MOBILECLIP_VOCAB_URL, else $MOBILECLIP_BASE_URL
 *                           + "/" MC_VOCAB_FILENAME, else MC_VOCAB_URL_DEFAULT
 */
#ifndef MC_REGISTRY_H
#define MC_REGISTRY_H

#include "io/download.h"

#define MC_APPLE_BASE_DEFAULT "https://docs-assets.developer.apple.com/ml-research/datasets/mobileclip"
#define MC_HF_BASE_DEFAULT "https://huggingface.co"
#define MC_VOCAB_URL_DEFAULT \
    "https://raw.githubusercontent.com/mlfoundations/open_clip/main/src/open_clip/bpe_simple_vocab_16e6.txt.gz"

typedef enum mc_registry_source {
    MC_SOURCE_APPLE = 0,     /* docs-assets.developer.apple.com, one .pt file */
    MC_SOURCE_HF             /* Hugging Face repo: open_clip_model.safetensors + open_clip_config.json */
} mc_registry_source;

#define MC_REGISTRY_MAX_FILES 2

typedef struct mc_registry_entry {
    const char *name;          /* "mobileclip_s0", "MobileCLIP2-S0", ... */
    const char *family;        /* "mobileclip" (v1 repo layout) or "open_clip" */
    mc_registry_source source;
    const char *repo;          /* HF repo ("timm/MobileCLIP2-S0-OpenCLIP"); NULL for Apple */
    const char *files[MC_REGISTRY_MAX_FILES]; /* files to fetch; files[0] is the weights */
    const char *image_arch;    /* as the config names it */
    int image_size;
    int embed_dim;
    double params_image_m;     /* published parameter counts, millions */
    double params_text_m;
} mc_registry_entry;

size_t mc_registry_count(void);
const mc_registry_entry *mc_registry_get(size_t i);
/* By name: exact first, then case-insensitive.  NULL when unknown. */
const mc_registry_entry *mc_registry_find(const char *name);

/* The cache root (not created). */
mc_status mc_registry_cache_dir(char *out, size_t cap, mc_error *err);
/* <cache>/<name> (not created). */
mc_status mc_registry_model_dir(const mc_registry_entry *e, char *out, size_t cap, mc_error *err);
/* 1 when every file of the entry (and the vocabulary) is in the cache. */
int mc_registry_is_cached(const mc_registry_entry *e);
/* The download URL of one of the entry's files. */
mc_status mc_registry_url(const mc_registry_entry *e, const char *file, char *out, size_t cap,
                          mc_error *err);

/* Ensures every file of a registry model (and the vocabulary) is in its cache
 * folder, downloading what is missing; writes the folder's path. */
mc_status mc_registry_fetch(const mc_registry_entry *e, const mc_download_params *params,
                            char *dir_out, size_t cap, mc_error *err);

/* Turns a MODEL argument into something mc_model_load takes: an existing file
 * or folder is returned as is (*entry_out = the registry entry its name
 * matches, or NULL); an official name is fetched into the cache (when
 * allow_download, else MC_ERR_NOT_FOUND if absent) and its folder returned. */
mc_status mc_registry_resolve(const char *model, int allow_download,
                              const mc_download_params *params, char *path_out, size_t cap,
                              const mc_registry_entry **entry_out, mc_error *err);

#endif /* MC_REGISTRY_H */
