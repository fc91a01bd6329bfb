/*
 * test_report.c - the training report (src/run/report.h) on small synthetic
 * run folders written here:
 *   - train.jsonl as read: a step logged twice keeps its last line, rows
 *     sorted by step, null / NaN / Infinity kept as non-finite, absent keys as
 *     absent, torn and foreign lines counted and skipped;
 *   - the plotted points map back through the plot's axis transform (its
 *     data- attributes) to the logged values; a repeated step is drawn once,
 *     with its last value;
 *   - one step (a lone point, no crash, a sensible axis), non-finite values
 *     (marked, the curve broken there), log axes (automatic, forced, refused
 *     for values <= 0), smoothing (EMA debiased: the first smoothed point is
 *     the first value; trailing window), dense runs drawn as a band;
 *   - several runs: every run's curves and legend entries, runs of the same
 *     folder name told apart, evaluations of results.jsonl placed by
 *     samples, by step and by epoch;
 *   - text from the files is escaped; errors (no run, not a run folder, bad
 *     settings, an output folder that does not exist) leave no file behind.
 */
#include "test.h"

#include "run/report.h"

#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/mc-test-report-XXXXXX";

static void write_file(const char *dir, const char *name, const char *text) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static const char *make_run(const char *name) {
    static char bufs[8][4096];
    static int k;
    char *d = bufs[k++ & 7];
    snprintf(d, sizeof bufs[0], "%s/%s", tmpdir, name);
    mkdir(d, 0755);
    return d;
}

static char *slurp(const char *path) {
    char *s = NULL;
    size_t n = 0;
    if (mc_file_read_all(path, (size_t)1 << 28, &s, &n, NULL) != MC_OK) return NULL;
    return s;
}

/* A train.jsonl line with the loss (and its terms) given as text. */
static void log_line(FILE *f, int step, int batch, const char *loss, const char *grad) {
    fprintf(f,
            "{\"step\": %d, \"epoch\": %d, \"samples\": %d, \"lr\": %.9g, \"loss\": %s, \"contrastive_loss\": 0.5, "
            "\"distill_loss\": 1.5, \"logit_scale\": 14.28, \"grad_norm\": %s, \"images_per_s\": 10, \"data_wait\": 0.01, "
            "\"contrastive_real\": 0.25, \"distill_real\": 0.75, \"contrastive_syn\": 0.25, \"distill_syn\": 0.75, "
            "\"time_forward\": 0.1, \"time_backward\": 0.2, \"time_loss\": 0.0001, \"time_optim\": 0.01}\n",
            step, (step - 1) / 5, step * batch, 1e-3 * step, loss, grad);
}

/* ------------------------------------------------------------ reading the page back */

/* The text of <figure ... id="id"> ... </figure> (malloc'd) or NULL. */
static char *figure(const char *html, const char *id) {
    char key[256];
    snprintf(key, sizeof key, "<figure class=\"plot\" id=\"%s\">", id);
    const char *a = strstr(html, key);
    if (!a) return NULL;
    const char *e = strstr(a, "</figure>");
    if (!e) return NULL;
    return strndup(a, (size_t)(e - a));
}

static double attr(const char *s, const char *name) {
    char key[128];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *a = strstr(s, key);
    return a ? strtod(a + strlen(key), NULL) : NAN;
}

typedef struct transform {
    double x0, x1, y0, y1, left, right, top, bottom, yscale;
    int ylog;
} transform;

static transform read_transform(const char *fig) {
    transform t;
    t.x0 = attr(fig, "data-x0");
    t.x1 = attr(fig, "data-x1");
    t.y0 = attr(fig, "data-y0");
    t.y1 = attr(fig, "data-y1");
    t.ylog = (int)attr(fig, "data-ylog");
    t.yscale = attr(fig, "data-yscale");
    t.left = attr(fig, "data-left");
    t.right = attr(fig, "data-right");
    t.top = attr(fig, "data-top");
    t.bottom = attr(fig, "data-bottom");
    return t;
}

static double back_x(const transform *t, double px) { return t->x0 + (px - t->left) / (t->right - t->left) * (t->x1 - t->x0); }
static double back_y(const transform *t, double py) {
    double u = (t->bottom - py) / (t->bottom - t->top);
    double v = t->ylog ? pow(10, log10(t->y0) + u * (log10(t->y1) - log10(t->y0))) : t->y0 + u * (t->y1 - t->y0);
    return v / t->yscale;
}

