/*
 * cmd_train_step_check.c - 'train-step-check': runs a training fixture folder
 * (config.json or open_clip_config.json, init.pt or init.safetensors,
 * expected.safetensors) for its steps and prints every comparison (exit 0
 * only when all are within tolerance).
 */
#include "cli.h"

#include "train/check.h"

#include <stdio.h>

typedef struct report_ctx {
    int verbose;
} report_ctx;

static void print_report(void *ud, const char *what, double e, double tol, int ok) {
    report_ctx *r = ud;
    if (!r->verbose && ok) return;
    printf("%-4s %-90s err %.3e  tol %.3e\n", ok ? "ok" : "FAIL", what, e, tol);
}

static const cli_opt opts[] = {
    {"init", 0, 1, 0, "FILE  initial weights instead of DIR/init.pt (or DIR/init.safetensors)"},
    {"quiet", 'q', 0, 0, "      print only failures and the summary"},
};

int cmd_train_step_check(int argc, char **argv) {
    cli_args a;
    int help = 0;
    int nopt = (int)(sizeof opts / sizeof opts[0]);
    if (cli_parse(argc, argv, opts, nopt, &a, &help)) return 2;
    if (help || a.n_pos != 1) {
        cli_print_help(help ? stdout : stderr, "mobileclip train-step-check [options] DIR",
                       "Runs the training steps of a fixture folder (config.json or\n"
                       "open_clip_config.json, init.pt or init.safetensors, expected.safetensors\n"
                       "with inputs and metadata) and compares the step-1 features when present,\n"
                       "the loss, every gradient and the parameters and BatchNorm buffers after\n"
                       "each step.",
                       opts, nopt);
        cli_args_free(&a);
        return help ? 0 : 2;
    }
    report_ctx r = {!cli_has(&a, "quiet")};
    mc_error err;
    mc_error_clear(&err);
    int pass = 0, fail = 0;
    mc_status st = mc_train_check_fixture(a.pos[0], cli_get(&a, "init"), print_report, &r, &pass,
                                          &fail, &err);
    cli_args_free(&a);
    if (st != MC_OK) return cli_error(&err);
    printf("train-step-check: %d within tolerance, %d outside\n", pass, fail);
    return fail == 0 && pass > 0 ? 0 : 1;
}

