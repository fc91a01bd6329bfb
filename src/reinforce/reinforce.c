/*
 * reinforce/reinforce.c - the shard pipeline of dataset reinforcement (see
 * reinforce.h): read a shard's samples, draw or take their augmentations,
 * re-apply them, embed images and captions with the teacher ensemble, write
 * the DataCompDR shard atomically, record it, and the manifest at the end.
 */
#include "reinforce/reinforce.h"

#include "data/npz.h"
#include "data/shard.h"
#include "reinforce/sampler.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAUG_ENTRY_MAX 4096          /* bytes of one compressed parameter list */
#define MAX_CAPTIONS 4096            /* synthetic captions of one sample */
#define CONFIG_MAX_BYTES (16u << 20)

mc_reinforce_params mc_reinforce_default_params(void) {
    mc_reinforce_params p;
    memset(&p, 0, sizeof p);
    p.syn_key = "syn_text";
    return p;
}

/* ------------------------------------------------------------ teachers */

typedef struct teacher {
    const mc_model *model;
    mc_context *ctx;
    int dim, ctx_len, offset;
    int size;                 /* its input side (at most the crop size) */
    const mc_tokenizer *tok;
} teacher;

typedef struct run {
    const mc_reinforce_params *p;
    mc_rf_aug_config cfg;
    teacher *t;
    int n_t, dim;             /* dim: the teachers' widths summed */
    int max_ctx;              /* the longest teacher context */
    int rank, world;
    double t0;
    mc_reinforce_stats *stats;
    /* per-sample scratch */
    float *pixels;            /* [A, 3, S, S] */
    float *resized[2];        /* [A, 3, s, s] for teachers of a smaller size (ping-pong) */
    float *img_emb, *txt_emb, *tmp;
    int32_t *tokens;
    size_t cap_aug, cap_txt;
} run;

static mc_status teachers_open(run *r, mc_error *err) {
    const mc_reinforce_params *p = r->p;
    r->t = calloc((size_t)p->n_teachers, sizeof *r->t);
    if (!r->t) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    r->n_t = p->n_teachers;
    for (int k = 0; k < p->n_teachers; k++) {
        teacher *t = &r->t[k];
        const char *name = p->teacher_names ? p->teacher_names[k] : "teacher";
        mc_model_info info;
        mc_model_get_info(p->teachers[k], &info);
        t->model = p->teachers[k];
        t->tok = mc_model_tokenizer(t->model);
        if (!t->tok || info.context_length < 2)
            return mc_fail(err, MC_ERR_INVALID_ARG, "teacher %s: loaded without its text tower or tokenizer", name);
        /* as the reference asserts: crop size at least the teacher's, the same mean */
        if (info.image_size > r->cfg.size)
            return mc_fail(err, MC_ERR_UNSUPPORTED,
                           "teacher %s takes %d-pixel images but the augmentation crops to %d (set "
                           "random_resized_crop.size to the largest teacher's size)",
                           name, info.image_size, r->cfg.size);
        for (int c = 0; c < 3; c++)
            if (fabsf(info.preprocess.mean[c] - r->cfg.mean[c]) > 1e-6f)
                return mc_fail(err, MC_ERR_UNSUPPORTED,
                               "teacher %s normalises with mean %g,%g,%g but the augmentation config with %g,%g,%g",
                               name, info.preprocess.mean[0], info.preprocess.mean[1], info.preprocess.mean[2],
                               r->cfg.mean[0], r->cfg.mean[1], r->cfg.mean[2]);
        t->size = info.image_size;
        t->dim = info.embed_dim;
        t->ctx_len = info.context_length;
        if (t->ctx_len > r->max_ctx) r->max_ctx = t->ctx_len;
        t->offset = r->dim;
        r->dim += t->dim;
        mc_context_params cp = mc_context_default_params();
        cp.n_threads = p->threads;
        cp.max_batch = 1;
        mc_status st = mc_context_new(t->model, &cp, &t->ctx, err);
        if (st != MC_OK) return st;
    }
    return MC_OK;
}

/* torch.nn.functional.interpolate(x, size, mode="bicubic") (align_corners
 * False, no antialiasing: cubic convolution with A = -0.75 at source
 * (dst + 0.5) * in / out - 0.5, indices clamped to the border), on n images
 * [n, 3, si, si] -> [n, 3, so, so]. */
static float cubic_w(float x, int outer) {
    const float A = -0.75f;
    return outer ? ((A * x - 5.0f * A) * x + 8.0f * A) * x - 4.0f * A : ((A + 2.0f) * x - (A + 3.0f)) * x * x + 1.0f;
}

