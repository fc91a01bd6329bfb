/*
 * mobileclip.h - the public interface of mobileclip.c.
 *
 * mobileclip.c runs MobileCLIP and MobileCLIP2 image-text models (and trains
 * them) from the released checkpoints, with no Python.  This header is the only
 * one a user includes; it is also the manual.
 *
 * Conventions
 *   - Every function that can fail returns an mc_status and, when given a
 *     non-NULL mc_error*, fills it with the status and a message naming the
 *     file, tensor or option at fault.  MC_OK is 0.
 *   - The library never prints and never exits.
 *   - Objects are opaque.  A loaded mc_model is read-only after load and may be
 *     shared by any number of threads; each thread uses its own mc_context
 *     (scratch buffers, last error).
 *   - Every "params" struct has a *_default_params() constructor: take the
 *     defaults and change what you need, so that new fields keep old code
 *     working.
 *   - Arrays are row-major float32 unless said otherwise; images are CHW.
 *
 * Example: embed an image and a text and compare them.
 *
 *     mc_error err;
 *     mc_model *model;
 *     mc_model_params mp = mc_model_default_params();
 *     if (mc_model_load("mobileclip_s0.pt", &mp, &model, &err) != MC_OK) {
 *         fprintf(stderr, "%s\n", err.message);   // names the file and tensor at fault
 *         return 1;
 *     }
 *     mc_model_info info;
 *     mc_model_get_info(model, &info);
 *     mc_context *ctx;
 *     mc_context_params cp = mc_context_default_params();
 *     mc_context_new(model, &cp, &ctx, &err);
 *
 *     float *pixels = malloc(3 * info.image_size * info.image_size * sizeof(float));
 *     mc_image_preprocess_file("cat.jpg", &info.preprocess, pixels, &err);
 *     int32_t ids[MC_CONTEXT_LENGTH];
 *     mc_tokenizer_encode(mc_model_tokenizer(model), "a photo of a cat", MC_CONTEXT_LENGTH, ids, &err);
 *
 *     float img[512], txt[512];                // info.embed_dim floats each
 *     mc_encode_image(ctx, pixels, 1, 1, img); // L2-normalised
 *     mc_encode_text(ctx, ids, 1, 1, txt);
 *     float cosine = 0;
 *     for (int i = 0; i < info.embed_dim; i++) cosine += img[i] * txt[i];
 *
 *     mc_context_free(ctx);
 *     mc_model_free(model);
 */
#ifndef MOBILECLIP_H
#define MOBILECLIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MC_VERSION_MAJOR 0
#define MC_VERSION_MINOR 1
#define MC_VERSION_PATCH 0
#define MC_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------------ */
/* Status codes and errors                                                   */
/* ------------------------------------------------------------------------ */

typedef enum mc_status {
    MC_OK = 0,
    MC_ERR_INVALID_ARG,     /* a caller passed a bad argument or option */
    MC_ERR_IO,              /* a file could not be opened, read or written */
    MC_ERR_FORMAT,          /* a file is malformed, truncated or hostile */
    MC_ERR_UNSUPPORTED,     /* valid input that this version does not handle */
    MC_ERR_MISSING_TENSOR,  /* a checkpoint lacks a tensor the model needs */
    MC_ERR_UNEXPECTED_TENSOR, /* a checkpoint holds a tensor the model does not use */
    MC_ERR_SHAPE,           /* a tensor has the wrong shape or dtype */
    MC_ERR_NOMEM,           /* an allocation failed or a size overflowed */
    MC_ERR_IMAGE,           /* an image could not be decoded */
    MC_ERR_TOKENIZER,       /* the vocabulary is missing or malformed */
    MC_ERR_CONFIG,          /* a model configuration is missing or invalid */
    MC_ERR_NETWORK,         /* a download failed */
    MC_ERR_CHECKSUM,        /* a downloaded file does not match its checksum */
    MC_ERR_NOT_FOUND,       /* a named model, file or entry does not exist */
    MC_ERR_INTERNAL,        /* a bug: please report it */
    MC_STATUS_COUNT
} mc_status;

