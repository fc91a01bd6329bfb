/*
 * cmd_train.c - 'train': a training run with open_clip_train's command line
 * (the flags of Apple's run_datacompdr12m.sh / run_dfndr2b.sh), driving
 * mc_run_train (src/run/run.h).  Flags that only mean something for PyTorch
 * or GPUs are accepted with a one-line note; flags whose meaning we do not
 * implement are refused, never silently misread.  Ctrl-C (SIGINT) or SIGTERM
 * saves a checkpoint after the step in progress and exits; 'train --resume
 * latest' continues bit for bit.
 */
#include "cli.h"
#include "progress.h"

#include "run/run.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { T_FLAG, T_STR, T_INT, T_I64, T_FLOAT, T_FLOATS, T_INTS, T_NOTE_FLAG, T_NOTE_VALUE } opt_type;

typedef struct train_opt {
    const char *name;
    opt_type type;
    const char *help;
} train_opt;

/* The options, open_clip's spelling.  T_NOTE_*: accepted with a note. */
static const train_opt topts[] = {
    {"train-data", T_STR, "SHARDS  webdataset shards: brace lists, '::' joins lists"},
    {"train-num-samples", T_I64, "N  samples per epoch (default: one pass over the shards, counted)"},
    {"dataset-type", T_STR, "T  webdataset (the only type)"},
    {"dataset-resampled", T_FLAG, "draw shards with replacement (needs --train-num-samples)"},
    {"shuffle-buffer", T_INT, "N  samples in the shuffle buffer (default 1000; 0: read in order)"},
    {"batch-size", T_INT, "N  samples per batch (default 64)"},
    {"epochs", T_INT, "N  (default 32)"},
    {"lr", T_FLOAT, "X  peak learning rate (default 5e-4)"},
    {"wd", T_FLOAT, "X  weight decay (default 0.2)"},
    {"beta1", T_FLOAT, "X  AdamW beta1 (default 0.9)"},
    {"beta2", T_FLOAT, "X  AdamW beta2 (default 0.98 for names with 'vit', else 0.999)"},
    {"eps", T_FLOAT, "X  AdamW eps (default 1e-6 for names with 'vit', else 1e-8)"},
    {"warmup", T_INT, "N  linear warm-up steps, then cosine to 0 (default 10000)"},
    {"lr-scheduler", T_STR, "S  cosine (the only schedule)"},
    {"grad-clip-norm", T_FLOAT, "X  clip the global gradient norm (default: off)"},
    {"accum-freq", T_INT, "N  micro-batches per step; gradients are averaged (docs/training.md)"},
    {"seed", T_I64, "N  (default 0)"},
    {"workers", T_INT, "N  loader threads (default 2)"},
    {"model", T_STR, "M  official name (mobileclip_s0 ...) or a folder with config.json"},
    {"pretrained", T_STR, "FILE  starting weights (default: the folder's checkpoint, or a seeded random init)"},
    {"dataset-reinforcement", T_FLAG, "DataCompDR shards: stored augmentations, synthetic captions, teachers"},
    {"dataset-reinforcement-config", T_STR, "FILE  the augmentation layout of the stored parameters"},
    {"dataset-reinforcement-mix-synthetic", T_FLAG, "replace the caption by a synthetic one (no second batch)"},
    {"dataset-reinforcement-mix-synthetic-ratio", T_FLOAT, "R  probability of the replacement (default 0)"},
    {"dataset-reinforcement-syn-text-key-regex", T_STR, "RE  synthetic-caption keys (default ^syn_text.*$)"},
    {"dataset-reinforcement-sample-sequential", T_FLAG, "augmentation and caption epoch % n instead of random"},
    {"distill-logit-scale", T_FLOATS, "A [B..]  teacher logit scales (one value: every teacher)"},
    {"distill-loss-weights", T_FLOATS, "W0 W1  contrastive and distillation weights (default 0 1)"},
    {"distill-teacher-dimension", T_INTS, "D [D..]  widths of the teachers' stored embeddings"},
    {"distill-average-after-softmax", T_FLAG, "average the teachers' probabilities (the only rule)"},
    {"distill-model", T_STR, "M[,M..]  online teachers: models this engine loads"},
    {"distill-pretrained", T_STR, "F[,F..]  their checkpoints (a file replaces the model entry)"},
    {"save-frequency", T_INT, "N  epochs between epoch_N checkpoints (default 1; 0: only the last)"},
    {"save-most-recent", T_FLAG, "also keep epoch_latest, rewritten every epoch"},
    {"save-every-n-steps", T_INT, "N  mid-epoch checkpoints every N steps (the last two kept)"},
    {"resume", T_STR, "latest|FILE  continue a run"},
    {"logs", T_STR, "DIR  where runs go (default ./logs)"},
    {"name", T_STR, "NAME  the run's folder name (default: date, model, lr, batch)"},
    {"log-every-n-steps", T_INT, "N  print a line every N steps (default 100; train.jsonl has every step)"},
    {"imagenet-val", T_STR, "DIR  ImageFolder tree for zero-shot evaluation"},
    {"zeroshot-classnames", T_STR, "FILE  class names, one a line (default: the folder names)"},
    {"zeroshot-templates", T_STR, "FILE  prompt templates with {} (default: a small built-in set)"},
    {"retrieval", T_STR, "SHARDS  image-text shards for retrieval evaluation"},
    {"zeroshot-frequency", T_INT, "N  epochs between evaluations (default 2)"},
    {"threads", T_INT, "N  compute threads (default: the OpenMP default)"},
    {"vocab", T_STR, "FILE  the BPE vocabulary"},
    {"dist-timeout", T_FLOAT, "S  under mpirun: seconds a rank waits for the others before the job ends (default 900)"},
    {"local-loss", T_FLAG, "each rank computes the loss of its own samples' rows only (MPI)"},
    {"gather-with-grad", T_FLAG, "gradients flow back through the feature gather: the exact gradient (MPI)"},
    {"precision", T_NOTE_VALUE, "P  (float32 always)"},
    {"ddp-static-graph", T_NOTE_FLAG, "(PyTorch DDP only)"},
    {"grad-checkpointing", T_FLAG, "blocks keep only their input and run again in the backward pass (same numbers, less memory)"},
    {"report-to", T_NOTE_VALUE, "S  (logs go to train.jsonl)"},
    {"wandb-project-name", T_NOTE_VALUE, "S  (no wandb)"},
    {"dist-url", T_NOTE_VALUE, "S  (ranks come from mpirun / srun)"},
    {"dist-backend", T_NOTE_VALUE, "S  (MPI)"},
    {"torchscript", T_NOTE_FLAG, "(PyTorch only)"},
    {"use-bn-sync", T_NOTE_FLAG, "(BatchNorm statistics stay per rank)"},
};
#define N_TOPTS ((int)(sizeof topts / sizeof topts[0]))