static int interp_bicubic(const float *in, int n, int si, int so, float *out) {
    float scale = (float)si / (float)so;
    int *idx = malloc((size_t)so * 4 * sizeof *idx);
    float *wt = malloc((size_t)so * 4 * sizeof *wt);
    if (!idx || !wt) {
        free(idx);
        free(wt);
        return 0;
    }
    for (int o = 0; o < so; o++) {
        float real = scale * ((float)o + 0.5f) - 0.5f;
        int i0 = (int)floorf(real);
        float t = real - (float)i0;
        float w[4] = {cubic_w(t + 1.0f, 1), cubic_w(t, 0), cubic_w(1.0f - t, 0), cubic_w(2.0f - t, 1)};
        for (int k = 0; k < 4; k++) {
            int j = i0 - 1 + k;
            idx[o * 4 + k] = j < 0 ? 0 : j >= si ? si - 1 : j;
            wt[o * 4 + k] = w[k];
        }
    }
    for (int p = 0; p < n * 3; p++) {
        const float *src = in + (size_t)p * si * si;
        float *dst = out + (size_t)p * so * so;
        for (int y = 0; y < so; y++)
            for (int x = 0; x < so; x++) {
                float rows[4];
                for (int k = 0; k < 4; k++) {
                    const float *row = src + (size_t)idx[y * 4 + k] * si;
                    rows[k] = row[idx[x * 4]] * wt[x * 4] + row[idx[x * 4 + 1]] * wt[x * 4 + 1] +
                              row[idx[x * 4 + 2]] * wt[x * 4 + 2] + row[idx[x * 4 + 3]] * wt[x * 4 + 3];
                }
                dst[(size_t)y * so + x] =
                    rows[0] * wt[y * 4] + rows[1] * wt[y * 4 + 1] + rows[2] * wt[y * 4 + 2] + rows[3] * wt[y * 4 + 3];
            }
    }
    free(idx);
    free(wt);
    return 1;
}

static void teachers_close(run *r) {
    for (int k = 0; k < r->n_t; k++) mc_context_free(r->t[k].ctx);
    free(r->t);
    r->t = NULL;
}

static mc_status scratch_reserve(run *r, size_t n_aug, size_t n_txt, mc_error *err) {
    size_t S = (size_t)r->cfg.size, D = (size_t)r->dim;
    if (n_aug > r->cap_aug) {
        float *px = realloc(r->pixels, n_aug * 3 * S * S * sizeof(float));
        if (px) r->pixels = px;
        float *ie = realloc(r->img_emb, n_aug * D * sizeof(float));
        if (ie) r->img_emb = ie;
        if (!px || !ie) return mc_fail(err, MC_ERR_NOMEM, "out of memory for %zu augmentations", n_aug);
        for (int k = 0; k < 2; k++) {
            float *rs = realloc(r->resized[k], n_aug * 3 * S * S * sizeof(float));
            if (!rs) return mc_fail(err, MC_ERR_NOMEM, "out of memory for %zu augmentations", n_aug);
            r->resized[k] = rs;
        }
        r->cap_aug = n_aug;
    }
    if (n_txt > r->cap_txt) {
        float *te = realloc(r->txt_emb, n_txt * D * sizeof(float));
        if (te) r->txt_emb = te;
        int32_t *tk = realloc(r->tokens, n_txt * (size_t)r->max_ctx * sizeof(int32_t));
        if (tk) r->tokens = tk;
        if (!te || !tk) return mc_fail(err, MC_ERR_NOMEM, "out of memory for %zu captions", n_txt);
        r->cap_txt = n_txt;
    }
    size_t need = (n_aug > n_txt ? n_aug : n_txt) * D;
    float *tmp = realloc(r->tmp, need * sizeof(float));
    if (!tmp) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    r->tmp = tmp;
    return MC_OK;
}

/* Every teacher on n images [n, 3, S, S] -> out [n, D] (rows concatenated).
 * A teacher of a smaller size gets the images bicubically resized, and the
 * teachers after it the resized ones, as the reference's loop passes them on. */
static mc_status embed_images(run *r, const float *pixels, int n, float *out, mc_error *err) {
    int side = r->cfg.size, flip = 0;
    for (int k = 0; k < r->n_t; k++) {
        teacher *t = &r->t[k];
        if (t->size != side) {
            if (!interp_bicubic(pixels, n, side, t->size, r->resized[flip]))
                return mc_fail(err, MC_ERR_NOMEM, "out of memory");
            pixels = r->resized[flip];
            flip ^= 1;
            side = t->size;
        }
        mc_status st = mc_encode_image(t->ctx, pixels, n, 1, r->tmp);
        if (st != MC_OK) {
            if (err) *err = *mc_context_last_error(t->ctx);
            return st;
        }
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * r->dim + t->offset, r->tmp + (size_t)i * t->dim, (size_t)t->dim * sizeof(float));
    }
    return MC_OK;
}

/* Every teacher on n texts (each tokenized with the teacher's tokenizer). */
static mc_status embed_texts(run *r, const char *const *texts, int n, float *out, mc_error *err) {
    for (int k = 0; k < r->n_t; k++) {
        teacher *t = &r->t[k];
        for (int i = 0; i < n; i++) {
            mc_status st = mc_tokenizer_encode(t->tok, texts[i], t->ctx_len, r->tokens + (size_t)i * t->ctx_len, err);
            if (st != MC_OK) return st;
        }
        mc_status st = mc_encode_text(t->ctx, r->tokens, n, 1, r->tmp);
        if (st != MC_OK) {
            if (err) *err = *mc_context_last_error(t->ctx);
            return st;
        }
        for (int i = 0; i < n; i++)
            memcpy(out + (size_t)i * r->dim + t->offset, r->tmp + (size_t)i * t->dim, (size_t)t->dim * sizeof(float));
    }
    return MC_OK;
}