#define MC_ERROR_MESSAGE_MAX 1024

typedef struct mc_error {
    mc_status status;
    char message[MC_ERROR_MESSAGE_MAX];
} mc_error;

/* A fixed English description of a status code ("invalid argument", ...). */
const char *mc_status_string(mc_status status);

/* Resets an error record to MC_OK and an empty message. */
void mc_error_clear(mc_error *err);

/* The library version, MC_VERSION_STRING at build time. */
const char *mc_version(void);

/* ------------------------------------------------------------------------ */
/* Checkpoints and tensors (read-only view of a file's tensors)             */
/* ------------------------------------------------------------------------ */

typedef enum mc_dtype {
    MC_DTYPE_F32 = 0,
    MC_DTYPE_F16,
    MC_DTYPE_BF16,
    MC_DTYPE_F64,
    MC_DTYPE_I64,
    MC_DTYPE_I32,
    MC_DTYPE_I16,
    MC_DTYPE_I8,
    MC_DTYPE_U8,
    MC_DTYPE_BOOL,
    MC_DTYPE_COUNT
} mc_dtype;

#define MC_MAX_DIMS 8

typedef enum mc_file_format {
    MC_FORMAT_UNKNOWN = 0,
    MC_FORMAT_TORCH_ZIP,    /* torch.save zip archive: .pt, .pth, .bin */
    MC_FORMAT_SAFETENSORS   /* .safetensors */
} mc_file_format;

/* One tensor of a checkpoint.  data is contiguous row-major in dtype, and
 * stays valid while the mc_checkpoint that returned it is open. */
typedef struct mc_tensor_info {
    const char *name;
    mc_dtype dtype;
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    int64_t numel;
    size_t nbytes;
    const void *data;
} mc_tensor_info;

typedef struct mc_checkpoint mc_checkpoint;

/* Opens a checkpoint of any supported format (decided by content, not by
 * name): a torch.save zip (the state dict may be wrapped in a dict under
 * "state_dict", "model" or "module.*" prefixes) or a safetensors file
 * (memory-mapped).  Untrusted input is safe: every length and offset is
 * checked, and a pickle may only name the globals a state dict needs. */
mc_status mc_checkpoint_open(const char *path, mc_checkpoint **out, mc_error *err);
void mc_checkpoint_close(mc_checkpoint *ckpt);
mc_file_format mc_checkpoint_format(const mc_checkpoint *ckpt);
size_t mc_checkpoint_count(const mc_checkpoint *ckpt);
/* i-th tensor, in the file's order; NULL when out of range. */
const mc_tensor_info *mc_checkpoint_tensor(const mc_checkpoint *ckpt, size_t i);
/* Tensor by exact name; NULL when absent. */
const mc_tensor_info *mc_checkpoint_find(const mc_checkpoint *ckpt, const char *name);
/* safetensors "__metadata__" value for key, or NULL. */
const char *mc_checkpoint_metadata(const mc_checkpoint *ckpt, const char *key);

const char *mc_dtype_name(mc_dtype dtype);   /* "F32", "F16", ... */
size_t mc_dtype_size(mc_dtype dtype);        /* bytes per element */

/* ------------------------------------------------------------------------ */
/* Tokenizer (CLIP byte-level BPE)                                           */
/* ------------------------------------------------------------------------ */

#define MC_CONTEXT_LENGTH 77
#define MC_TOKEN_SOT 49406
#define MC_TOKEN_EOT 49407
#define MC_VOCAB_FILENAME "bpe_simple_vocab_16e6.txt.gz"
#define MC_VOCAB_ENV "MOBILECLIP_VOCAB"

typedef struct mc_tokenizer mc_tokenizer;

