/*
 * embed.h - helpers shared by 'embed-image', 'embed-text' and 'classify'
 * (cli/cmd_embed.c): image lists (folders expanded) and batched encoding,
 * optionally by several worker threads with a context each.
 */
#ifndef MC_CLI_EMBED_H
#define MC_CLI_EMBED_H

#include "mobileclip.h"

#include <stddef.h>

typedef struct cli_image_list {
    char **paths;
    size_t n, cap;
} cli_image_list;

/* Each argument is an image path or a folder (its images, sorted by name). */
int cli_image_list_build(const char *const *args, int n, cli_image_list *out);
void cli_image_list_free(cli_image_list *l);

#define CLI_MAX_WORKERS 64

/* --workers: 1..CLI_MAX_WORKERS (NULL: 1); prints the error, returns nonzero. */
int cli_parse_workers(const char *v, int *out);

/* How cli_embed_images works. */
typedef struct cli_embed_opts {
    int batch;            /* images per forward pass; batches are [i*batch, (i+1)*batch) of the list */
    int decode_threads;   /* per worker, decoding its next batch while it encodes one */
    int workers;          /* contexts encoding at once, each on its own batches (1: the caller's) */
    int threads;          /* compute threads over all workers (0: one per core); threads/workers each */
    int normalize;
    int strict;           /* an undecodable image fails the call (else: reported, skipped) */
    int show_progress;
} cli_embed_opts;

/* Decodes and encodes the list.  With workers == 1, ctx encodes in the
 * calling thread; with more, each worker thread owns a context made from
 * model (ctx is not used).  An image's embedding does not depend on the
 * worker count (same batches, thread-count-independent kernels).  Prints the
 * error and returns nonzero on failure (with strict, the first bad image in
 * list order).  *emb_out [n_out, D] and *rows_out (the list index of each row,
 * ascending) are malloc'd. */
int cli_embed_images(mc_context *ctx, const mc_model *model, const mc_model_info *info,
                     const mc_preprocess_params *pp, const cli_image_list *list, const cli_embed_opts *o,
                     float **emb_out, size_t **rows_out, size_t *n_out);

/* Tokenizes and encodes n texts into out [n, embed_dim]. */
int cli_embed_texts(mc_context *ctx, const mc_tokenizer *tok, int context_length, int embed_dim,
                    const char *const *texts, size_t n, int batch, int normalize, float *out);

#endif