/* ------------------------------------------------------------ reuse shards */

typedef struct reuse_item {
    char *key;
    char *paug;               /* the paug.json member, verbatim */
    size_t paug_len;
    char *syn;                /* the syn.json member or NULL */
    size_t syn_len;
    int dfndr;                /* its embeddings are in the DFNDR layout ("<key>_emb" arrays) */
} reuse_item;

typedef struct reuse_map {
    reuse_item *items;
    size_t n;
} reuse_map;

static void reuse_free(reuse_map *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i].key);
        free(m->items[i].paug);
        free(m->items[i].syn);
    }
    free(m->items);
    memset(m, 0, sizeof *m);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static char *dup_n(const void *d, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, d, n);
        s[n] = 0;
    }
    return s;
}

/* 1 when the sample's npz / pth.gz holds "<key>_emb" arrays besides image_emb
 * and text_emb (DFNDR); 0 otherwise or when it has none or cannot be read. */
static int has_key_embeddings(const mc_wds_sample *s) {
    const mc_wds_member *m = mc_wds_sample_get(s, "npz");
    int pth = 0;
    if (!m && (m = mc_wds_sample_get(s, "pth.gz"))) pth = 1;
    if (!m) return 0;
    mc_array_set set = {0};
    mc_status st = pth ? mc_pthgz_read_memory(m->data, m->size, s->key, 0, &set, NULL)
                       : mc_npz_read_memory(m->data, m->size, s->key, 0, &set, NULL);
    int found = 0;
    for (size_t i = 0; st == MC_OK && i < set.n; i++) {
        size_t l = strlen(set.arrays[i].name);
        if (l > 4 && !strcmp(set.arrays[i].name + l - 4, "_emb") && strcmp(set.arrays[i].name, "image_emb") &&
            strcmp(set.arrays[i].name, "text_emb"))
            found = 1;
    }
    mc_array_set_free(&set);
    return found;
}

/* The reuse shard named like input (same file name), read into m. */
static mc_status reuse_load(const run *r, const char *input, reuse_map *m, mc_error *err) {
    const mc_reinforce_params *p = r->p;
    const char *want = base_name(input), *path = NULL;
    for (size_t i = 0; i < p->n_reuse && !path; i++)
        if (!strcmp(base_name(p->reuse[i]), want)) path = p->reuse[i];
    if (!path) return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no shard of that name among --reuse-params", input);
    mc_shard_params sp = mc_shard_default_params();
    sp.dr.require_image = 0;
    sp.dr.decode_embeddings = 0;
    mc_shard_reader *rd = NULL;
    mc_status st = mc_shard_open(path, &sp, &rd, err);
    if (st != MC_OK) return st;
    size_t cap = 0;
    for (;;) {
        mc_wds_sample *s = NULL;
        if ((st = mc_shard_next_sample(rd, &s, err)) != MC_OK || !s) break;
        const mc_wds_member *pa = mc_wds_sample_get(s, "paug.json"), *sy = mc_wds_sample_get(s, "syn.json");
        if (pa) {
            if (m->n == cap) {
                size_t nc = cap ? 2 * cap : 64;
                reuse_item *ni = realloc(m->items, nc * sizeof *ni);
                if (!ni) { mc_wds_sample_free(s); st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
                m->items = ni;
                cap = nc;
            }
            reuse_item *it = &m->items[m->n];
            memset(it, 0, sizeof *it);
            it->key = strdup(s->key);
            it->paug = dup_n(pa->data, pa->size);
            it->paug_len = pa->size;
            if (sy) {
                it->syn = dup_n(sy->data, sy->size);
                it->syn_len = sy->size;
            }
            it->dfndr = has_key_embeddings(s);
            m->n++;
            if (!it->key || !it->paug || (sy && !it->syn)) {
                mc_wds_sample_free(s);
                st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
                break;
            }
        }
        mc_wds_sample_free(s);
    }
    mc_shard_close(rd);
    return st;
}

static const reuse_item *reuse_find(const reuse_map *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->items[i].key, key)) return &m->items[i];
    return NULL;
}

/* --------------------------------------------------------------- a sample */

typedef struct sample_out {
    char *paug;               /* paug.json text */
    size_t paug_len;
    const char *syn;          /* syn.json text to write (reuse), or NULL: keep the input's */
    size_t syn_len;
    uint8_t *emb;             /* npz or pth.gz bytes */
    size_t emb_len;
} sample_out;

static void sample_out_free(sample_out *o) {
    free(o->paug);
    free(o->emb);
    memset(o, 0, sizeof *o);
}