typedef struct parsed {
    int count[N_TOPTS];
    const char *val[N_TOPTS];          /* T_STR, T_INT, ...: the last value */
    const char *multi[N_TOPTS][8];     /* T_FLOATS / T_INTS */
    int n_multi[N_TOPTS];
} parsed;

static int find_topt(const char *name, size_t len) {
    for (int i = 0; i < N_TOPTS; i++)
        if (strlen(topts[i].name) == len && !strncmp(topts[i].name, name, len)) return i;
    return -1;
}

static void usage(FILE *f) {
    fprintf(f, "usage: mobileclip train --train-data SHARDS --model M [options]\n\n"
               "Trains a MobileCLIP model with open_clip_train's flags (Apple's training scripts run with\n"
               "'mobileclip train' in place of 'python -m open_clip_train.main'): plain CLIP training on\n"
               "image-text shards, or multi-modal reinforced training on DataCompDR shards\n"
               "(--dataset-reinforcement), with logs, checkpoints, exact resume and evaluation in\n"
               "LOGS/NAME/ (docs/training.md).\n\noptions:\n");
    for (int i = 0; i < N_TOPTS; i++) {
        char flag[64];
        snprintf(flag, sizeof flag, "--%s", topts[i].name);
        fprintf(f, "  %-44s %s\n", flag, topts[i].help);
    }
    fprintf(f, "  %-44s %s\n", "-h, --help", "show this help");
}

