/*
 * cmd_bench_train.c - 'bench-train': times full training steps (forward +
 * backward + AdamW) of a full-size built-in model with seeded random weights,
 * images, captions and teacher embeddings, or with batches from DataCompDR
 * shards through the training loader.
 */
#include "cli.h"
#include "progress.h"

#include "data/loader.h"
#include "kernels/dispatch.h"
#include "model/synth.h"
#include "train/trainer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t bt_rng = 0x853c49e6748fea9bull;
static float bt_rand(void) {   /* uniform in [0, 1) */
    bt_rng ^= bt_rng << 13; bt_rng ^= bt_rng >> 7; bt_rng ^= bt_rng << 17;
    return (float)((bt_rng >> 11) * (1.0 / 9007199254740992.0));
}

/* rows of n x (2 x 512) teacher embeddings, each half L2-normalised */
static void bt_teachers(float *t, int n, int d) {
    for (int i = 0; i < 2 * n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) { t[(size_t)i * d + j] = bt_rand() - 0.5f; s += (double)t[(size_t)i * d + j] * t[(size_t)i * d + j]; }
        for (int j = 0; j < d; j++) t[(size_t)i * d + j] = (float)(t[(size_t)i * d + j] / sqrt(s));
    }
}

static const cli_opt bt_opts[] = {
    {"model", 'm', 1, 0, "NAME  built-in mobileclip-repo model (default mobileclip_s0)"},
    {"batch", 'b', 1, 0, "N     images per step (default 8)"},
    {"steps", 's', 1, 0, "N     timed steps (default 2)"},
    {"warmup", 'w', 1, 0, "N     untimed steps first (default 1)"},
    {"threads", 't', 1, 0, "N     OpenMP threads (default: the OpenMP default)"},
    {"train-data", 0, 1, 0, "SHARDS  take the batches from DataCompDR shards (resampled, endless)\n"
                            "                      through the training loader, and report the time spent\n"
                            "                      waiting for data"},
    {"workers", 0, 1, 0, "N     loader threads with --train-data (default 2)"},
    {"teacher-dims", 0, 1, 0, "a,b   teacher widths of the shards' embeddings (default: two halves)"},
    {"grad-checkpointing", 0, 0, 0, "  blocks keep only their input and run again in the backward pass"},
};

/* The memory figures' budget: the largest batch whose step fits in this much. */
#define BT_BUDGET_MB (24.0 * 1024)

/* --train-data: the loader over the shards, endless, at the model's size. */
static int bt_loader_open(const char *shards, int batch, int size, int workers, mc_tokenizer **tok,
                          mc_loader **out) {
    mc_error err;
    mc_error_clear(&err);
    char vocab[4096];
    mc_status st = mc_tokenizer_find_vocab(NULL, vocab, sizeof vocab, &err);
    if (st == MC_OK) st = mc_tokenizer_load(vocab, tok, &err);
    if (st != MC_OK) return cli_error(&err);
    mc_loader_params lp = mc_loader_default_params();
    lp.shards = shards;
    lp.tok = *tok;
    lp.image_size = size;
    lp.batch_size = batch;
    lp.workers = workers;
    lp.resampled = 1;
    lp.shuffle_buffer = 256;
    if (mc_loader_open(&lp, out, &err) != MC_OK) return cli_error(&err);
    return 0;
}