/* The synthetic captions to embed, from a syn.json text: DataCompDR layout:
 * the list under key; DFNDR layout: every key's list, in file order (each
 * gets its "<key>_emb").  No text: no captions. */
typedef struct syn_groups {
    mc_json *root;
    const char **caps;        /* all captions, group after group */
    size_t n;
    const char *key[MC_REINFORCE_MAX_SYN_KEYS];
    size_t start[MC_REINFORCE_MAX_SYN_KEYS], count[MC_REINFORCE_MAX_SYN_KEYS];
    int n_groups;
} syn_groups;

static void syn_groups_free(syn_groups *g) {
    mc_json_free(g->root);
    free(g->caps);
    memset(g, 0, sizeof *g);
}

static mc_status syn_collect(const char *text, size_t len, const char *key, int dfndr, syn_groups *g, mc_error *err) {
    memset(g, 0, sizeof *g);
    if (!text) return MC_OK;
    mc_status st = mc_json_parse(text, len, &g->root, err);
    if (st != MC_OK) return st;
    if (g->root->type != MC_JSON_OBJECT) return mc_fail(err, MC_ERR_FORMAT, "syn.json is not an object");
    size_t total = 0;
    for (size_t i = 0; i < g->root->len; i++) {
        const mc_json *a = &g->root->items[i];
        if (dfndr ? a->type != MC_JSON_ARRAY : strcmp(g->root->keys[i], key)) continue;
        if (a->type != MC_JSON_ARRAY) return mc_fail(err, MC_ERR_FORMAT, "syn.json \"%s\" is not a list", key);
        const char *k = g->root->keys[i];
        if (dfndr && (!*k || strlen(k) > 200 || k[0] == '.' || strpbrk(k, "/\\")))
            return mc_fail(err, MC_ERR_FORMAT, "syn.json key \"%.40s\" cannot name an array", k);
        if (g->n_groups == MC_REINFORCE_MAX_SYN_KEYS)
            return mc_fail(err, MC_ERR_FORMAT, "syn.json has more than %d caption lists", MC_REINFORCE_MAX_SYN_KEYS);
        g->key[g->n_groups] = g->root->keys[i];
        g->start[g->n_groups] = total;
        g->count[g->n_groups] = a->len;
        g->n_groups++;
        total += a->len;
        if (total > MAX_CAPTIONS) return mc_fail(err, MC_ERR_FORMAT, "more than %d synthetic captions", MAX_CAPTIONS);
    }
    if (!dfndr && !g->n_groups) return mc_fail(err, MC_ERR_FORMAT, "syn.json has no list \"%s\"", key);
    g->caps = calloc(total ? total : 1, sizeof *g->caps);
    if (!g->caps) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    for (int k = 0; k < g->n_groups; k++) {
        const mc_json *a = mc_json_get(g->root, g->key[k]);
        for (size_t i = 0; i < a->len; i++) {
            if (a->items[i].type != MC_JSON_STRING)
                return mc_fail(err, MC_ERR_FORMAT, "syn.json \"%s\"[%zu] is not a string", g->key[k], i);
            g->caps[g->n++] = a->items[i].string;
        }
    }
    return MC_OK;
}

static int is_image_ext(const char *e) {
    return !strcmp(e, "jpg") || !strcmp(e, "jpeg") || !strcmp(e, "png") || !strcmp(e, "webp");
}

/* Builds what a sample gets.  MC_OK: out filled; another status: the sample
 * is skipped, err says why (the caller counts it). */
