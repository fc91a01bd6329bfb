/*
 * cmd_report.c - 'report': the HTML report of one or more training runs
 * (mc_report_write, src/run/report.h): the curves of train.jsonl against
 * steps and seen samples, the evaluations of results.jsonl, the settings,
 * machine and times; several runs overlaid in one page.
 */
#include "cli.h"

#include "run/report.h"

#include <stdlib.h>
#include <string.h>

static const cli_opt report_opts[] = {
    {"output", 'o', 1, 0, "FILE  the HTML file (default: RUN/report.html; required for several runs)"},
    {"smooth", 0, 1, 0, "W  TensorBoard's smoothing, an EMA weight in [0, 1) (default 0.6; 0: none)"},
    {"window", 0, 1, 0, "N  smooth with a trailing mean of N steps instead of the EMA"},
    {"log-y", 0, 1, 0, "auto|on|off  log axis for losses, gradient norm, phase times (default auto)"},
    {"max-points", 0, 1, 0, "N  points per curve before it is drawn as a min/max envelope (default 2000)"},
    {"title", 0, 1, 0, "T  the page's title"},
};
#define N_REPORT_OPTS (int)(sizeof report_opts / sizeof report_opts[0])

static int parse_double(const char *s, double *out) {
    char *e = NULL;
    double v = strtod(s, &e);
    if (!s[0] || !e || *e) return -1;
    *out = v;
    return 0;
}

int cmd_report(int argc, char **argv) {
    cli_args a;
    int help = 0;
    if (cli_parse(argc, argv, report_opts, N_REPORT_OPTS, &a, &help)) { cli_args_free(&a); return 2; }
    const char *usage = "mobileclip report RUN... [-o report.html] [--smooth W | --window N] [--log-y auto|on|off]";
    if (help || a.n_pos == 0) {
        cli_print_help(help ? stdout : stderr, usage,
                       "Writes one self-contained HTML page (inline SVG, no script) with the plots of\n"
                       "training runs (LOGS/NAME folders): the loss and its terms, learning rate, logit\n"
                       "scale, gradient norm, throughput, data wait and time per phase against steps and\n"
                       "against seen samples; zero-shot and retrieval results (results.jsonl) against\n"
                       "seen samples; the settings (params.json), machine, start time and duration.\n"
                       "Several runs: the same plots with the runs overlaid.  'mobileclip train'\n"
                       "writes RUN/report.html after every checkpoint.",
                       report_opts, N_REPORT_OPTS);
        cli_args_free(&a);
        return help ? 0 : 2;
    }
    mc_report_params p = mc_report_default_params();
    const char *v;
    int rc = 0;
    if ((v = cli_get(&a, "smooth")) && (parse_double(v, &p.smooth) || !(p.smooth >= 0 && p.smooth < 1)))
        rc = cli_errorf("report: --smooth takes a weight in [0, 1) (e.g. 0.9), not '%s'", v);
    if (!rc && (v = cli_get(&a, "window"))) {
        if (cli_parse_int(v, &p.window) || p.window < 2) rc = cli_errorf("report: --window takes a count of 2 or more, not '%s'", v);
    }
    if (!rc && (v = cli_get(&a, "log-y"))) {
        if (!strcmp(v, "auto")) p.log_y = -1;
        else if (!strcmp(v, "on")) p.log_y = 1;
        else if (!strcmp(v, "off")) p.log_y = 0;
        else rc = cli_errorf("report: --log-y is auto, on or off, not '%s'", v);
    }
    if (!rc && (v = cli_get(&a, "max-points")) && (cli_parse_int(v, &p.max_points) || p.max_points < 4))
        rc = cli_errorf("report: --max-points takes a count of 4 or more, not '%s'", v);
    p.title = cli_get(&a, "title");
    const char *out = cli_get(&a, "output");
    char def[4200];
    if (!rc && !out) {
        if (a.n_pos > 1) {
            rc = cli_errorf("report: several runs need -o FILE (where to write the comparison)");
        } else {
            size_t n = strlen(a.pos[0]);
            while (n > 1 && a.pos[0][n - 1] == '/') n--;
            if (n + 13 > sizeof def) rc = cli_errorf("report: path too long");
            else snprintf(def, sizeof def, "%.*s/report.html", (int)n, a.pos[0]);
            out = def;
        }
    }
    if (rc) { cli_args_free(&a); return 2; }
    mc_error err;
    mc_error_clear(&err);
    if (mc_report_write(a.pos, a.n_pos, out, &p, &err) != MC_OK) rc = cli_error(&err);
    else printf("wrote %s\n", out);
    cli_args_free(&a);
    return rc;
}
