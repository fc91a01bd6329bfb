/*
 * model/model.h - model assembly (model.c): an image tower and a text tower
 * behind the interface of tower.h, their weights in one arena, and the
 * pieces (config, tokenizer, logit scale) the public API exposes; the
 * entry points of mobileclip.h's model and context calls live in model.c.
 */
#ifndef MC_MODEL_H
#define MC_MODEL_H

#include "io/config.h"
#include "io/safetensors.h"

/* The positions the loaded text tower runs for tokens [n, context_length]
 * (its positions hook); 0 without a text tower. */
int mc_model_text_positions(const mc_model *m, const int32_t *tokens, int n);

/* L2-normalises each row of x[n, d] in place (as F.normalize, eps 1e-12). */
void mc_l2_normalize_rows(float *x, int n, int d);

/* Export of a loaded model's weights as the engine holds them (train-time
 * branches folded), for 'mobileclip convert'.
 * Contract:
 *   - *entries: a malloc'd array of *n tensors; names and the few derived
 *     tensors (transposed projections) live in the same allocation, other data
 *     points into the model: valid while both live; the caller frees only the
 *     array.  dtype F32; names are the loader's own, so that mc_model_load
 *     reads them back (with "mobileclip.layout" = "folded").
 *   - *meta: a malloc'd array of *n_meta key/values (strings owned by the
 *     model) that the loader needs to rebuild the model from that file alone:
 *     at least "mobileclip.config" (config JSON text), "mobileclip.layout"
 *     ("folded") and "mobileclip.model_name" when known.
 *     ("mobileclip.config" is absent when the config was a built-in: then the
 *     model name tells it), plus "mobileclip.config_file" when read from a file.
 *   - MC_ERR_UNSUPPORTED when the model cannot be exported (a tower not loaded).
 * The CLI writes them with mc_safetensors_write after converting to the
 * requested dtype. */
mc_status mc_model_export(const mc_model *m, mc_st_entry **entries, size_t *n, mc_meta_kv **meta,
                          size_t *n_meta, mc_error *err);
/* Loads a model from an already-open checkpoint (e.g. one built in memory by
 * synth.c) with a given configuration, binding the towers exactly as
 * mc_model_load does.  The tokenizer is loaded only when params->vocab_path is
 * set.  ck may be closed once this returns. */
mc_status mc_model_load_checkpoint(const mc_checkpoint *ck, const mc_config *cfg, const mc_model_params *params,
                                   mc_model **out, mc_error *err);

#endif /* MC_MODEL_H */