/* The points of the curves of class cls ("raw", "smooth") of one run and
 * metric, in order, mapped back to values; *segments counts polylines and
 * lone points.  Returns the number of points. */
static int curve_points(const char *fig, const char *cls, int run, const char *metric, double *xs, double *ys, int max,
                        int *segments) {
    transform t = read_transform(fig);
    char key[256];
    snprintf(key, sizeof key, "class=\"%s\" data-run=\"%d\" data-metric=\"%s\"", cls, run, metric);
    int n = 0;
    *segments = 0;
    for (const char *p = strstr(fig, key); p; p = strstr(p + 1, key)) {
        const char *tag = p;
        while (tag > fig && *tag != '<') tag--;
        (*segments)++;
        if (!strncmp(tag, "<circle", 7)) {
            if (n < max) { xs[n] = back_x(&t, attr(p, "cx")); ys[n] = back_y(&t, attr(p, "cy")); }
            n++;
            continue;
        }
        const char *q = strstr(p, " points=\"");
        if (!q) continue;
        q += 9;
        while (*q && *q != '"') {
            char *e;
            double px = strtod(q, &e);
            if (e == q || *e != ',') break;
            double py = strtod(e + 1, &e);
            if (n < max) { xs[n] = back_x(&t, px); ys[n] = back_y(&t, py); }
            n++;
            q = e;
            while (*q == ' ') q++;
        }
    }
    return n;
}

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = strstr(s, what); p; p = strstr(p + 1, what)) n++;
    return n;
}

/* Tags opened and closed in equal numbers (a cheap well-formedness check;
 * tests/test_report.sh parses the page with Python). */
static void check_balanced(const char *html, const char *what) {
    static const char *tags[] = {"svg", "figure", "table", "section", "div", "details", "title", "g"};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        char open1[32], open2[32], close[32];
        snprintf(open1, sizeof open1, "<%s ", tags[i]);
        snprintf(open2, sizeof open2, "<%s>", tags[i]);
        snprintf(close, sizeof close, "</%s>", tags[i]);
        int o = count(html, open1) + count(html, open2), c = count(html, close);
        CHECK(o == c, "%s: <%s> opened %d times, closed %d", what, tags[i], o, c);
    }
    CHECK(!strncmp(html, "<!DOCTYPE html>", 15) && strstr(html, "</html>\n"), "%s: not a whole page", what);
}

static char *write_report(const char *const *runs, int n, const char *out, const mc_report_params *p) {
    mc_error err;
    mc_error_clear(&err);
    mc_status st = mc_report_write(runs, n, out, p, &err);
    CHECK(st == MC_OK, "report %s: %s", out, err.message);
    if (st != MC_OK) return NULL;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    CHECK(!mc_path_is_file(tmp), "the temporary file %s was left", tmp);
    char *html = slurp(out);
    CHECK(html != NULL, "cannot read %s", out);
    if (html) check_balanced(html, out);
    return html;
}

/* ------------------------------------------------------------ tests */