static mc_status do_sample(run *r, const char *shard, const mc_wds_sample *s, const reuse_map *reuse,
                           sample_out *out, mc_error *err) {
    const mc_reinforce_params *p = r->p;
    memset(out, 0, sizeof *out);
    const mc_wds_member *img_m = NULL;
    for (size_t i = 0; i < s->n_members && !img_m; i++)
        if (is_image_ext(s->members[i].ext)) img_m = &s->members[i];
    if (!img_m) return mc_fail(err, MC_ERR_FORMAT, "no image member");
    const mc_wds_member *txt = mc_wds_sample_get(s, "txt");
    if (!txt) return mc_fail(err, MC_ERR_FORMAT, "no caption (txt)");

    /* augmentation parameters and synthetic captions */
    const char *syn_text = NULL;
    size_t syn_len = 0;
    mc_aug_params *aug = NULL;
    size_t n_aug = 0;
    mc_status st;
    mc_image img = {0};
    syn_groups syn = {0};
    int dfndr = p->layout == MC_REINFORCE_LAYOUT_DFNDR;
    if ((st = mc_image_load_memory(img_m->data, img_m->size, 0, &img, err)) != MC_OK) return st;
    if (reuse) {
        const reuse_item *it = reuse_find(reuse, s->key);
        if (!it) { st = mc_fail(err, MC_ERR_NOT_FOUND, "not in the --reuse-params shard"); goto out; }
        if ((st = mc_aug_parse_paug(it->paug, it->paug_len, &r->cfg.layout, &aug, &n_aug, err)) != MC_OK) goto out;
        if (p->num_augs > 0 && (size_t)p->num_augs != n_aug) {
            st = mc_fail(err, MC_ERR_INVALID_ARG, "the reused paug.json holds %zu augmentations, --num-augs says %d",
                         n_aug, p->num_augs);
            goto out;
        }
        if (!(out->paug = dup_n(it->paug, it->paug_len))) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto out; }
        out->paug_len = it->paug_len;
        syn_text = it->syn;
        syn_len = it->syn_len;
        out->syn = it->syn;
        out->syn_len = it->syn_len;
        if (p->layout == MC_REINFORCE_LAYOUT_AUTO) dfndr = it->dfndr;
    } else {
        n_aug = (size_t)p->num_augs;
        aug = calloc(n_aug, sizeof *aug);
        size_t cap = 32 + n_aug * PAUG_ENTRY_MAX;
        out->paug = malloc(cap);
        if (!aug || !out->paug) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto out; }
        mc_rf_rng rng;
        mc_rf_rng_seed(&rng, p->seed, base_name(shard), s->key);
        size_t n = (size_t)snprintf(out->paug, cap, "{\"param_aug\": [");
        for (size_t a = 0; a < n_aug; a++) {
            if (n + PAUG_ENTRY_MAX > cap) { st = mc_fail(err, MC_ERR_INTERNAL, "paug.json longer than planned"); goto out; }
            mc_rf_sample(&r->cfg, img.width, img.height, &rng, &aug[a]);
            if (a) n += (size_t)snprintf(out->paug + n, cap - n, ", ");
            n += mc_rf_compress_json(&r->cfg, &aug[a], out->paug + n, cap - n);
        }
        if (n + 3 > cap) { st = mc_fail(err, MC_ERR_INTERNAL, "paug.json longer than planned"); goto out; }
        n += (size_t)snprintf(out->paug + n, cap - n, "]}");
        out->paug_len = n;
        const mc_wds_member *sy = mc_wds_sample_get(s, "syn.json");
        if (sy) {
            syn_text = (const char *)sy->data;
            syn_len = sy->size;
        }
    }
    if (n_aug == 0 || n_aug > MC_REINFORCE_MAX_AUGS) {
        st = mc_fail(err, MC_ERR_FORMAT, "%zu augmentations (1 to %d)", n_aug, MC_REINFORCE_MAX_AUGS);
        goto out;
    }
    if ((st = syn_collect(syn_text, syn_len, p->syn_key ? p->syn_key : "syn_text", dfndr, &syn, err)) != MC_OK)
        goto out;
    size_t n_caps = syn.n;
    if ((st = scratch_reserve(r, n_aug, 1 + n_caps, err)) != MC_OK) goto out;

    /* the augmented images, to_tensor and normalize as the reference */
    size_t S = (size_t)r->cfg.size, plane = S * S;
    for (size_t a = 0; a < n_aug; a++) {
        mc_image ai = {0};
        if ((st = mc_aug_reapply(&img, &aug[a], r->cfg.size, r->cfg.interp, &ai, err)) != MC_OK) {
            mc_error_prefix(err, "augmentation %zu", a);
            goto out;
        }
        float *dst = r->pixels + a * 3 * plane;
        for (int c = 0; c < 3; c++) {
            const float mean = r->cfg.mean[c], sd = r->cfg.std[c];
            for (size_t i = 0; i < plane; i++)
                dst[(size_t)c * plane + i] = ((float)ai.rgb[i * 3 + (size_t)c] / 255.0f - mean) / sd;
        }
        mc_image_free(&ai);
    }
    if ((st = embed_images(r, r->pixels, (int)n_aug, r->img_emb, err)) != MC_OK) goto out;
    const char **texts = calloc(1 + n_caps, sizeof *texts);
    if (!texts) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto out; }
    texts[0] = (const char *)txt->data;
    for (size_t i = 0; i < n_caps; i++) texts[1 + i] = syn.caps[i];
    st = embed_texts(r, texts, (int)(1 + n_caps), r->txt_emb, err);
    free(texts);
    if (st != MC_OK) goto out;

    /* the embedding member: image_emb, text_emb (DataCompDR: the caption and the
     * synthetic captions; DFNDR: the caption) and, DFNDR, "<key>_emb" per key */
    mc_st_entry e[2 + MC_REINFORCE_MAX_SYN_KEYS];
    char names[MC_REINFORCE_MAX_SYN_KEYS][300];
    size_t n_e = 0, D = (size_t)r->dim;
    e[n_e++] = (mc_st_entry){"image_emb", MC_DTYPE_F32, 2, {(int64_t)n_aug, r->dim}, r->img_emb};
    e[n_e++] = (mc_st_entry){"text_emb", MC_DTYPE_F32, 2, {(int64_t)(dfndr ? 1 : 1 + n_caps), r->dim}, r->txt_emb};
    for (int k = 0; dfndr && k < syn.n_groups; k++) {
        snprintf(names[k], sizeof names[k], "%.290s_emb", syn.key[k]);
        e[n_e++] = (mc_st_entry){names[k], MC_DTYPE_F32, 2, {(int64_t)syn.count[k], r->dim},
                                 r->txt_emb + (1 + syn.start[k]) * D};
    }
    uint16_t *b16 = NULL;
    if (p->bf16) {
        size_t ni = n_aug * D, nt = (1 + n_caps) * D;
        b16 = malloc((ni + nt) * sizeof *b16);
        if (!b16) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); goto out; }
        for (size_t i = 0; i < ni; i++) b16[i] = mc_f32_to_bf16(r->img_emb[i]);
        for (size_t i = 0; i < nt; i++) b16[ni + i] = mc_f32_to_bf16(r->txt_emb[i]);
        for (size_t i = 0; i < n_e; i++) {
            const float *f = e[i].data;
            e[i].dtype = MC_DTYPE_BF16;
            e[i].data = f >= r->txt_emb && f < r->txt_emb + nt ? b16 + ni + (size_t)(f - r->txt_emb) : b16;
        }
        st = mc_pthgz_write_memory(e, n_e, &out->emb, &out->emb_len, err);
        free(b16);
    } else {
        st = mc_npz_write_memory(e, n_e, &out->emb, &out->emb_len, err);
    }
