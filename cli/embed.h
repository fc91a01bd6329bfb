/*
 * embed.h - helpers shared by 'embed-image', 'embed-text' and 'classify'
 * (cli/cmd_embed.c): image lists (folders expanded) and batched encoding.
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

/* Decodes (decode_threads working one batch ahead) and encodes the list.
 * Undecodable images are reported and skipped, or fail the call when strict.
 * *emb_out [n_out, D] and *rows_out (the list index of each row) are malloc'd. */
int cli_embed_images(mc_context *ctx, const mc_model_info *info, const mc_preprocess_params *pp,
                     const cli_image_list *list, int batch, int decode_threads, int normalize,
                     int strict, int show_progress, float **emb_out, size_t **rows_out,
                     size_t *n_out);

/* Tokenizes and encodes n texts into out [n, embed_dim]. */
int cli_embed_texts(mc_context *ctx, const mc_tokenizer *tok, int context_length, int embed_dim,
                    const char *const *texts, size_t n, int batch, int normalize, float *out);

#endif
