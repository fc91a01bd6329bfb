/*
 * data/shard.h - DataCompDR / DFNDR webdataset shards: shard lists (brace
 * expansion), webdataset's grouping of tar members into samples, and the
 * decoding of one sample into a reinforced-training record.
 *
 * Shard lists follow webdataset + the braceexpand package:
 * "a/{00000000..00000002}.tar::b/x{1,2}.tar" is split at "::" and each part
 * brace-expanded (numeric ranges with zero padding and optional step, letter
 * ranges, comma lists, nesting, backslash escapes; unbalanced braces are an
 * error).
 *
 * Grouping follows webdataset's tariterators.py: a member "dir/abc.url.txt"
 * has key "dir/abc" and extension "url.txt" (the key ends at the first dot of
 * the base name; names without such a dot are ignored, as are metadata names
 * "__*__"); the extension is lower-cased (ASCII); consecutive members with the
 * same key form a sample; the same extension twice in one sample makes the
 * sample bad.
 *
 * Records.  A DataCompDR sample has: image (jpg/jpeg/png/webp: the bytes, not
 * decoded), "txt" (caption), "json", "url.txt", "syn.json" ({"<syn_key>":
 * [captions...], ...}), "paug.json" ({"param_aug": [entries...]} where the
 * list may also be stored as a JSON string holding it), and the embeddings in
 * "npz" (float32) or "pth.gz" (bf16 torch.save): image_emb [A, D] (one row per
 * param_aug entry) and text_emb.  Two layouts of the synthetic-caption
 * embeddings are recognised:
 *   DataCompDR: text_emb [1 + n, D]: the caption's row, then one row per
 *               synthetic caption (every syn key must have n captions; row
 *               1 + i serves caption i of any key, as the reference loader does);
 *   DFNDR:      text_emb [1, D] and "<syn_key>_emb" [n_key, D] per syn key.
 * mc_dr_syn_embedding() hides the difference.
 *
 * Error policy.  A bad member or sample is an error naming the shard, the
 * key and the member.  With params.strict = 0 (the default) the reader skips
 * it, counts it by reason in mc_shard_stats and keeps the last such message;
 * with strict = 1 mc_shard_next returns the error.  A fatal archive error
 * (bad checksum, truncation) ends the shard: strict returns the error; the
 * default counts MC_SKIP_SHARD once and reports the end of the shard.
 */
#ifndef MC_DATA_SHARD_H
#define MC_DATA_SHARD_H

#include "data/npz.h"
#include "data/tar.h"
#include "core/json.h"

/* ---------------------------------------------------------------- lists */

/* Expands a shard specification into *out (n strings, malloc'd; free with
 * mc_shard_list_free).  max_count (0: 1,000,000) bounds the number of names. */
mc_status mc_shard_expand(const char *spec, size_t max_count, char ***out, size_t *n,
                          mc_error *err);
/* braceexpand() of one pattern (no "::" splitting). */
mc_status mc_brace_expand(const char *pattern, size_t max_count, char ***out, size_t *n,
                          mc_error *err);
void mc_shard_list_free(char **list, size_t n);

/* webdataset's base_plus_ext: 1 and the key length and extension start when
 * name has a key and an extension, 0 when the name is ignored. */
int mc_wds_split_name(const char *name, size_t *key_len, const char **ext);

/* ------------------------------------------------------------- samples */

/* One member of a grouped sample. */
typedef struct mc_wds_member {
    char *ext;                /* lower-cased extension, e.g. "jpg", "url.txt" */
    uint8_t *data;            /* size bytes + a NUL */
    size_t size;
} mc_wds_member;

typedef struct mc_wds_sample {
    char *key;
    mc_wds_member *members;
    size_t n_members;
} mc_wds_sample;

const mc_wds_member *mc_wds_sample_get(const mc_wds_sample *s, const char *ext);

/* --------------------------------------------------------------- records */

typedef enum mc_dr_layout {
    MC_DR_LAYOUT_DATACOMPDR = 0,   /* synthetic rows inside text_emb */
    MC_DR_LAYOUT_DFNDR             /* "<syn_key>_emb" arrays */
} mc_dr_layout;

/* A float32 embedding matrix of the record. */
typedef struct mc_dr_emb {
    const char *name;         /* "image_emb", "text_emb", "<syn_key>_emb", ... */
    mc_dtype stored;          /* dtype in the shard: F32 (npz), BF16 (pth.gz), ... */
    int64_t rows, dim;
    const float *data;        /* rows * dim floats, row-major */
} mc_dr_emb;

/* One syn.json key with its captions. */
typedef struct mc_dr_syn {
    const char *key;          /* e.g. "syn_text", "syn_text_dfn_mscoco38k" */
    const char *const *captions;   /* UTF-8, NUL-terminated */
    size_t n;
    const mc_dr_emb *emb;     /* DFNDR: its "<key>_emb" [n, D]; DataCompDR: NULL */
} mc_dr_syn;