/* Loads the BPE merges file (gzip or plain text).  vocab_path may be NULL:
 * then mc_tokenizer_find_vocab(NULL, ...) decides. */
mc_status mc_tokenizer_load(const char *vocab_path, mc_tokenizer **out, mc_error *err);
void mc_tokenizer_free(mc_tokenizer *tok);

/* Finds the vocabulary file.  Search order: $MOBILECLIP_VOCAB; the folder of
 * near_path (a model file or folder) when non-NULL; ./bpe_simple_vocab_16e6.txt.gz;
 * the install's share folder (MC_SHARE_DIR at build time).  Writes the path. */
mc_status mc_tokenizer_find_vocab(const char *near_path, char *path_out, size_t path_cap,
                                  mc_error *err);

/* Tokenizes one UTF-8 text exactly as the reference does (ftfy.fix_text,
 * HTML unescape, whitespace cleaning, lower case, CLIP regex, BPE):
 * writes context_length ids: SOT, tokens, EOT, zero padding; truncated so that
 * EOT stays last.  Invalid UTF-8 is an MC_ERR_INVALID_ARG. */
mc_status mc_tokenizer_encode(const mc_tokenizer *tok, const char *text, int context_length,
                              int32_t *ids_out, mc_error *err);
/* The same for text[0..len), which may hold NUL characters. */
mc_status mc_tokenizer_encode_n(const mc_tokenizer *tok, const char *text, size_t len,
                                int context_length, int32_t *ids_out, mc_error *err);

/* The text the cleaning steps produce (before the regex and BPE); malloc'd,
 * the caller frees it.  For tests and debugging. */
mc_status mc_tokenizer_clean(const char *text, char **out, mc_error *err);
mc_status mc_tokenizer_clean_n(const char *text, size_t len, char **out, mc_error *err);

/* ------------------------------------------------------------------------ */
/* Images and preprocessing                                                  */
/* ------------------------------------------------------------------------ */

typedef enum mc_interp {
    MC_INTERP_BILINEAR = 0,
    MC_INTERP_BICUBIC
} mc_interp;

typedef enum mc_resize_mode {
    MC_RESIZE_SHORTEST = 0,  /* shortest side to size, then centre crop */
    MC_RESIZE_SQUASH         /* both sides to size, no crop */
} mc_resize_mode;

/* 8-bit RGB, row-major HWC, owned by the struct (free with mc_image_free). */
typedef struct mc_image {
    int width;
    int height;
    uint8_t *rgb;
} mc_image;

typedef struct mc_preprocess_params {
    int size;                   /* output side, e.g. 256 */
    mc_interp interp;
    mc_resize_mode resize_mode;
    float mean[3];
    float std[3];
    int apply_exif;             /* 1: honour EXIF orientation (default) */
} mc_preprocess_params;

/* size 256, bilinear, shortest, mean 0, std 1, apply_exif 1 (MobileCLIP v1). */
mc_preprocess_params mc_preprocess_default_params(void);

/* Decodes JPEG, PNG or WebP into RGB as Pillow's open(f).convert("RGB")
 * does (L, LA, P, RGBA, CMYK, 16-bit).  apply_exif rotates/flips by the EXIF
 * orientation tag as ImageOps.exif_transpose does. */
mc_status mc_image_load(const char *path, int apply_exif, mc_image *out, mc_error *err);
/* 1 when path's name ends in an extension of the images read here (.jpg,
 * .jpeg, .jpe, .png, .webp, any case): what folder arguments pick. */
int mc_image_name_supported(const char *path);
mc_status mc_image_load_memory(const void *data, size_t len, int apply_exif, mc_image *out,
                               mc_error *err);
void mc_image_free(mc_image *img);

/* torchvision Resize(size) with Pillow's antialiased resampling, then
 * CenterCrop(size) (or squash): the uint8 pixels before ToTensor. */
