/*
 * bench_caption.c - time caption generation with a CoCa captioner: the image
 * encoder, then greedy decoding of seq_len - 1 tokens with the decoders' KV
 * cache and without it (every step re-running the whole prefix), timed on the
 * decoders alone, as milliseconds per generated token (min of several runs)
 * and their ratio.
 *
 *   bench_caption CAPTIONER [SEQ_LEN=30] [IMAGES=1] [RUNS=3] [THREADS=0]
 *
 * A full-size coca_ViT-L-14 with random weights: tools/random_coca.py.
 */
#include "core/core.h"
#include "model/coca.h"
#include "kernels/threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Greedy decoding of seq - 1 tokens for n images straight on the decoders
 * (no image encoder in the timing): with the cache one position a step, or
 * without it the whole prefix every step.  Returns seconds. */
static double decode(const mc_coca *m, const float *embs, int n, int seq, int cached) {
    mc_coca_dims d;
    mc_coca_get_dims(m, &d);
    mc_error err;
    mc_error_clear(&err);
    mc_coca_cache *c = NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n * seq), *in = malloc(sizeof(int32_t) * (size_t)n * seq);
    int *seqs = malloc(sizeof(int) * (size_t)n);
    float *logits = malloc(sizeof(float) * (size_t)n * d.vocab_size);
    if (!ids || !in || !seqs || !logits || mc_coca_cache_new(m, n, seq, n, &c, &err) != MC_OK) {
        fprintf(stderr, "bench_caption: out of memory\n");
        exit(1);
    }
    for (int i = 0; i < n; i++) {
        seqs[i] = i;
        ids[(size_t)i * seq] = MC_TOKEN_SOT;
        mc_coca_cache_attach(c, i, i);
        if (mc_coca_cache_set_image(m, c, i, embs + (size_t)i * d.img_tokens * d.img_dim, &err) != MC_OK) {
            fprintf(stderr, "bench_caption: %s\n", err.message);
            exit(1);
        }
    }
    double t0 = mc_now_s();
    for (int t = 1; t < seq; t++) {
        mc_status st;
        if (cached) {
            for (int i = 0; i < n; i++) in[i] = ids[(size_t)i * seq + t - 1];
            st = mc_coca_decode(m, c, seqs, n, t - 1, 1, in, 0, logits, &err);
        } else {
            for (int i = 0; i < n; i++) memcpy(in + (size_t)i * t, ids + (size_t)i * seq, sizeof(int32_t) * t);
            st = mc_coca_decode(m, c, seqs, n, 0, t, in, 0, logits, &err);
        }
        if (st != MC_OK) {
            fprintf(stderr, "bench_caption: %s\n", err.message);
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            const float *l = logits + (size_t)i * d.vocab_size;
            int best = 0;
            for (int k = 1; k < d.vocab_size; k++)
                if (l[k] > l[best]) best = k;
            ids[(size_t)i * seq + t] = best;
        }
    }
    double dt = mc_now_s() - t0;
    mc_coca_cache_free(c);
    free(ids);
    free(in);
    free(seqs);
    free(logits);
    return dt;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_caption CAPTIONER [SEQ_LEN=30] [IMAGES=1] [RUNS=3] [THREADS=0]\n");
        return 2;
    }
    int seq = argc > 2 ? atoi(argv[2]) : 30, n = argc > 3 ? atoi(argv[3]) : 1, runs = argc > 4 ? atoi(argv[4]) : 3;
    int threads = argc > 5 ? atoi(argv[5]) : 0;
    mc_error err;
    mc_error_clear(&err);
    mc_coca *m = NULL;
    double tl = mc_now_s();
    if (mc_coca_load(argv[1], &m, &err) != MC_OK) {
        fprintf(stderr, "bench_caption: %s\n", err.message);
        return 1;
    }
    tl = mc_now_s() - tl;
    mc_coca_dims d;
    mc_coca_get_dims(m, &d);
    size_t per = (size_t)3 * d.image_size * d.image_size;
    float *pix = malloc(sizeof(float) * per * n);
    uint32_t s = 1234;
    for (size_t i = 0; i < per * n; i++) {
        s = s * 1664525u + 1013904223u;
        pix[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
    printf("captioner %s: %.1fM parameters, text %dx%d, decoder %dx%d, vocab %d, %d image tokens (load %.1f s)\n",
           argv[1], d.n_params / 1e6, d.text_layers, d.text_width, d.dec_layers, d.dec_width, d.vocab_size,
           d.img_tokens, tl);
    if (threads > 0) mc_kernels_set_local_threads(threads);
    double best_img = 1e30, best_c = 1e30, best_n = 1e30;
    float *emb = malloc(sizeof(float) * (size_t)n * d.img_tokens * d.img_dim);
    for (int r = 0; r < runs; r++) {
        double t0 = mc_now_s();
        if (mc_coca_encode_image(m, pix, n, NULL, emb, &err) != MC_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        double ti = mc_now_s() - t0;
        if (ti < best_img) best_img = ti;
        double tc = decode(m, emb, n, seq, 1);
        if (tc < best_c) best_c = tc;
        double tn = decode(m, emb, n, seq, 0);
        if (tn < best_n) best_n = tn;
    }
    int tok = n * (seq - 1);
    double mc = best_c * 1e3 / tok, mn = best_n * 1e3 / tok;
    printf("%d image(s), %d tokens each (greedy, seq_len %d), min of %d runs:\n", n, seq - 1, seq, runs);
    printf("  image encoder        %8.1f ms per image\n", best_img * 1e3 / n);
    printf("  decoding, KV cache   %8.2f ms per token (%.1f ms per step of %d captions)\n", mc, mc * n, n);
    printf("  decoding, no cache   %8.2f ms per token  (%.1fx the cached)\n", mn, mn / mc);
    free(emb);
    free(pix);
    mc_coca_free(m);
    return 0;
}
