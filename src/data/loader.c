/*
 * data/loader.c - the reinforced-training loader (loader.h).
 *
 * Threads: one reader streams the rank's shards in order (tar parsing and
 * grouping only: cheap), passes each raw sample through the shuffle buffer
 * and hands it on numbered (seq).  Worker threads take raw samples, parse
 * the DataCompDR record, decode the image, re-apply the chosen augmentation,
 * tokenize and pick the teacher rows, and leave the result in a reorder ring
 * slot seq % ring.  mc_loader_next takes results in seq order, skips the
 * failed ones (or fails, strict) and copies them into the batch.  Only the
 * reader decides the order and only (seed, epoch, key) decide the choices,
 * so the batches do not depend on the number of workers or on timing.
 */
#include "data/loader.h"
#include "data/shard.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOADER_MAX_WORKERS 256
#define MC_LOADER_MAX_SHARDS ((size_t)1 << 24)   /* DataCompDR-1B has 65,536 */

/* ------------------------------------------------------------- choices */

/* splitmix64: a good 64-bit mix, the same on every machine. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* FNV-1a of the key, then mixed with seed and epoch. */
static uint64_t key_hash(uint64_t seed, int epoch, const char *key) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return mix64(h ^ mix64(seed ^ mix64((uint64_t)(uint32_t)epoch + 0x51ed27u)));
}

/* Uniform integer in [0, n) from the draw-th stream of h (n >= 1). */
static int draw_int(uint64_t h, int draw, int n) {
    uint64_t r = mix64(h + 0x632be59bd9b4e019ull * (uint64_t)(draw + 1));
    return (int)(((unsigned __int128)r * (uint64_t)n) >> 64);
}

static double draw_unit(uint64_t h, int draw) {
    return (double)(mix64(h + 0x632be59bd9b4e019ull * (uint64_t)(draw + 1)) >> 11) * 0x1.0p-53;
}

mc_dr_choice mc_dr_choose(uint64_t seed, int epoch, const char *key, int n_aug, int n_keys, const int *n_syn,
                          int sequential, float mix_ratio) {
    mc_dr_choice c = {0, 0, 0, 0};
    uint64_t h = key_hash(seed, epoch, key);
    int ep = epoch < 0 ? 0 : epoch;
    if (n_aug > 0) c.aug = sequential ? ep % n_aug : draw_int(h, 0, n_aug);
    if (n_keys > 0) {
        c.syn_key = draw_int(h, 1, n_keys);   /* the key is drawn in both modes, as the reference does */
        int n = n_syn ? n_syn[c.syn_key] : 0;
        if (n > 0) c.syn_caption = sequential ? ep % n : draw_int(h, 2, n);
    }
    c.use_syn_as_text = draw_unit(h, 3) < (double)mix_ratio;
    return c;
}

/* ------------------------------------------------------------- loader */

typedef struct raw_item {
    mc_wds_sample *s;           /* owned */
    const char *shard;          /* its shard (the loader's list) */
    int64_t seq;
} raw_item;

typedef struct result {
    int state;                  /* 0 empty, 1 ready, 2 skipped, 3 filtered: set under the mutex */
    int64_t seq;                /* set under the mutex with state */
    int outcome;                /* what the worker found (1, 2 or 3), published as state */
    float *pixels;              /* [3, S, S] */
    int32_t tokens[MC_CONTEXT_LENGTH], syn_tokens[MC_CONTEXT_LENGTH];
    float *emb;                 /* [3, D]: image, text, synthetic text */
    int dim;
    int aug;
    char key[64];
    char why[1024];
    mc_status st;
} result;

struct mc_loader {
    mc_loader_params p;
    char *spec;
    char **shards;              /* the expanded list */
    size_t n_shards;
    pcre2_code *re;
    mc_aug_layout aug;

    pthread_mutex_t mu;
    pthread_cond_t cv_raw, cv_res, cv_space;
    int stop;                   /* workers and reader leave */
    int epoch;

    /* reader -> workers */
    pthread_t reader;
    int reader_running;
    raw_item *rawq;             /* ring of raw_cap */
    size_t raw_cap, raw_head, raw_n;
    int reader_done;            /* epoch's stream ended */
    int64_t seq_next;           /* numbers handed out */
    mc_status reader_st;
    mc_error reader_err;
    int64_t shards_done;        /* over the loader's life */
    int64_t ep_done, ep_failed; /* this epoch's shards read / lost */
    char last_shard_err[1024];

