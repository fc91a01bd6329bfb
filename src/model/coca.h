/*
 * model/coca.h - OpenCLIP's CoCa captioner (coca_ViT-L-14 and its kin): a ViT
 * image encoder with an attentional pooler, a causal unimodal text encoder
 * with a class token appended (embed_cls), and a multimodal decoder whose
 * blocks add cross-attention to the image tokens.  Loaded from OpenCLIP files
 * (open_clip_config.json with open_clip_model.safetensors or
 * open_clip_pytorch_model.bin); every width, depth and count comes from the
 * config and the tensors.
 *
 * The decoders keep a key/value cache per sequence, so that generating one
 * more token runs both decoders on that one position only (mc_coca_decode).
 */
#ifndef MC_MODEL_COCA_H
#define MC_MODEL_COCA_H

#include "core/core.h"

typedef struct mc_coca mc_coca;

/* Sizes a caller needs (all read from the config and tensors). */
typedef struct mc_coca_dims {
    int image_size;      /* input side */
    int embed_dim;       /* contrastive embedding width */
    int img_tokens;      /* image tokens the decoder attends to */
    int img_dim;         /* their width */
    int context_length;  /* text positions without the class token (76) */
    int vocab_size;      /* decoder output width */
    int text_width, text_layers, dec_width, dec_layers;
    int64_t n_params;
} mc_coca_dims;

/* path: a folder holding open_clip_config.json and the weights, the config
 * file, or the weights file (the config beside it). */
mc_status mc_coca_load(const char *path, mc_coca **out, mc_error *err);
void mc_coca_free(mc_coca *m);
void mc_coca_get_dims(const mc_coca *m, mc_coca_dims *out);
void mc_coca_get_preprocess(const mc_coca *m, mc_preprocess_params *out);
int mc_coca_pad_id(const mc_coca *m);

/* pixels [n, 3, S, S] -> features [n, embed_dim] (before L2 normalisation; may
 * be NULL) and embs [n, img_tokens, img_dim] (may be NULL). */
mc_status mc_coca_encode_image(const mc_coca *m, const float *pixels, int n, float *features, float *embs,
                               mc_error *err);

/* tokens [n, len] (len <= context_length) -> the class token's features
 * [n, embed_dim] before L2 normalisation (open_clip's text_features). */
mc_status mc_coca_encode_text(const mc_coca *m, const int32_t *tokens, int n, int len, float *out,
                              mc_error *err);

/* The decoders' caches for nseq sequences of up to max_len positions, each
 * attached to one of nimg images. */
typedef struct mc_coca_cache mc_coca_cache;
mc_status mc_coca_cache_new(const mc_coca *m, int nseq, int max_len, int nimg, mc_coca_cache **out,
                            mc_error *err);
void mc_coca_cache_free(mc_coca_cache *c);
/* Image img's tokens embs [img_tokens, img_dim]: the cross-attention keys and
 * values of every decoder layer are computed once here. */
mc_status mc_coca_cache_set_image(const mc_coca *m, mc_coca_cache *c, int img, const float *embs, mc_error *err);
/* Sequence seq reads image img. */
void mc_coca_cache_attach(mc_coca_cache *c, int seq, int img);
/* Sequence i (0 <= i < n) takes over the cache, tokens and image of
 * sequence src[i], as they were before the call (beam search reordering). */
mc_status mc_coca_cache_reorder(mc_coca_cache *c, const int *src, int n, mc_error *err);

/* Runs positions [t0, t0 + nt) of the sequences seqs[0..ns) with the tokens
 * tok[i * nt + j] through both decoders, storing their keys and values; the
 * positions before t0 come from the cache.  logits: [ns, nt, vocab] when all
 * is 1, else [ns, vocab] for the last position only. */
mc_status mc_coca_decode(const mc_coca *m, mc_coca_cache *c, const int *seqs, int ns, int t0, int nt,
                         const int32_t *tok, int all, float *logits, mc_error *err);

#endif /* MC_MODEL_COCA_H */
