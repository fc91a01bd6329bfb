/*
 * run/runfiles.h - the files of a run folder other than checkpoints:
 * train.jsonl cut back to a checkpoint's step.
 */
#ifndef MC_RUN_RUNFILES_H
#define MC_RUN_RUNFILES_H

#include "core/core.h"

/* Keeps the lines of a train.jsonl whose "step" is at most max_step (and
 * drops a torn last line); atomic.  A missing file is fine. */
mc_status mc_run_truncate_log(const char *path, int64_t max_step, mc_error *err);

/* Removes the "*.tmp" and "*.tmp-<pid>-<k>" files of dir: what an
 * interrupted atomic write left (the file it was replacing is intact).
 * Returns how many. */
int mc_run_remove_temporaries(const char *dir);

#endif /* MC_RUN_RUNFILES_H */