out:
    syn_groups_free(&syn);
    free(aug);
    mc_image_free(&img);
    if (st != MC_OK) sample_out_free(out);
    return st;
}

/* ------------------------------------------------------------- a shard */

static int path_join(char *out, size_t cap, const char *a, const char *b) {
    int n = snprintf(out, cap, "%s/%s", a, b);
    return n >= 0 && (size_t)n < cap;
}

/* Removes what a killed run left of this shard: "<out>.tmp-*". */
static void remove_partials(const char *out_dir, const char *name) {
    DIR *d = opendir(out_dir);
    if (!d) return;
    size_t nl = strlen(name);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, name, nl) || strncmp(de->d_name + nl, ".tmp-", 5)) continue;
        char path[8192];
        if (path_join(path, sizeof path, out_dir, de->d_name)) unlink(path);
    }
    closedir(d);
}

static mc_status write_text_atomic(const char *path, const char *text, size_t len, mc_error *err) {
    char tmp[8300];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    int ok = fwrite(text, 1, len, f) == len;
    return mc_file_commit(f, tmp, path, ok, err);
}

static mc_status put_member(FILE *f, const char *label, const char *key, const char *ext, const void *d, size_t n,
                            mc_error *err) {
    char name[4200];
    if (snprintf(name, sizeof name, "%s.%s", key, ext) >= (int)sizeof name)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: key too long", label);
    return mc_tar_write_member(f, label, name, d, n, err);
}

static void report(run *r, const char *shard, size_t idx, size_t count, uint64_t samples, uint64_t skipped, int event) {
    if (!r->p->progress) return;
    double dt = mc_now_s() - r->t0;
    mc_reinforce_progress pr = {r->rank, shard, idx, count, samples, skipped, r->stats->samples,
                                dt > 0 ? (double)r->stats->samples / dt : 0.0, event};
    r->p->progress(r->p->user, &pr);
}

