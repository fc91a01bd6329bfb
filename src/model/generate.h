/*
 * model/generate.h - caption generation with a CoCa model as open_clip 2.31's
 * CoCa.generate does it (the version Apple's DataCompDR generator pins):
 * greedy, top-k and top-p sampling with temperature, beam search with beam
 * groups, the min-length and repetition-penalty logits processors, seq_len,
 * fixed_output_length, stop at EOT; over the decoders' KV cache.  Also the
 * public captioner API of mobileclip.h.
 */
#ifndef MC_MODEL_GENERATE_H
#define MC_MODEL_GENERATE_H

#include "model/coca.h"

/* pixels [n, 3, S, S] -> tokens_out [n, cap], lengths [n] (mc_caption_generate). */
mc_status mc_coca_generate(const mc_coca *m, const float *pixels, int n, const mc_generate_params *p,
                           int32_t *tokens_out, int cap, int *lengths, mc_error *err);

/* The same, with the KV cache turned off: every step runs the decoders over
 * the whole prefix again (for measuring what the cache saves). */
mc_status mc_coca_generate_nocache(const mc_coca *m, const float *pixels, int n, const mc_generate_params *p,
                                   int32_t *tokens_out, int cap, int *lengths, mc_error *err);

#endif /* MC_MODEL_GENERATE_H */
