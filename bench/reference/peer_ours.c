/*
 * peer_ours.c - our side of the peer comparison (bench/reference/compare.sh):
 * loads OUT/model.pt written by export_reference.py, encodes the stored
 * inputs, prints the largest difference to the reference's embeddings, then
 * times each encoder at batch 1 on the given thread count.  Prints lines in
 * the format run_ort.js and time_torch.py use:
 *   peer engine=mobileclip.c tower=image threads=2 ms_min=.. ms_median=.. max_abs=..
 */
#include "mobileclip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static float *read_npy(const char *dir, const char *name, int64_t *count) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    float *data = NULL;
    int ndim = 0;
    int64_t shape[MC_MAX_DIMS];
    mc_error err;
    if (mc_npy_read_f32(path, &data, &ndim, shape, &err) != MC_OK) {
        fprintf(stderr, "peer_ours: %s\n", err.message);
        exit(1);
    }
    *count = 1;
    for (int i = 0; i < ndim; i++) *count *= shape[i];
    return data;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: peer_ours DIR THREADS [RUNS]\n");
        return 2;
    }
    const char *dir = argv[1];
    int threads = atoi(argv[2]);
    int runs = argc > 3 ? atoi(argv[3]) : 20;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.pt", dir);

    mc_error err;
    mc_model *model = NULL;
    mc_model_params mp = mc_model_default_params();
    mp.load_tokenizer = 0; /* token ids are given */
    if (mc_model_load(path, &mp, &model, &err) != MC_OK) {
        fprintf(stderr, "peer_ours: %s\n", err.message);
        return 1;
    }
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = threads;
    mc_context *ctx = NULL;
    if (mc_context_new(model, &cp, &ctx, &err) != MC_OK) {
        fprintf(stderr, "peer_ours: %s\n", err.message);
        return 1;
    }

    int64_t n_pix, n_tok, n_ie, n_te;
    float *pixels = read_npy(dir, "image_input.npy", &n_pix);
    float *tok_f = read_npy(dir, "text_tokens_f32.npy", &n_tok);
    float *img_exp = read_npy(dir, "image_expected.npy", &n_ie);
    float *txt_exp = read_npy(dir, "text_expected.npy", &n_te);
    int32_t *tokens = malloc((size_t)n_tok * sizeof *tokens);
    float *emb = malloc((size_t)(n_ie > n_te ? n_ie : n_te) * sizeof *emb);
    double *times = malloc((size_t)(runs > 0 ? runs : 1) * sizeof *times);
    if (!tokens || !emb || !times) return 1;
    for (int64_t i = 0; i < n_tok; i++) tokens[i] = (int32_t)tok_f[i];

    for (int tower = 0; tower < 2; tower++) {
        int64_t n_out = tower ? n_te : n_ie;
        const float *expect = tower ? txt_exp : img_exp;
        mc_status st = tower ? mc_encode_text(ctx, tokens, 1, 1, emb)
                             : mc_encode_image(ctx, pixels, 1, 1, emb);
        if (st != MC_OK) {
            fprintf(stderr, "peer_ours: %s\n", mc_context_last_error(ctx)->message);
            return 1;
        }
        double max_abs = 0;
        for (int64_t i = 0; i < n_out; i++) max_abs = fmax(max_abs, fabs((double)emb[i] - expect[i]));
        for (int r = 0; r < runs; r++) {
            double t0 = now_s();
            if (tower) mc_encode_text(ctx, tokens, 1, 1, emb);
            else mc_encode_image(ctx, pixels, 1, 1, emb);
            times[r] = (now_s() - t0) * 1e3;
        }
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        printf("peer engine=mobileclip.c tower=%s threads=%d ms_min=%.2f ms_median=%.2f max_abs=%.3g\n",
               tower ? "text" : "image", threads, times[0], times[runs / 2], max_abs);
        fflush(stdout);
    }
    free(pixels); free(tok_f); free(img_exp); free(txt_exp); free(tokens); free(emb); free(times);
    mc_context_free(ctx);
    mc_model_free(model);
    return 0;
}