mc_status mc_image_resize_crop(const mc_image *in, int size, mc_interp interp,
                               mc_resize_mode mode, mc_image *out, mc_error *err);

/* Pillow's Image.resize(width, height) of an RGB image (antialiased
 * bilinear or bicubic, bit-exact with Pillow 9.4), without crop. */
mc_status mc_image_resample(const mc_image *in, int width, int height, mc_interp interp,
                            mc_image *out, mc_error *err);

/* ToTensor and Normalize: out is float32 [3, h, w]. */
void mc_image_to_tensor(const mc_image *img, const float mean[3], const float std[3],
                        float *out);

/* The whole pipeline from a file: out is float32 [3, size, size]. */
mc_status mc_image_preprocess_file(const char *path, const mc_preprocess_params *params,
                                   float *out, mc_error *err);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct mc_model mc_model;
typedef struct mc_context mc_context;

/* How a loaded model holds its large weight matrices (linear layers, dense and
 * 1x1 convolutions, the token embedding; biases, norms, depthwise kernels
 * and positional embeddings stay float32).  Compute
 * stays float32: reduced weights are converted as they are read.  See
 * docs/performance.md, "Reduced precision", for the measured agreement. */
typedef enum mc_weight_dtype {
    MC_WEIGHTS_F32 = 0,     /* default: results as the reference */
    MC_WEIGHTS_BF16,        /* half the memory; embeddings within cosine 0.9995 of f32 */
    MC_WEIGHTS_F16,         /* half the memory (values beyond +-65504 saturate); cosine 0.99999 */
    MC_WEIGHTS_INT8,        /* a quarter: symmetric int8, one scale per output channel; cosine 0.995 */
    MC_WEIGHTS_COUNT
} mc_weight_dtype;

typedef struct mc_model_params {
    const char *config_path;  /* config.json / open_clip_config.json; NULL: beside the model,
                                 else the "mobileclip.config" metadata of a file written by
                                 'mobileclip convert' */
    const char *model_name;   /* official name when the config must be built in; NULL: guess */
    const char *vocab_path;   /* tokenizer vocabulary; NULL: mc_tokenizer_find_vocab */
    int load_image_tower;     /* 1 (default) */
    int load_text_tower;      /* 1 (default) */
    int reparameterize;       /* 1 (default): fold train-time branches at load.  The inference
                                 path always runs folded; unfused train-mode models are the
                                 training API's (docs/training.md). */
    int load_tokenizer;       /* 1 (default) when the text tower is loaded: find and load the
                                 vocabulary; 0: skip it (validation, encode_text from ids) */
    int weight_dtype;         /* an mc_weight_dtype: MC_WEIGHTS_F32 (default), MC_WEIGHTS_BF16,
                                 MC_WEIGHTS_F16, MC_WEIGHTS_INT8.  A model loaded with reduced
                                 weights cannot be exported ('convert'). */
} mc_model_params;

mc_model_params mc_model_default_params(void);

/* The official models ('mobileclip list'): the i-th name, i from 0; NULL
 * past the last.  "mobileclip_s0" ... "mobileclip_blt" (Apple's v1 files),
 * "MobileCLIP-S1" ... "MobileCLIP2-L-14" (the OpenCLIP releases). */
const char *mc_official_model_name(size_t i);

/* Turns a model argument into a path mc_model_load takes, as the CLI's -m
 * does.  An existing file or folder is written back as is.  An official
 * name (exact, else case-insensitive) is looked up in the cache
 * ($MOBILECLIP_CACHE, else $XDG_CACHE_HOME/mobileclip, else
 * ~/.cache/mobileclip; one folder per model) and, when absent and
 * allow_download is nonzero, downloaded into it first (atomically, verified,
 * without progress reports; MC_ERR_NETWORK or MC_ERR_CHECKSUM on failure).
 * Writes the path into path_out (cap bytes) and, when name_out is non-NULL,
 * the official name the argument or path names (static storage) or NULL:
 * pass it on as mc_model_params.model_name.  An unknown name, or an
 * official one not in the cache with allow_download 0: MC_ERR_NOT_FOUND. */