/* A decoded sample.  Every pointer belongs to the record (mc_dr_record_free). */
typedef struct mc_dr_record {
    const char *key;
    const char *shard;        /* the shard's path */
    const uint8_t *image;     /* encoded image bytes, or NULL when the sample has none */
    size_t image_size;
    const char *image_ext;    /* "jpg", "jpeg", "png", "webp", or NULL */
    const char *caption;      /* "txt", NUL-terminated (NULL when absent) */
    size_t caption_len;
    const char *url;          /* "url.txt" or NULL */
    const mc_json *meta;      /* parsed "json", or NULL */
    const mc_dr_syn *syn;     /* syn.json keys in file order */
    size_t n_syn;
    /* param_aug entries: aug[0..n_aug) are the list's elements (each parsed
     * JSON, usually [[i, j, h, w], [[op, mag], [op, mag]]]; see mc_aug_parse) */
    const mc_json *aug;
    size_t n_aug;
    int paug_was_string;      /* 1: param_aug was a JSON string holding the list */
    const char *emb_ext;      /* "npz" or "pth.gz" */
    const mc_dr_emb *image_emb;   /* [n_aug, D] */
    const mc_dr_emb *text_emb;    /* [1 + n, D] (DataCompDR) or [1, D] (DFNDR) */
    const mc_dr_emb *embs;    /* every array of the embedding member */
    size_t n_embs;
    int64_t dim;              /* D */
    mc_dr_layout layout;
    const mc_wds_sample *sample;  /* the raw members */
} mc_dr_record;

typedef struct mc_dr_params {
    int require_image;        /* 1 (default): a sample without an image is bad */
    int decode_embeddings;    /* 1 (default): read npz / pth.gz (0: shapes unchecked) */
    size_t max_array_bytes;   /* bound on decompressed embedding bytes (default MC_ARRAY_MAX_BYTES) */
} mc_dr_params;

mc_dr_params mc_dr_default_params(void);

/* Decodes a grouped sample; takes ownership of *sample (also on error, when
 * it is freed; *sample is set to NULL).  shard names it in errors. */
mc_status mc_dr_record_decode(mc_wds_sample **sample, const char *shard, const mc_dr_params *params,
                              mc_dr_record **out, mc_error *err);
void mc_dr_record_free(mc_dr_record *r);
void mc_wds_sample_free(mc_wds_sample *s);

/* The synthetic-caption embedding (D floats) for caption `index` of syn key
 * syn_key (NULL: the first key), in either layout; NULL with err set when
 * absent or out of range. */
const float *mc_dr_syn_embedding(const mc_dr_record *r, const char *syn_key, size_t index,
                                 mc_error *err);
/* The named embedding array or NULL. */
const mc_dr_emb *mc_dr_find_emb(const mc_dr_record *r, const char *name);

/* ----------------------------------------------------------- the reader */

typedef enum mc_skip_reason {
    MC_SKIP_MEMBER = 0,       /* a tar member refused (bad name, too large) */
    MC_SKIP_DUPLICATE,        /* the same extension twice in a sample */
    MC_SKIP_MISSING,          /* a required member is absent */
    MC_SKIP_DECODE,           /* a member is malformed (json, npz, pth.gz, ...) */
    MC_SKIP_SHAPE,            /* embedding shapes disagree with each other or the captions */
    MC_SKIP_SHARD,            /* the archive is corrupt or truncated: the rest of the shard lost */
    MC_SKIP_COUNT
} mc_skip_reason;

const char *mc_skip_reason_name(mc_skip_reason r);

typedef struct mc_shard_stats {
    uint64_t members;         /* regular tar members read */
    uint64_t members_ignored; /* members without a key (no dot in the base name, "__meta__") */
    uint64_t samples;         /* records returned */
    uint64_t skipped;         /* samples (or members, shards) skipped, all reasons */
    uint64_t skipped_by[MC_SKIP_COUNT];
    mc_error last_skip;       /* the message of the last skip */
} mc_shard_stats;

typedef struct mc_shard_params {
    mc_tar_params tar;
    mc_dr_params dr;
    int strict;               /* 1: the first bad member or sample is an error */
} mc_shard_params;

mc_shard_params mc_shard_default_params(void);

typedef struct mc_shard_reader mc_shard_reader;

/* Opens a shard (a tar file read sequentially).  params may be NULL. */
mc_status mc_shard_open(const char *path, const mc_shard_params *params, mc_shard_reader **out,
                        mc_error *err);
/* The same over a tar in memory (not copied: it must outlive the reader). */
mc_status mc_shard_open_memory(const void *data, size_t len, const char *name,
                               const mc_shard_params *params, mc_shard_reader **out, mc_error *err);
void mc_shard_close(mc_shard_reader *r);

/* The next grouped sample (no record decoding); *out is NULL at the end.
 * The caller frees it with mc_wds_sample_free. */
mc_status mc_shard_next_sample(mc_shard_reader *r, mc_wds_sample **out, mc_error *err);
/* The next good record; *out is NULL at the end of the shard.  The caller
 * frees it with mc_dr_record_free. */
mc_status mc_shard_next(mc_shard_reader *r, mc_dr_record **out, mc_error *err);

const mc_shard_stats *mc_shard_reader_stats(const mc_shard_reader *r);

#endif /* MC_DATA_SHARD_H */