static int is_number(const char *s) {
    char *e = NULL;
    errno = 0;
    strtod(s, &e);
    return e && e != s && !*e;
}

static int parse_args(int argc, char **argv, parsed *p, int *help) {
    memset(p, 0, sizeof *p);
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { *help = 1; continue; }
        if (strncmp(a, "--", 2)) return cli_errorf("train: unexpected argument '%s' (options only; see --help)", a);
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        int k = find_topt(a + 2, len);
        if (k < 0) return cli_errorf("train: unknown option '%.*s' (see --help)", (int)len + 2, a);
        p->count[k]++;
        opt_type t = topts[k].type;
        if (t == T_FLAG || t == T_NOTE_FLAG) {
            if (eq) return cli_errorf("train: --%s takes no value", topts[k].name);
            continue;
        }
        if (t == T_FLOATS || t == T_INTS) {   /* nargs="+": values up to the next option */
            p->n_multi[k] = 0;
            if (eq) p->multi[k][p->n_multi[k]++] = eq + 1;
            while (i + 1 < argc && is_number(argv[i + 1])) {
                if (p->n_multi[k] >= 8) return cli_errorf("train: --%s takes at most 8 values", topts[k].name);
                p->multi[k][p->n_multi[k]++] = argv[++i];
            }
            if (p->n_multi[k] == 0) return cli_errorf("train: --%s needs one or more numbers", topts[k].name);
            continue;
        }
        if (eq) p->val[k] = eq + 1;
        else if (i + 1 < argc) p->val[k] = argv[++i];
        else return cli_errorf("train: --%s needs a value", topts[k].name);
    }
    return 0;
}

static const char *get(const parsed *p, const char *name) {
    int k = find_topt(name, strlen(name));
    return k >= 0 ? p->val[k] : NULL;
}
static int has(const parsed *p, const char *name) {
    int k = find_topt(name, strlen(name));
    return k >= 0 && p->count[k] > 0;
}

static int get_int(const parsed *p, const char *name, int *out) {
    const char *v = get(p, name);
    if (v && cli_parse_int(v, out)) return cli_errorf("train: --%s: '%s' is not an integer", name, v);
    return 0;
}
static int get_i64(const parsed *p, const char *name, int64_t *out) {
    const char *v = get(p, name);
    if (!v) return 0;
    char *e = NULL;
    errno = 0;
    long long x = strtoll(v, &e, 10);
    if (!e || *e || errno) return cli_errorf("train: --%s: '%s' is not an integer", name, v);
    *out = (int64_t)x;
    return 0;
}
static int get_float(const parsed *p, const char *name, float *out) {
    const char *v = get(p, name);
    if (!v) return 0;
    char *e = NULL;
    double x = strtod(v, &e);
    if (!e || *e || !isfinite(x)) return cli_errorf("train: --%s: '%s' is not a number", name, v);
    *out = (float)x;
    return 0;
}

/* "a,b,c" into at most max pieces (in place). */
static int split_commas(char *s, const char **out, int max) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ",")) out[n++] = tok;
    return n;
}

/* ---------------------------------------------------------------- the run */

static volatile int stop_flag = 0;
static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

typedef struct train_ui {
    int every;
    int tty;
    cli_progress bar;
    const char *bar_what;
    double t_start;
    int64_t first_step;
} train_ui;

static void ui_note(void *ud, const char *msg) {
    train_ui *u = ud;
    if (u->bar.drawn) cli_progress_end(&u->bar), u->bar_what = NULL;
    fprintf(stderr, "train: %s\n", msg);
}

static void ui_progress(void *ud, const char *what, int64_t done, int64_t total) {
    train_ui *u = ud;
    if (u->bar_what != what) {
        if (u->bar_what) cli_progress_end(&u->bar);
        cli_progress_start(&u->bar, what, total, 0, 1);
        u->bar_what = what;
    }
    cli_progress_update(&u->bar, done);
    if (done >= total) { cli_progress_end(&u->bar); u->bar_what = NULL; }
}