mc_status mc_model_resolve(const char *model, int allow_download, char *path_out, size_t cap,
                           const char **name_out, mc_error *err);

/* Loads a model from a checkpoint file or a folder that holds one
 * (mc_model_resolve finds official models by name).  Every tensor is checked
 * against the config; the error names the tensor: MC_ERR_MISSING_TENSOR,
 * MC_ERR_UNEXPECTED_TENSOR (one the model does not use), MC_ERR_SHAPE (its
 * shape and the expected one, or a non-float dtype), MC_ERR_FORMAT (a
 * malformed file, or a weight holding NaN or an infinity). */
mc_status mc_model_load(const char *path, const mc_model_params *params, mc_model **out,
                        mc_error *err);
void mc_model_free(mc_model *model);

typedef struct mc_model_info {
    const char *family;       /* "mobileclip" (v1 repo layout) or "open_clip" */
    const char *image_arch;   /* "mci0" ... "fastvit_mci4", "vit_b16", ... */
    const char *text_arch;    /* "mct", "base", "open_clip" */
    mc_file_format format;
    int image_size;
    int embed_dim;
    int context_length;
    int64_t n_tensors;
    int64_t n_params;
    int64_t n_params_image;
    int64_t n_params_text;
    mc_preprocess_params preprocess;
    float logit_scale;        /* exp of the stored parameter */
} mc_model_info;

void mc_model_get_info(const mc_model *model, mc_model_info *info);
/* The model's tokenizer (loaded with the model when the text tower is). */
const mc_tokenizer *mc_model_tokenizer(const mc_model *model);

typedef struct mc_context_params {
    int n_threads;            /* 0: one per core */
    int max_batch;            /* activations are planned for this batch (default 1, grows) */
} mc_context_params;

mc_context_params mc_context_default_params(void);
mc_status mc_context_new(const mc_model *model, const mc_context_params *params,
                         mc_context **out, mc_error *err);
void mc_context_free(mc_context *ctx);
/* The last error raised through this context. */
const mc_error *mc_context_last_error(const mc_context *ctx);

/* pixels: float32 [n, 3, S, S] preprocessed; out: float32 [n, embed_dim]. */
mc_status mc_encode_image(mc_context *ctx, const float *pixels, int n, int normalize, float *out);
/* tokens: int32 [n, context_length]; out: float32 [n, embed_dim]. */
mc_status mc_encode_text(mc_context *ctx, const int32_t *tokens, int n, int normalize, float *out);

/* Zero-shot classification from embeddings, the recipe 'mobileclip classify',
 * the server and the evaluation share (open_clip's):
 * - mc_fill_template: tmpl with every "{}" and "{c}" replaced by label; a
 *   malloc'd string (free() it), NULL when out of memory.
 * - mc_zeroshot_classifiers: from the L2-normalised embeddings of every
 *   label's prompts, prompt_emb [n_labels * n_templates, dim] label-major,
 *   the classifiers out [n_labels, dim]: each label's mean, L2-normalised.
 * - mc_zeroshot_probs: the labels' probabilities for one L2-normalised image
 *   embedding [dim]: softmax over labels of scale * cosine, scale the model's
 *   logit_scale (mc_model_info) capped at 100, or 100 when it is not positive. */
char *mc_fill_template(const char *tmpl, const char *label);
void mc_zeroshot_classifiers(const float *prompt_emb, int n_labels, int n_templates, int dim, float *out);
void mc_zeroshot_probs(const float *image_emb, const float *classifiers, int n_labels, int dim, float logit_scale,
                       double *probs);