int cmd_bench_train(int argc, char **argv) {
    cli_args a;
    int help = 0;
    int nopt = (int)(sizeof bt_opts / sizeof bt_opts[0]);
    if (cli_parse(argc, argv, bt_opts, nopt, &a, &help)) return 2;
    if (help || a.n_pos != 0) {
        cli_print_help(help ? stdout : stderr, "mobileclip bench-train [options]",
                       "Times full training steps (image tower, text tower on real and synthetic\n"
                       "captions, DR loss with two 512-d teachers, backward, AdamW) of a full-size\n"
                       "built-in model (mobileclip-repo layout) with seeded random weights and\n"
                       "random images, captions and teacher embeddings; prints images per second,\n"
                       "the kernel set, the mean time per step of each phase (forward, loss,\n"
                       "backward, optimizer) and the resident memory (after the build, with the\n"
                       "gradients and AdamW moments resident, the peak, per image what a step\n"
                       "adds to that state, the largest batch that fits in 24 GiB at that rate,\n"
                       "and the trainer's own count of its activation buffers).",
                       bt_opts, nopt);
        cli_args_free(&a);
        return help ? 0 : 2;
    }
    const char *name = cli_get(&a, "model") ? cli_get(&a, "model") : "mobileclip_s0";
    int batch = 8, steps = 2, warmup = 1, threads = 0, workers = 2;
    const char *train_data = cli_get(&a, "train-data");
    const int ckpt = cli_has(&a, "grad-checkpointing");
    int tdims[2] = {0, 0};
    if (cli_get(&a, "teacher-dims") &&
        (sscanf(cli_get(&a, "teacher-dims"), "%d,%d", &tdims[0], &tdims[1]) != 2 || tdims[0] < 1 || tdims[1] < 1)) {
        cli_args_free(&a);
        return cli_errorf("bench-train: --teacher-dims a,b with two positive widths");
    }
    if ((cli_get(&a, "workers") && (cli_parse_int(cli_get(&a, "workers"), &workers) || workers < 1)) ||
        (cli_get(&a, "batch") && (cli_parse_int(cli_get(&a, "batch"), &batch) || batch < 2)) ||
        (cli_get(&a, "steps") && (cli_parse_int(cli_get(&a, "steps"), &steps) || steps < 1)) ||
        (cli_get(&a, "warmup") && (cli_parse_int(cli_get(&a, "warmup"), &warmup) || warmup < 0)) ||
        (cli_get(&a, "threads") && (cli_parse_int(cli_get(&a, "threads"), &threads) || threads < 1))) {
        cli_args_free(&a);
        return cli_errorf("bench-train: --batch needs N >= 2, --steps N >= 1, --warmup N >= 0, --threads N >= 1");
    }
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
    threads = omp_get_max_threads();
#else
    threads = 1;
#endif
    mc_error err;
    mc_error_clear(&err);
    mc_arch_spec spec;
    mc_config mcfg;
    mc_checkpoint *ck = NULL;
    mc_trainer *t = NULL;
    float *px = NULL, *teach = NULL;
    int32_t *tok = NULL;
    mc_tokenizer *vocab = NULL;
    mc_loader *loader = NULL;
    int rc = 1;
    mc_status st = mc_arch_spec_builtin(name, &spec, &mcfg, &err);
    if (st == MC_OK && !spec.v1) st = mc_fail(&err, MC_ERR_UNSUPPORTED, "bench-train: '%s' is not a mobileclip-repo model", name);
    if (st == MC_OK) st = mc_synth_checkpoint(&spec, 1234, 1, 1, &ck, &err);
    if (st != MC_OK) { rc = cli_error(&err); goto done; }
    mc_train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.image_arch, sizeof cfg.image_arch, "%.31s", mcfg.image_arch);
    snprintf(cfg.text_arch, sizeof cfg.text_arch, "%.31s", mcfg.text_arch);
    cfg.image_size = mcfg.image_size;
    cfg.context_length = mcfg.context_length;
    cfg.text_heads[0] = mcfg.text_heads > 0 ? mcfg.text_heads : 8;
    cfg.n_text_heads = 1;
    cfg.causal = mcfg.causal;
    cfg.bn_momentum = 0.1f;
    int S = cfg.image_size, L = cfg.context_length, td = 1024;
    mc_loader_batch lb;
    if (train_data) {
        int end = 0;
        cli_keep_heap();
        if (bt_loader_open(train_data, batch, S, workers, &vocab, &loader) != 0) goto done;
        if ((st = mc_loader_next(loader, &lb, &end, &err)) != MC_OK) { rc = cli_error(&err); goto done; }
        td = lb.teacher_dim;
        if (!tdims[0]) tdims[0] = td / 2, tdims[1] = td - td / 2;
        if (tdims[0] + tdims[1] != td) {
            rc = cli_errorf("bench-train: --teacher-dims %d,%d do not add up to the shards' %d", tdims[0], tdims[1], td);
            goto done;
        }
    } else {
        tdims[0] = tdims[1] = 512;
    }
    mc_dr_loss_params lp;
    memset(&lp, 0, sizeof lp);
    lp.n_teachers = 2;
    lp.teacher_dims[0] = tdims[0];
    lp.teacher_dims[1] = tdims[1];
    lp.teacher_scales[0] = lp.teacher_scales[1] = 100.0f;
    lp.w_contrastive = 0.25f;
    lp.w_distill = lp.lambda = 0.75f;
    mc_adamw_params op = mc_adamw_default_params();
    if ((st = mc_trainer_new(&cfg, ck, name, &lp, &op, &t, &err)) != MC_OK) { rc = cli_error(&err); goto done; }
    mc_trainer_set_grad_checkpointing(t, ckpt);
    /* The trainer holds its own copy of the weights: the built checkpoint is no
     * longer needed (as a training run, which holds one copy). */
    mc_checkpoint_close(ck);
    ck = NULL;
    double rss_build = cli_rss_mb();
    /* Make the training state (gradients, AdamW moments: zeros, allocated but
     * untouched until the first backward and step) resident, so that what a
     * step adds on top of it can be told apart.  Zeros over zeros: no value
     * changes. */
    for (size_t i = 0; i < mc_trainer_count(t); i++) {
        mc_tparam *p = mc_trainer_param(t, i);
        if (p->m) memset(p->m, 0, p->n * sizeof(float));
        if (p->v) memset(p->v, 0, p->n * sizeof(float));
    }
    mc_trainer_zero_grad(t);
    double rss_state = cli_rss_mb();
    /* The batch: the loader's, or random inputs made once. */
    mc_train_batch b;
    if (train_data) {
        b = (mc_train_batch){lb.n, lb.pixels, lb.tokens, lb.syn_tokens, lb.teacher_image, lb.teacher_text,
                             lb.teacher_syn};
    } else {
        px = malloc(sizeof *px * (size_t)batch * 3 * S * S);
        tok = malloc(sizeof *tok * (size_t)2 * batch * L);
        teach = malloc(sizeof *teach * (size_t)3 * batch * td);
        if (!px || !tok || !teach) { rc = cli_errorf("bench-train: out of memory"); goto done; }
        for (size_t i = 0; i < (size_t)batch * 3 * S * S; i++) px[i] = bt_rand();
        for (int i = 0; i < 2 * batch; i++) {   /* SOT, 10..40 words, EOT, padding */
            int len = 11 + (int)(bt_rand() * 30);
            for (int j = 0; j < L; j++)
                tok[(size_t)i * L + j] = j == 0 ? 49406 : j < len ? 256 + (int)(bt_rand() * 49000) : j == len ? 49407 : 0;
        }
        for (int k = 0; k < 3; k++) bt_teachers(teach + (size_t)k * batch * td, batch, td / 2);
        b = (mc_train_batch){batch, px, tok, tok + (size_t)batch * L, teach, teach + (size_t)batch * td,
                             teach + (size_t)2 * batch * td};
    }
    mc_train_result res;
    double t0 = 0, c0 = 0, best = INFINITY, wait = 0, ph[4] = {0, 0, 0, 0}, first = 0;
    for (int s = 0; s < warmup + steps; s++) {
        double s0 = cli_now_s();
        if (s == warmup) t0 = s0, c0 = cli_cpu_s();
        if (train_data && s > 0) {      /* the first batch came with the set-up */
            int end = 0;
            if ((st = mc_loader_next(loader, &lb, &end, &err)) != MC_OK) { rc = cli_error(&err); goto done; }
            if (s >= warmup) wait += cli_now_s() - s0;
            b = (mc_train_batch){lb.n, lb.pixels, lb.tokens, lb.syn_tokens, lb.teacher_image, lb.teacher_text,
                                 lb.teacher_syn};
        }
        memset(&res, 0, sizeof res);
        if ((st = mc_trainer_train_step(t, &b, &res, &err)) != MC_OK) { rc = cli_error(&err); goto done; }
        double dt = cli_now_s() - s0;
        if (s == 0) first = dt;
        if (s >= warmup && dt < best) best = dt;
        if (s >= warmup) {
            ph[0] += res.t_forward; ph[1] += res.t_loss; ph[2] += res.t_backward; ph[3] += res.t_optim;
        }
        fprintf(stderr, "bench-train: step %d/%d %.2f s loss %.5f resident %.0f MB\n", s + 1, warmup + steps, dt, res.loss,
                cli_rss_mb());
    }
    double mean = (cli_now_s() - t0) / steps, cpu = (cli_cpu_s() - c0) / steps;
    size_t nparam = 0;
    for (size_t i = 0; i < mc_trainer_count(t); i++)
        if (mc_trainer_param(t, i)->g) nparam += mc_trainer_param(t, i)->n;
    printf("bench-train model=%s batch=%d image=%d context=%d params=%zu threads=%d steps=%d grad_checkpointing=%d "
           "s_per_step_mean=%.3f s_per_step_min=%.3f images_per_s=%.3f loss=%.5f\n",
           name, batch, S, L, nparam, threads, steps, ckpt, mean, best, batch / mean, res.loss);
    /* Mean seconds per timed step in each phase; other: the rest of the step
     * (with --train-data, the wait for the batch); cpu: the process's CPU
     * seconds per timed step, all threads (with --train-data the loader's too). */
    for (int k = 0; k < 4; k++) ph[k] /= steps;
    /* first_step_s: the first step of the process (warm-up or timed), which
     * maps the step's memory */
    printf("bench-train kernels=%s forward_s=%.3f loss_s=%.4f backward_s=%.3f optim_s=%.3f other_s=%.4f "
           "cpu_s_per_step=%.3f first_step_s=%.3f\n", mc_kernels_name(), ph[0], ph[1], ph[2], ph[3],
           mean - ph[0] - ph[1] - ph[2] - ph[3], cpu, first);
    /* Resident memory: after building the trainer (weights), with the training
     * state resident (+ gradients, AdamW moments), the peak; per image: what a
     * step adds to the state (activations kept for the backward, workspaces);
     * max_batch_24gb: the largest batch whose peak stays within 24 GiB when all
     * that a step adds grows with the batch (the state does not), as the same
     * formula on PyTorch's figures in compare_train.sh; act_*: the trainer's own
     * count of its activation buffers (the most in use at once, the memory they
     * have touched, and all that a step made: what it would hold if nothing
     * were freed before its end). */
    double peak = cli_peak_rss_mb(), per_image = (peak - rss_state) / batch;
    mc_train_memory tm;
    mc_trainer_memory(t, &tm);
    printf("bench-train rss_build_mb=%.1f rss_state_mb=%.1f peak_rss_mb=%.1f mb_per_image=%.1f max_batch_24gb=%d "
           "act_peak_mb=%.1f act_held_mb=%.1f act_made_mb=%.1f\n",
           rss_build, rss_state, peak, per_image,
           per_image > 0 ? (int)((BT_BUDGET_MB - rss_state) / per_image) : 0,
           tm.peak_bytes / 1048576.0, tm.held_bytes / 1048576.0, tm.made_bytes / 1048576.0);
    if (train_data) {
        mc_loader_stats ls;
        mc_loader_stats_get(loader, &ls);
        printf("bench-train data=%s workers=%d data_wait_s_per_step=%.4f data_wait_pct=%.2f samples=%lld "
               "skipped=%lld\n", train_data, workers, wait / steps, 100.0 * wait / (mean * steps),
               (long long)ls.samples, (long long)ls.skipped);
    }
    rc = 0;
done:
    free(px);
    free(tok);
    free(teach);
    mc_trainer_free(t);
    mc_loader_close(loader);
    mc_tokenizer_free(vocab);
    mc_checkpoint_close(ck);
    cli_args_free(&a);
    return rc;
}
