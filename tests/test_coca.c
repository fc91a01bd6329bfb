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
#include <pthread.h>
#include <unistd.h>

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

/* dir: a captioner folder with expected.safetensors (the fixture's layout). */
static void test_parity(const char *dir) {
    mc_error err;
    mc_error_clear(&err);
    mc_checkpoint *ex = NULL;
    char ep[512];
    snprintf(ep, sizeof ep, "%s/expected.safetensors", dir);
    mc_status st = mc_checkpoint_open(ep, &ex, &err);
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
        CHECK(mc_coca_cache_set_image(M, c, i, embs + (size_t)i * D.img_tokens * D.img_dim, &err) == MC_OK, "%s", err.message);
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
        CHECK(mc_coca_cache_set_image(M, c1, i, embs + (size_t)i * D.img_tokens * D.img_dim, &err) == MC_OK, "%s", err.message);
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

static int32_t *gen(const mc_generate_params *p, int cached, int *lens) {
    mc_error err;
    mc_error_clear(&err);
    int32_t *out = malloc(sizeof(int32_t) * (size_t)NIMG * p->seq_len);
    mc_status st = cached ? mc_coca_generate(M, PIX, NIMG, p, out, p->seq_len, lens, &err)
                          : mc_coca_generate_nocache(M, PIX, NIMG, p, out, p->seq_len, lens, &err);
    CHECK(st == MC_OK, "generate (type %d): %s", (int)p->type, err.message);
    if (st != MC_OK) { free(out); return NULL; }
    return out;
}

static int same(const int32_t *a, const int32_t *b, size_t n) { return a && b && !memcmp(a, b, n * sizeof *a); }

/* Rows: SOT first; EOT ends the caption unless it fills seq_len; pad after. */
static void check_rows(const char *what, const int32_t *t, const int *lens, const mc_generate_params *p) {
    for (int i = 0; t && i < NIMG; i++) {
        const int32_t *r = t + (size_t)i * p->seq_len;
        CHECK(lens[i] >= 2 && lens[i] <= p->seq_len, "%s: length %d", what, lens[i]);
        CHECK(r[0] == MC_TOKEN_SOT, "%s: row %d starts with %d", what, i, r[0]);
        for (int j = 1; j < lens[i] - 1; j++) {
            CHECK(r[j] != MC_TOKEN_EOT, "%s: EOT inside row %d at %d", what, i, j);
            CHECK(j >= p->min_seq_len - 1 || r[j] != MC_TOKEN_EOT, "%s: EOT before min_seq_len", what);
        }
        CHECK(r[lens[i] - 1] == MC_TOKEN_EOT || lens[i] == p->seq_len, "%s: row %d ends with %d", what, i,
              r[lens[i] - 1]);
        for (int j = lens[i]; j < p->seq_len; j++) CHECK(r[j] == 0, "%s: row %d not padded at %d", what, i, j);
    }
}

static void test_generation(void) {
    int lens[16], lens2[16];
    mc_generate_params g = mc_generate_default_params();
    g.type = MC_GEN_GREEDY;
    int32_t *greedy = gen(&g, 1, lens);
    check_rows("greedy", greedy, lens, &g);
    /* the fixture model never picks EOT: sampling forces it at seq_len - 1 */
    for (int i = 0; greedy && i < NIMG; i++) CHECK(lens[i] == g.seq_len, "greedy length %d", lens[i]);

    /* top_k = 1 keeps only the argmax: sampling then equals greedy */
    mc_generate_params k1 = g;
    k1.type = MC_GEN_TOP_K;
    k1.top_k = 1;
    k1.seed = 99;
    int32_t *tk = gen(&k1, 1, lens2);
    CHECK(same(tk, greedy, (size_t)NIMG * g.seq_len), "top_k=1 differs from greedy");

    /* top_p: reproducible by seed, other seeds differ, the cache changes nothing */
    mc_generate_params tp = mc_generate_default_params();
    tp.type = MC_GEN_TOP_P;
    tp.top_p = 0.9f;
    tp.fixed_output_length = 1;
    tp.seed = 7;
    int32_t *a = gen(&tp, 1, lens), *b = gen(&tp, 1, lens2), *nc = gen(&tp, 0, lens2);
    check_rows("top_p", a, lens, &tp);
    CHECK(same(a, b, (size_t)NIMG * tp.seq_len), "top_p with one seed differs between runs");
    CHECK(same(a, nc, (size_t)NIMG * tp.seq_len), "top_p with the cache differs from without");
    tp.seed = 8;
    int32_t *c = gen(&tp, 1, lens2);
    CHECK(c && a && !same(a, c, (size_t)NIMG * tp.seq_len), "top_p seeds 7 and 8 gave the same captions");
    CHECK(a && greedy && !same(a, greedy, (size_t)NIMG * tp.seq_len), "top_p 0.9 gave the greedy captions");
    /* image i's stream does not depend on the batch: image 1 alone with seed + 1 */
    if (a) {
        mc_error err;
        mc_error_clear(&err);
        int32_t one[80];
        int l1 = 0;
        mc_generate_params t1 = tp;
        t1.seed = 7 + 1;
        size_t per = (size_t)3 * D.image_size * D.image_size;
        CHECK(mc_coca_generate(M, PIX + per, 1, &t1, one, t1.seq_len, &l1, &err) == MC_OK, "%s", err.message);
        CHECK(same(one, a + t1.seq_len, (size_t)t1.seq_len), "image 1 alone differs from image 1 in the batch");
    }

    /* top_k sampling with a temperature */
    mc_generate_params tkp = g;
    tkp.type = MC_GEN_TOP_K;
    tkp.top_k = 50;
    tkp.temperature = 0.7f;
    tkp.repetition_penalty = 1.3f;
    int32_t *s1 = gen(&tkp, 1, lens), *s2 = gen(&tkp, 0, lens2);
    check_rows("top_k", s1, lens, &tkp);
    CHECK(same(s1, s2, (size_t)NIMG * tkp.seq_len), "top_k with the cache differs from without");

    /* repetition penalty: a penalty of 1 is no penalty; a large one removes repeats from greedy */
    mc_generate_params rp = g;
    rp.repetition_penalty = 1000.0f;
    int32_t *r = gen(&rp, 1, lens);
    int repeats = 0;
    for (int i = 0; r && i < NIMG; i++)
        for (int j = 1; j < lens[i] - 1; j++)
            for (int q = 1; q < j; q++) repeats += r[(size_t)i * rp.seq_len + j] == r[(size_t)i * rp.seq_len + q];
    CHECK(r && repeats == 0, "%d repeated tokens under repetition_penalty 1000", repeats);

    /* beam search: open_clip's groups search alike without a diversity penalty, so
       6 beams in 3 groups give 2 beams' captions; the cache changes nothing */
    mc_generate_params bs = mc_generate_default_params();
    bs.seq_len = 12;
    int32_t *b6 = gen(&bs, 1, lens), *b6n = gen(&bs, 0, lens2);
    check_rows("beam_search", b6, lens, &bs);
    CHECK(same(b6, b6n, (size_t)NIMG * bs.seq_len), "beam search with the cache differs from without");
    mc_generate_params b2 = bs;
    b2.num_beams = 2;
    b2.num_beam_groups = 1;
    int32_t *bb2 = gen(&b2, 1, lens2);
    CHECK(same(b6, bb2, (size_t)NIMG * bs.seq_len), "6 beams in 3 groups differ from 2 beams in 1");
    for (int i = 0; b6 && i < NIMG; i++) {
        printf("beam %d:", i);
        for (int j = 0; j < lens[i]; j++) printf(" %d", b6[(size_t)i * bs.seq_len + j]);
        printf("\n");
    }

    /* bad parameters are refused by name */
    mc_error err;
    mc_error_clear(&err);
    mc_generate_params bad = g;
    bad.min_seq_len = bad.seq_len;
    int32_t tmp[100];
    int lt[4];
    CHECK(mc_coca_generate(M, PIX, 1, &bad, tmp, 100, lt, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "min_seq_len"),
          "min_seq_len >= seq_len accepted: %s", err.message);
    bad = g;
    bad.seq_len = D.context_length + 1;
    CHECK(mc_coca_generate(M, PIX, 1, &bad, tmp, 100, lt, &err) == MC_ERR_INVALID_ARG, "seq_len beyond the context accepted");
    bad = g;
    CHECK(mc_coca_generate(M, PIX, 1, &bad, tmp, bad.seq_len - 1, lt, &err) == MC_ERR_INVALID_ARG, "short token buffer accepted");

    free(greedy); free(tk); free(a); free(b); free(nc); free(c); free(s1); free(s2); free(r);
    free(b6); free(b6n); free(bb2);
}

typedef struct thr_arg {
    mc_generate_params p;
    int32_t out[3 * 80];
    int lens[3];
    mc_status st;
} thr_arg;

static void *thr_run(void *v) {
    thr_arg *a = v;
    mc_error err;
    a->st = mc_coca_generate(M, PIX, NIMG, &a->p, a->out, a->p.seq_len, a->lens, &err);
    return NULL;
}

/* One captioner, two threads generating at once: the same captions as one at a time. */
static void test_threads(void) {
    thr_arg a[2];
    for (int i = 0; i < 2; i++) {
        a[i].p = mc_generate_default_params();
        a[i].p.type = i ? MC_GEN_TOP_P : MC_GEN_BEAM_SEARCH;
        a[i].p.top_p = 0.9f;
        a[i].p.seq_len = 10;
        a[i].p.seed = 3;
        a[i].p.threads = 1;
    }
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, thr_run, &a[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        int lens[3];
        int32_t *want = gen(&a[i].p, 1, lens);
        CHECK(a[i].st == MC_OK && same(want, a[i].out, (size_t)NIMG * a[i].p.seq_len),
              "thread %d: captions differ from the single-thread run", i);
        free(want);
    }
}

/* Decoding: the reference texts of the fixture round-trip through encode and
   decode; DataCompDR's post-processing keeps the first sentence. */
static void test_decode(void) {
    mc_error err;
    mc_error_clear(&err);
    mc_tokenizer *tok = NULL;
    mc_status st = mc_tokenizer_load(fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &tok, &err);
    CHECK(st == MC_OK, "vocab: %s", err.message);
    if (!tok) return;
    static const char *texts[] = {"a tabby cat resting on a wooden floor", "portrait of an astronaut with the american flag",
                                  "cup of coffee on a red saucer", "caf\xc3\xa9 na\xc3\xafve \xf0\x9f\x98\x80 costs five"};
    int32_t ids[77];
    for (int i = 0; i < 4; i++) {
        mc_tokenizer_encode(tok, texts[i], 77, ids, &err);
        int n = 0;
        while (n < 77 && ids[n] != MC_TOKEN_EOT) n++;
        char *raw = NULL, *cap = NULL;
        CHECK(mc_tokenizer_decode(tok, ids, n + 1, &raw, &err) == MC_OK, "decode: %s", err.message);
        char want[256];
        snprintf(want, sizeof want, "<start_of_text>%s <end_of_text>", texts[i]);
        CHECK(raw && !strcmp(raw, want), "decode gave '%s', want '%s'", raw ? raw : "", want);
        CHECK(mc_caption_decode(tok, ids, 77, &cap, &err) == MC_OK && cap && !strcmp(cap, texts[i]),
              "caption decode gave '%s'", cap ? cap : "");
        free(raw);
        free(cap);
    }
    /* first sentence only, trailing spaces gone, text after EOT ignored */
    mc_tokenizer_encode(tok, "a dog on a beach. it is sunny.", 77, ids, &err);
    char *cap = NULL;
    CHECK(mc_caption_decode(tok, ids, 77, &cap, &err) == MC_OK && cap && !strcmp(cap, "a dog on a beach"),
          "first sentence: '%s'", cap ? cap : "");
    free(cap);
    /* a lone continuation byte becomes U+FFFD (id 222: byte 0x80, after the 188
       printable bytes and 0x00..0x20, 0x7f) */
    int32_t bad[3] = {MC_TOKEN_SOT, 222, MC_TOKEN_EOT};
    char *raw = NULL;
    CHECK(mc_tokenizer_decode(tok, bad, 3, &raw, &err) == MC_OK && raw && strstr(raw, "\xef\xbf\xbd"),
          "invalid UTF-8 not replaced: '%s'", raw ? raw : "");
    free(raw);
    int32_t oob = 49408;
    CHECK(mc_tokenizer_decode(tok, &oob, 1, &raw, &err) == MC_ERR_INVALID_ARG, "id 49408 accepted");
    mc_tokenizer_free(tok);
}

/* Config options the engine does not implement are refused by name. */
static void test_refusals(void) {
    static const char *cases[][2] = {
        {"\"ls_init_value\": 0.1", "vision_cfg.ls_init_value"},
        {"\"attentional_pool\": \"parallel\"", "attentional_pool"},
        {"\"pos_embed_type\": \"sin_cos_2d\"", "pos_embed_type"},
    };
    char dir[] = "/tmp/mc_coca_cfgXXXXXX";
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    char cfg[512], wts[512];
    snprintf(cfg, sizeof cfg, "%s/open_clip_config.json", dir);
    snprintf(wts, sizeof wts, "%s/open_clip_model.safetensors", dir);
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(cfg, "w");
        fprintf(f, "{\"model_cfg\": {\"embed_dim\": 32, \"vision_cfg\": {\"width\": 128, %s}, "
                   "\"text_cfg\": {\"embed_cls\": true}, \"multimodal_cfg\": {}}}", cases[i][0]);
        fclose(f);
        f = fopen(wts, "w");
        fputs("x", f);
        fclose(f);
        mc_error err;
        mc_error_clear(&err);
        mc_coca *m = NULL;
        mc_status st = mc_coca_load(dir, &m, &err);
        CHECK(st == MC_ERR_UNSUPPORTED && strstr(err.message, cases[i][1]), "case %d: %d '%s'", i, (int)st, err.message);
        mc_coca_free(m);
    }
    remove(cfg);
    remove(wts);
    rmdir(dir);
}

int main(void) {
    mc_error err;
    mc_error_clear(&err);
    /* another captioner in the same layout (tools/coca_reference.py): parity only */
    const char *extra = getenv("MC_COCA_EXTRA");
    if (extra && *extra) {
        mc_status st = mc_coca_load(extra, &M, &err);
        CHECK(st == MC_OK, "load %s: %s", extra, err.message);
        if (st == MC_OK) {
            mc_coca_get_dims(M, &D);
            printf("%s:\n", extra);
            test_parity(extra);
            free(PIX);
            PIX = NULL;
            mc_coca_free(M);
        }
    }
    mc_status st = mc_coca_load(fixture(CAP), &M, &err);
    CHECK(st == MC_OK, "load: %s", err.message);
    if (st != MC_OK) return test_summary("test_coca");
    mc_coca_get_dims(M, &D);
    test_parity(fixture(CAP));
    if (PIX) test_generation();
    CHECK(NIMG <= 3, "the thread check holds 3 images, the fixture has %d", NIMG);
    if (PIX && NIMG <= 3) test_threads();
    test_decode();
    test_refusals();
    free(PIX);
    mc_coca_free(M);
    return test_summary("test_coca");
}