/* A text that identifies the model's weights, for stores of its embeddings
 * (the photo index): "NAME dim=D sha256=HEX", NAME the official name or the
 * checkpoint's file name, HEX a digest of the checkpoint file's size and of
 * its first, middle and last MiB (or of the config text for a model built in
 * memory).  The same file gives the same id whichever towers and weight
 * precision were loaded. */
mc_status mc_model_id(const mc_model *model, char *buf, size_t cap, mc_error *err);
/* The checkpoint file the model was loaded from ("" for one built in memory). */
const char *mc_model_path(const mc_model *model);

/* ------------------------------------------------------------------------ */
/* Captioner (OpenCLIP CoCa) and caption generation (docs/caption.md)        */
/* ------------------------------------------------------------------------ */

/* A CoCa captioner (OpenCLIP coca_ViT-L-14 and the same structure at other
 * sizes).  Read-only after load; one captioner may be shared by threads. */
typedef struct mc_captioner mc_captioner;

/* path: a folder holding open_clip_config.json and open_clip_model.safetensors
 * (or open_clip_pytorch_model.bin), that config file, or the weights file
 * (the config beside it).  Every size comes from the config and the tensors;
 * config options the engine does not implement are refused by name. */
mc_status mc_captioner_load(const char *path, mc_captioner **out, mc_error *err);
void mc_captioner_free(mc_captioner *cap);
/* The captioner's image preprocessing (size, interpolation, mean/std). */
void mc_captioner_get_preprocess(const mc_captioner *cap, mc_preprocess_params *out);
/* The captioner's text context (76 for coca_ViT-L-14): seq_len's upper bound. */
int mc_captioner_context_length(const mc_captioner *cap);

typedef enum mc_generation_type {
    MC_GEN_GREEDY = 0,      /* argmax after the logits processors */
    MC_GEN_BEAM_SEARCH,     /* open_clip's _generate_beamsearch (beam scores are sums of raw logits) */
    MC_GEN_TOP_K,           /* sample from the top_k tokens (ties at the k-th kept) */
    MC_GEN_TOP_P            /* nucleus sampling: the smallest set holding top_p of the probability */
} mc_generation_type;

typedef struct mc_generate_params {
    mc_generation_type type;    /* default MC_GEN_BEAM_SEARCH, as open_clip's generate() */
    int seq_len;                /* 30: most tokens per caption, SOT and EOT included (sampling
                                   forces EOT at position seq_len - 1) */
    int min_seq_len;            /* 5: EOT is banned while a caption holds fewer tokens */
    int fixed_output_length;    /* 0; 1: every caption is padded with pad ids to seq_len (the
                                   reference's output width; tokens_out is padded either way) */
    float temperature;          /* 1.0: sampling divides the filtered logits by it */
    float top_p;                /* 0.1 */
    int top_k;                  /* 1 */
    float repetition_penalty;   /* 1.0: logits of tokens already in the caption: / (positive) or * */
    int num_beams;              /* 6 */
    int num_beam_groups;        /* 3: groups of num_beams / num_beam_groups beams, searched alike */
    uint64_t seed;              /* sampling: image i of a call draws from the stream of seed + i */
    int threads;                /* kernel threads for this call (0: the process setting) */
} mc_generate_params;

/* open_clip's generate() defaults (above). */
mc_generate_params mc_generate_default_params(void);

/* Captions n preprocessed images (float32 CHW each, mc_captioner_get_preprocess).
 * tokens_out: n x cap_tokens (cap_tokens >= seq_len): row i holds the ids as
 * generated from SOT (through EOT), then pad ids (0); lengths[i] is the count
 * before the padding.  Uses its own scratch: several threads may call it at
 * once on one captioner. */
mc_status mc_caption_generate(const mc_captioner *cap, const float *pixels, int n,
                              const mc_generate_params *p, int32_t *tokens_out, int cap_tokens,
                              int *lengths, mc_error *err);

