/*
 * test_loader.c - the reinforced-training loader (src/data/loader.h) on the
 * DataCompDR fixture shards: the batches carry exactly the re-applied
 * augmentation the reference stored (byte-equal to expected_reinforcements
 * at 256 for augmentations 0..5, normalised), the teacher rows of that
 * augmentation and of the chosen captions, the right tokens; the stream is
 * the same for any worker count, changes with the seed, follows epoch % A in
 * sequential mode; ranks get disjoint shares; bad samples are skipped and
 * counted, or fatal with strict.
 */
#include "test.h"

#include "core/core.h"
#include "data/loader.h"
#include "io/checkpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static mc_tokenizer *tok;
static mc_checkpoint *expect;

static const float *expected(const char *name, size_t *n) {
    const mc_tensor_info *t = mc_checkpoint_find(expect, name);
    if (!t) return NULL;
    *n = 1;
    for (int i = 0; i < t->ndim; i++) *n *= (size_t)t->shape[i];
    return t->data;
}

static mc_loader_params base_params(const char *shards) {
    mc_loader_params p = mc_loader_default_params();
    p.shards = shards;
    p.tok = tok;
    p.image_size = 256;
    p.batch_size = 3;
    p.seed = 7;
    p.workers = 2;
    p.shuffle_buffer = 0;
    return p;
}

/* All batches of one epoch, concatenated: keys, aug indices, pixels checksum. */
typedef struct epoch_dump {
    int n;
    char keys[64][64];
    int aug[64];
    double pix_sum[64];
    float t_img0[64], t_txt0[64], t_syn0[64];
    int32_t tok5[64], syn5[64];
} epoch_dump;

static int run_epoch(const mc_loader_params *p, epoch_dump *d) {
    mc_loader *l = NULL;
    mc_error err;
    mc_error_clear(&err);
    memset(d, 0, sizeof *d);
    if (mc_loader_open(p, &l, &err) != MC_OK) {
        fprintf(stderr, "open: %s\n", err.message);
        return -1;
    }
    for (;;) {
        mc_loader_batch b;
        int end = 0;
        if (mc_loader_next(l, &b, &end, &err) != MC_OK) {
            fprintf(stderr, "next: %s\n", err.message);
            mc_loader_close(l);
            return -1;
        }
        if (end) break;
        size_t plane3 = (size_t)3 * b.image_size * b.image_size;
        for (int i = 0; i < b.n && d->n < 64; i++, d->n++) {
            snprintf(d->keys[d->n], sizeof d->keys[0], "%s", b.keys[i]);
            d->aug[d->n] = b.aug_index[i];
            double s = 0;
            for (size_t k = 0; k < plane3; k += 97) s += b.pixels[(size_t)i * plane3 + k] * (double)(k % 13 + 1);
            d->pix_sum[d->n] = s;
            d->t_img0[d->n] = b.teacher_image[(size_t)i * b.teacher_dim];
            d->t_txt0[d->n] = b.teacher_text[(size_t)i * b.teacher_dim];
            d->t_syn0[d->n] = b.teacher_syn ? b.teacher_syn[(size_t)i * b.teacher_dim] : 0;
            d->tok5[d->n] = b.tokens[(size_t)i * b.context_length + 5];
            d->syn5[d->n] = b.syn_tokens ? b.syn_tokens[(size_t)i * b.context_length + 5] : -1;
        }
    }
    mc_loader_close(l);
    return 0;
}

static int same_dump(const epoch_dump *a, const epoch_dump *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->keys[i], b->keys[i]) || a->aug[i] != b->aug[i] || a->pix_sum[i] != b->pix_sum[i] ||
            a->t_img0[i] != b->t_img0[i] || a->t_txt0[i] != b->t_txt0[i] || a->t_syn0[i] != b->t_syn0[i] ||
            a->tok5[i] != b->tok5[i] || a->syn5[i] != b->syn5[i])
            return 0;
    return 1;
}