    /* workers -> consumer */
    pthread_t workers[LOADER_MAX_WORKERS];
    int n_workers;
    result *ring;
    size_t ring_cap;
    int64_t consume_seq;        /* next seq the consumer takes */

    /* the batch handed out */
    mc_loader_batch batch;
    int teacher_dim;
    mc_loader_stats stats;
};

mc_loader_params mc_loader_default_params(void) {
    mc_loader_params p;
    memset(&p, 0, sizeof p);
    p.image_size = 256;
    p.interp = MC_INTERP_BICUBIC;
    p.std[0] = p.std[1] = p.std[2] = 1.0f;
    p.batch_size = 32;
    p.drop_last = 1;
    p.world_size = 1;
    p.workers = 2;
    p.shuffle_buffer = 1000;
    p.context_length = MC_CONTEXT_LENGTH;
    return p;
}


/* --- reader --- */

/* The rank's shards for an epoch: a (seed, epoch) permutation of the list,
 * then every world_size-th from rank. */
static size_t rank_shards(const mc_loader *l, int epoch, const char **out) {
    size_t n = l->n_shards, k = 0;
    size_t *perm = malloc((n ? n : 1) * sizeof *perm);
    if (!perm) return (size_t)-1;
    for (size_t i = 0; i < n; i++) perm[i] = i;
    uint64_t h = mix64(l->p.seed ^ mix64(0x5a17ull + (uint64_t)(uint32_t)epoch));
    for (size_t i = n; i > 1; i--) {          /* Fisher-Yates */
        h = mix64(h);
        size_t j = (size_t)(((unsigned __int128)h * i) >> 64);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        if ((int)(i % (size_t)l->p.world_size) == l->p.rank) out[k++] = l->shards[perm[i]];
    free(perm);
    return k;
}

mc_status mc_loader_rank_shards(const mc_loader *l, int epoch, const char ***out, size_t *n, mc_error *err) {
    *out = malloc((l->n_shards ? l->n_shards : 1) * sizeof **out);
    if (!*out) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    *n = rank_shards(l, epoch, *out);
    if (*n == (size_t)-1) { free(*out); *out = NULL; return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    return MC_OK;
}

/* Waits for room in the raw queue, then queues s with the next number;
 * returns 0 (s not taken) when the loader is stopping. */
static int push_raw(mc_loader *l, mc_wds_sample *s, const char *shard) {
    pthread_mutex_lock(&l->mu);
    while (!l->stop && l->raw_n == l->raw_cap) pthread_cond_wait(&l->cv_space, &l->mu);
    if (l->stop) { pthread_mutex_unlock(&l->mu); return 0; }
    raw_item *it = &l->rawq[(l->raw_head + l->raw_n) % l->raw_cap];
    it->s = s;
    it->shard = shard;
    it->seq = l->seq_next++;
    l->raw_n++;
    pthread_cond_signal(&l->cv_raw);
    pthread_mutex_unlock(&l->mu);
    return 1;
}

static int stopping(mc_loader *l) {
    pthread_mutex_lock(&l->mu);
    int s = l->stop;
    pthread_mutex_unlock(&l->mu);
    return s;
}

static void reader_fail(mc_loader *l, mc_status st, const mc_error *e) {
    pthread_mutex_lock(&l->mu);
    if (l->reader_st == MC_OK) {
        l->reader_st = st;
        l->reader_err = *e;
    }
    pthread_mutex_unlock(&l->mu);
}

/* A raw sample waiting in the shuffle buffer, with its shard. */
typedef struct held {
    mc_wds_sample *s;
    const char *shard;
} held;

static void *reader_main(void *arg) {
    mc_loader *l = arg;
    const int epoch = l->epoch;
    size_t bufcap = l->p.shuffle_buffer > 0 ? (size_t)l->p.shuffle_buffer : 0;
    held *buf = bufcap ? calloc(bufcap, sizeof *buf) : NULL;
    size_t nbuf = 0;
    uint64_t rng = mix64(l->p.seed ^ mix64(0xb0ffull + (uint64_t)(uint32_t)epoch) ^
                         mix64(0x7a11ull + (uint64_t)(uint32_t)l->p.rank));
    const char **list = malloc((l->n_shards ? l->n_shards : 1) * sizeof *list);
    mc_shard_params sp = mc_shard_default_params();
    sp.strict = l->p.strict;
    mc_error e;
    mc_error_clear(&e);
    if ((bufcap && !buf) || !list) {
        mc_fail(&e, MC_ERR_NOMEM, "loader: out of memory");
        reader_fail(l, MC_ERR_NOMEM, &e);
        goto done;
    }
    size_t n_list = l->p.resampled ? 0 : rank_shards(l, epoch, list);
    if (n_list == (size_t)-1) {
        mc_fail(&e, MC_ERR_NOMEM, "loader: out of memory");
        reader_fail(l, MC_ERR_NOMEM, &e);
        goto done;
    }
    uint64_t draw = mix64(l->p.seed ^ mix64(0xd4a3ull + (uint64_t)(uint32_t)epoch) ^
                          mix64(0x3e5ull + (uint64_t)(uint32_t)l->p.rank));
    int stopped = 0;
    for (size_t si = 0; !stopped && !stopping(l); si++) {
        const char *path;
        if (l->p.resampled) {
            draw = mix64(draw);
            path = l->shards[(size_t)(((unsigned __int128)draw * l->n_shards) >> 64)];
        } else {
            if (si >= n_list) break;
            path = list[si];
        }
        mc_shard_reader *r = NULL;
        mc_status st = mc_shard_open(path, &sp, &r, &e);
        while (st == MC_OK) {
            mc_wds_sample *s = NULL;
            st = mc_shard_next_sample(r, &s, &e);
            if (st != MC_OK || !s) break;
            held in = {s, path};
            if (bufcap) {
                if (nbuf < bufcap) { buf[nbuf++] = in; continue; }
                rng = mix64(rng);
                size_t j = (size_t)(((unsigned __int128)rng * bufcap) >> 64);
                held out = buf[j];
                buf[j] = in;
                in = out;
            }
            if (!push_raw(l, in.s, in.shard)) { mc_wds_sample_free(in.s); stopped = 1; break; }
        }
        mc_shard_close(r);
        pthread_mutex_lock(&l->mu);
        if (st == MC_OK) {
            l->shards_done++, l->ep_done++;
        } else {
            l->ep_failed++;
            snprintf(l->last_shard_err, sizeof l->last_shard_err, "%s", e.message);
        }
        pthread_mutex_unlock(&l->mu);
        if (st != MC_OK && l->p.strict) { reader_fail(l, st, &e); goto done; }
    }
    /* Drain the buffer in a seeded random order. */
    while (nbuf > 0 && !stopped && !stopping(l)) {
        rng = mix64(rng);
        size_t j = (size_t)(((unsigned __int128)rng * nbuf) >> 64);
        held out = buf[j];
        buf[j] = buf[--nbuf];
        if (!push_raw(l, out.s, out.shard)) { mc_wds_sample_free(out.s); break; }
    }
done:
    for (size_t i = 0; i < nbuf; i++) mc_wds_sample_free(buf[i].s);
    free(buf);
    free(list);
    pthread_mutex_lock(&l->mu);
    l->reader_done = 1;
    pthread_cond_broadcast(&l->cv_raw);
    pthread_cond_broadcast(&l->cv_res);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* --- workers --- */

/* The synthetic keys of rec matching the regex, in syn.json order. */
static int matching_keys(const mc_loader *l, const mc_dr_record *rec, int *idx, int cap) {
    int n = 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(l->re, NULL);
    if (!md) return -1;
    for (size_t i = 0; i < rec->n_syn && n < cap; i++) {
        const char *k = rec->syn[i].key;
        if (pcre2_match(l->re, (PCRE2_SPTR)k, strlen(k), 0, PCRE2_ANCHORED, md, NULL) >= 0) idx[n++] = (int)i;
    }
    pcre2_match_data_free(md);
    return n;
}

/* to_tensor (x / 255) then the student's normalisation, in torchvision's
 * order of float operations, into CHW. */
static void to_pixels(const mc_loader_params *p, const mc_image *aug, float *out) {
    const int S = p->image_size;
    const size_t plane = (size_t)S * S;
    for (int ch = 0; ch < 3; ch++) {
        const float mean = p->mean[ch], std = p->std[ch];
        float *dst = out + (size_t)ch * plane;
        for (size_t i = 0; i < plane; i++) dst[i] = ((float)aug->rgb[i * 3 + (size_t)ch] / 255.0f - mean) / std;
    }
}

mc_aug_params mc_plain_crop(uint64_t seed, int epoch, const char *key, int width, int height) {
    /* torchvision RandomResizedCrop.get_params with open_clip's training
     * scale (0.9, 1.0) and ratio (3/4, 4/3): up to 10 draws of an area and a
     * log-uniform aspect, else the centre crop clamped to the ratio range.
     * The uniform numbers come from the sample's (seed, epoch, key) stream. */
    mc_aug_params a;
    memset(&a, 0, sizeof a);
    a.has_crop = 1;
    uint64_t h = key_hash(seed, epoch, key);
    const double area = (double)width * height, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int t = 0; t < 10; t++) {
        double target = area * (0.9 + 0.1 * draw_unit(h, 16 + 4 * t));
        double aspect = exp(lr0 + (lr1 - lr0) * draw_unit(h, 17 + 4 * t));
        int w = (int)lround(sqrt(target * aspect)), hh = (int)lround(sqrt(target / aspect));
        if (w > 0 && w <= width && hh > 0 && hh <= height) {
            a.crop_top = draw_int(h, 18 + 4 * t, height - hh + 1);
            a.crop_left = draw_int(h, 19 + 4 * t, width - w + 1);
            a.crop_h = hh, a.crop_w = w;
            return a;
        }
    }
    double in_ratio = (double)width / height;
    int w = width, hh = height;
    if (in_ratio < 3.0 / 4.0) hh = (int)lround(w / (3.0 / 4.0));
    else if (in_ratio > 4.0 / 3.0) w = (int)lround(hh * (4.0 / 3.0));
    a.crop_top = (height - hh) / 2, a.crop_left = (width - w) / 2, a.crop_h = hh, a.crop_w = w;
    return a;
}

/* A plain image-text sample (no reinforcement): a random resized crop drawn
 * from (seed, epoch, key), the caption; no teacher rows. */
static mc_status process_plain(mc_loader *l, const mc_dr_record *rec, const char *shard, int epoch, result *res,
                               mc_error *e) {
    const mc_loader_params *p = &l->p;
    mc_image img = {0}, aug = {0};
    mc_status st;
    if (!rec->caption) return mc_fail(e, MC_ERR_FORMAT, "%s: %s: no caption", shard, rec->key);
    st = mc_image_load_memory(rec->image, rec->image_size, 0, &img, e);
    if (st != MC_OK) { mc_error_prefix(e, "%s: %s.%s", shard, rec->key, rec->image_ext); return st; }
    if (p->min_image_size > 0 && (img.width < p->min_image_size || img.height < p->min_image_size)) {
        res->outcome = 3;
        mc_image_free(&img);
        return MC_OK;
    }
    mc_aug_params ap = mc_plain_crop(p->seed, epoch, rec->key, img.width, img.height);
    st = mc_aug_reapply(&img, &ap, p->image_size, p->interp, &aug, e);
    if (st != MC_OK) mc_error_prefix(e, "%s: %s: crop", shard, rec->key);
    if (st == MC_OK) {
        to_pixels(p, &aug, res->pixels);
        res->dim = 0;
        res->aug = -1;
        st = mc_tokenizer_encode(p->tok, rec->caption, p->context_length, res->tokens, e);
        if (st != MC_OK) mc_error_prefix(e, "%s: %s", shard, rec->key);
        else res->outcome = 1;
    }
    mc_image_free(&img);
    mc_image_free(&aug);
    return st;
}

/* One sample: record, choices, image, augmentation, tokens, teacher rows. */
static mc_status process(mc_loader *l, mc_wds_sample **sample, const char *shard, int epoch, result *res,
                         mc_error *e) {
    const mc_loader_params *p = &l->p;
    mc_dr_record *rec = NULL;
    mc_image img = {0}, aug = {0};
    mc_dr_params dp = mc_dr_default_params();
    dp.decode_embeddings = !p->plain;
    mc_status st = mc_dr_record_decode(sample, shard, &dp, &rec, e);
    if (st != MC_OK) return st;
    snprintf(res->key, sizeof res->key, "%s", rec->key);
    if (p->plain) {
        st = process_plain(l, rec, shard, epoch, res, e);
        mc_dr_record_free(rec);
        return st;
    }
    int keys[64], nsyn[64];
    int nk = matching_keys(l, rec, keys, 64);
    if (nk < 0) { st = mc_fail(e, MC_ERR_NOMEM, "out of memory"); goto out; }
    if (nk == 0) {
        st = mc_fail(e, MC_ERR_FORMAT, "%s: %s: no synthetic-caption key matches '%s'", shard, rec->key,
                     p->syn_key_regex);
        goto out;
    }
    if (rec->n_aug < 1 || !rec->caption) {
        st = mc_fail(e, MC_ERR_FORMAT, "%s: %s: %s", shard, rec->key,
                     rec->n_aug < 1 ? "no stored augmentation" : "no caption");
        goto out;
    }
    for (int i = 0; i < nk; i++) nsyn[i] = (int)rec->syn[keys[i]].n;
    mc_dr_choice c = mc_dr_choose(p->seed, epoch, rec->key, (int)rec->n_aug, nk, nsyn, p->sample_sequential,
                                  p->mix_synthetic ? p->mix_synthetic_ratio : 0.0f);
    const mc_dr_syn *sk = &rec->syn[keys[c.syn_key]];
    if (sk->n < 1) {
        st = mc_fail(e, MC_ERR_FORMAT, "%s: %s: synthetic key '%s' holds no caption", shard, rec->key, sk->key);
        goto out;
    }
    res->aug = c.aug;

    st = mc_image_load_memory(rec->image, rec->image_size, 0, &img, e);
    if (st != MC_OK) { mc_error_prefix(e, "%s: %s.%s", shard, rec->key, rec->image_ext); goto out; }
    if (p->min_image_size > 0 && (img.width < p->min_image_size || img.height < p->min_image_size)) {
        res->outcome = 3;
        goto out;
    }
    mc_aug_params ap;
    st = mc_aug_parse(&rec->aug[c.aug], &l->aug, &ap, e);
    if (st == MC_OK) st = mc_aug_reapply(&img, &ap, p->image_size, p->interp, &aug, e);
    if (st != MC_OK) { mc_error_prefix(e, "%s: %s: augmentation %d", shard, rec->key, c.aug); goto out; }
    if (aug.width != p->image_size || aug.height != p->image_size) {
        st = mc_fail(e, MC_ERR_FORMAT, "%s: %s: augmentation %d stores no crop, the image stays %dx%d", shard,
                     rec->key, c.aug, aug.width, aug.height);
        goto out;
    }

    to_pixels(p, &aug, res->pixels);

    const char *syn_text = sk->captions[c.syn_caption];
    const float *syn_row = mc_dr_syn_embedding(rec, sk->key, (size_t)c.syn_caption, e);
    if (!syn_row) { st = MC_ERR_FORMAT; goto out; }
    const int D = (int)rec->dim;
    res->dim = D;
    res->emb = malloc((size_t)3 * (size_t)D * sizeof(float));
    if (!res->emb) { st = mc_fail(e, MC_ERR_NOMEM, "out of memory"); goto out; }
    const char *text = rec->caption;
    const float *text_row = rec->text_emb->data;       /* the real caption: row 0 */
    if (c.use_syn_as_text) text = syn_text, text_row = syn_row;
    memcpy(res->emb, rec->image_emb->data + (size_t)c.aug * (size_t)D, (size_t)D * sizeof(float));
    memcpy(res->emb + D, text_row, (size_t)D * sizeof(float));
    memcpy(res->emb + 2 * (size_t)D, syn_row, (size_t)D * sizeof(float));
    st = mc_tokenizer_encode(p->tok, text, p->context_length, res->tokens, e);
    if (st == MC_OK) st = mc_tokenizer_encode(p->tok, syn_text, p->context_length, res->syn_tokens, e);
    if (st != MC_OK) { mc_error_prefix(e, "%s: %s", shard, rec->key); goto out; }
    res->outcome = 1;
out:
    mc_image_free(&img);
    mc_image_free(&aug);
    mc_dr_record_free(rec);
    return st;
}

static void *worker_main(void *arg) {
    mc_loader *l = arg;
    const size_t plane3 = (size_t)3 * l->p.image_size * l->p.image_size;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!l->stop && l->raw_n == 0 && !l->reader_done) pthread_cond_wait(&l->cv_raw, &l->mu);
        if (l->stop || l->raw_n == 0) { pthread_mutex_unlock(&l->mu); break; }
        raw_item it = l->rawq[l->raw_head];
        l->raw_head = (l->raw_head + 1) % l->raw_cap;
        l->raw_n--;
        pthread_cond_broadcast(&l->cv_space);
        /* wait until its ring slot is free (the consumer is within ring_cap) */
        while (!l->stop && it.seq >= l->consume_seq + (int64_t)l->ring_cap) pthread_cond_wait(&l->cv_space, &l->mu);
        int epoch = l->epoch, stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop) { mc_wds_sample_free(it.s); break; }

        /* The slot is ours until state is published: the consumer reads a
         * slot's other fields only once its state and seq say it is ready. */
        result *res = &l->ring[it.seq % (int64_t)l->ring_cap];
        res->outcome = 0;
        res->st = MC_OK;
        res->why[0] = res->key[0] = 0;
        res->emb = NULL;
        mc_error e = {0};
        mc_status st = MC_ERR_NOMEM;
        if (res->pixels || (res->pixels = malloc(plane3 * sizeof(float))))
            st = process(l, &it.s, it.shard, epoch, res, &e);
        else
            mc_fail(&e, MC_ERR_NOMEM, "out of memory");
        if (st != MC_OK) {
            res->outcome = 2;
            res->st = st;
            snprintf(res->why, sizeof res->why, "%s", e.message);
        }
        mc_wds_sample_free(it.s);              /* NULL once the record took it */
        pthread_mutex_lock(&l->mu);
        res->seq = it.seq;
        res->state = res->outcome ? res->outcome : 2;
        pthread_cond_broadcast(&l->cv_res);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

/* --- life cycle --- */

static void stop_threads(mc_loader *l) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_raw);
    pthread_cond_broadcast(&l->cv_space);
    pthread_cond_broadcast(&l->cv_res);
    pthread_mutex_unlock(&l->mu);
    if (l->reader_running) pthread_join(l->reader, NULL);
    for (int i = 0; i < l->n_workers; i++) pthread_join(l->workers[i], NULL);
    l->reader_running = 0;
    l->n_workers = 0;
    for (size_t i = 0; i < l->raw_n; i++) mc_wds_sample_free(l->rawq[(l->raw_head + i) % l->raw_cap].s);
    l->raw_n = 0;
    l->raw_head = 0;
    for (size_t i = 0; i < l->ring_cap; i++) {
        free(l->ring[i].emb);
        l->ring[i].emb = NULL;
        l->ring[i].state = 0;
    }
}