/* Decodes ids as OpenCLIP's tokenizer decodes them (byte-level BPE back to
 * UTF-8, "</w>" to a space, invalid UTF-8 replaced by U+FFFD, special tokens
 * as "<start_of_text>" / "<end_of_text>"); *text_out is malloc'd. */
mc_status mc_tokenizer_decode(const mc_tokenizer *tok, const int32_t *ids, int n, char **text_out,
                              mc_error *err);

/* Decodes generated ids as the DataCompDR generator does: the text up to the
 * first "<end_of_text>", after the last "<start_of_text>", up to the first
 * '.', trailing whitespace removed.  *text_out is malloc'd. */
mc_status mc_caption_decode(const mc_tokenizer *tok, const int32_t *ids, int n, char **text_out,
                            mc_error *err);

/* ------------------------------------------------------------------------ */
/* .npy files (float32, little-endian, C order)                              */
/* ------------------------------------------------------------------------ */

/* Writes data as a .npy array of the given shape (atomically: temp + rename). */
mc_status mc_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape,
                           mc_error *err);
/* Reads a float32 (or float64, converted) .npy; *data is malloc'd. */
mc_status mc_npy_read_f32(const char *path, float **data, int *ndim, int64_t shape[MC_MAX_DIMS],
                          mc_error *err);

/* ------------------------------------------------------------------------ */
/* Photo index and search (docs/search.md)                                   */
/* ------------------------------------------------------------------------ */

/* An index is one SQLite file (WAL mode) holding, per image, its absolute
 * path, size, mtime, SHA-256, width, height and embedding, and the id of the
 * model the embeddings came from.  mc_index_update adds, re-embeds and
 * forgets images incrementally, one transaction per batch: a killed run loses
 * nothing it committed and the next run resumes.  mc_index_search is an exact
 * cosine scan over the embeddings held in memory. */
typedef struct mc_index mc_index;

typedef struct mc_index_params {
    int readonly;          /* 1: open read-only (serve/search); 0: read-write (index) */
    int create;            /* 1: create the file if missing (read-write only) */
} mc_index_params;

mc_index_params mc_index_default_params(void);    /* readonly=1, create=0 */

/* Opens db_path.  A file that is no index is an MC_ERR_FORMAT, a missing one
 * (without create) an MC_ERR_NOT_FOUND. */
mc_status mc_index_open(const char *db_path, const mc_index_params *p, mc_index **out, mc_error *err);
void mc_index_close(mc_index *idx);

typedef struct mc_index_info {
    int64_t count;         /* images with an embedding */
    int dim;               /* embedding width; 0 for an empty new index */
    char model_id[256];    /* the model the embeddings came from (mc_model_id); "" when empty */
    char model_path[4096]; /* the checkpoint file that model was loaded from, when known; else "" */
} mc_index_info;

/* What the file holds now (committed by any process). */
mc_status mc_index_get_info(mc_index *idx, mc_index_info *info, mc_error *err);

typedef struct mc_search_hit {
    int64_t id;
    float score;           /* cosine of the query and the image's embedding */
} mc_search_hit;

/* Top-k by cosine of an L2-normalised query of idx's dim (a mismatch is an
 * MC_ERR_INVALID_ARG); hits[k] sorted by score descending, ties by id
 * ascending; *n_hits = min(k, count).  The scan is a matrix-vector product on
 * the SIMD kernels over the embeddings held in memory (read on the first
 * search, and again after mc_index_update through this handle; mc_index_reload
 * reads them at once).  Safe to call from several threads at once on one index. */
mc_status mc_index_search(mc_index *idx, const float *query, int dim, int k,
                          mc_search_hit *hits, int *n_hits, mc_error *err);

/* One stored image. */
typedef struct mc_index_image {
    int64_t id;
    char path[4096];       /* absolute */
    int width, height;     /* as decoded, after the EXIF orientation */
    int64_t size;          /* bytes */
    int64_t mtime_ns;      /* modification time, ns since the epoch */
} mc_index_image;

