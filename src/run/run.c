/*
 * run/run.c - a training run (run.h): the model and its starting weights,
 * the loader, the run folder, the loop over epochs and steps, logs,
 * checkpoints with the data position, exact resume, online teachers and
 * evaluation at the end of epochs.
 */
#include "run/run.h"
#include "run/report.h"
#include "run/runfiles.h"

#include "core/json.h"
#include "data/loader.h"
#include "data/shard.h"
#include "eval/eval.h"
#include "io/config.h"
#include "model/synth.h"
#include "train/accum.h"
#include "train/ckpt.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

mc_run_params mc_run_default_params(void) {
    mc_run_params p;
    memset(&p, 0, sizeof p);
    p.batch_size = 64;
    p.epochs = 32;
    p.workers = 2;
    p.shuffle_buffer = 1000;
    p.mix_synthetic_ratio = 0.0f;
    p.loss_weights[0] = 0.0f;
    p.loss_weights[1] = 1.0f;
    p.lr = 5e-4f;
    p.wd = 0.2f;
    p.beta1 = 0.9f;
    p.beta2 = -1.0f;   /* by model name, as open_clip: 0.98 with "vit", else 0.999 */
    p.eps = -1.0f;     /* 1e-6 with "vit", else 1e-8 */
    p.warmup = 10000;
    p.accum_freq = 1;
    p.logs = "./logs";
    p.save_frequency = 1;
    p.log_every_n_steps = 100;
    p.zeroshot_frequency = 2;
    return p;
}

static void note(const mc_run_params *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const mc_run_params *p, const char *fmt, ...) {
    if (!p->cb.note) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    p->cb.note(p->cb.ud, buf);
}

/* ------------------------------------------------------------ the model */

typedef struct run_model {
    mc_train_config cfg;
    char *config_text;          /* stored in every checkpoint ("mobileclip.config") */
    char model_name[64];        /* official name, or "" */
    char start_path[4096];      /* the starting weights, or "" for a random initialisation */
    mc_preprocess_params pre;   /* the model's preprocessing (normalisation for the loader) */
    int open_clip_eps;          /* the name has "vit": open_clip's defaults beta2 0.98, eps 1e-6
                                   (else 0.999, 1e-8) */
} run_model;

static int name_has_vit(const char *s) {
    for (; *s; s++)
        if ((s[0] == 'v' || s[0] == 'V') && (s[1] == 'i' || s[1] == 'I') && (s[2] == 't' || s[2] == 'T')) return 1;
    return 0;
}

static mc_status resolve_model(const mc_run_params *p, run_model *m, mc_checkpoint **start, mc_error *err) {
    memset(m, 0, sizeof *m);
    *start = NULL;
    mc_status st;
    if (!p->model) return mc_fail(err, MC_ERR_INVALID_ARG, "train: --model is required (an official name or a folder)");
    m->open_clip_eps = name_has_vit(p->model);
    if (mc_path_is_dir(p->model)) {
        char cfg_path[4200];
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", p->model);
        if (!mc_path_is_file(cfg_path)) {
            snprintf(cfg_path, sizeof cfg_path, "%s/open_clip_config.json", p->model);
            if (!mc_path_is_file(cfg_path))
                return mc_fail(err, MC_ERR_CONFIG, "%s: no config.json or open_clip_config.json in the folder", p->model);
        }
        if ((st = mc_train_config_load(cfg_path, &m->cfg, err)) != MC_OK) return st;
        size_t len = 0;
        if ((st = mc_file_read_all(cfg_path, 1 << 20, &m->config_text, &len, err)) != MC_OK) return st;
        mc_config c;
        if ((st = mc_config_parse(m->config_text, len, cfg_path, &c, err)) != MC_OK) return st;
        m->pre = c.preprocess;
        if (p->pretrained) {
            snprintf(m->start_path, sizeof m->start_path, "%s", p->pretrained);
        } else {
            char ck[4096];
            mc_error e2;
            mc_error_clear(&e2);
            if (mc_config_resolve(p->model, NULL, NULL, &c, ck, sizeof ck, &e2) != MC_OK)
                return mc_fail(err, MC_ERR_NOT_FOUND,
                               "%s: no checkpoint in the folder to start from; pass --pretrained FILE", p->model);
            snprintf(m->start_path, sizeof m->start_path, "%s", ck);
        }
    } else {
        mc_arch_spec spec;
        mc_config c;
        if ((st = mc_arch_spec_builtin(p->model, &spec, &c, err)) != MC_OK) {
            mc_error_prefix(err, "train: --model '%s' is neither a folder nor an official name", p->model);
            return st;
        }
        if (!spec.v1)
            return mc_fail(err, MC_ERR_UNSUPPORTED,
                           "train: '%s' is an OpenCLIP-layout model; give a folder with its open_clip_config.json "
                           "and --pretrained weights", p->model);
        snprintf(m->model_name, sizeof m->model_name, "%s", c.name[0] ? c.name : p->model);
        snprintf(m->cfg.image_arch, sizeof m->cfg.image_arch, "%.31s", c.image_arch);
        snprintf(m->cfg.text_arch, sizeof m->cfg.text_arch, "%.31s", c.text_arch);
        m->cfg.image_size = c.image_size;
        m->cfg.context_length = c.context_length;
        m->cfg.text_heads[0] = c.text_heads > 0 ? c.text_heads : 8;
        m->cfg.n_text_heads = 1;
        m->cfg.causal = c.causal;
        m->cfg.bn_momentum = 0.1f;
        m->pre = c.preprocess;
        if (p->pretrained) {
            snprintf(m->start_path, sizeof m->start_path, "%s", p->pretrained);
        } else if ((st = mc_synth_checkpoint(&spec, p->seed ^ 0x5eedull, 1, 1, start, err)) != MC_OK) {
            return st;
        }
    }
    if (m->start_path[0] && (st = mc_checkpoint_open(m->start_path, start, err)) != MC_OK) return st;
    return MC_OK;
}

/* ------------------------------------------------------------ the data */

/* Samples in the shards (distinct keys), for an epoch of one pass. */
static mc_status count_samples(const mc_run_params *p, int64_t *out, mc_error *err) {
    char **list = NULL;
    size_t n = 0;
    mc_status st = mc_shard_expand(p->train_data, 1u << 24, &list, &n, err);
    if (st != MC_OK) return st;
    int64_t total = 0;
    for (size_t i = 0; i < n && st == MC_OK; i++) {
        mc_shard_params sp = mc_shard_default_params();
        sp.dr.decode_embeddings = 0;
        mc_shard_reader *r = NULL;
        if ((st = mc_shard_open(list[i], &sp, &r, err)) != MC_OK) break;
        for (;;) {
            mc_wds_sample *s = NULL;
            if ((st = mc_shard_next_sample(r, &s, err)) != MC_OK || !s) break;
            mc_wds_sample_free(s);
            total++;
        }
        mc_shard_close(r);
        if (p->cb.progress) p->cb.progress(p->cb.ud, "counting samples", (int64_t)i + 1, (int64_t)n);
    }
    mc_shard_list_free(list, n);
    *out = total;
    return st;
}

