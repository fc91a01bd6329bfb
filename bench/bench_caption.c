/*
 * bench_caption.c - time caption generation with a CoCa captioner: the image
 * encoder, then greedy decoding of seq_len tokens with the decoders' KV cache
 * and without it (every step re-running the whole prefix), as milliseconds
 * per generated token (min of several runs) and their ratio.
 *
 *   bench_caption CAPTIONER [SEQ_LEN=30] [IMAGES=1] [RUNS=3] [THREADS=0]
 *
 * A full-size coca_ViT-L-14 with random weights: tools/random_coca.py.
 */
#include "core/core.h"
#include "model/coca.h"
#include "kernels/threads.h"
#include "model/generate.h"

#include <stdio.h>
#include <stdlib.h>

static double run(const mc_coca *m, const float *pix, int n, const mc_generate_params *p, int cached, int32_t *out,
                  int *lens, int *tokens) {
    mc_error err;
    mc_error_clear(&err);
    double t0 = mc_now_s();
    mc_status st = cached ? mc_coca_generate(m, pix, n, p, out, p->seq_len, lens, &err)
                          : mc_coca_generate_nocache(m, pix, n, p, out, p->seq_len, lens, &err);
    double t = mc_now_s() - t0;
    if (st != MC_OK) {
        fprintf(stderr, "bench_caption: %s\n", err.message);
        exit(1);
    }
    *tokens = 0;
    for (int i = 0; i < n; i++) *tokens += lens[i] - 1;
    return t;
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
    int32_t *out = malloc(sizeof(int32_t) * (size_t)n * seq);
    int *lens = malloc(sizeof(int) * (size_t)n);
    uint32_t s = 1234;
    for (size_t i = 0; i < per * n; i++) {
        s = s * 1664525u + 1013904223u;
        pix[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
    mc_generate_params p = mc_generate_default_params();
    p.type = MC_GEN_GREEDY;
    p.seq_len = seq;
    p.min_seq_len = 1;
    p.threads = threads;
    printf("captioner %s: %.1fM parameters, text %dx%d, decoder %dx%d, vocab %d, %d image tokens (load %.1f s)\n",
           argv[1], d.n_params / 1e6, d.text_layers, d.text_width, d.dec_layers, d.dec_width, d.vocab_size,
           d.img_tokens, tl);
    if (threads > 0) mc_kernels_set_local_threads(threads);
    double best_img = 1e30, best_c = 1e30, best_n = 1e30;
    int tok_c = 0, tok_n = 0;
    float *emb = malloc(sizeof(float) * (size_t)n * d.img_tokens * d.img_dim);
    for (int r = 0; r < runs; r++) {
        double t0 = mc_now_s();
        if (mc_coca_encode_image(m, pix, n, NULL, emb, &err) != MC_OK) { fprintf(stderr, "%s\n", err.message); return 1; }
        double ti = mc_now_s() - t0;
        if (ti < best_img) best_img = ti;
        double tc = run(m, pix, n, &p, 1, out, lens, &tok_c);
        if (tc < best_c) best_c = tc;
        double tn = run(m, pix, n, &p, 0, out, lens, &tok_n);
        if (tn < best_n) best_n = tn;
    }
    double mc = (best_c - best_img) * 1e3 / tok_c, mn = (best_n - best_img) * 1e3 / tok_n;
    printf("%d image(s), %d tokens each (greedy, seq_len %d), min of %d runs:\n", n, tok_c / n, seq, runs);
    printf("  image encoder        %8.1f ms per image\n", best_img * 1e3 / n);
    printf("  decoding, KV cache   %8.2f ms per token\n", mc);
    printf("  decoding, no cache   %8.2f ms per token  (%.1fx the cached)\n", mn, mn / mc);
    printf("  whole caption        %8.1f ms per image with the cache, %.1f without\n", best_c * 1e3 / n, best_n * 1e3 / n);
    free(emb);
    free(pix);
    free(out);
    free(lens);
    mc_coca_free(m);
    return 0;
}
