/*
 * registry.h - the official MobileCLIP / MobileCLIP2 models by name, where
 * they are published, the local cache that holds them, and downloading them
 * (libcurl, atomic, sha256-verified), plus a small SHA-256.
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

#include "mc_internal.h"

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

/* ---- downloads (src/download.c) ---- */

/* Called as bytes arrive; total is -1 while unknown.  Return nonzero to abort. */
typedef int (*mc_progress_fn)(void *user, const char *label, int64_t done, int64_t total);

typedef struct mc_download_params {
    mc_progress_fn progress;   /* NULL: none */
    void *user;
    const char *label;         /* passed to progress (e.g. the file name) */
    const char *sha256;        /* expected hex digest; NULL: the server's, when it gives one */
    long connect_timeout_s;    /* 0: 30 s */
    long low_speed_timeout_s;  /* abort when under 1 byte/s for this long; 0: 60 s */
} mc_download_params;

mc_download_params mc_download_default_params(void);

/* Downloads url to dest atomically: into a temporary file in dest's folder,
 * fsync, verify, rename.  On any failure nothing is left at dest or beside it.
 * The checksum is params->sha256 when given, else the server's: the
 * X-Linked-Etag header (Hugging Face LFS files) or an ETag that is a 64-digit
 * hex sha256; with neither, the file is not verified.
 * Errors: MC_ERR_NETWORK (connection, HTTP status >= 400, truncated body),
 * MC_ERR_CHECKSUM, MC_ERR_IO. */
mc_status mc_download_file(const char *url, const char *dest, const mc_download_params *params,
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

/* ---- SHA-256 (FIPS 180-4) ---- */

typedef struct mc_sha256 {
    uint32_t h[8];
    uint64_t len;              /* bytes so far */
    uint8_t buf[64];
    size_t n;                  /* bytes in buf */
} mc_sha256;

void mc_sha256_init(mc_sha256 *s);
void mc_sha256_update(mc_sha256 *s, const void *data, size_t len);
void mc_sha256_final(mc_sha256 *s, uint8_t digest[32]);
/* Lower-case hex of the digest of data[0..len), into hex[65]. */
void mc_sha256_hex(const void *data, size_t len, char hex[65]);
/* Hex digest of a file's contents. */
mc_status mc_sha256_file(const char *path, char hex[65], mc_error *err);

#endif /* MC_REGISTRY_H */