/* The stored absolute path of image id (MC_ERR_NOT_FOUND when there is none;
 * MC_ERR_INVALID_ARG when it does not fit in cap).  Thread-safe as search. */
mc_status mc_index_get_path(mc_index *idx, int64_t id, char *buf, size_t cap, mc_error *err);
/* The stored path, width, height, size and mtime of image id.  Thread-safe. */
mc_status mc_index_get_image(mc_index *idx, int64_t id, mc_index_image *out, mc_error *err);
/* The stored embedding of image id into out[dim] (dim must be the index's). */
mc_status mc_index_get_embedding(mc_index *idx, int64_t id, float *out, int dim, mc_error *err);

/* Re-reads the model id and embeddings (after another process indexed).
 * Waits for searches in flight; searches after it see the new state. */
mc_status mc_index_reload(mc_index *idx, mc_error *err);

/* Why a file was skipped by mc_index_update. */
typedef enum mc_index_skip {
    MC_INDEX_SKIP_UNREADABLE = 0, /* cannot be listed, opened or read (permissions, vanished, I/O) */
    MC_INDEX_SKIP_UNDECODABLE, /* read, but no image we can decode (not an image, truncated, ...) */
    MC_INDEX_SKIP_COUNT
} mc_index_skip;

/* Called once per skipped file (never two calls at once, possibly from a
 * worker thread); message says why (the decoder's or the system's error). */
typedef void (*mc_index_skip_fn)(void *user, const char *path, mc_index_skip reason, const char *message);
/* Called after each committed batch: done of total images to embed. */
typedef void (*mc_index_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct mc_index_update_params {
    int workers;           /* batches encoded at once, each on its own context (default 1) */
    int threads;           /* compute threads over all workers (0, default: one per core) */
    int decode_threads;    /* per worker, reading and decoding the next batch (default 2) */
    int batch;             /* images per forward pass and per transaction (default 16) */
    int reembed;           /* 1: an index made with another model is re-embedded with this one
                              (else that is an MC_ERR_INVALID_ARG) */
    mc_index_progress_fn progress; void *progress_user;
    mc_index_skip_fn on_skip;      void *skip_user;
} mc_index_update_params;

mc_index_update_params mc_index_update_default_params(void);

typedef struct mc_index_update_stats {
    int64_t found;         /* image files found under the folders (by extension) */
    int64_t added;         /* new images embedded */
    int64_t updated;       /* known images re-embedded (content changed, or another model) */
    int64_t removed;       /* images forgotten: gone from the folders, or now unreadable */
    int64_t unchanged;     /* known images kept as they were (same size and mtime, or same SHA-256) */
    int64_t skipped;       /* files skipped, all reasons */
    int64_t skipped_by[MC_INDEX_SKIP_COUNT];
    double seconds;
} mc_index_update_stats;

/* Indexes the images (.jpg .jpeg .jpe .png .webp, any case; dot files and
 * dot folders skipped; symbolic links to folders not followed) under each
 * folder of dirs, recursively, with model (its image tower): new images and
 * those whose size or mtime changed and whose SHA-256 differs are embedded,
 * images under those folders that are gone are forgotten, images indexed
 * under other folders are kept.  One transaction per batch.  The index takes
 * the model's id when empty; an index of another model is refused unless
 * p->reembed (then every embedding is dropped in one transaction and the
 * images re-embedded: an interrupted run resumes with the new model).
 * stats may be NULL.  idx must be open read-write.  Calls on this handle from
 * other threads wait until it returns; other processes keep reading the
 * committed state (WAL) and see the new one after mc_index_reload. */
mc_status mc_index_update(mc_index *idx, const mc_model *model, const char *const *dirs, int n_dirs,
                          const mc_index_update_params *p, mc_index_update_stats *stats, mc_error *err);

#ifdef __cplusplus
}
#endif

#endif /* MOBILECLIP_H */