static void ui_step(void *ud, const mc_run_step *s) {
    train_ui *u = ud;
    if (u->first_step < 0) { u->first_step = s->step - 1; u->t_start = cli_now_s(); }
    double el = cli_now_s() - u->t_start;
    double per = el / (double)(s->step - u->first_step);
    double eta = per * (double)(s->total_steps - s->step);
    if (u->tty) {
        fprintf(stderr, "\r\033[Kepoch %d/%d step %lld/%lld [%lld/%lld] loss %.4f lr %.3g %.1f img/s eta %02d:%02d:%02d",
                s->epoch + 1, s->epochs, (long long)s->step, (long long)s->total_steps, (long long)s->step_in_epoch,
                (long long)s->steps_per_epoch, (double)s->loss, (double)s->lr, s->images_per_s, (int)(eta / 3600),
                (int)fmod(eta / 60, 60), (int)fmod(eta, 60));
    }
    if (u->every > 0 && (s->step % u->every == 0 || s->step == s->total_steps)) {
        if (u->tty) fprintf(stderr, "\r\033[K");
        fprintf(stderr,
                "train: epoch %d/%d step %lld/%lld samples %lld loss %.6f (contrastive %.6f distill %.6f) "
                "lr %.4g logit_scale %.3f grad_norm %.4f %.2f img/s data_wait %.3f s\n",
                s->epoch + 1, s->epochs, (long long)s->step, (long long)s->total_steps, (long long)s->samples,
                (double)s->loss, (double)s->contrastive_loss, (double)s->distill_loss, (double)s->lr,
                (double)s->logit_scale, (double)s->grad_norm, s->images_per_s, s->data_wait);
    }
}

