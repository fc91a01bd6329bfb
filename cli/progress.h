/*
 * progress.h - the CLI's progress bar on stderr (only when stderr is a
 * terminal and MOBILECLIP_NO_PROGRESS is unset), and the shared model-argument
 * handling of the commands that load a model (cli/progress.c).
 */
#ifndef MC_CLI_PROGRESS_H
#define MC_CLI_PROGRESS_H

#include "mobileclip.h"

#include <stdint.h>

typedef struct cli_progress {
    const char *label;
    int64_t total;        /* -1: unknown */
    int enabled;
    int bytes;            /* 1: show sizes in MB */
    double t0;            /* time of the start (the rate and ETA of a count) */
    double last;          /* time of the last draw */
    int drawn;
} cli_progress;

/* Seconds on the monotonic clock (for timings and the progress rate). */
double cli_now_s(void);
/* CPU seconds used by the process so far, all threads. */
double cli_cpu_s(void);
/* Resident set now (/proc/self/statm; 0 where unavailable) and its peak so far
 * (getrusage ru_maxrss), in MiB. */
double cli_rss_mb(void);
double cli_peak_rss_mb(void);

/* enabled only when want is nonzero and stderr is a terminal */
void cli_progress_start(cli_progress *p, const char *label, int64_t total, int bytes, int want);
void cli_progress_update(cli_progress *p, int64_t done);
void cli_progress_end(cli_progress *p);
/* An mc_progress_fn for downloads (user: ignored). */
int cli_progress_download(void *user, const char *label, int64_t done, int64_t total);

/* What a command needs to load its model. */
typedef struct cli_model_opts {
    const char *model;     /* path or official name */
    const char *config;    /* --config or NULL */
    const char *vocab;     /* --vocab or NULL */
    int image;             /* load the image tower */
    int text;              /* load the text tower */
    int reparameterize;
    const char *weights;   /* --weights (f32, bf16, f16, int8) or NULL: f32 */
} cli_model_opts;

/* The --weights option of the commands that load a model. */
#define CLI_WEIGHTS_OPT {"weights", 0, 1, 0, "T  weight precision: f32 (default), bf16, f16 or int8 (docs/performance.md)"}
/* "f32" | "bf16" | "f16" | "int8" (NULL: f32) -> an mc_weight_dtype; prints the error, returns nonzero. */
int cli_parse_weights(const char *s, int *out);

/* Resolves (downloading an official model when missing) and loads; prints
 * the error and returns nonzero on failure.  resolved_out (may be NULL)
 * receives the path loaded, name_out the official name or NULL. */
int cli_model_load(const cli_model_opts *o, mc_model **out, char *resolved_out, size_t cap,
                   const char **name_out);

/* A context for model with threads (0: all cores) and activations planned
 * for max_batch; prints the error and returns nonzero on failure. */
int cli_context_new(const mc_model *model, int threads, int max_batch, mc_context **out);

#endif