/* One batch of both layouts checked against the fixture's expectations. */
static void check_contents(const char *shard, int bf16) {
    mc_loader_params p = base_params(shard);
    p.sample_sequential = 1;
    mc_error err;
    mc_error_clear(&err);
    for (int epoch = 0; epoch < 6; epoch += 5) {       /* epoch % 30: augmentations 0 and 5 */
        p.epoch = epoch;
        mc_loader *l = NULL;
        CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open %s: %s", shard, err.message);
        if (!l) return;
        mc_loader_batch b;
        int end = 1;
        CHECK(mc_loader_next(l, &b, &end, &err) == MC_OK && !end, "a batch from %s: %s", shard, err.message);
        if (end) { mc_loader_close(l); return; }
        CHECK(b.n == 3 && b.teacher_dim == 40 && b.image_size == 256, "batch shape n %d dim %d", b.n, b.teacher_dim);
        for (int i = 0; i < b.n; i++) {
            CHECK(b.aug_index[i] == epoch % 30, "sequential mode: augmentation %d at epoch %d", b.aug_index[i], epoch);
            char name[128];
            size_t n = 0;
            snprintf(name, sizeof name, "%s/aug%d/256", b.keys[i], b.aug_index[i]);
            const uint8_t *px = (const uint8_t *)expected(name, &n);
            CHECK(px && n == (size_t)256 * 256 * 3, "%s in the fixture", name);
            if (px) {
                size_t bad = 0, plane = (size_t)256 * 256;
                for (size_t k = 0; k < plane; k++)
                    for (int c = 0; c < 3; c++)
                        if (b.pixels[(size_t)i * 3 * plane + (size_t)c * plane + k] != (float)px[k * 3 + (size_t)c] / 255.0f)
                            bad++;
                CHECK(bad == 0, "%s: %zu pixel values differ from the reference's re-application", name, bad);
            }
            snprintf(name, sizeof name, "%s/image_emb", b.keys[i]);
            const float *ie = expected(name, &n);
            CHECK(ie && n == 30 * 40, "%s", name);
            snprintf(name, sizeof name, "%s/text_emb", b.keys[i]);
            const float *te = expected(name, &n);
            CHECK(te && n == 6 * 40, "%s", name);
            if (!ie || !te) continue;
            double tol = bf16 ? 1.0 / 128 : 0;   /* bf16: within its rounding (8 bits) */
            double e_img = 0, e_txt = 0, e_syn = 0;
            int cap = epoch % 5;                  /* sequential: caption epoch % 5 */
            for (int k = 0; k < 40; k++) {
                double r1 = fabs(b.teacher_image[i * 40 + k] - ie[b.aug_index[i] * 40 + k]);
                double r2 = fabs(b.teacher_text[i * 40 + k] - te[k]);
                double r3 = fabs(b.teacher_syn[i * 40 + k] - te[(1 + cap) * 40 + k]);
                double s1 = fabs(ie[b.aug_index[i] * 40 + k]), s2 = fabs(te[k]), s3 = fabs(te[(1 + cap) * 40 + k]);
                if (r1 > tol * s1 + 1e-30) e_img = fmax(e_img, r1);
                if (r2 > tol * s2 + 1e-30) e_txt = fmax(e_txt, r2);
                if (r3 > tol * s3 + 1e-30) e_syn = fmax(e_syn, r3);
            }
            CHECK(e_img == 0 && e_txt == 0 && e_syn == 0, "%s %s: teacher rows off (image %g text %g syn %g)",
                  shard, b.keys[i], e_img, e_txt, e_syn);
            CHECK(b.tokens[(size_t)i * 77] == MC_TOKEN_SOT && b.syn_tokens[(size_t)i * 77] == MC_TOKEN_SOT,
                  "captions tokenized");
        }
        mc_loader_close(l);
    }
}