static mc_status start_threads(mc_loader *l, int epoch, mc_error *err) {
    l->stop = 0;
    l->epoch = epoch;
    l->reader_done = 0;
    l->seq_next = 0;
    l->consume_seq = 0;
    l->reader_st = MC_OK;
    l->ep_done = l->ep_failed = 0;
    memset(&l->reader_err, 0, sizeof l->reader_err);
    if (pthread_create(&l->reader, NULL, reader_main, l) != 0)
        return mc_fail(err, MC_ERR_INTERNAL, "loader: cannot start the reader thread");
    l->reader_running = 1;
    int nw = l->p.workers > 0 ? l->p.workers : 2;
    if (nw > LOADER_MAX_WORKERS) nw = LOADER_MAX_WORKERS;
    for (int i = 0; i < nw; i++) {
        if (pthread_create(&l->workers[i], NULL, worker_main, l) != 0) {
            stop_threads(l);
            return mc_fail(err, MC_ERR_INTERNAL, "loader: cannot start worker thread %d", i);
        }
        l->n_workers = i + 1;
    }
    return MC_OK;
}

void mc_loader_close(mc_loader *l) {
    if (!l) return;
    stop_threads(l);
    for (size_t i = 0; i < l->ring_cap; i++) free(l->ring[i].pixels);
    free(l->ring);
    free(l->rawq);
    mc_shard_list_free(l->shards, l->n_shards);
    if (l->re) pcre2_code_free(l->re);
    mc_loader_batch *b = &l->batch;
    free(b->pixels);
    free(b->tokens);
    free(b->syn_tokens);
    free(b->teacher_image);
    free(b->teacher_text);
    free(b->teacher_syn);
    free(b->keys);
    free(b->aug_index);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_raw);
    pthread_cond_destroy(&l->cv_res);
    pthread_cond_destroy(&l->cv_space);
    free(l);
}