static mc_status do_shard(run *r, const char *input, size_t idx, size_t count, mc_error *err) {
    const mc_reinforce_params *p = r->p;
    const char *name = base_name(input);
    char out_path[8192], tmp[8300], done[8300];
    if (!path_join(out_path, sizeof out_path, p->out_dir, name))
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: output path too long", name);
    snprintf(done, sizeof done, "%s/.reinforce/%s.json", p->out_dir, name);
    if (mc_path_is_file(done) && mc_path_is_file(out_path)) {
        r->stats->shards_done_before++;
        report(r, input, idx, count, 0, 0, 2);
        return MC_OK;
    }
    remove_partials(p->out_dir, name);
    reuse_map reuse = {0};
    mc_status st = MC_OK;
    if (p->n_reuse && (st = reuse_load(r, input, &reuse, err)) != MC_OK) return st;

    mc_shard_params sp = mc_shard_default_params();
    mc_shard_reader *rd = NULL;
    if ((st = mc_shard_open(input, &sp, &rd, err)) != MC_OK) {
        reuse_free(&reuse);
        return st;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out_path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        st = mc_fail(err, MC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        mc_shard_close(rd);
        reuse_free(&reuse);
        return st;
    }
    double t_start = mc_now_s();
    uint64_t written = 0, skipped = 0;
    for (;;) {
        mc_wds_sample *s = NULL;
        if ((st = mc_shard_next_sample(rd, &s, err)) != MC_OK) break;
        if (!s) break;
        sample_out so;
        mc_error se;
        mc_error_clear(&se);
        mc_status ss = do_sample(r, input, s, p->n_reuse ? &reuse : NULL, &so, &se);
        if (ss == MC_ERR_NOMEM) {
            if (err) *err = se;
            st = ss;
            mc_wds_sample_free(s);
            break;
        }
        if (ss != MC_OK) {
            skipped++;
            r->stats->skipped++;
            r->stats->last_skip = se;
            mc_error_prefix(&r->stats->last_skip, "%s: %s", input, s->key);
            mc_wds_sample_free(s);
            report(r, input, idx, count, written, skipped, 0);
            continue;
        }
        for (size_t i = 0; i < s->n_members && st == MC_OK; i++) {
            const char *ext = s->members[i].ext;
            if (!strcmp(ext, "npz") || !strcmp(ext, "pth.gz") || !strcmp(ext, "paug.json") ||
                (so.syn && !strcmp(ext, "syn.json")))
                continue;
            st = put_member(f, tmp, s->key, ext, s->members[i].data, s->members[i].size, err);
        }
        if (st == MC_OK && so.syn) st = put_member(f, tmp, s->key, "syn.json", so.syn, so.syn_len, err);
        if (st == MC_OK) st = put_member(f, tmp, s->key, "paug.json", so.paug, so.paug_len, err);
        if (st == MC_OK) st = put_member(f, tmp, s->key, p->bf16 ? "pth.gz" : "npz", so.emb, so.emb_len, err);
        sample_out_free(&so);
        mc_wds_sample_free(s);
        if (st != MC_OK) break;
        written++;
        r->stats->samples++;
        report(r, input, idx, count, written, skipped, 0);
    }
    const mc_shard_stats *ss = mc_shard_reader_stats(rd);
    if (st == MC_OK && ss->skipped) {   /* members or the rest of the archive the reader refused */
        skipped += ss->skipped;
        r->stats->skipped += ss->skipped;
        r->stats->last_skip = ss->last_skip;
    }
    mc_shard_close(rd);
    reuse_free(&reuse);
    if (st == MC_OK) st = mc_tar_write_end(f, tmp, err);
    if (st != MC_OK) {
        fclose(f);
        unlink(tmp);
        return st;
    }
    if ((st = mc_file_commit(f, tmp, out_path, 1, err)) != MC_OK) return st;
    char rec[9000];
    int n = snprintf(rec, sizeof rec, "{\"shard\": ");
    FILE *mf = fmemopen(rec + n, sizeof rec - (size_t)n, "w");
    if (mf) {
        mc_json_write_str(mf, name);
        fprintf(mf, ", \"num_samples\": %llu, \"skipped\": %llu, \"seconds\": %.3f}\n", (unsigned long long)written,
                (unsigned long long)skipped, mc_now_s() - t_start);
        fclose(mf);
    }
    if ((st = write_text_atomic(done, rec, strlen(rec), err)) != MC_OK) return st;
    r->stats->shards_written++;
    report(r, input, idx, count, written, skipped, 1);
    return MC_OK;
}

/* ---------------------------------------------------------- the settings */

/* The settings a folder is made with (besides its config.json), as JSON text (malloc'd). */
static char *settings_text(const run *r) {
    const mc_reinforce_params *p = r->p;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    fprintf(f, "{\"teachers\": [");
    for (int k = 0; k < p->n_teachers; k++) {
        if (k) fprintf(f, ", ");
        mc_json_write_str(f, p->teacher_names ? p->teacher_names[k] : "");
    }
    fprintf(f, "], \"teacher_dims\": [");
    for (int k = 0; k < r->n_t; k++) fprintf(f, "%s%d", k ? ", " : "", r->t[k].dim);
    fprintf(f, "], \"num_augs\": %d, \"reuse_params\": %s, \"bf16\": %s, \"syn_key\": ", p->num_augs,
            p->n_reuse ? "true" : "false", p->bf16 ? "true" : "false");
    mc_json_write_str(f, p->syn_key ? p->syn_key : "syn_text");
    fprintf(f, ", \"layout\": \"%s\", \"seed\": %llu}\n",
            p->layout == MC_REINFORCE_LAYOUT_DFNDR ? "dfndr" : p->layout == MC_REINFORCE_LAYOUT_DATACOMPDR ? "datacompdr" : "auto",
            (unsigned long long)p->seed);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static mc_status check_settings(run *r, const char *config_text, size_t config_len, mc_error *err) {
    const mc_reinforce_params *p = r->p;
    char dir[8192], path[8300], cfg_path[8300];
    if (!path_join(dir, sizeof dir, p->out_dir, ".reinforce")) return mc_fail(err, MC_ERR_INVALID_ARG, "path too long");
    snprintf(path, sizeof path, "%s/settings.json", dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", p->out_dir);
    char *want = settings_text(r);
    if (!want) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = MC_OK;
    if (mc_path_is_file(path)) {
        char *have = NULL, *cfg = NULL;
        size_t hl = 0, cl = 0;
        st = mc_file_read_all(path, 1u << 20, &have, &hl, err);
        if (st == MC_OK && mc_path_is_file(cfg_path)) st = mc_file_read_all(cfg_path, CONFIG_MAX_BYTES, &cfg, &cl, err);
        if (st == MC_OK && (strcmp(have, want) || !cfg || cl != config_len || memcmp(cfg, config_text, cl)))
            st = mc_fail(err, MC_ERR_INVALID_ARG,
                         "%s was made with other settings (%s and config.json there): use the same teachers, "
                         "--num-augs, --reuse-params, --bf16, --syn-key, --seed and --config, or another folder",
                         p->out_dir, path);
        free(have);
        free(cfg);
    } else if (r->rank == 0) {
        st = mc_make_dirs(dir, err);
        if (st == MC_OK) st = write_text_atomic(cfg_path, config_text, config_len, err);
        if (st == MC_OK) st = write_text_atomic(path, want, strlen(want), err);
    }
    free(want);
    return st;
}

/* manifest.jsonl: the shards' records in input order. */
static mc_status write_manifest(const run *r, mc_error *err) {
    const mc_reinforce_params *p = r->p;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = MC_OK;
    for (size_t i = 0; i < p->n_inputs && st == MC_OK; i++) {
        char done[8300], *text = NULL;
        size_t tl = 0;
        snprintf(done, sizeof done, "%s/.reinforce/%s.json", p->out_dir, base_name(p->inputs[i]));
        st = mc_file_read_all(done, 1u << 16, &text, &tl, err);
        if (st == MC_OK) fwrite(text, 1, tl, f);
        free(text);
    }
    fclose(f);
    if (st == MC_OK) {
        char path[8300];
        snprintf(path, sizeof path, "%s/manifest.jsonl", p->out_dir);
        st = write_text_atomic(path, buf, len, err);
    }
    free(buf);
    return st;
}

/* ------------------------------------------------------------------ run */

mc_status mc_reinforce_run(const mc_reinforce_params *p, mc_reinforce_stats *stats, mc_error *err) {
    mc_reinforce_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!p || !p->inputs || !p->n_inputs || !p->out_dir || !p->teachers || p->n_teachers < 1 || !p->config_path)
        return mc_fail(err, MC_ERR_INVALID_ARG, "reinforce: inputs, out_dir, teachers and config_path are required");
    if (!p->n_reuse && p->num_augs < 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "reinforce: the number of augmentations must be at least 1");
    if (p->num_augs < 0 || p->num_augs > MC_REINFORCE_MAX_AUGS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "reinforce: %d augmentations", p->num_augs);
    for (size_t i = 0; i < p->n_inputs; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(base_name(p->inputs[i]), base_name(p->inputs[j])))
                return mc_fail(err, MC_ERR_INVALID_ARG, "reinforce: two input shards are named %s (%s, %s)",
                               base_name(p->inputs[i]), p->inputs[j], p->inputs[i]);
    run r;
    memset(&r, 0, sizeof r);
    r.p = p;
    r.stats = stats;
    r.rank = mc_dist_rank(p->dist);
    r.world = mc_dist_world(p->dist);
    r.t0 = mc_now_s();
    char *cfg_text = NULL;
    size_t cfg_len = 0;
    mc_status st = mc_file_read_all(p->config_path, CONFIG_MAX_BYTES, &cfg_text, &cfg_len, err);
    if (st == MC_OK) st = mc_rf_aug_config_parse(cfg_text, cfg_len, p->config_path, &r.cfg, err);
    if (st == MC_OK) st = mc_make_dirs(p->out_dir, err);
    if (st == MC_OK) st = teachers_open(&r, err);
    /* settings first on rank 0, then the others compare */
    int all_ok = 1;
    if (r.rank == 0 && st == MC_OK) st = check_settings(&r, cfg_text, cfg_len, err);
    mc_error agree;
    if (mc_dist_all_ok(p->dist, st == MC_OK, &all_ok, &agree) != MC_OK) all_ok = 0;
    if (r.rank != 0 && st == MC_OK && all_ok) st = check_settings(&r, cfg_text, cfg_len, err);
    if (st == MC_OK && !all_ok) st = mc_fail(err, MC_ERR_IO, "reinforce: another rank failed to start");

    /* this rank's shards */
    size_t mine = 0, idx = 0;
    for (size_t i = (size_t)r.rank; i < p->n_inputs; i += (size_t)r.world) mine++;
    for (size_t i = (size_t)r.rank; i < p->n_inputs && st == MC_OK; i += (size_t)r.world, idx++) {
        st = do_shard(&r, p->inputs[i], idx, mine, err);
        if (st != MC_OK) mc_error_prefix(err, "rank %d", r.rank);
    }
    stats->seconds = mc_now_s() - r.t0;
    if (mc_dist_all_ok(p->dist, st == MC_OK, &all_ok, &agree) != MC_OK) all_ok = 0;
    if (st == MC_OK && !all_ok) st = mc_fail(err, MC_ERR_IO, "reinforce: another rank failed (see its message)");
    if (st == MC_OK && r.rank == 0) st = write_manifest(&r, err);
    teachers_close(&r);
    free(r.pixels);
    free(r.resized[0]);
    free(r.resized[1]);
    free(r.img_emb);
    free(r.txt_emb);
    free(r.tmp);
    free(r.tokens);
    free(cfg_text);
    return st;
}