int main(void) {
    mc_error err;
    mc_error_clear(&err);
    CHECK(mc_tokenizer_load(fixture("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &tok, &err) == MC_OK,
          "tokenizer: %s", err.message);
    CHECK(mc_checkpoint_open(fixture("datacompdr/expected_reinforcements.safetensors"), &expect, &err) == MC_OK,
          "expected: %s", err.message);
    if (!tok || !expect) return test_summary("test_loader");
    char npz[4096], bf16[4096], both[8300];
    snprintf(npz, sizeof npz, "%s", fixture("datacompdr/shards/00000000.tar"));
    snprintf(bf16, sizeof bf16, "%s", fixture("datacompdr/shards/00000000_bf16.tar"));
    snprintf(both, sizeof both, "%s::%s", npz, bf16);

    check_contents(npz, 0);
    check_contents(bf16, 1);

    /* The stream does not depend on the number of workers. */
    epoch_dump d1, d2, d4, ds;
    mc_loader_params p = base_params(both);
    p.batch_size = 2;
    p.shuffle_buffer = 4;
    p.workers = 1;
    CHECK(run_epoch(&p, &d1) == 0, "epoch with 1 worker");
    p.workers = 2;
    CHECK(run_epoch(&p, &d2) == 0, "epoch with 2 workers");
    p.workers = 4;
    CHECK(run_epoch(&p, &d4) == 0, "epoch with 4 workers");
    CHECK(d1.n == 6, "6 samples in 3 batches of 2 (got %d)", d1.n);
    CHECK(same_dump(&d1, &d2) && same_dump(&d1, &d4), "same batches for 1, 2 and 4 workers");
    p.seed = 8;
    CHECK(run_epoch(&p, &ds) == 0, "epoch with another seed");
    int differ = ds.n == d1.n ? 0 : 1;
    for (int i = 0; i < ds.n && i < d1.n; i++) differ += ds.aug[i] != d1.aug[i] || strcmp(ds.keys[i], d1.keys[i]);
    CHECK(differ > 0, "another seed makes other choices");

    /* Choices are functions of (seed, epoch, key). */
    int nsyn[2] = {5, 3};
    mc_dr_choice a = mc_dr_choose(1, 2, "k", 30, 2, nsyn, 0, 0.5f), b = mc_dr_choose(1, 2, "k", 30, 2, nsyn, 0, 0.5f);
    CHECK(!memcmp(&a, &b, sizeof a), "the same inputs give the same choice");
    int hist[30] = {0}, mixed = 0, out_of_range = 0;
    char key[32];
    for (int i = 0; i < 30000; i++) {
        snprintf(key, sizeof key, "%09d", i);
        mc_dr_choice c = mc_dr_choose(3, 0, key, 30, 2, nsyn, 0, 0.25f);
        hist[c.aug]++;
        mixed += c.use_syn_as_text;
        out_of_range += !(c.syn_key >= 0 && c.syn_key < 2 && c.syn_caption >= 0 && c.syn_caption < nsyn[c.syn_key]);
    }
    CHECK(out_of_range == 0, "%d choices out of range", out_of_range);
    int lo = 30000, hi = 0;
    for (int i = 0; i < 30; i++) lo = hist[i] < lo ? hist[i] : lo, hi = hist[i] > hi ? hist[i] : hi;
    CHECK(lo > 850 && hi < 1150, "augmentations drawn uniformly (counts %d..%d of 1000)", lo, hi);
    CHECK(mixed > 7000 && mixed < 8000, "mix-synthetic draws at the ratio (%d of 30000 at 0.25)", mixed);
    mc_dr_choice s = mc_dr_choose(3, 37, "x", 30, 2, nsyn, 1, 0);
    CHECK(s.aug == 7 && s.syn_caption == 37 % nsyn[s.syn_key], "sequential: epoch %% n");

    /* Epochs: the same samples again, sequential augmentation epoch % A. */
    p = base_params(npz);
    p.sample_sequential = 1;
    p.batch_size = 3;
    mc_loader *l = NULL;
    CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open epochs: %s", err.message);
    for (int epoch = 0; l && epoch < 3; epoch++) {
        if (epoch > 0) CHECK(mc_loader_set_epoch(l, epoch, &err) == MC_OK, "set epoch %d: %s", epoch, err.message);
        mc_loader_batch bb;
        int end = 1, n = 0, right = 0;
        while (mc_loader_next(l, &bb, &end, &err) == MC_OK && !end)
            for (int i = 0; i < bb.n; i++, n++) right += bb.aug_index[i] == epoch;
        CHECK(n == 3 && right == 3, "epoch %d: %d samples, %d with augmentation %d", epoch, n, right, epoch);
        mc_loader_batch again;
        CHECK(mc_loader_next(l, &again, &end, &err) == MC_OK && end, "the epoch stays ended");
    }
    mc_loader_close(l);

    /* Mix-synthetic mode: no second caption batch. */
    p = base_params(npz);
    p.mix_synthetic = 1;
    p.mix_synthetic_ratio = 1.0f;
    l = NULL;
    CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open mix: %s", err.message);
    if (l) {
        mc_loader_batch bb;
        int end = 1;
        CHECK(mc_loader_next(l, &bb, &end, &err) == MC_OK && !end, "mix batch: %s", err.message);
        if (!end) CHECK(bb.syn_tokens == NULL && bb.teacher_syn == NULL, "mix mode drops the synthetic batch");
        mc_loader_close(l);
    }

    /* Ranks: disjoint shares whose union is the list. */
    const char *shards4 = both;
    p = base_params(shards4);
    p.world_size = 2;
    char first[2][4096] = {"", ""};
    size_t nr[2] = {0, 0};
    for (int rank = 0; rank < 2; rank++) {
        const char **r = NULL;
        p.rank = rank;
        CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open rank %d: %s", rank, err.message);
        if (!l) continue;
        if (mc_loader_rank_shards(l, 3, &r, &nr[rank], &err) == MC_OK && nr[rank] > 0)
            snprintf(first[rank], sizeof first[rank], "%s", r[0]);   /* the strings live with the loader */
        free(r);
        mc_loader_close(l);
    }
    CHECK(nr[0] == 1 && nr[1] == 1 && first[0][0] && strcmp(first[0], first[1]) != 0,
          "two ranks, one shard each, not the same");

    /* min_image_size: the fixture images are smaller than 10000 pixels a side. */
    p = base_params(npz);
    p.min_image_size = 10000;
    CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open filter: %s", err.message);
    if (l) {
        mc_loader_batch bb;
        int end = 0;
        CHECK(mc_loader_next(l, &bb, &end, &err) == MC_OK && end, "every image filtered: the epoch is empty");
        mc_loader_stats st;
        mc_loader_stats_get(l, &st);
        CHECK(st.filtered == 3, "3 filtered (got %lld)", (long long)st.filtered);
        mc_loader_close(l);
    }

    /* Bad arguments. */
    p = base_params(npz);
    p.syn_key_regex = "(";
    CHECK(mc_loader_open(&p, &l, &err) == MC_ERR_INVALID_ARG && strstr(err.message, "regex"), "bad regex: %s",
          err.message);
    p = base_params("/nonexistent/{0..3}.tar");
    CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open of missing shards starts: %s", err.message);
    if (l) {
        mc_loader_batch bb;
        int end = 0;
        mc_status st = mc_loader_next(l, &bb, &end, &err);
        CHECK(st != MC_OK && strstr(err.message, "nonexistent"), "no shard readable is an error naming one: %s",
              err.message);
        mc_loader_close(l);
    }
    p = base_params(npz);
    p.syn_key_regex = "^no_such_key$";
    p.strict = 1;
    CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open strict");
    if (l) {
        mc_loader_batch bb;
        int end = 0;
        mc_status st = mc_loader_next(l, &bb, &end, &err);
        CHECK(st != MC_OK && strstr(err.message, "000000000"), "strict: a sample without a matching key fails, "
              "naming the sample: %s", err.message);
        mc_loader_close(l);
    }
    p.strict = 0;
    CHECK(mc_loader_open(&p, &l, &err) == MC_OK, "open lenient");
    if (l) {
        mc_loader_batch bb;
        int end = 0;
        CHECK(mc_loader_next(l, &bb, &end, &err) == MC_OK && end, "lenient: all skipped, the epoch ends");
        mc_loader_stats st;
        mc_loader_stats_get(l, &st);
        CHECK(st.skipped == 3 && strstr(st.last_skip, "no_such_key"), "3 skipped, with the reason: %s", st.last_skip);
        mc_loader_close(l);
    }

    mc_checkpoint_close(expect);
    mc_tokenizer_free(tok);
    return test_summary("test_loader");
}