mc_status mc_loader_open(const mc_loader_params *params, mc_loader **out, mc_error *err) {
    *out = NULL;
    const mc_loader_params *p = params;
    if (!p || !p->shards || !*p->shards) return mc_fail(err, MC_ERR_INVALID_ARG, "loader: no shards given");
    if (!p->tok) return mc_fail(err, MC_ERR_INVALID_ARG, "loader: no tokenizer");
    if (p->image_size < 8 || p->image_size > 4096)
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: image size %d out of range [8, 4096]", p->image_size);
    if (p->batch_size < 1 || p->batch_size > (1 << 20))
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: batch size %d out of range", p->batch_size);
    if (p->world_size < 1 || p->rank < 0 || p->rank >= p->world_size)
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: rank %d of %d", p->rank, p->world_size);
    if (p->context_length < 2 || p->context_length > MC_CONTEXT_LENGTH)
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: context length %d", p->context_length);
    if (p->shuffle_buffer < 0 || p->shuffle_buffer > (1 << 24))
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: shuffle buffer %d", p->shuffle_buffer);
    for (int c = 0; c < 3; c++)
        if (!(p->std[c] > 0)) return mc_fail(err, MC_ERR_INVALID_ARG, "loader: std[%d] must be > 0", c);

    mc_loader *l = calloc(1, sizeof *l);
    if (!l) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    l->p = *p;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_raw, NULL);
    pthread_cond_init(&l->cv_res, NULL);
    pthread_cond_init(&l->cv_space, NULL);
    if (!l->p.syn_key_regex) l->p.syn_key_regex = "^syn_text.*$";
    l->aug = p->aug ? *p->aug : mc_aug_layout_datacompdr();
    mc_status st = mc_shard_expand(p->shards, MC_LOADER_MAX_SHARDS, &l->shards, &l->n_shards, err);
    if (st != MC_OK) { mc_loader_close(l); return st; }
    if (l->n_shards == 0) { mc_loader_close(l); return mc_fail(err, MC_ERR_INVALID_ARG, "loader: '%s' names no shard", p->shards); }
    if (!p->resampled && l->n_shards < (size_t)p->world_size) {
        size_t n = l->n_shards;
        mc_loader_close(l);
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: %zu shards for %d ranks: each rank needs at least one "
                       "(or use resampled shards)", n, p->world_size);
    }
    int ec;
    PCRE2_SIZE eo;
    l->re = pcre2_compile((PCRE2_SPTR)l->p.syn_key_regex, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    if (!l->re) {
        char msg[128];
        pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
        mc_loader_close(l);
        return mc_fail(err, MC_ERR_INVALID_ARG, "loader: synthetic-key regex '%s': %s at %zu", p->syn_key_regex,
                       msg, (size_t)eo);
    }
    int nw = p->workers > 0 ? p->workers : 2;
    if (nw > LOADER_MAX_WORKERS) nw = LOADER_MAX_WORKERS;
    l->raw_cap = (size_t)p->batch_size + 2 * (size_t)nw + 4;
    l->ring_cap = 2 * (size_t)p->batch_size + 2 * (size_t)nw;
    l->rawq = calloc(l->raw_cap, sizeof *l->rawq);
    l->ring = calloc(l->ring_cap, sizeof *l->ring);
    size_t B = (size_t)p->batch_size, S = (size_t)p->image_size, T = (size_t)p->context_length;
    mc_loader_batch *b = &l->batch;
    b->pixels = malloc(B * 3 * S * S * sizeof(float));
    b->tokens = malloc(B * T * sizeof(int32_t));
    b->syn_tokens = malloc(B * T * sizeof(int32_t));
    b->keys = malloc(B * sizeof *b->keys);
    b->aug_index = malloc(B * sizeof(int));
    if (!l->rawq || !l->ring || !b->pixels || !b->tokens || !b->syn_tokens || !b->keys || !b->aug_index) {
        mc_loader_close(l);
        return mc_fail(err, MC_ERR_NOMEM, "loader: out of memory for batches of %d at %d px", p->batch_size,
                       p->image_size);
    }
    st = start_threads(l, p->epoch, err);
    if (st != MC_OK) { mc_loader_close(l); return st; }
    *out = l;
    return MC_OK;
}