static void test_read_log(void) {
    const char *d = make_run("read");
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", d);
    FILE *f = fopen(path, "w");
    log_line(f, 1, 4, "3.5", "10");
    log_line(f, 2, 4, "3.0", "9");
    log_line(f, 3, 4, "2.5", "8");
    fputs("\n   \n", f);                                   /* blank lines: not counted */
    fputs("[1, 2]\n", f);                                   /* not an object */
    fputs("{\"epoch\": 0, \"loss\": 1}\n", f);              /* no step */
    fputs("{\"step\": -1, \"loss\": 1}\n", f);              /* not a step */
    log_line(f, 2, 4, "2.75", "null");                      /* step 2 again (a resumed run): this one counts */
    log_line(f, 4, 4, "null", "NaN");
    log_line(f, 5, 4, "Infinity", "-Infinity");
    fputs("{\"step\": 6, \"loss\": 1.5}\n", f);             /* other keys absent */
    fputs("{\"step\": 7, \"epoch\": 1, \"samples\": 28, \"loss\": 1.2", f);   /* torn by a crash */
    fclose(f);
    mc_report_log l;
    mc_error err;
    mc_status st = mc_report_read_log(path, &l, &err);
    CHECK(st == MC_OK, "read_log: %s", err.message);
    if (st != MC_OK) return;
    CHECK(l.n == 6, "6 steps, got %zu", l.n);
    CHECK(l.lines == 11 && l.unreadable == 4 && l.duplicates == 1, "lines %zu unreadable %zu duplicates %zu", l.lines,
          l.unreadable, l.duplicates);
    CHECK(l.first_unreadable == 6, "first unreadable line %zu, want 6", l.first_unreadable);
    for (size_t i = 0; i < l.n; i++)
        CHECK(l.value[MC_REPORT_STEP][i] == (double)(i + 1), "row %zu is step %g", i, l.value[MC_REPORT_STEP][i]);
    if (l.n == 6) {
        CHECK(l.value[MC_REPORT_LOSS][1] == 2.75 && l.state[MC_REPORT_GRAD_NORM][1] == MC_REPORT_NULL,
              "step 2 keeps its last line: loss %g", l.value[MC_REPORT_LOSS][1]);
        CHECK(l.state[MC_REPORT_LOSS][3] == MC_REPORT_NULL && isnan(l.value[MC_REPORT_LOSS][3]), "null loss");
        CHECK(l.state[MC_REPORT_GRAD_NORM][3] == MC_REPORT_NAN, "NaN grad norm");
        CHECK(l.state[MC_REPORT_LOSS][4] == MC_REPORT_INF && l.state[MC_REPORT_GRAD_NORM][4] == MC_REPORT_INF, "infinities");
        CHECK(l.state[MC_REPORT_LOSS][5] == MC_REPORT_FINITE && l.state[MC_REPORT_LR][5] == MC_REPORT_MISSING &&
                  l.state[MC_REPORT_SAMPLES][5] == MC_REPORT_MISSING,
              "absent keys are absent");
        CHECK(l.state[MC_REPORT_TIME_TEACHERS][0] == MC_REPORT_MISSING, "time_teachers absent");
        CHECK(l.value[MC_REPORT_SAMPLES][2] == 12 && l.value[MC_REPORT_LR][2] == 3e-3, "samples / lr read");
    }
    mc_report_log_free(&l);
    CHECK(!strcmp(mc_report_column_name(MC_REPORT_GRAD_NORM), "grad_norm") && !mc_report_column_name(MC_REPORT_N_COLUMNS),
          "column names");
    snprintf(path, sizeof path, "%s/none.jsonl", d);
    CHECK(mc_report_read_log(path, &l, &err) == MC_ERR_IO, "a missing log is an I/O error");
}

/* Every plotted raw point of `metric` against steps maps back to (step, value) of the log. */
static void check_points(const char *html, const char *plot, int run, const char *metric, const double *steps,
                         const double *vals, int n, int want_segments, const char *what) {
    char *fig = figure(html, plot);
    CHECK(fig != NULL, "%s: no plot %s", what, plot);
    if (!fig) return;
    double xs[256], ys[256];
    int segs = 0;
    int got = curve_points(fig, "raw", run, metric, xs, ys, 256, &segs);
    CHECK(got == n, "%s: %d points of %s, want %d", what, got, metric, n);
    CHECK(want_segments < 0 || segs == want_segments, "%s: %d segments, want %d", what, segs, want_segments);
    transform t = read_transform(fig);
    double ytol = fabs(t.y1 - t.y0) * 1e-4 + 1e-12, xtol = fabs(t.x1 - t.x0) * 1e-4;
    for (int i = 0; i < got && i < n; i++) {
        double y = ys[i];
        int ok = fabs(xs[i] - steps[i]) <= xtol &&
                 (t.ylog ? fabs(log10(y) - log10(vals[i])) <= 1e-4 * fabs(log10(t.y1 / t.y0)) : fabs(y - vals[i]) <= ytol);
        CHECK(ok, "%s: point %d maps to (%g, %g), logged (%g, %g)", what, i, xs[i], y, steps[i], vals[i]);
    }
    free(fig);
}