/* ------------------------------------------------------------ online teachers */

typedef struct teachers {
    int n;
    mc_model *model[MC_RUN_MAX_TEACHERS];
    mc_context *ctx[MC_RUN_MAX_TEACHERS];
    int dim[MC_RUN_MAX_TEACHERS];
    int total;
    float *img, *txt, *syn, *tmp;   /* [B, total] each; tmp [2B, max dim] */
} teachers;

static void teachers_free(teachers *t) {
    for (int i = 0; i < t->n; i++) { mc_context_free(t->ctx[i]); mc_model_free(t->model[i]); }
    free(t->img);
    free(t->txt);
    free(t->syn);
    free(t->tmp);
    memset(t, 0, sizeof *t);
}

static mc_status teachers_open(const mc_run_params *p, const run_model *m, teachers *t, mc_error *err) {
    memset(t, 0, sizeof *t);
    int maxd = 0;
    for (int i = 0; i < p->n_distill_models; i++) {
        mc_model_params mp = mc_model_default_params();
        mp.vocab_path = p->vocab_path;
        mp.load_tokenizer = 0;
        mc_status st = mc_model_load(p->distill_models[i], &mp, &t->model[i], err);
        if (st != MC_OK) { mc_error_prefix(err, "--distill-model %s", p->distill_models[i]); teachers_free(t); return st; }
        t->n = i + 1;
        mc_model_info info;
        mc_model_get_info(t->model[i], &info);
        if (info.image_size != m->cfg.image_size || info.context_length != m->cfg.context_length) {
            teachers_free(t);
            return mc_fail(err, MC_ERR_UNSUPPORTED,
                           "--distill-model %s: teachers see the student's images and tokens as the reference "
                           "does, so their image size and context (%d, %d) must be the student's (%d, %d)",
                           p->distill_models[i], info.image_size, info.context_length, m->cfg.image_size,
                           m->cfg.context_length);
        }
        mc_context_params cp = mc_context_default_params();
        cp.n_threads = p->threads;
        cp.max_batch = p->batch_size;
        if ((st = mc_context_new(t->model[i], &cp, &t->ctx[i], err)) != MC_OK) { teachers_free(t); return st; }
        t->dim[i] = info.embed_dim;
        t->total += info.embed_dim;
        if (info.embed_dim > maxd) maxd = info.embed_dim;
    }
    size_t B = (size_t)p->batch_size;
    t->img = malloc(B * (size_t)t->total * sizeof(float));
    t->txt = malloc(B * (size_t)t->total * sizeof(float));
    t->syn = malloc(B * (size_t)t->total * sizeof(float));
    t->tmp = malloc(B * (size_t)maxd * sizeof(float));
    if (!t->img || !t->txt || !t->syn || !t->tmp) { teachers_free(t); return mc_fail(err, MC_ERR_NOMEM, "out of memory"); }
    return MC_OK;
}

/* rows of dst [n, total] at column offset off get src [n, d] */
static void put_cols(float *dst, int total, int off, const float *src, int n, int d) {
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * total + off, src + (size_t)i * d, (size_t)d * sizeof(float));
}

/* The ensemble's L2-normalised features of the batch, concatenated per sample. */
static mc_status teachers_embed(teachers *t, mc_train_batch *b, mc_error *err) {
    int off = 0;
    for (int k = 0; k < t->n; k++) {
        mc_status st = mc_encode_image(t->ctx[k], b->pixels, b->n, 1, t->tmp);
        if (st == MC_OK) { put_cols(t->img, t->total, off, t->tmp, b->n, t->dim[k]); st = mc_encode_text(t->ctx[k], b->tokens_real, b->n, 1, t->tmp); }
        if (st == MC_OK) { put_cols(t->txt, t->total, off, t->tmp, b->n, t->dim[k]); }
        if (st == MC_OK && b->tokens_syn) {
            st = mc_encode_text(t->ctx[k], b->tokens_syn, b->n, 1, t->tmp);
            if (st == MC_OK) put_cols(t->syn, t->total, off, t->tmp, b->n, t->dim[k]);
        }
        if (st != MC_OK) {
            if (err) *err = *mc_context_last_error(t->ctx[k]);
            return st;
        }
        off += t->dim[k];
    }
    b->teacher_image = t->img;
    b->teacher_text_real = t->txt;
    b->teacher_text_syn = b->tokens_syn ? t->syn : NULL;
    return MC_OK;
}

/* ------------------------------------------------------------ the run */

static mc_status coll_allgather(void *ud, const float *local, size_t n, float *global, mc_error *err) {
    return mc_dist_allgather_f32(ud, local, n, global, err);
}
static mc_status coll_allreduce(void *ud, float *buf, size_t n, mc_error *err) {
    return mc_dist_allreduce_sum_f32(ud, buf, n, err);
}
static mc_status coll_reduce_scatter(void *ud, const float *global, size_t n, float *local, mc_error *err) {
    return mc_dist_reduce_scatter_sum_f32(ud, global, n, local, err);
}

/* A copy of one micro-batch (the loader's buffers last until its next call). */
typedef struct batch_slot {
    float *pixels, *teach;      /* teach: [3, n, D] image, real text, synthetic text */
    int32_t *tokens;            /* [2, n, L] real, synthetic */
    mc_train_batch b;
} batch_slot;

static int teacher_width(const mc_dr_loss_params *lp) {
    int d = 0;
    for (int k = 0; k < lp->n_teachers; k++) d += lp->teacher_dims[k];
    return d;
}

