/*
 * run/report.h - the report of training runs: one self-contained HTML page
 * (inline SVG drawn here, no script, no external file) with the curves of
 * train.jsonl against steps and against seen samples, the evaluations of
 * results.jsonl against seen samples, and a header with the settings
 * (params.json), the machine and the times.  Several runs in one report:
 * the same plots, the runs overlaid, with a legend.
 *
 * A training run writes LOGS/NAME/report.html after every checkpoint
 * (mc_report_write_run); `mobileclip report` writes one on demand.  The file
 * is written atomically (temporary file, fsync, rename).
 *
 * What the page holds is described in docs/training.md ("Reports").  For
 * checking by programs, every plot's <svg> carries its axis transform as
 * data- attributes and every curve names its run and metric (see below).
 */
#ifndef MC_RUN_REPORT_H
#define MC_RUN_REPORT_H

#include "core/core.h"

#define MC_REPORT_MAX_RUNS 32

typedef struct mc_report_params {
    double smooth;        /* TensorBoard's smoothing: EMA weight in [0, 1), debiased as
                             TensorBoard does; 0: none; -1 (default): automatic, 0.6 up
                             to 500 logged steps, else 1 - 200 / steps of the longest run */
    int window;           /* >= 2: a trailing mean over this many logged steps instead
                             of the EMA; 0: the EMA */
    int log_y;            /* the y axis of the losses, the gradient norm and the phase
                             times: -1 (default) log when their values are positive and
                             span 10x or more; 1: log when positive; 0: linear.  Other
                             plots are linear */
    int max_points;       /* points of a curve beyond which it is drawn as the min/max
                             envelope of as many buckets as half this (default 2000) */
    const char *title;    /* NULL: from the runs' names */
} mc_report_params;

mc_report_params mc_report_default_params(void);

/* Writes the report of the run folders runs[0..n_runs) to out_path. */
mc_status mc_report_write(const char *const *runs, int n_runs, const char *out_path, const mc_report_params *p,
                          mc_error *err);

/* LOGS/NAME/report.html with the default settings (what a training run
 * calls after each checkpoint). */
mc_status mc_report_write_run(const char *run_dir, mc_error *err);

/* ------------------------------------------------------------ train.jsonl as read */

/* The columns the report reads from each line (those of mc_run_step). */
enum {
    MC_REPORT_STEP = 0, MC_REPORT_EPOCH, MC_REPORT_SAMPLES,
    MC_REPORT_LOSS, MC_REPORT_CONTRASTIVE, MC_REPORT_DISTILL,
    MC_REPORT_CONTRASTIVE_REAL, MC_REPORT_DISTILL_REAL, MC_REPORT_CONTRASTIVE_SYN, MC_REPORT_DISTILL_SYN,
    MC_REPORT_LR, MC_REPORT_LOGIT_SCALE, MC_REPORT_GRAD_NORM, MC_REPORT_IMAGES_PER_S, MC_REPORT_DATA_WAIT,
    MC_REPORT_TIME_FORWARD, MC_REPORT_TIME_BACKWARD, MC_REPORT_TIME_LOSS, MC_REPORT_TIME_OPTIM,
    MC_REPORT_TIME_TEACHERS, MC_REPORT_TIME_COMM, MC_REPORT_RANKS,
    MC_REPORT_N_COLUMNS
};
/* The key of column c in train.jsonl ("step", "loss", ...). */
const char *mc_report_column_name(int c);

/* What a value was: a number, null, NaN, an infinity (both non-finite:
 * marked in the plots), or absent from the line. */
enum { MC_REPORT_FINITE = 0, MC_REPORT_NULL, MC_REPORT_NAN, MC_REPORT_INF, MC_REPORT_MISSING };

typedef struct mc_report_log {
    size_t n;                                    /* rows: one per step, ascending */
    double *value[MC_REPORT_N_COLUMNS];          /* [n]; NaN unless the state is FINITE */
    unsigned char *state[MC_REPORT_N_COLUMNS];   /* [n] */
    size_t lines;          /* non-empty lines read */
    size_t unreadable;     /* lines that are not a JSON object with a step (a line torn by a crash) */
    size_t first_unreadable;   /* 1-based line number of the first, or 0 */
    size_t duplicates;     /* lines dropped because a later line has the same step */
} mc_report_log;

/* Reads a train.jsonl: a step logged twice (a resumed run whose log was not
 * cut back) keeps its last line; rows are sorted by step.  Unreadable lines
 * are counted, not fatal. */
mc_status mc_report_read_log(const char *path, mc_report_log *out, mc_error *err);
void mc_report_log_free(mc_report_log *l);

/* The machine: host name and CPU model (/proc/cpuinfo), "" when unknown
 * (stored in params.json by the run). */
void mc_report_machine(char *host, size_t host_cap, char *cpu, size_t cpu_cap);

#endif /* MC_RUN_REPORT_H */
