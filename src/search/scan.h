/*
 * search/scan.h - exact top-k cosine search over embeddings in memory
 * (scan.c): one matrix-vector product on the SIMD kernels, then a bounded
 * heap.
 */
#ifndef MC_SEARCH_SCAN_H
#define MC_SEARCH_SCAN_H

#include "mobileclip.h"

/* The k best rows of emb [n, dim] by dot product with q [dim]: hits sorted
 * by score descending, ties by id ascending (ids[i] is row i's id);
 * returns min(k, n).  scores: scratch of n floats. */
int mc_scan_topk(const float *emb, const int64_t *ids, int64_t n, int dim, const float *q, int k,
                 float *scores, mc_search_hit *hits);

/* The same from plain loops (the oracle of the tests). */
int mc_scan_topk_ref(const float *emb, const int64_t *ids, int64_t n, int dim, const float *q, int k,
                     float *scores, mc_search_hit *hits);

#endif