static void test_one_step(void) {
    const char *d = make_run("one");
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", d);
    FILE *f = fopen(path, "w");
    log_line(f, 1, 8, "4.25", "30");
    fclose(f);
    write_file(d, "params.json", "{\"model\": \"mobileclip_s0\", \"train_data\": \"s/{0..3}.tar\", \"batch_size\": 8, "
                                 "\"epochs\": 2, \"total_steps\": 10, \"hostname\": \"box\", \"cpu\": \"Test CPU\", "
                                 "\"command_line\": \"mobileclip train --model mobileclip_s0\"}");
    mc_error err;
    CHECK(mc_report_write_run(d, &err) == MC_OK, "write_run: %s", err.message);
    snprintf(path, sizeof path, "%s/report.html", d);
    char *html = slurp(path);
    CHECK(html != NULL, "no report.html in the run folder");
    if (!html) return;
    check_balanced(html, "one step");
    double s1 = 1, l1 = 4.25, g1 = 30, n1 = 8;
    check_points(html, "plot-loss-step", 0, "loss", &s1, &l1, 1, 1, "one step");
    check_points(html, "plot-grad_norm-step", 0, "grad_norm", &s1, &g1, 1, 1, "one step");
    check_points(html, "plot-loss-samples", 0, "loss", &n1, &l1, 1, 1, "one step, samples");
    char *fig = figure(html, "plot-loss-step");
    if (fig) {
        transform t = read_transform(fig);
        CHECK(t.x0 < 1 && t.x1 > 1 && t.y0 < 4.25 && t.y1 > 4.25 && isfinite(t.y0) && isfinite(t.y1),
              "one step: axes [%g, %g] x [%g, %g] hold the point", t.x0, t.x1, t.y0, t.y1);
        CHECK(!strstr(fig, "class=\"smooth\""), "one point is not smoothed");
        CHECK(strstr(fig, "<circle class=\"raw\" data-run=\"0\" data-metric=\"loss\"") != NULL, "a lone point is a circle");
        free(fig);
    }
    CHECK(strstr(html, "box; Test CPU") && strstr(html, "mobileclip train --model mobileclip_s0"),
          "the header shows the machine and the command line");
    CHECK(strstr(html, "step 1 of 10 (1 logged); epoch 1 of 2; 8 samples seen") != NULL, "progress line");
    CHECK(strstr(html, "No evaluations yet") != NULL, "no results.jsonl: said so");
    CHECK(!strstr(html, "<script"), "no script in the page");
    CHECK(!strstr(html, "http://") || !strstr(strstr(html, "http://"), "href=\"http"), "no link out");
    free(html);
}

static void test_nonfinite_and_duplicates(void) {
    const char *d = make_run("nulls");
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", d);
    FILE *f = fopen(path, "w");
    /* steps 1-10; step 4 null, step 7 NaN, 8 infinite; steps 5 and 6 logged twice (the later lines count) */
    const char *loss[11] = {"", "4.0", "3.5", "3.1", "null", "99", "98", "NaN", "Infinity", "2.0", "1.9"};
    for (int s = 1; s <= 6; s++) log_line(f, s, 4, loss[s], "5");
    log_line(f, 5, 4, "2.6", "5");
    log_line(f, 6, 4, "2.4", "5");
    for (int s = 7; s <= 10; s++) log_line(f, s, 4, loss[s], "5");
    fclose(f);
    mc_report_params p = mc_report_default_params();
    p.smooth = 0;
    p.log_y = 0;
    const char *runs[1] = {d};
    snprintf(path, sizeof path, "%s/r.html", tmpdir);
    char *html = write_report(runs, 1, path, &p);
    if (!html) return;
    /* finite: 1 2 3 | 5 6 | 9 10: three segments */
    double steps[7] = {1, 2, 3, 5, 6, 9, 10}, vals[7] = {4.0, 3.5, 3.1, 2.6, 2.4, 2.0, 1.9};
    check_points(html, "plot-loss-step", 0, "loss", steps, vals, 7, 3, "nulls");
    double samples[7];
    for (int i = 0; i < 7; i++) samples[i] = steps[i] * 4;
    check_points(html, "plot-loss-samples", 0, "loss", samples, vals, 7, 3, "nulls, samples");
    char *fig = figure(html, "plot-loss-step");
    if (fig) {
        CHECK(count(fig, "<g class=\"nonfinite\" data-run=\"0\" data-metric=\"loss\"") == 3, "3 non-finite markers: %d",
              count(fig, "<g class=\"nonfinite\""));
        CHECK(strstr(fig, "data-x=\"4\"") && strstr(fig, "data-x=\"7\"") && strstr(fig, "data-x=\"8\""), "markers at 4, 7, 8");
        CHECK(strstr(fig, "loss: null at step 4") && strstr(fig, "loss: NaN at step 7") && strstr(fig, "loss: infinite at step 8"),
              "marker titles say what and where");
        CHECK(strstr(fig, "3 non-finite values") != NULL, "the legend counts them");
        CHECK(!strstr(fig, "nan") && !strstr(fig, "inf\""), "no NaN coordinates");
        /* ticks: nice values 2, 4, ... 10 on the step axis, no duplicated step 5 */
        CHECK(strstr(fig, ">2</text>") && strstr(fig, ">10</text>"), "nice step ticks");
        CHECK(!strstr(fig, "class=\"smooth\""), "smoothing 0: no smoothed curve");
        free(fig);
    }
    CHECK(strstr(html, "2 repeated steps (the last line kept)") && strstr(html, "3 non-finite values"),
          "the header tells about the log");
    free(html);
}