static mc_status keep_batch(batch_slot *s, const mc_train_batch *b, int S, int L, int D, mc_error *err) {
    size_t n = (size_t)b->n, px = n * 3 * (size_t)S * S;
    if (!s->pixels) {   /* first use: room for the batch (the loader's batches never grow) */
        s->pixels = malloc(px * sizeof(float));
        s->tokens = malloc(2 * n * (size_t)L * sizeof(int32_t));
        s->teach = D ? malloc(3 * n * (size_t)D * sizeof(float)) : NULL;
        if (!s->pixels || !s->tokens || (D && !s->teach)) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    memcpy(s->pixels, b->pixels, px * sizeof(float));
    memcpy(s->tokens, b->tokens_real, n * (size_t)L * sizeof(int32_t));
    if (b->tokens_syn) memcpy(s->tokens + n * L, b->tokens_syn, n * (size_t)L * sizeof(int32_t));
    s->b = (mc_train_batch){b->n, s->pixels, s->tokens, b->tokens_syn ? s->tokens + n * L : NULL, NULL, NULL, NULL};
    if (D) {
        memcpy(s->teach, b->teacher_image, n * (size_t)D * sizeof(float));
        memcpy(s->teach + n * D, b->teacher_text_real, n * (size_t)D * sizeof(float));
        if (b->teacher_text_syn) memcpy(s->teach + 2 * n * D, b->teacher_text_syn, n * (size_t)D * sizeof(float));
        s->b.teacher_image = s->teach;
        s->b.teacher_text_real = s->teach + n * D;
        s->b.teacher_text_syn = b->teacher_text_syn ? s->teach + 2 * n * D : NULL;
    }
    return MC_OK;
}

typedef struct run_state {
    const mc_run_params *p;
    run_model m;
    mc_trainer *t;
    mc_tokenizer *tok;
    mc_loader *loader;
    teachers te;
    mc_aug_layout aug;
    char dir[4096], ckdir[4200];
    int64_t steps_per_epoch, total_steps;
    int64_t samples;
    int epoch;                  /* the epoch in progress */
    int64_t batches_in_epoch;   /* micro-batches consumed in it */
    FILE *log;
    char last_ckpt[4400];
    char recent[2][4400];       /* the last two step_N checkpoints */
    batch_slot slots[64];       /* the micro-batches of one step (--accum-freq > 1 or ranks) */
    int rank, world;
    int resumed_world;          /* ranks of the run the checkpoint came from */
    int stopping;               /* the stop flag, agreed by the ranks at the last step */
    mc_train_collective coll;
} run_state;

/* The run's report.html (run/report.h); a failure is a note, not the run's end. */
static void write_report(run_state *r) {
    mc_error re;
    if (mc_report_write_run(r->dir, &re) != MC_OK) note(r->p, "report.html not written: %s", re.message);
}

static mc_status save_state(run_state *r, const char *file, mc_error *err) {
    if (r->rank != 0) return MC_OK;   /* rank 0 writes the run folder */
    /* the log up to this step reaches the disk before the checkpoint that
     * says these steps are done (a resume does not write them again) */
    if (r->log && (fflush(r->log) != 0 || fsync(fileno(r->log)) != 0))
        return mc_fail(err, MC_ERR_IO, "%s/train.jsonl: cannot write: %s", r->dir, strerror(errno));
    char path[4400], buf[8][32];
    snprintf(path, sizeof path, "%s/%s", r->ckdir, file);
    snprintf(buf[0], sizeof buf[0], "%d", r->epoch);
    snprintf(buf[1], sizeof buf[1], "%lld", (long long)r->batches_in_epoch);
    snprintf(buf[2], sizeof buf[2], "%lld", (long long)r->samples);
    snprintf(buf[3], sizeof buf[3], "%llu", (unsigned long long)r->p->seed);
    snprintf(buf[4], sizeof buf[4], "%lld", (long long)r->steps_per_epoch);
    snprintf(buf[5], sizeof buf[5], "%d", r->p->batch_size);
    snprintf(buf[6], sizeof buf[6], "%d", r->p->accum_freq);
    snprintf(buf[7], sizeof buf[7], "%d", r->world);
    mc_meta_kv meta[10] = {
        {(char *)"run.epoch", buf[0]},          {(char *)"run.batches_in_epoch", buf[1]},
        {(char *)"run.samples", buf[2]},        {(char *)"run.seed", buf[3]},
        {(char *)"run.steps_per_epoch", buf[4]}, {(char *)"run.batch_size", buf[5]},
        {(char *)"run.accum_freq", buf[6]}, {(char *)"run.world", buf[7]},
    };
    size_t nm = 8;
    if (r->m.config_text) meta[nm++] = (mc_meta_kv){(char *)"mobileclip.config", r->m.config_text};
    if (r->m.model_name[0]) meta[nm++] = (mc_meta_kv){(char *)"mobileclip.model_name", r->m.model_name};
    mc_status st = mc_trainer_save_meta(r->t, path, meta, nm, err);
    if (st == MC_OK) snprintf(r->last_ckpt, sizeof r->last_ckpt, "%s", path);
    if (st == MC_OK) write_report(r);
    return st;
}

static int64_t meta_i64(const mc_checkpoint *ck, const char *key, int64_t dflt) {
    const char *v = mc_checkpoint_metadata(ck, key);
    if (!v) return dflt;
    char *e = NULL;
    long long x = strtoll(v, &e, 10);
    return e && !*e ? (int64_t)x : dflt;
}

/* Restores a checkpoint and the run position; refuses one whose data
 * settings differ (the position would mean other batches). */
static mc_status resume_from(run_state *r, const char *path, mc_error *err) {
    mc_checkpoint *ck = NULL;
    mc_status st = mc_checkpoint_open(path, &ck, err);
    if (st != MC_OK) { mc_error_prefix(err, "resume: checkpoint refused (left as it is)"); return st; }
    /* the model first (another model's state names its first differing tensor), then the data */
    st = mc_trainer_resume_open(r->t, ck, path, err);
    int64_t old_world = meta_i64(ck, "run.world", 1), old_batch = meta_i64(ck, "run.batch_size", -1),
            old_accum = meta_i64(ck, "run.accum_freq", -1), old_spe = meta_i64(ck, "run.steps_per_epoch", -1);
    const char *seed = mc_checkpoint_metadata(ck, "run.seed");
    int64_t global_now = (int64_t)r->p->batch_size * r->p->accum_freq * r->world;
    if (st == MC_OK && (!seed || old_batch < 1 || old_accum < 1 || old_spe < 1 || old_world < 1))
        st = mc_fail(err, MC_ERR_FORMAT, "%s: not a checkpoint of a training run (no run.* metadata)", path);
    else if (st == MC_OK && strtoull(seed, NULL, 10) != r->p->seed)
        st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: the run used --seed %s, now %llu; an exact resume needs the same",
                     path, seed, (unsigned long long)r->p->seed);
    else if (st == MC_OK && old_batch * old_accum * old_world != global_now)
        st = mc_fail(err, MC_ERR_INVALID_ARG,
                     "%s: the run's global batch was %lld (batch %lld x accumulation %lld x %lld ranks), now %lld; "
                     "resume with the same global batch", path, (long long)(old_batch * old_accum * old_world),
                     (long long)old_batch, (long long)old_accum, (long long)old_world, (long long)global_now);
    else if (st == MC_OK && old_spe != r->steps_per_epoch)
        st = mc_fail(err, MC_ERR_INVALID_ARG,
                     "%s: the run's epochs were %lld steps, now %lld (--train-num-samples or the shards changed)",
                     path, (long long)old_spe, (long long)r->steps_per_epoch);
    if (st == MC_OK) {
        r->epoch = (int)meta_i64(ck, "run.epoch", 0);
        int64_t steps_in_epoch = meta_i64(ck, "run.batches_in_epoch", 0) / old_accum;
        r->batches_in_epoch = steps_in_epoch * r->p->accum_freq;
        r->samples = meta_i64(ck, "run.samples", 0);
        r->resumed_world = (int)old_world;
    } else {
        mc_error_prefix(err, "resume: checkpoint refused (left as it is)");
    }
    mc_checkpoint_close(ck);
    return st;
}

