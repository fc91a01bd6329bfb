/*
 * test_threads.c - one loaded model shared by several threads, each with its
 * own context, encoding images and texts at the same time: every result is
 * bit for bit the one a single thread computes.  Also built with
 * ThreadSanitizer (make test runs both), where any data race fails it.
 */
#include "test.h"

#include "mobileclip.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define N_THREADS 4
#define N_ROUNDS 3

static const char *const images[] = {"images/chelsea.png", "images/astronaut.png", "images/coffee.png"};
static const char *const texts[] = {"a photo of a cat", "an astronaut", "a cup of coffee", "receipts"};
#define N_IMG 3
#define N_TXT 4

typedef struct job {
    const mc_model *model;
    const float *pixels;      /* [N_IMG, 3, S, S] */
    const int32_t *tokens;    /* [N_TXT, 77] */
    int dim;
    float img[N_IMG * 1024], txt[N_TXT * 1024];
    int ok;
    char msg[1100];
} job;

/* Encodes every image and text one at a time, N_ROUNDS times (the last kept). */
static void *run(void *arg) {
    job *j = arg;
    mc_context_params cp = mc_context_default_params();
    cp.n_threads = 1;
    mc_context *ctx = NULL;
    mc_error err;
    mc_error_clear(&err);
    j->ok = 0;
    if (mc_context_new(j->model, &cp, &ctx, &err) != MC_OK) {
        snprintf(j->msg, sizeof j->msg, "context: %s", err.message);
        return NULL;
    }
    mc_model_info info;
    mc_model_get_info(j->model, &info);
    size_t plane3 = (size_t)3 * info.image_size * info.image_size;
    for (int r = 0; r < N_ROUNDS; r++) {
        for (int i = 0; i < N_IMG; i++)
            if (mc_encode_image(ctx, j->pixels + (size_t)i * plane3, 1, 1, j->img + (size_t)i * j->dim) != MC_OK) {
                snprintf(j->msg, sizeof j->msg, "image: %s", mc_context_last_error(ctx)->message);
                goto done;
            }
        for (int i = 0; i < N_TXT; i++)
            if (mc_encode_text(ctx, j->tokens + (size_t)i * MC_CONTEXT_LENGTH, 1, 1, j->txt + (size_t)i * j->dim) != MC_OK) {
                snprintf(j->msg, sizeof j->msg, "text: %s", mc_context_last_error(ctx)->message);
                goto done;
            }
    }
    j->ok = 1;
done:
    mc_context_free(ctx);
    return NULL;
}

static void check_model(const char *dir) {
    mc_error err;
    mc_error_clear(&err);
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    mc_model *m = NULL;
    CHECK(mc_model_load(fixture(dir), &mp, &m, &err) == MC_OK, "%s: %s", dir, err.message);
    if (!m) return;
    mc_model_info info;
    mc_model_get_info(m, &info);
    CHECK(info.embed_dim <= 1024, "embedding dim %d", info.embed_dim);
    size_t plane3 = (size_t)3 * info.image_size * info.image_size;
    float *pixels = malloc(N_IMG * plane3 * sizeof(float));
    int32_t tokens[N_TXT * MC_CONTEXT_LENGTH];
    for (int i = 0; pixels && i < N_IMG; i++)
        CHECK(mc_image_preprocess_file(fixture(images[i]), &info.preprocess, pixels + (size_t)i * plane3, &err) == MC_OK,
              "%s: %s", images[i], err.message);
    for (int i = 0; i < N_TXT; i++)
        CHECK(mc_tokenizer_encode(mc_model_tokenizer(m), texts[i], MC_CONTEXT_LENGTH, tokens + i * MC_CONTEXT_LENGTH,
                                  &err) == MC_OK, "tokenize: %s", err.message);
    static job single, many[N_THREADS];
    single = (job){.model = m, .pixels = pixels, .tokens = tokens, .dim = info.embed_dim};
    run(&single);
    CHECK(single.ok, "%s one thread: %s", dir, single.msg);
    pthread_t th[N_THREADS];
    int started = 0;
    for (int t = 0; t < N_THREADS; t++) {
        many[t] = (job){.model = m, .pixels = pixels, .tokens = tokens, .dim = info.embed_dim};
        if (pthread_create(&th[t], NULL, run, &many[t]) == 0) started++;
        else break;
    }
    CHECK(started == N_THREADS, "started %d threads", started);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < started; t++) {
        CHECK(many[t].ok, "%s thread %d: %s", dir, t, many[t].msg);
        CHECK(!memcmp(many[t].img, single.img, sizeof(float) * N_IMG * (size_t)info.embed_dim) &&
                  !memcmp(many[t].txt, single.txt, sizeof(float) * N_TXT * (size_t)info.embed_dim),
              "%s thread %d: embeddings differ from one thread's", dir, t);
    }
    free(pixels);
    mc_model_free(m);
}

int main(void) {
    check_model("models/v1_mci_mct");        /* MCi + RepMixer text */
    check_model("models/oc_mobileclip2_b");  /* ViT + causal OpenCLIP text */
    return test_summary("test_threads");
}