mc_status mc_loader_set_epoch(mc_loader *l, int epoch, mc_error *err) {
    stop_threads(l);
    return start_threads(l, epoch, err);
}

/* Room for teacher rows of width dim in the batch (the first sample decides). */
static mc_status batch_dims(mc_loader *l, int dim, mc_error *err) {
    if (l->teacher_dim == dim) return MC_OK;
    if (l->teacher_dim != 0)
        return mc_fail(err, MC_ERR_FORMAT, "teacher embeddings of width %d after width %d", dim, l->teacher_dim);
    size_t B = (size_t)l->p.batch_size;
    mc_loader_batch *b = &l->batch;
    b->teacher_image = malloc(B * (size_t)dim * sizeof(float));
    b->teacher_text = malloc(B * (size_t)dim * sizeof(float));
    b->teacher_syn = malloc(B * (size_t)dim * sizeof(float));
    if (!b->teacher_image || !b->teacher_text || !b->teacher_syn) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    l->teacher_dim = dim;
    return MC_OK;
}

mc_status mc_loader_next(mc_loader *l, mc_loader_batch *out, int *end, mc_error *err) {
    *end = 0;
    mc_loader_batch *b = &l->batch;
    const size_t S = (size_t)l->p.image_size, T = (size_t)l->p.context_length, plane3 = 3 * S * S;
    int n = 0;
    double waited = 0;
    while (n < l->p.batch_size) {
        pthread_mutex_lock(&l->mu);
        result *res = &l->ring[l->consume_seq % (int64_t)l->ring_cap];
        double w0 = mc_now_s();
        for (;;) {
            if (res->state != 0 && res->seq == l->consume_seq) break;
            if (l->reader_done && l->consume_seq >= l->seq_next) break;     /* nothing more will come */
            if (l->reader_st != MC_OK) break;
            pthread_cond_wait(&l->cv_res, &l->mu);
        }
        waited += mc_now_s() - w0;
        if (!(res->state != 0 && res->seq == l->consume_seq)) {
            mc_status rst = l->reader_st;
            mc_error rerr = l->reader_err;
            pthread_mutex_unlock(&l->mu);
            if (rst != MC_OK) {
                if (err) *err = rerr;
                return rst;
            }
            break;                                          /* end of the epoch's stream */
        }
        int state = res->state;
        pthread_mutex_unlock(&l->mu);
        if (state == 1 && !l->p.plain) {
            mc_status st = batch_dims(l, res->dim, err);
            if (st != MC_OK) {
                if (l->p.strict) return st;
                state = 2;
                snprintf(res->why, sizeof res->why, "%s: %.900s", res->key, err ? err->message : "teacher width");
            }
        }
        if (state == 1) {
            const int D = res->dim;
            memcpy(b->pixels + (size_t)n * plane3, res->pixels, plane3 * sizeof(float));
            memcpy(b->tokens + (size_t)n * T, res->tokens, T * sizeof(int32_t));
            if (!l->p.plain) {
                memcpy(b->syn_tokens + (size_t)n * T, res->syn_tokens, T * sizeof(int32_t));
                memcpy(b->teacher_image + (size_t)n * D, res->emb, (size_t)D * sizeof(float));
                memcpy(b->teacher_text + (size_t)n * D, res->emb + D, (size_t)D * sizeof(float));
                memcpy(b->teacher_syn + (size_t)n * D, res->emb + 2 * D, (size_t)D * sizeof(float));
            }
            memcpy(b->keys[n], res->key, sizeof b->keys[n]);
            b->aug_index[n] = res->aug;
            n++;
        } else if (state == 3) {
            l->stats.filtered++;
        } else {
            if (l->p.strict) {
                mc_status rst = res->st != MC_OK ? res->st : MC_ERR_FORMAT;
                mc_fail(err, rst, "%s", res->why);
                return rst;
            }
            l->stats.skipped++;
            snprintf(l->stats.last_skip, sizeof l->stats.last_skip, "%s", res->why);
        }
        free(res->emb);
        res->emb = NULL;
        pthread_mutex_lock(&l->mu);
        res->state = 0;
        l->consume_seq++;
        pthread_cond_broadcast(&l->cv_space);
        pthread_mutex_unlock(&l->mu);
    }
    l->stats.wait_s += waited;
    if (n == 0) {
        pthread_mutex_lock(&l->mu);
        int none_read = l->ep_done == 0 && l->ep_failed > 0;
        char why[1024];
        memcpy(why, l->last_shard_err, sizeof why);
        pthread_mutex_unlock(&l->mu);
        if (none_read && l->stats.samples == 0)
            return mc_fail(err, MC_ERR_IO, "loader: no shard of epoch %d could be read (last: %s)", l->epoch, why);
    }
    if (n == 0 || (n < l->p.batch_size && l->p.drop_last)) {
        *end = 1;
        return MC_OK;
    }
    l->stats.samples += n;
    *out = *b;
    out->n = n;
    out->image_size = l->p.image_size;
    out->context_length = l->p.context_length;
    out->teacher_dim = l->teacher_dim;
    if (l->p.mix_synthetic) out->syn_tokens = NULL, out->teacher_syn = NULL;
    if (l->p.plain) out->syn_tokens = NULL, out->teacher_image = out->teacher_text = out->teacher_syn = NULL;
    return MC_OK;
}

void mc_loader_stats_get(const mc_loader *l, mc_loader_stats *out) {
    mc_loader *m = (mc_loader *)l;
    *out = l->stats;
    pthread_mutex_lock(&m->mu);
    out->shards_done = l->shards_done;
    pthread_mutex_unlock(&m->mu);
}