/* A JSON string literal of s (NULL: null). */
static void put_str(FILE *f, const char *s) {
    if (s) mc_json_write_str(f, s);
    else fputs("null", f);
}

static mc_status write_params(const char *dir, const mc_run_params *p, int64_t steps_per_epoch,
                              int64_t total_steps, mc_error *err) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/params.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fputs("{\n  \"command_line\": ", f); put_str(f, p->command_line);
    fputs(",\n  \"train_data\": ", f); put_str(f, p->train_data);
    fprintf(f, ",\n  \"train_num_samples\": %lld, \"dataset_resampled\": %d, \"batch_size\": %d, \"epochs\": %d,"
               " \"workers\": %d, \"shuffle_buffer\": %d, \"seed\": %llu, \"min_image_size\": %d",
            (long long)p->train_num_samples, p->dataset_resampled, p->batch_size, p->epochs, p->workers,
            p->shuffle_buffer, (unsigned long long)p->seed, p->min_image_size);
    fprintf(f, ",\n  \"dataset_reinforcement\": %d, \"dataset_reinforcement_config\": ", p->dataset_reinforcement);
    put_str(f, p->dr_config);
    fprintf(f, ", \"mix_synthetic\": %d, \"mix_synthetic_ratio\": %.9g, \"syn_text_key_regex\": ", p->mix_synthetic,
            (double)p->mix_synthetic_ratio);
    put_str(f, p->syn_text_key_regex);
    fprintf(f, ", \"sample_sequential\": %d", p->sample_sequential);
    fputs(",\n  \"distill_teacher_dimension\": [", f);
    for (int i = 0; i < p->n_teachers; i++) fprintf(f, "%s%d", i ? ", " : "", p->teacher_dims[i]);
    fputs("], \"distill_logit_scale\": [", f);
    for (int i = 0; i < p->n_teachers; i++) fprintf(f, "%s%.9g", i ? ", " : "", (double)p->teacher_scales[i]);
    fprintf(f, "], \"distill_loss_weights\": [%.9g, %.9g], \"distill_model\": [", (double)p->loss_weights[0],
            (double)p->loss_weights[1]);
    for (int i = 0; i < p->n_distill_models; i++) { if (i) fputs(", ", f); put_str(f, p->distill_models[i]); }
    fprintf(f, "],\n  \"lr\": %.9g, \"wd\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, \"warmup\": %d,"
               " \"grad_clip_norm\": %.9g, \"accum_freq\": %d, \"local_loss\": %d, \"gather_with_grad\": %d,"
               " \"grad_checkpointing\": %d",
            (double)p->lr, (double)p->wd, (double)p->beta1, (double)p->beta2, (double)p->eps, p->warmup,
            (double)p->grad_clip_norm, p->accum_freq, p->local_loss, p->gather_with_grad, p->grad_checkpointing);
    fputs(",\n  \"model\": ", f); put_str(f, p->model);
    fputs(", \"pretrained\": ", f); put_str(f, p->pretrained);
    fprintf(f, ",\n  \"save_frequency\": %d, \"save_most_recent\": %d, \"save_every_n_steps\": %d,"
               " \"log_every_n_steps\": %d, \"zeroshot_frequency\": %d, \"threads\": %d",
            p->save_frequency, p->save_most_recent, p->save_every_n_steps, p->log_every_n_steps,
            p->zeroshot_frequency, p->threads);
    fputs(",\n  \"imagenet_val\": ", f); put_str(f, p->imagenet_val);
    fputs(", \"retrieval\": ", f); put_str(f, p->retrieval_data);
    char host[256], cpu[512];
    mc_report_machine(host, sizeof host, cpu, sizeof cpu);
    fputs(",\n  \"hostname\": ", f); put_str(f, host);
    fputs(", \"cpu\": ", f); put_str(f, cpu);
    fprintf(f, ",\n  \"steps_per_epoch\": %lld, \"total_steps\": %lld\n}\n", (long long)steps_per_epoch,
            (long long)total_steps);
    return mc_file_commit(f, tmp, path, !ferror(f), err);
}

static void fmt_float(char *buf, size_t cap, double v) {
    if (isfinite(v)) snprintf(buf, cap, "%.9g", v);
    else snprintf(buf, cap, "null");
}

static void log_step(run_state *r, const mc_run_step *s) {
    if (!r->log) return;
    char f[16][40];
    double vals[16] = {s->lr, s->loss, s->contrastive_loss, s->distill_loss, s->logit_scale, s->grad_norm,
                       s->images_per_s, s->data_wait, s->terms[0], s->terms[1], s->terms[2], s->terms[3],
                       s->t_forward, s->t_backward, s->t_loss, s->t_optim};
    for (int i = 0; i < 16; i++) fmt_float(f[i], sizeof f[i], vals[i]);
    fprintf(r->log,
            "{\"step\": %lld, \"epoch\": %d, \"samples\": %lld, \"lr\": %s, \"loss\": %s, \"contrastive_loss\": %s, "
            "\"distill_loss\": %s, \"logit_scale\": %s, \"grad_norm\": %s, \"images_per_s\": %s, \"data_wait\": %s, "
            "\"contrastive_real\": %s, \"distill_real\": %s, \"contrastive_syn\": %s, \"distill_syn\": %s, "
            "\"time_forward\": %s, \"time_backward\": %s, \"time_loss\": %s, \"time_optim\": %s",
            (long long)s->step, s->epoch, (long long)s->samples, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8],
            f[9], f[10], f[11], f[12], f[13], f[14], f[15]);
    if (r->te.n) {
        char tt[40];
        fmt_float(tt, sizeof tt, s->t_teacher);
        fprintf(r->log, ", \"time_teachers\": %s", tt);
    }
    if (r->world > 1) {
        char tc[40];
        fmt_float(tc, sizeof tc, s->t_comm);
        fprintf(r->log, ", \"time_comm\": %s, \"ranks\": %d", tc, r->world);
    }
    fprintf(r->log, "}\n");
    fflush(r->log);
}