static void test_axes_and_smoothing(void) {
    const char *d = make_run("decay");
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", d);
    FILE *f = fopen(path, "w");
    double steps[40], vals[40];
    for (int s = 1; s <= 40; s++) {
        char l[64];
        vals[s - 1] = 8.0 * pow(0.85, s) * (s % 2 ? 1.1 : 0.9);   /* 7.5 down to 0.01: spans 10x */
        steps[s - 1] = s;
        snprintf(l, sizeof l, "%.9g", vals[s - 1]);
        log_line(f, s, 16, l, s == 3 ? "-1" : "2");
    }
    fclose(f);
    const char *runs[1] = {d};
    snprintf(path, sizeof path, "%s/axes.html", tmpdir);
    mc_report_params p = mc_report_default_params();
    char *html = write_report(runs, 1, path, &p);
    if (!html) return;
    char *fig = figure(html, "plot-loss-step");
    CHECK(fig && attr(fig, "data-ylog") == 1, "automatic: a log axis for a loss spanning 10x");
    if (fig) {
        CHECK(strstr(fig, ">0.1</text>") && strstr(fig, ">1</text>"), "log ticks at decades");
        CHECK(strstr(fig, "loss (nats), log scale") != NULL, "the axis says log scale");
        /* debiased EMA: the first smoothed point is the first value */
        double xs[64], ys[64], rx[64], ry[64];
        int segs, segr;
        int ns = curve_points(fig, "smooth", 0, "loss", xs, ys, 64, &segs);
        int nr = curve_points(fig, "raw", 0, "loss", rx, ry, 64, &segr);
        CHECK(ns == 40 && nr == 40, "smoothed %d, raw %d points", ns, nr);
        if (ns == 40) {
            CHECK(fabs(log10(ys[0]) - log10(vals[0])) < 1e-3, "debiased EMA starts at the first value: %g vs %g", ys[0], vals[0]);
            double last = 0, k = 0, w = 0.6, sm = 0;
            for (int i = 0; i < 40; i++) { last = last * w + (1 - w) * vals[i]; k++; sm = last / (1 - pow(w, k)); }
            CHECK(fabs(log10(ys[39]) - log10(sm)) < 1e-3, "EMA 0.6 at the end: %g vs %g", ys[39], sm);
        }
        CHECK(strstr(fig, "smoothed: EMA 0.6") != NULL, "the legend names the smoothing");
        free(fig);
    }
    fig = figure(html, "plot-grad_norm-step");
    CHECK(fig && attr(fig, "data-ylog") == 0, "grad norm 2 and -1: linear");
    free(fig);
    fig = figure(html, "plot-lr-step");
    CHECK(fig && attr(fig, "data-ylog") == 0, "the learning rate stays linear");
    free(fig);
    free(html);

    p.log_y = 0;
    p.window = 5;
    html = write_report(runs, 1, path, &p);
    if (!html) return;
    fig = figure(html, "plot-loss-step");
    CHECK(fig && attr(fig, "data-ylog") == 0, "--log-y off: linear");
    if (fig) {
        check_points(html, "plot-loss-step", 0, "loss", steps, vals, 40, 1, "linear");
        double xs[64], ys[64];
        int segs;
        int ns = curve_points(fig, "smooth", 0, "loss", xs, ys, 64, &segs);
        double mean = 0;
        for (int i = 35; i < 40; i++) mean += vals[i] / 5;
        CHECK(ns == 40 && fabs(ys[39] - mean) < 1e-3 * vals[0], "trailing mean of 5: %g vs %g", ns ? ys[39] : NAN, mean);
        CHECK(strstr(fig, "mean of 5 steps") != NULL, "the legend names the window");
        free(fig);
    }
    free(html);

    p.window = 0;
    p.log_y = 1;
    html = write_report(runs, 1, path, &p);
    if (!html) return;
    fig = figure(html, "plot-grad_norm-step");
    CHECK(fig && attr(fig, "data-ylog") == 0 && strstr(fig, "linear: values not all positive"),
          "--log-y on with a value <= 0: linear, said so");
    free(fig);
    fig = figure(html, "plot-phases-step");
    CHECK(fig && attr(fig, "data-ylog") == 1, "--log-y on: the phase times on a log axis");
    free(fig);
    free(html);
}