int cmd_train(int argc, char **argv) {
    parsed a;
    int help = 0;
    if (parse_args(argc, argv, &a, &help)) return 2;
    if (help) { usage(stdout); return 0; }
    if (!has(&a, "train-data") || !has(&a, "model")) {
        usage(stderr);
        { cli_errorf("train: --train-data and --model are required"); return 2; }
    }
    mc_run_params p = mc_run_default_params();
    p.train_data = get(&a, "train-data");
    p.model = get(&a, "model");
    p.pretrained = get(&a, "pretrained");
    p.dataset_resampled = has(&a, "dataset-resampled");
    p.local_loss = has(&a, "local-loss");
    p.gather_with_grad = has(&a, "gather-with-grad");
    p.dataset_reinforcement = has(&a, "dataset-reinforcement");
    p.dr_config = get(&a, "dataset-reinforcement-config");
    p.mix_synthetic = has(&a, "dataset-reinforcement-mix-synthetic");
    p.syn_text_key_regex = get(&a, "dataset-reinforcement-syn-text-key-regex");
    p.sample_sequential = has(&a, "dataset-reinforcement-sample-sequential");
    p.save_most_recent = has(&a, "save-most-recent");
    p.grad_checkpointing = has(&a, "grad-checkpointing");
    p.resume = get(&a, "resume");
    if (get(&a, "logs")) p.logs = get(&a, "logs");
    p.name = get(&a, "name");
    p.imagenet_val = get(&a, "imagenet-val");
    p.eval_classnames = get(&a, "zeroshot-classnames");
    p.eval_templates = get(&a, "zeroshot-templates");
    p.retrieval_data = get(&a, "retrieval");
    p.vocab_path = get(&a, "vocab");
    int64_t seed = 0;
    float beta2 = -1;
    if (get_i64(&a, "train-num-samples", &p.train_num_samples) || get_int(&a, "shuffle-buffer", &p.shuffle_buffer) ||
        get_int(&a, "batch-size", &p.batch_size) || get_int(&a, "epochs", &p.epochs) ||
        get_float(&a, "lr", &p.lr) || get_float(&a, "wd", &p.wd) || get_float(&a, "beta1", &p.beta1) ||
        get_float(&a, "beta2", &beta2) || get_float(&a, "eps", &p.eps) || get_int(&a, "warmup", &p.warmup) ||
        get_float(&a, "grad-clip-norm", &p.grad_clip_norm) || get_int(&a, "accum-freq", &p.accum_freq) ||
        get_i64(&a, "seed", &seed) || get_int(&a, "workers", &p.workers) ||
        get_float(&a, "dataset-reinforcement-mix-synthetic-ratio", &p.mix_synthetic_ratio) ||
        get_int(&a, "save-frequency", &p.save_frequency) || get_int(&a, "save-every-n-steps", &p.save_every_n_steps) ||
        get_int(&a, "log-every-n-steps", &p.log_every_n_steps) ||
        get_int(&a, "zeroshot-frequency", &p.zeroshot_frequency) || get_int(&a, "threads", &p.threads))
        return 2;
    p.seed = (uint64_t)seed;
    p.beta2 = beta2;   /* < 0: open_clip's default for the model name */
    if (get(&a, "dataset-type") && strcmp(get(&a, "dataset-type"), "webdataset"))
        { cli_errorf("train: --dataset-type %s: only webdataset shards are read", get(&a, "dataset-type")); return 2; }
    if (get(&a, "lr-scheduler") && strcmp(get(&a, "lr-scheduler"), "cosine"))
        { cli_errorf("train: --lr-scheduler %s: only cosine (with linear warm-up) is implemented",
                          get(&a, "lr-scheduler")); return 2; }
    /* distillation */
    int kw = find_topt("distill-loss-weights", 20), ks = find_topt("distill-logit-scale", 19),
        kd = find_topt("distill-teacher-dimension", 25);
    if (a.n_multi[kw]) {
        if (a.n_multi[kw] != 2) { cli_errorf("train: --distill-loss-weights takes two numbers (contrastive, distillation)"); return 2; }
        p.loss_weights[0] = strtof(a.multi[kw][0], NULL);
        p.loss_weights[1] = strtof(a.multi[kw][1], NULL);
    } else if (!p.dataset_reinforcement && !has(&a, "distill-model")) {
        p.loss_weights[0] = 1.0f;   /* plain CLIP training */
        p.loss_weights[1] = 0.0f;
    }
    p.n_teachers = a.n_multi[kd];
    for (int i = 0; i < p.n_teachers; i++) {
        p.teacher_dims[i] = atoi(a.multi[kd][i]);
        if (p.teacher_dims[i] < 1) { cli_errorf("train: --distill-teacher-dimension: '%s' is not a width", a.multi[kd][i]); return 2; }
    }
    char dm_buf[4096], dp_buf[4096];
    const char *dms[MC_RUN_MAX_TEACHERS], *dps[MC_RUN_MAX_TEACHERS];
    int ndm = 0, ndp = 0;
    if (get(&a, "distill-model")) {
        snprintf(dm_buf, sizeof dm_buf, "%s", get(&a, "distill-model"));
        ndm = split_commas(dm_buf, dms, MC_RUN_MAX_TEACHERS);
        if (get(&a, "distill-pretrained")) {
            snprintf(dp_buf, sizeof dp_buf, "%s", get(&a, "distill-pretrained"));
            ndp = split_commas(dp_buf, dps, MC_RUN_MAX_TEACHERS);
            if (ndp != ndm) { cli_errorf("train: --distill-pretrained names %d teachers, --distill-model %d", ndp, ndm); return 2; }
        }
        for (int i = 0; i < ndm; i++) p.distill_models[i] = ndp && access(dps[i], F_OK) == 0 ? dps[i] : dms[i];
        p.n_distill_models = ndm;
    }
    int nteach = p.n_distill_models ? p.n_distill_models : p.n_teachers;
    if (a.n_multi[ks]) {
        if (a.n_multi[ks] != 1 && a.n_multi[ks] != nteach)
            { cli_errorf("train: --distill-logit-scale gives %d values for %d teachers", a.n_multi[ks], nteach); return 2; }
        int n = a.n_multi[ks] == 1 ? MC_RUN_MAX_TEACHERS : a.n_multi[ks];   /* one value: every teacher */
        for (int i = 0; i < n; i++) p.teacher_scales[i] = strtof(a.multi[ks][a.n_multi[ks] == 1 ? 0 : i], NULL);
    }
    int distill = p.loss_weights[1] != 0;
    if (distill && p.dataset_reinforcement && !p.n_distill_models && p.n_teachers == 0)
        { cli_errorf("train: distillation from the shards needs --distill-teacher-dimension (the widths of the "
                          "stored teacher embeddings, e.g. 768 768)"); return 2; }
    if (distill && !has(&a, "distill-average-after-softmax"))
    {
        cli_errorf("train: distillation averages the teachers' probabilities (--distill-average-after-softmax, "
                   "as all of Apple's scripts do); averaging logits is not implemented");
        return 2;
    }

    train_ui ui = {p.log_every_n_steps, isatty(2) && !getenv("MOBILECLIP_NO_PROGRESS"), {0}, NULL, 0, -1};
    for (int i = 0; i < N_TOPTS; i++)
        if ((topts[i].type == T_NOTE_FLAG || topts[i].type == T_NOTE_VALUE) && a.count[i])
            fprintf(stderr, "train: note: --%s accepted and ignored %s\n", topts[i].name, topts[i].help);
    if (a.n_multi[ks] == 1 && nteach > 1)
        fprintf(stderr, "train: note: one --distill-logit-scale for %d teachers: each gets %g\n", nteach,
                (double)p.teacher_scales[0]);
    /* the command line, for params.json */
    size_t cl = 1;
    for (int i = 0; i < argc; i++) cl += strlen(argv[i]) + 3;
    char *cmdline = malloc(cl + 16);
    if (cmdline) {
        size_t n = (size_t)snprintf(cmdline, cl + 16, "mobileclip");
        for (int i = 0; i < argc; i++) n += (size_t)snprintf(cmdline + n, cl + 16 - n, " %s", argv[i]);
    }
    p.command_line = cmdline;
    p.stop = &stop_flag;
    p.cb = (mc_run_callbacks){&ui, ui_note, ui_step, ui_progress};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    cli_keep_heap();

    mc_error err;
    mc_error_clear(&err);
    mc_dist *dist = NULL;
    if (mc_dist_init(&argc, &argv, &dist, &err) != MC_OK) { free(cmdline); return cli_error(&err); }
    float timeout = 900;
    if (get_float(&a, "dist-timeout", &timeout)) { mc_dist_finish(dist); free(cmdline); return 2; }
    mc_dist_set_timeout(dist, timeout);
    p.dist = dist;
    int rank = mc_dist_rank(dist), world = mc_dist_world(dist);
    if (world > 1 && rank == 0) fprintf(stderr, "train: %d ranks (%s)\n", world, mc_dist_describe(dist));
    if (rank != 0) ui.tty = 0;
    mc_run_result res;
    mc_status st = mc_run_train(&p, &res, &err);
    if (ui.tty) fprintf(stderr, "\r\033[K");
    free(cmdline);
    if (st != MC_OK) {
        if (world > 1) {   /* the other ranks would wait for this one: end the job, naming the rank */
            fprintf(stderr, "mobileclip: rank %d of %d: %s\n", rank, world, err.message);
            fflush(stderr);
            mc_dist_abort(dist, 1);
        }
        mc_dist_finish(dist);
        return cli_error(&err);
    }
    mc_dist_finish(dist);
    if (rank != 0) return res.interrupted ? 130 : 0;
    printf("train: %s: %lld steps, %lld samples, last loss %.6f%s%s%s\n", res.folder, (long long)res.steps,
           (long long)res.samples, (double)res.last_loss, res.last_checkpoint[0] ? ", checkpoint " : "",
           res.last_checkpoint, res.interrupted ? " (interrupted: continue with --resume latest)" : "");
    return res.interrupted ? 130 : 0;
}