/* Evaluation progress through the run's callback (never cancels). */
static int eval_progress(void *ud, const char *stage, int64_t done, int64_t total) {
    const mc_run_params *p = ud;
    if (p->cb.progress && total > 0) p->cb.progress(p->cb.ud, stage, done, total);
    return 0;
}

/* Evaluation of the checkpoint just written, appended to results.jsonl. */
static mc_status evaluate(run_state *r, int epoch, mc_error *err) {
    if (r->rank != 0) return MC_OK;
    const mc_run_params *p = r->p;
    if (!p->imagenet_val && !p->retrieval_data) return MC_OK;
    mc_model_params mp = mc_model_default_params();
    mp.vocab_path = p->vocab_path;
    mc_model *model = NULL;
    mc_status st = mc_model_load(r->last_ckpt, &mp, &model, err);
    if (st != MC_OK) { mc_error_prefix(err, "evaluation: loading %s", r->last_ckpt); return st; }
    mc_eval_params ep = mc_eval_default_params();
    ep.n_threads = p->threads;
    ep.progress = eval_progress;
    ep.progress_user = (void *)p;
    mc_eval_results res;
    mc_eval_results_init(&res);
    res.epoch = epoch + 1;
    if (p->imagenet_val)
        st = mc_eval_zeroshot(model, p->imagenet_val, p->eval_classnames, p->eval_templates, &ep, &res.zeroshot, err);
    if (st == MC_OK && p->retrieval_data) st = mc_eval_retrieval(model, p->retrieval_data, &ep, &res.retrieval, err);
    mc_model_free(model);
    if (st != MC_OK) { mc_error_prefix(err, "evaluation after epoch %d", epoch + 1); return st; }
    char *json = NULL;
    if ((st = mc_eval_results_json(&res, &json, err)) != MC_OK) return st;
    char path[4300];
    snprintf(path, sizeof path, "%s/results.jsonl", r->dir);
    FILE *f = fopen(path, "a");
    if (!f) { free(json); return mc_fail(err, MC_ERR_IO, "%s: cannot append: %s", path, strerror(errno)); }
    /* {"step": S, "samples": N, ...the evaluation's keys (epoch among them)} */
    fprintf(f, "{\"step\": %d, \"samples\": %lld, %s\n", mc_trainer_steps_done(r->t), (long long)r->samples,
            json[0] == '{' ? json + 1 : json);
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = 0;
    note(p, "evaluation after epoch %d: %s", epoch + 1, json);
    free(json);
    return ok ? MC_OK : mc_fail(err, MC_ERR_IO, "%s: write failed", path);
}

static mc_status open_loader(run_state *r, mc_error *err) {
    const mc_run_params *p = r->p;
    mc_loader_params lp = mc_loader_default_params();
    lp.shards = p->train_data;
    lp.tok = r->tok;
    lp.aug = p->dataset_reinforcement ? &r->aug : NULL;
    lp.image_size = r->m.cfg.image_size;
    for (int c = 0; c < 3; c++) lp.mean[c] = r->m.pre.mean[c], lp.std[c] = r->m.pre.std[c];
    lp.batch_size = p->batch_size;
    lp.rank = r->rank;
    lp.world_size = r->world;
    lp.seed = p->seed;
    lp.epoch = r->epoch;
    lp.workers = p->workers;
    lp.shuffle_buffer = p->shuffle_buffer;
    lp.resampled = p->dataset_resampled;
    lp.sample_sequential = p->sample_sequential;
    lp.syn_key_regex = p->syn_text_key_regex;
    lp.mix_synthetic = p->mix_synthetic;
    lp.mix_synthetic_ratio = p->mix_synthetic_ratio;
    lp.min_image_size = p->min_image_size;
    lp.context_length = r->m.cfg.context_length;
    lp.plain = !p->dataset_reinforcement;
    return mc_loader_open(&lp, &r->loader, err);
}

static mc_status check_params(const mc_run_params *p, mc_error *err) {
    if (!p->train_data) return mc_fail(err, MC_ERR_INVALID_ARG, "train: --train-data is required");
    if (p->batch_size < 1 || p->epochs < 1 || p->accum_freq < 1 || p->workers < 1 || p->shuffle_buffer < 0 ||
        p->warmup < 0 || p->save_frequency < 0 || p->save_every_n_steps < 0 || p->zeroshot_frequency < 0)
        return mc_fail(err, MC_ERR_INVALID_ARG,
                       "train: --batch-size, --epochs, --accum-freq and --workers must be positive; --warmup, "
                       "--shuffle-buffer and the frequencies not negative");
    if (p->accum_freq > 64) return mc_fail(err, MC_ERR_INVALID_ARG, "train: --accum-freq is at most 64");
    if (p->batch_size < 2) return mc_fail(err, MC_ERR_INVALID_ARG, "train: a contrastive loss needs --batch-size >= 2");
    if (!(p->lr >= 0) || !(p->wd >= 0) || !(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 < 1))
        return mc_fail(err, MC_ERR_INVALID_ARG, "train: --lr and --wd must be >= 0, --beta1 and --beta2 in [0, 1)");
    if (p->dataset_resampled && p->train_num_samples <= 0)
        return mc_fail(err, MC_ERR_INVALID_ARG, "train: --dataset-resampled needs --train-num-samples (samples per epoch)");
    if (p->dist && mc_dist_world(p->dist) > 1 && !p->dataset_resampled) {
        char **list = NULL;
        size_t n = 0;
        mc_status st = mc_shard_expand(p->train_data, 1u << 24, &list, &n, err);
        if (st != MC_OK) return st;
        mc_shard_list_free(list, n);
        if ((int64_t)n < mc_dist_world(p->dist))
            return mc_fail(err, MC_ERR_INVALID_ARG,
                           "train: %zu shards for %d ranks: each rank reads whole shards, so give at least one shard "
                           "per rank, or --dataset-resampled", n, mc_dist_world(p->dist));
    }
    if (p->mix_synthetic && !p->dataset_reinforcement)
        return mc_fail(err, MC_ERR_INVALID_ARG, "train: --dataset-reinforcement-mix-synthetic needs --dataset-reinforcement");
    if (p->n_teachers < 0 || p->n_teachers > MC_RUN_MAX_TEACHERS || p->n_distill_models > MC_RUN_MAX_TEACHERS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "train: at most %d teachers", MC_RUN_MAX_TEACHERS);
    if (p->loss_weights[1] != 0 && !p->dataset_reinforcement && p->n_distill_models == 0)
        return mc_fail(err, MC_ERR_INVALID_ARG,
                       "train: a distillation weight of %g needs teachers: --dataset-reinforcement (stored "
                       "embeddings) or --distill-model; plain CLIP training is --distill-loss-weights 1 0",
                       (double)p->loss_weights[1]);
    return MC_OK;
}