static void test_dense(void) {
    const char *d = make_run("dense");
    char path[4200];
    snprintf(path, sizeof path, "%s/train.jsonl", d);
    FILE *f = fopen(path, "w");
    for (int s = 1; s <= 5000; s++) {
        char l[64];
        snprintf(l, sizeof l, "%.6g", 3 + sin(s * 0.37) + 2.0 * exp(-s / 1000.0));
        log_line(f, s, 32, s == 2500 ? "null" : l, "1");
    }
    fclose(f);
    const char *runs[1] = {d};
    snprintf(path, sizeof path, "%s/dense.html", tmpdir);
    mc_report_params p = mc_report_default_params();
    p.max_points = 400;
    char *html = write_report(runs, 1, path, &p);
    if (!html) return;
    char *fig = figure(html, "plot-loss-step");
    if (fig) {
        CHECK(count(fig, "<polygon class=\"raw envelope\" data-run=\"0\" data-metric=\"loss\"") == 2,
              "dense: the raw values as a band, broken at the null: %d", count(fig, "<polygon class=\"raw envelope\""));
        CHECK(strstr(fig, "every 25 steps") != NULL, "the legend says how many steps a band point holds");
        CHECK(count(fig, "class=\"nonfinite\"") == 1, "the null is still marked");
        double xs[512], ys[512];
        int segs;
        int ns = curve_points(fig, "smooth", 0, "loss", xs, ys, 512, &segs);
        CHECK(ns > 100 && ns <= 402 && segs == 2, "smoothed curve thinned: %d points, %d segments", ns, segs);
        CHECK(strstr(html, "moving average 0.96") != NULL, "automatic smoothing: 1 - 200/5000");
        free(fig);
    }
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size < 1500000, "dense report stays small: %lld bytes", (long long)sb.st_size);
    free(html);
}