static void default_name(const mc_run_params *p, char *out, size_t cap) {
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    char date[32];
    strftime(date, sizeof date, "%Y_%m_%d-%H_%M_%S", &tmv);
    const char *model = strrchr(p->model, '/') && strrchr(p->model, '/')[1] ? strrchr(p->model, '/') + 1 : p->model;
    snprintf(out, cap, "%s-model_%s-lr_%g-b_%d-j_%d", date, model, (double)p->lr, p->batch_size, p->workers);
}

mc_status mc_run_train(const mc_run_params *p_in, mc_run_result *out, mc_error *err) {
    run_state r;
    memset(&r, 0, sizeof r);
    r.rank = mc_dist_rank(p_in->dist);
    r.world = mc_dist_world(p_in->dist);
    r.resumed_world = r.world;
    mc_run_params pp = *p_in;   /* the other ranks run silently: rank 0 speaks for the job */
    if (r.rank != 0) pp.cb.note = NULL, pp.cb.step = NULL, pp.cb.progress = NULL;
    const mc_run_params *p = &pp;
    r.p = p;
    r.coll = (mc_train_collective){.ud = p->dist, .rank = r.rank, .world = r.world, .local_loss = p->local_loss,
                                   .gather_with_grad = p->gather_with_grad, .allgather = coll_allgather,
                                   .allreduce_sum = coll_allreduce, .reduce_scatter_sum = coll_reduce_scatter};
    mc_run_step s;
    memset(&s, 0, sizeof s);
    if (out) memset(out, 0, sizeof *out);
    mc_status st = check_params(p, err);
    if (st != MC_OK) return st;
#ifdef _OPENMP
    if (p->threads > 0) omp_set_num_threads(p->threads);
#endif
    mc_checkpoint *start = NULL;
    if ((st = resolve_model(p, &r.m, &start, err)) != MC_OK) goto done;

    /* loss and optimizer */
    mc_dr_loss_params lp;
    memset(&lp, 0, sizeof lp);
    lp.w_contrastive = p->loss_weights[0];
    lp.w_distill = p->loss_weights[1];
    lp.lambda = p->loss_weights[1];
    int distill = p->loss_weights[1] != 0 && (p->dataset_reinforcement || p->n_distill_models > 0);
    mc_adamw_params op = mc_adamw_default_params();
    op.lr = p->lr;
    op.weight_decay = p->wd;
    op.beta1 = p->beta1;
    op.beta2 = p->beta2 >= 0 ? p->beta2 : (r.m.open_clip_eps ? 0.98f : 0.999f);
    op.eps = p->eps >= 0 ? p->eps : (r.m.open_clip_eps ? 1e-6f : 1e-8f);
    op.grad_clip = p->grad_clip_norm;
    op.warmup_steps = p->warmup;
    op.accum_steps = p->accum_freq;

    /* data: the tokenizer, the augmentation layout, the epoch length */
    char vocab[4096];
    if ((st = mc_tokenizer_find_vocab(p->vocab_path, vocab, sizeof vocab, err)) != MC_OK) goto done;
    if ((st = mc_tokenizer_load(vocab, &r.tok, err)) != MC_OK) goto done;
    r.aug = mc_aug_layout_datacompdr();
    if (p->dataset_reinforcement && p->dr_config && (st = mc_aug_layout_from_file(p->dr_config, &r.aug, err)) != MC_OK)
        goto done;
    int64_t per_step = (int64_t)p->batch_size * p->accum_freq * r.world;   /* the global batch */
    if (r.world > 1 && r.rank == 0 && !p->gather_with_grad)
        note(p, "without --gather-with-grad each rank's gradient leaves out what flows back through the other "
                "ranks' copies of its features, and the ranks' gradients are averaged (open_clip's meaning): %s",
             p->local_loss ? "not the exact gradient of the global loss"
                           : "the exact gradient divided by the number of ranks");
    if (p->train_num_samples > 0) {
        r.steps_per_epoch = (p->train_num_samples + per_step - 1) / per_step;   /* open_clip rounds up */
    } else {
        int64_t n = 0;
        note(p, "counting the samples of %s (an epoch is one pass; --train-num-samples skips this)", p->train_data);
        if ((st = count_samples(p, &n, err)) != MC_OK) goto done;
        r.steps_per_epoch = n / per_step;   /* the last partial batch is dropped */
        if (r.steps_per_epoch < 1) {
            st = mc_fail(err, MC_ERR_INVALID_ARG, "train: the shards hold %lld samples, fewer than one step's %lld",
                         (long long)n, (long long)per_step);
            goto done;
        }
    }
    r.total_steps = r.steps_per_epoch * p->epochs;
    op.total_steps = (int)(r.total_steps > 2000000000 ? 2000000000 : r.total_steps);

    /* teachers: stored in the shards, or online */
    if (p->n_distill_models > 0 && (st = teachers_open(p, &r.m, &r.te, err)) != MC_OK) goto done;
    if (distill) {
        lp.n_teachers = p->n_teachers;
        if (r.te.n) {
            lp.n_teachers = r.te.n;
            for (int k = 0; k < r.te.n; k++) {
                if (p->n_teachers && p->teacher_dims[k] != r.te.dim[k]) {
                    st = mc_fail(err, MC_ERR_INVALID_ARG, "train: --distill-teacher-dimension %d, but teacher %d has %d",
                                 p->teacher_dims[k], k, r.te.dim[k]);
                    goto done;
                }
                lp.teacher_dims[k] = r.te.dim[k];
            }
        } else {
            for (int k = 0; k < p->n_teachers; k++) lp.teacher_dims[k] = p->teacher_dims[k];
        }
        for (int k = 0; k < lp.n_teachers; k++) lp.teacher_scales[k] = p->teacher_scales[k] > 0 ? p->teacher_scales[k] : 100.0f;
    }

    if ((st = mc_trainer_new(&r.m.cfg, start, r.m.start_path[0] ? r.m.start_path : p->model, &lp, &op, &r.t, err)) != MC_OK)
        goto done;
    mc_trainer_set_grad_checkpointing(r.t, p->grad_checkpointing);
    if (!r.m.start_path[0]) {   /* random initialisation: CLIP's logit scale ln(1/0.07) */
        mc_tparam *ls = mc_trainer_find(r.t, "logit_scale");
        if (ls) ls->w[0] = logf(1.0f / 0.07f);
    }
    mc_checkpoint_close(start);
    start = NULL;

    /* the run folder */
    char name[512];
    if (p->name) snprintf(name, sizeof name, "%s", p->name);
    else default_name(p, name, sizeof name);
    snprintf(r.dir, sizeof r.dir, "%s/%s", p->logs ? p->logs : "./logs", name);
    snprintf(r.ckdir, sizeof r.ckdir, "%s/checkpoints", r.dir);
    /* rank 0 decides (the folder, the checkpoint to resume from) and tells the others */
    struct { int32_t status; char path[4400]; char msg[1024]; } plan;
    memset(&plan, 0, sizeof plan);
    if (r.rank == 0) {
        mc_error e2;
        mc_error_clear(&e2);
        mc_status ps = MC_OK;
        int exists = mc_path_is_dir(r.dir);
        if (p->resume && !strcmp(p->resume, "latest")) {
            if (exists) {
                mc_status fs = mc_config_latest_run_checkpoint(r.dir, plan.path, sizeof plan.path, &e2);
                if (fs != MC_OK && fs != MC_ERR_NOT_FOUND) ps = fs;
                if (fs == MC_ERR_NOT_FOUND) plan.path[0] = 0;
            }
            if (ps == MC_OK && !plan.path[0]) note(p, "--resume latest: no checkpoint in %s yet, starting the run", r.dir);
        } else if (p->resume) {
            snprintf(plan.path, sizeof plan.path, "%s", p->resume);
        } else if (exists) {
            ps = mc_fail(&e2, MC_ERR_INVALID_ARG,
                         "train: the run folder %s exists; give another --name, or --resume latest to continue it", r.dir);
        }
        if (ps == MC_OK) ps = mc_make_dirs(r.ckdir, &e2);
        if (ps == MC_OK) {   /* writes cut short by a crash: their targets are intact */
            int nt = mc_run_remove_temporaries(r.ckdir) + mc_run_remove_temporaries(r.dir);
            if (nt) note(p, "removed %d unfinished temporary file%s of an interrupted write", nt, nt > 1 ? "s" : "");
        }
        plan.status = ps;
        snprintf(plan.msg, sizeof plan.msg, "%s", e2.message);
    }
    if ((st = mc_dist_broadcast(p->dist, &plan, sizeof plan, 0, err)) != MC_OK) goto done;
    if (plan.status != MC_OK) {
        st = mc_fail(err, (mc_status)plan.status, "%s", plan.msg);
        goto done;
    }
    char resume_path[4400];
    snprintf(resume_path, sizeof resume_path, "%s", plan.path);
    if (resume_path[0]) {
        st = resume_from(&r, resume_path, err);
        int all_ok = 0;
        mc_status cs = mc_dist_all_ok(p->dist, st == MC_OK, &all_ok, err);
        if (st != MC_OK) goto done;
        if (cs != MC_OK) { st = cs; goto done; }
        if (!all_ok) { st = mc_fail(err, MC_ERR_IO, "resume: another rank could not read %s", resume_path); goto done; }
        note(p, "resuming from %s: step %d, epoch %d, %lld batches into it", resume_path, mc_trainer_steps_done(r.t),
             r.epoch + 1, (long long)r.batches_in_epoch);
        if (r.resumed_world != r.world)
            note(p, "the checkpoint was made by %d ranks, this run has %d: the epoch continues after the same number "
                    "of steps, with this run's split of the shards (not the batches the old run would have seen)",
                 r.resumed_world, r.world);
    }
    if (r.rank != 0) goto loop;   /* rank 0 keeps the folder's files */
    if ((st = write_params(r.dir, p, r.steps_per_epoch, r.total_steps, err)) != MC_OK) goto done;
    /* train.jsonl: keep the steps up to the checkpoint's (a resumed run
     * writes the later ones again), then append */
    char logpath[4300];
    snprintf(logpath, sizeof logpath, "%s/train.jsonl", r.dir);
    if ((st = mc_run_truncate_log(logpath, mc_trainer_steps_done(r.t), err)) != MC_OK) goto done;
    if (!(r.log = fopen(logpath, "a"))) { st = mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", logpath, strerror(errno)); goto done; }
loop:

    if (r.epoch >= p->epochs) {
        note(p, "the run is complete (%d epochs); nothing to do", p->epochs);
        goto finish;
    }
    if ((st = open_loader(&r, err)) != MC_OK) goto done;

    /* fast-forward: the batches of the epoch in progress that the checkpoint had seen */
    for (int64_t b = 0; b < r.batches_in_epoch; b++) {
        mc_loader_batch lb;
        int end = 0;
        if ((st = mc_loader_next(r.loader, &lb, &end, err)) != MC_OK) goto done;
        if (end) break;
        if (p->cb.progress) p->cb.progress(p->cb.ud, "skipping seen batches", b + 1, r.batches_in_epoch);
    }

    /* with ranks or accumulation the loss is over a batch gathered from
     * several forwards (train/accum.h); else one forward-backward */
    const int gathered = r.world > 1 || p->accum_freq > 1;
    while (r.epoch < p->epochs) {
        int64_t step_in_epoch = r.batches_in_epoch / p->accum_freq;
        int epoch_over = 0;
        while (step_in_epoch < r.steps_per_epoch && !epoch_over) {
            mc_train_result res;
            memset(&res, 0, sizeof res);
            double t0 = mc_now_s(), wait = 0, tteach = 0;
            int64_t n_step = 0;
            int micro = 0;
            for (; micro < p->accum_freq; micro++) {
                mc_loader_batch lb;
                int end = 0;
                double w0 = mc_now_s();
                if ((st = mc_loader_next(r.loader, &lb, &end, err)) != MC_OK) goto done;
                wait += mc_now_s() - w0;
                if (end) { epoch_over = 1; break; }
                r.batches_in_epoch++;
                mc_train_batch b = {lb.n, lb.pixels, lb.tokens, lb.syn_tokens, lb.teacher_image, lb.teacher_text,
                                    lb.teacher_syn};
                if (r.te.n) {
                    double c0 = mc_now_s();
                    if ((st = teachers_embed(&r.te, &b, err)) != MC_OK) goto done;
                    tteach += mc_now_s() - c0;
                } else if (distill && lb.teacher_dim > 0) {
                    int sum = 0;
                    for (int k = 0; k < lp.n_teachers; k++) sum += lp.teacher_dims[k];
                    if (lp.n_teachers == 0 || sum != lb.teacher_dim) {
                        st = mc_fail(err, MC_ERR_INVALID_ARG,
                                     "train: the shards' teacher embeddings are %d wide; --distill-teacher-dimension "
                                     "must list the teachers' widths adding up to that (e.g. %d %d)",
                                     lb.teacher_dim, lb.teacher_dim / 2, lb.teacher_dim - lb.teacher_dim / 2);
                        goto done;
                    }
                }
                if (!gathered) {
                    if ((st = mc_trainer_forward_backward(r.t, &b, &res, err)) != MC_OK) goto done;
                } else if ((st = keep_batch(&r.slots[micro], &b, r.m.cfg.image_size, r.m.cfg.context_length,
                                            distill ? teacher_width(&lp) : 0, err)) != MC_OK) {
                    goto done;
                }
                n_step += lb.n;
            }
            if (r.world > 1) {   /* a step only when every rank has its batches */
                int all_ok = 0;
                if ((st = mc_dist_all_ok(p->dist, !epoch_over, &all_ok, err)) != MC_OK) goto done;
                if (!all_ok && !epoch_over) {
                    epoch_over = 1;
                    note(p, "epoch %d: another rank's shards ran out", r.epoch + 1);
                }
            }
            if (epoch_over) {
                if (micro > 0) {   /* an incomplete accumulation at the end of the data is dropped */
                    mc_trainer_zero_grad(r.t);
                    note(p, "epoch %d: the data ended inside an accumulation of %d batches; dropped", r.epoch + 1, micro);
                }
                if (step_in_epoch < r.steps_per_epoch)
                    note(p, "epoch %d: the shards ran out after %lld of %lld steps", r.epoch + 1,
                         (long long)step_in_epoch, (long long)r.steps_per_epoch);
                break;
            }
            if (!gathered) {
                if ((st = mc_trainer_step(r.t, &res, err)) != MC_OK) goto done;
            } else {
                mc_train_batch mb[64];
                for (int j = 0; j < p->accum_freq; j++) mb[j] = r.slots[j].b;
                if ((st = mc_trainer_train_step_dist(r.t, mb, p->accum_freq, &r.coll, &res, err)) != MC_OK) goto done;
            }
            memcpy(s.terms, res.terms, sizeof s.terms);
            step_in_epoch++;
            n_step *= r.world;   /* every rank's batches are the same size */
            r.samples += n_step;
            s.step = mc_trainer_steps_done(r.t);
            s.total_steps = r.total_steps;
            s.epoch = r.epoch;
            s.epochs = p->epochs;
            s.step_in_epoch = step_in_epoch;
            s.steps_per_epoch = r.steps_per_epoch;
            s.samples = r.samples;
            s.lr = res.lr;
            s.contrastive_loss = s.terms[0] + s.terms[2];
            s.distill_loss = s.terms[1] + s.terms[3];
            s.loss = s.contrastive_loss + s.distill_loss;
            mc_tparam *ls = mc_trainer_find(r.t, "logit_scale");
            s.logit_scale = ls ? expf(ls->w[0]) : NAN;
            s.grad_norm = res.grad_norm;
            double dt = mc_now_s() - t0;
            s.images_per_s = dt > 0 ? n_step / dt : 0;
            s.data_wait = wait;
            s.t_forward = res.t_forward;
            s.t_loss = res.t_loss;
            s.t_backward = res.t_backward;
            s.t_optim = res.t_optim;
            s.t_teacher = tteach;
            s.t_comm = res.t_comm;
            log_step(&r, &s);
            if (p->cb.step) p->cb.step(p->cb.ud, &s);
            if (!isfinite(s.loss)) {
                st = mc_fail(err, MC_ERR_INVALID_ARG,
                             "train: the loss is not finite at step %lld; stopping (the last checkpoint is %s)",
                             (long long)s.step, r.last_ckpt[0] ? r.last_ckpt : "none");
                goto done;
            }
            int stop_now = p->stop && *p->stop;
            if (r.world > 1) {   /* a signal reaches the ranks at different moments: stop together */
                int none = 0;
                if ((st = mc_dist_all_ok(p->dist, !stop_now, &none, err)) != MC_OK) goto done;
                stop_now = !none;
            }
            r.stopping = stop_now;
            if ((p->save_every_n_steps > 0 && s.step % p->save_every_n_steps == 0 && step_in_epoch < r.steps_per_epoch) ||
                (stop_now && step_in_epoch < r.steps_per_epoch)) {
                char file[64];
                snprintf(file, sizeof file, "step_%lld.safetensors", (long long)s.step);
                if ((st = save_state(&r, file, err)) != MC_OK) goto done;
                /* keep the two most recent step checkpoints */
                if (r.recent[1][0] && strcmp(r.recent[1], r.last_ckpt)) remove(r.recent[1]);
                memcpy(r.recent[1], r.recent[0], sizeof r.recent[1]);
                snprintf(r.recent[0], sizeof r.recent[0], "%s", r.last_ckpt);
                note(p, "saved %s", r.last_ckpt);
            }
            if (stop_now && step_in_epoch < r.steps_per_epoch) {
                note(p, "interrupted at step %lld; continue with --resume latest", (long long)s.step);
                if (out) out->interrupted = 1;
                goto finish;
            }
        }
        /* the end of an epoch */
        int ended = r.epoch;
        r.epoch++;
        r.batches_in_epoch = 0;
        int eval_now = p->zeroshot_frequency > 0 && (ended + 1) % p->zeroshot_frequency == 0 &&
                       (p->imagenet_val || p->retrieval_data);
        int save_epoch = p->save_frequency > 0 && (ended + 1) % p->save_frequency == 0;
        char file[64];
        if (p->save_most_recent || eval_now || r.stopping) {
            if ((st = save_state(&r, "epoch_latest.safetensors", err)) != MC_OK) goto done;
        }
        if (save_epoch || r.epoch == p->epochs) {
            snprintf(file, sizeof file, "epoch_%d.safetensors", ended + 1);
            if ((st = save_state(&r, file, err)) != MC_OK) goto done;
            note(p, "saved %s", r.last_ckpt);
        }
        if (eval_now && (st = evaluate(&r, ended, err)) != MC_OK) goto done;
        if (eval_now && r.rank == 0) write_report(&r);   /* with the new results */
        if (r.epoch < p->epochs && r.stopping) {
            note(p, "interrupted after epoch %d; continue with --resume latest", ended + 1);
            if (out) out->interrupted = 1;
            goto finish;
        }
        if (r.epoch < p->epochs && (st = mc_loader_set_epoch(r.loader, r.epoch, err)) != MC_OK) goto done;
    }
finish:
    if (out) {
        out->steps = mc_trainer_steps_done(r.t);
        out->samples = r.samples;
        out->last_loss = s.loss;
        snprintf(out->folder, sizeof out->folder, "%s", r.dir);
        snprintf(out->last_checkpoint, sizeof out->last_checkpoint, "%s", r.last_ckpt);
    }
    st = MC_OK;
done:
    if (r.log) fclose(r.log);
    for (int j = 0; j < 64; j++) { free(r.slots[j].pixels); free(r.slots[j].tokens); free(r.slots[j].teach); }
    mc_loader_close(r.loader);
    teachers_free(&r.te);
    mc_trainer_free(r.t);
    mc_tokenizer_free(r.tok);
    mc_checkpoint_close(start);
    free(r.m.config_text);
    return st;
}