static void test_several_runs(void) {
    char a[4200], b[4200], c[4200];
    snprintf(a, sizeof a, "%s", make_run("cmp_a"));
    snprintf(b, sizeof b, "%s", make_run("cmp_b"));
    mkdir(make_run("other"), 0755);
    snprintf(c, sizeof c, "%s/other/cmp_a", tmpdir);   /* the same folder name as a */
    mkdir(c, 0755);
    const char *dirs[3] = {a, b, c};
    for (int r = 0; r < 3; r++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/train.jsonl", dirs[r]);
        FILE *f = fopen(path, "w");
        for (int s = 1; s <= 6; s++) {
            char l[32];
            snprintf(l, sizeof l, "%.3f", 4.0 - s * 0.25 * (r + 1));
            log_line(f, s, 4 * (r + 1), l, "1.5");
        }
        fclose(f);
        char params[512];
        snprintf(params, sizeof params, "{\"model\": \"mobileclip_s0\", \"batch_size\": %d, \"lr\": 0.001}", 4 * (r + 1));
        write_file(dirs[r], "params.json", params);
    }
    /* evaluations: by samples (a), by step (b), by finished epochs (c) */
    write_file(a, "results.jsonl", "{\"samples\": 12, \"imagenet-zeroshot-val-top1\": 0.25, \"imagenet-zeroshot-val-top5\": 0.5, "
                                   "\"image_to_text_R@1\": 0.1, \"image_to_text_R@5\": 0.3, \"image_to_text_R@10\": 0.5}\n"
                                   "{\"samples\": 24, \"imagenet-zeroshot-val-top1\": 0.375, \"imagenet-zeroshot-val-top5\": null}\n");
    write_file(b, "results.jsonl", "{\"step\": 5, \"imagenet-zeroshot-val-top1\": 0.5}\n");
    write_file(c, "results.jsonl", "{\"epoch\": 1, \"imagenet-zeroshot-val-top1\": 0.125}\n{\"imagenet-zeroshot-val-top1\": 0.2}\n");
    char out[4200];
    snprintf(out, sizeof out, "%s/cmp.html", tmpdir);
    mc_report_params p = mc_report_default_params();
    p.smooth = 0;
    p.title = "Compare <runs> & \"co\"";
    char *html = write_report(dirs, 3, out, &p);
    if (!html) return;
    for (int r = 0; r < 3; r++) {
        double steps[6], vals[6], samples[6];
        for (int s = 1; s <= 6; s++) {
            steps[s - 1] = s;
            samples[s - 1] = s * 4 * (r + 1);
            vals[s - 1] = 4.0 - s * 0.25 * (r + 1);
        }
        char what[32];
        snprintf(what, sizeof what, "run %d", r);
        check_points(html, "plot-loss-step", r, "loss", steps, vals, 6, 1, what);
        check_points(html, "plot-loss-samples", r, "loss", samples, vals, 6, 1, what);
    }
    CHECK(strstr(html, "Compare &lt;runs&gt; &amp; &quot;co&quot;") && !strstr(html, "<runs>"), "the title is escaped");
    char *fig = figure(html, "plot-loss-step");
    if (fig) {
        char la[4300], lc[4300];
        snprintf(la, sizeof la, "%s</span>", a);
        snprintf(lc, sizeof lc, "%s</span>", c);
        CHECK(strstr(fig, la) && strstr(fig, lc) && strstr(fig, "cmp_b</span>"), "legend: the runs, same names told apart by path");
        free(fig);
    }
    CHECK(strstr(html, "<tr class=\"diff\"><th>batch</th>") != NULL, "the batch sizes differ: marked");
    CHECK(!strstr(html, "<tr class=\"diff\"><th>model</th>"), "the model does not differ");
    fig = figure(html, "plot-eval-zeroshot");
    CHECK(fig != NULL, "a zero-shot plot");
    if (fig) {
        /* a: top-1 at 12 and 24 samples; b: step 5 at 8 per step = 40 samples;
         * c: "epoch": 1 (finished epochs) = the end of epoch 0 = step 5 at 12 per step = 60 samples */
        double xs[8], ys[8];
        int segs;
        int n = curve_points(fig, "raw", 0, "imagenet-zeroshot-val-top1", xs, ys, 8, &segs);
        CHECK(n == 2 && fabs(xs[0] - 12) < 0.01 && fabs(xs[1] - 24) < 0.01 && fabs(ys[0] - 0.25) < 1e-4 && fabs(ys[1] - 0.375) < 1e-4,
              "a: top-1 at its samples (%d points: %g %g)", n, n ? xs[0] : NAN, n ? ys[0] : NAN);
        n = curve_points(fig, "raw", 1, "imagenet-zeroshot-val-top1", xs, ys, 8, &segs);
        CHECK(n == 1 && fabs(xs[0] - 40) < 0.01 && fabs(ys[0] - 0.5) < 1e-4, "b: placed by its step (%g)", n ? xs[0] : NAN);
        n = curve_points(fig, "raw", 2, "imagenet-zeroshot-val-top1", xs, ys, 8, &segs);
        CHECK(n == 1 && fabs(xs[0] - 60) < 0.01 && fabs(ys[0] - 0.125) < 1e-4, "c: placed by its epoch (%g)", n ? xs[0] : NAN);
        CHECK(count(fig, "class=\"nonfinite\" data-run=\"0\" data-metric=\"imagenet-zeroshot-val-top5\"") == 1,
              "a null evaluation is marked");
        CHECK(strstr(fig, "imagenet top-1: 25 at 12 samples") != NULL, "an evaluation point's title");
        free(fig);
    }
    fig = figure(html, "plot-eval-i2t");
    const char *r1 = fig ? strstr(fig, "R@1</span>") : NULL, *r5 = fig ? strstr(fig, "R@5</span>") : NULL,
               *r10 = fig ? strstr(fig, "R@10</span>") : NULL;
    CHECK(r1 && r5 && r10 && r1 < r5 && r5 < r10, "retrieval legend: R@1, R@5, R@10 in that order");
    free(fig);
    CHECK(strstr(html, "1 evaluation without samples, step or a logged epoch") != NULL, "an unplaced evaluation is noted");
    free(html);
}

static void test_errors(void) {
    mc_error err;
    mc_report_params p = mc_report_default_params();
    char out[4200], tmp[4300];
    snprintf(out, sizeof out, "%s/err.html", tmpdir);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    CHECK(mc_report_write(NULL, 0, out, &p, &err) == MC_ERR_INVALID_ARG, "no runs");
    const char *missing[1] = {"/nonexistent/run"};
    CHECK(mc_report_write(missing, 1, out, &p, &err) == MC_ERR_NOT_FOUND && strstr(err.message, "/nonexistent/run"),
          "a missing folder is named: %s", err.message);
    const char *empty[1] = {make_run("empty")};
    CHECK(mc_report_write(empty, 1, out, &p, &err) == MC_ERR_NOT_FOUND && strstr(err.message, "not a run folder"),
          "a folder without train.jsonl and params.json: %s", err.message);
    write_file(empty[0], "params.json", "{\"model\": ");
    CHECK(mc_report_write(empty, 1, out, &p, &err) == MC_ERR_FORMAT && strstr(err.message, "params.json"),
          "a broken params.json is named: %s", err.message);
    write_file(empty[0], "params.json", "{\"model\": \"m\"}");
    CHECK(mc_report_write(empty, 1, out, &p, &err) == MC_OK, "params.json alone: a report saying no steps");
    char *html = slurp(out);
    CHECK(html && strstr(html, "No steps logged yet"), "no steps: said so");
    free(html);
    remove(out);
    const char *one[1] = {make_run("one")};
    p.smooth = 1.0;
    CHECK(mc_report_write(one, 1, out, &p, &err) == MC_ERR_INVALID_ARG, "smoothing 1 refused");
    p.smooth = 0;
    p.window = 1;
    CHECK(mc_report_write(one, 1, out, &p, &err) == MC_ERR_INVALID_ARG, "window 1 refused");
    p.window = 0;
    p.log_y = 2;
    CHECK(mc_report_write(one, 1, out, &p, &err) == MC_ERR_INVALID_ARG, "log_y 2 refused");
    p.log_y = -1;
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/r.html", tmpdir);
    CHECK(mc_report_write(one, 1, bad, &p, &err) == MC_ERR_IO, "an output folder that does not exist");
    CHECK(!mc_path_is_file(out) && !mc_path_is_file(tmp), "errors leave no file");
    /* odd bytes in a folder name: escaped, invalid UTF-8 replaced */
    char odd[4200];
    snprintf(odd, sizeof odd, "%s/a<b>&\"c\xff", tmpdir);
    mkdir(odd, 0755);
    write_file(odd, "train.jsonl", "{\"step\": 1, \"loss\": 2}\n");
    const char *oddr[1] = {odd};
    html = write_report(oddr, 1, out, &p);
    CHECK(html && strstr(html, "a&lt;b&gt;&amp;&quot;c\xEF\xBF\xBD") && !strstr(html, "\xff"), "a folder name escaped");
    free(html);
}

static void test_machine(void) {
    char host[256], cpu[512];
    mc_report_machine(host, sizeof host, cpu, sizeof cpu);
    CHECK(host[0] != 0, "a host name");
    CHECK(strstr(cpu, "logical CPUs") != NULL, "the CPU: %s", cpu);
}

int main(void) {
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    test_read_log();
    test_one_step();
    test_nonfinite_and_duplicates();
    test_axes_and_smoothing();
    test_dense();
    test_several_runs();
    test_errors();
    test_machine();
    if (!t_fail && !getenv("KEEP")) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return test_summary("test_report");
}
