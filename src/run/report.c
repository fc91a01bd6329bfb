/*
 * run/report.c - the HTML report of training runs (report.h): train.jsonl,
 * results.jsonl and params.json read with core/json.h, every plot drawn here
 * as inline SVG (nice ticks, log axes, smoothing, non-finite values marked).
 */
#define _GNU_SOURCE
#include "run/report.h"

#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ columns */

static const char *const column_names[MC_REPORT_N_COLUMNS] = {
    "step", "epoch", "samples", "loss", "contrastive_loss", "distill_loss", "contrastive_real", "distill_real",
    "contrastive_syn", "distill_syn", "lr", "logit_scale", "grad_norm", "images_per_s", "data_wait",
    "time_forward", "time_backward", "time_loss", "time_optim", "time_teachers", "time_comm", "ranks",
};

const char *mc_report_column_name(int c) {
    return c >= 0 && c < MC_REPORT_N_COLUMNS ? column_names[c] : NULL;
}

mc_report_params mc_report_default_params(void) {
    mc_report_params p;
    memset(&p, 0, sizeof p);
    p.smooth = -1;
    p.window = 0;
    p.log_y = -1;
    p.max_points = 2000;
    return p;
}

/* ------------------------------------------------------------ a growable string */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1 << 16;
        while (nc < b->n + n + 1) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) MC_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sb_putn(b, tmp, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) { b->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

/* Length of the valid UTF-8 sequence at s (0: invalid). */
static size_t utf8_len(const unsigned char *s) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned min;
    if ((c & 0xE0) == 0xC0) { n = 2; min = 0x80; c &= 0x1F; }
    else if ((c & 0xF0) == 0xE0) { n = 3; min = 0x800; c &= 0x0F; }
    else if ((c & 0xF8) == 0xF0) { n = 4; min = 0x10000; c &= 0x07; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    return n;
}

/* Text into HTML (element content or a quoted attribute): markup characters
 * escaped, control characters and invalid UTF-8 replaced by U+FFFD. */
static void sb_esc(sbuf *b, const char *s) {
    if (!s) return;
    const unsigned char *q = (const unsigned char *)s;
    while (*q) {
        unsigned c = *q;
        if (c == '&') sb_puts(b, "&amp;");
        else if (c == '<') sb_puts(b, "&lt;");
        else if (c == '>') sb_puts(b, "&gt;");
        else if (c == '"') sb_puts(b, "&quot;");
        else if (c == '\'') sb_puts(b, "&#39;");
        else if (c == '\n' || c == '\t') sb_putn(b, (const char *)q, 1);
        else if (c < 0x20 || c == 0x7F) sb_puts(b, "\xEF\xBF\xBD");
        else if (c < 0x80) sb_putn(b, (const char *)q, 1);
        else {
            size_t n = utf8_len(q);
            if (n) { sb_putn(b, (const char *)q, n); q += n; continue; }
            sb_puts(b, "\xEF\xBF\xBD");
        }
        q++;
    }
}

/* ------------------------------------------------------------ numbers as text */

/* A tick label: enough digits for the tick spacing; k/M/G/T suffixes when si
 * and the value is 10,000 or more. */
static void fmt_tick(char *out, size_t cap, double v, double step, int si) {
    double a = fabs(v);
    if (a < fabs(step) * 1e-9 || v == 0) { snprintf(out, cap, "0"); return; }
    if (si && a >= 1e4) {
        static const char suf[] = "kMGTPE";
        double div = 1e3;
        int k = 0;
        while (k < 5 && a >= div * 1e3) { div *= 1e3; k++; }
        double rel = step / div;
        int d = rel >= 1 ? 0 : (int)ceil(-log10(rel) - 1e-9);
        if (d > 6) d = 6;
        snprintf(out, cap, "%.*f%c", d, v / div, suf[k]);
        return;
    }
    if (a >= 1e-4 && a < 1e6) {
        int d = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        if (d < 0) d = 0;
        if (d > 10) d = 10;
        snprintf(out, cap, "%.*f", d, v);
        return;
    }
    int d = (int)floor(log10(a)) - (int)floor(log10(step) + 1e-9);
    if (d < 0) d = 0;
    if (d > 6) d = 6;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.*e", d, v);
    /* 1.5e-06 -> 1.5e-6, 1e+07 -> 1e7 */
    char *e = strchr(tmp, 'e');
    if (e) {
        char *p = e + 1, *w = e + 1;
        if (*p == '+') p++;
        else if (*p == '-') *w++ = *p++;
        while (*p == '0' && p[1]) p++;
        memmove(w, p, strlen(p) + 1);
    }
    snprintf(out, cap, "%s", tmp);
}

/* A value in a table: integers as integers, others with 4 significant digits. */
static void fmt_val(char *out, size_t cap, double v) {
    if (!isfinite(v)) snprintf(out, cap, "%s", isnan(v) ? "NaN" : v > 0 ? "inf" : "-inf");
    else if (v == floor(v) && fabs(v) < 1e15) snprintf(out, cap, "%.0f", v);
    else snprintf(out, cap, "%.4g", v);
}

static void fmt_duration(char *out, size_t cap, double s) {
    if (!(s >= 0) || !isfinite(s)) { snprintf(out, cap, "unknown"); return; }
    if (s < 60) { snprintf(out, cap, "%.1f s", s); return; }
    long t = (long)(s + 0.5);
    long d = t / 86400, h = t % 86400 / 3600, m = t % 3600 / 60, sec = t % 60;
    if (d) snprintf(out, cap, "%ld d %ld h %02ld min", d, h, m);
    else if (h) snprintf(out, cap, "%ld h %02ld min %02ld s", h, m, sec);
    else snprintf(out, cap, "%ld min %02ld s", m, sec);
}

static void fmt_time(char *out, size_t cap, double t) {
    time_t tt = (time_t)t;
    struct tm tmv;
    if (!localtime_r(&tt, &tmv) || !strftime(out, cap, "%Y-%m-%d %H:%M:%S %z", &tmv)) snprintf(out, cap, "unknown");
}

/* ------------------------------------------------------------ train.jsonl */

static unsigned char value_state(const mc_json *v, double *out) {
    *out = NAN;
    if (!v) return MC_REPORT_MISSING;
    if (v->type == MC_JSON_NULL) return MC_REPORT_NULL;
    if (v->type != MC_JSON_NUMBER) return MC_REPORT_MISSING;
    if (isnan(v->number)) return MC_REPORT_NAN;
    if (isinf(v->number)) return MC_REPORT_INF;
    *out = v->number;
    return MC_REPORT_FINITE;
}

void mc_report_log_free(mc_report_log *l) {
    if (!l) return;
    for (int c = 0; c < MC_REPORT_N_COLUMNS; c++) { free(l->value[c]); free(l->state[c]); }
    memset(l, 0, sizeof *l);
}

typedef struct row_key {
    double step;
    size_t i;
} row_key;

static int cmp_row(const void *a, const void *b) {
    const row_key *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

mc_status mc_report_read_log(const char *path, mc_report_log *out, mc_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t m = 0, cap = 0;
    double *val = NULL;            /* [cap][N] as read */
    unsigned char *st = NULL;
    char *line = NULL;
    size_t lcap = 0, lineno = 0;
    ssize_t len;
    mc_status status = MC_OK;
    while ((len = getline(&line, &lcap, f)) != -1) {
        lineno++;
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
        size_t s0 = 0;
        while (s0 < n && (line[s0] == ' ' || line[s0] == '\t')) s0++;
        if (s0 == n) continue;
        out->lines++;
        mc_json *j = NULL;
        double step = NAN;
        int ok = n - s0 <= ((size_t)1 << 20) && mc_json_parse(line + s0, n - s0, &j, NULL) == MC_OK &&
                 j->type == MC_JSON_OBJECT && value_state(mc_json_get(j, "step"), &step) == MC_REPORT_FINITE &&
                 step >= 0 && step == floor(step);
        if (!ok) {
            mc_json_free(j);
            out->unreadable++;
            if (!out->first_unreadable) out->first_unreadable = lineno;
            continue;
        }
        if (m == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            double *nv = realloc(val, nc * MC_REPORT_N_COLUMNS * sizeof *nv);
            if (nv) val = nv;
            unsigned char *ns = nv ? realloc(st, nc * MC_REPORT_N_COLUMNS) : NULL;
            if (ns) st = ns;
            if (!nv || !ns) { mc_json_free(j); status = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); break; }
            cap = nc;
        }
        for (int c = 0; c < MC_REPORT_N_COLUMNS; c++)
            st[m * MC_REPORT_N_COLUMNS + c] = value_state(mc_json_get(j, column_names[c]), &val[m * MC_REPORT_N_COLUMNS + c]);
        m++;
        mc_json_free(j);
    }
    if (status == MC_OK && ferror(f)) status = mc_fail(err, MC_ERR_IO, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    row_key *keys = status == MC_OK ? mc_malloc_array(m ? m : 1, sizeof *keys) : NULL;
    if (status == MC_OK && !keys) status = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path);
    if (status != MC_OK) { free(val); free(st); free(keys); mc_report_log_free(out); return status; }
    for (size_t i = 0; i < m; i++) keys[i] = (row_key){val[i * MC_REPORT_N_COLUMNS + MC_REPORT_STEP], i};
    qsort(keys, m, sizeof *keys, cmp_row);
    size_t n = 0;   /* the last line of each step */
    for (size_t i = 0; i < m; i++)
        if (i + 1 == m || keys[i + 1].step != keys[i].step) keys[n++] = keys[i];
    out->duplicates = m - n;
    out->n = n;
    for (int c = 0; c < MC_REPORT_N_COLUMNS; c++) {
        out->value[c] = mc_malloc_array(n ? n : 1, sizeof(double));
        out->state[c] = malloc(n ? n : 1);
        if (!out->value[c] || !out->state[c]) { status = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); break; }
        for (size_t r = 0; r < n; r++) {
            out->value[c][r] = val[keys[r].i * MC_REPORT_N_COLUMNS + c];
            out->state[c][r] = st[keys[r].i * MC_REPORT_N_COLUMNS + c];
        }
    }
    free(val);
    free(st);
    free(keys);
    if (status != MC_OK) mc_report_log_free(out);
    return status;
}

/* ------------------------------------------------------------ the machine */

void mc_report_machine(char *host, size_t host_cap, char *cpu, size_t cpu_cap) {
    if (host_cap) {
        host[0] = 0;
        char h[256];
        if (gethostname(h, sizeof h) == 0) { h[sizeof h - 1] = 0; snprintf(host, host_cap, "%s", h); }
    }
    if (!cpu_cap) return;
    cpu[0] = 0;
    char model[256] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            /* x86: "model name"; others: "Model", "Hardware", "cpu model", "Processor" */
            static const char *keys[] = {"model name", "cpu model", "Model", "Hardware", "Processor"};
            for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !model[0]; k++) {
                size_t kl = strlen(keys[k]);
                if (strncmp(line, keys[k], kl) || (line[kl] != ' ' && line[kl] != '\t' && line[kl] != ':')) continue;
                char *c = strchr(line, ':');
                if (!c) continue;
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(model, sizeof model, "%s", c);
            }
            if (model[0]) break;
        }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (model[0] && n > 0) snprintf(cpu, cpu_cap, "%s, %ld logical CPUs", model, n);
    else if (model[0]) snprintf(cpu, cpu_cap, "%s", model);
    else if (n > 0) snprintf(cpu, cpu_cap, "%ld logical CPUs", n);
}

/* ------------------------------------------------------------ a run as the report sees it */

enum { G_ZEROSHOT = 0, G_I2T, G_T2I, G_COUNT };
static const char *const group_title[G_COUNT] = {"Zero-shot classification", "Retrieval: image to text",
                                                  "Retrieval: text to image"};
static const char *const group_ylabel[G_COUNT] = {"accuracy (%)", "recall (%)", "recall (%)"};

#define MAX_EVAL_KEYS 48

typedef struct eval_series {
    char key[160];        /* the results.jsonl key */
    char label[160];      /* shown: "imagenet top-1", "R@5" */
    int group;
    size_t n, cap;
    double *x, *y, *step;
    unsigned char *st;
} eval_series;

typedef struct run_data {
    char dir[4096];
    char label[4096];
    int has_log;
    mc_report_log log;
    mc_json *params;
    eval_series ev[MAX_EVAL_KEYS];
    int n_ev;
    size_t eval_lines, eval_unreadable, eval_unplaced;
    mc_json *last_eval;
    int has_results;
    double started, ended, train_time;
    int started_est;
} run_data;

static void run_free(run_data *r) {
    mc_report_log_free(&r->log);
    mc_json_free(r->params);
    mc_json_free(r->last_eval);
    for (int i = 0; i < r->n_ev; i++) {
        free(r->ev[i].x);
        free(r->ev[i].y);
        free(r->ev[i].step);
        free(r->ev[i].st);
    }
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The group and label of a results.jsonl key worth a curve, or -1. */
static int eval_key(const char *key, char *label, size_t cap) {
    static const char *zs[2] = {"-zeroshot-val-top1", "-zeroshot-val-top5"};
    for (int k = 0; k < 2; k++)
        if (ends_with(key, zs[k]) && strlen(key) > strlen(zs[k])) {
            snprintf(label, cap, "%.*s top-%d", (int)(strlen(key) - strlen(zs[k])), key, k ? 5 : 1);
            return G_ZEROSHOT;
        }
    static const char *rp[2] = {"image_to_text_R@", "text_to_image_R@"};
    for (int k = 0; k < 2; k++)
        if (!strncmp(key, rp[k], strlen(rp[k])) && key[strlen(rp[k])]) {
            snprintf(label, cap, "R@%s", key + strlen(rp[k]));
            return k ? G_T2I : G_I2T;
        }
    return -1;
}

/* Seen samples at a train step (the log's row of that step), or NaN. */
static double samples_at_step(const mc_report_log *l, double step) {
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->value[MC_REPORT_STEP][mid] < step) lo = mid + 1;
        else hi = mid;
    }
    if (lo < l->n && l->value[MC_REPORT_STEP][lo] == step && l->state[MC_REPORT_SAMPLES][lo] == MC_REPORT_FINITE)
        return l->value[MC_REPORT_SAMPLES][lo];
    return NAN;
}

/* Seen samples and step at the end of 0-based epoch e (its last logged row). */
static double samples_at_epoch_end(const mc_report_log *l, double e, double *step) {
    *step = NAN;
    double s = NAN;
    for (size_t r = 0; r < l->n; r++)
        if (l->state[MC_REPORT_EPOCH][r] == MC_REPORT_FINITE && l->value[MC_REPORT_EPOCH][r] == e &&
            l->state[MC_REPORT_SAMPLES][r] == MC_REPORT_FINITE) {
            s = l->value[MC_REPORT_SAMPLES][r];
            *step = l->value[MC_REPORT_STEP][r];
        }
    return s;
}

static mc_status read_results(run_data *r, const char *path, mc_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return MC_OK;   /* no evaluations yet */
    r->has_results = 1;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    mc_status status = MC_OK;
    while (status == MC_OK && (len = getline(&line, &lcap, f)) != -1) {
        size_t n = (size_t)len;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
        if (!n) continue;
        r->eval_lines++;
        mc_json *j = NULL;
        if (n > ((size_t)1 << 20) || mc_json_parse(line, n, &j, NULL) != MC_OK || j->type != MC_JSON_OBJECT) {
            mc_json_free(j);
            r->eval_unreadable++;
            continue;
        }
        /* where on the samples axis: "samples", else the log's row of "step",
         * else the end of the epoch (open_clip's "epoch" counts finished epochs) */
        double x = NAN, step = NAN, v;
        if (value_state(mc_json_get(j, "step"), &v) == MC_REPORT_FINITE) step = v;
        if (value_state(mc_json_get(j, "samples"), &v) == MC_REPORT_FINITE) x = v;
        else if (isfinite(step)) x = samples_at_step(&r->log, step);
        else if (value_state(mc_json_get(j, "epoch"), &v) == MC_REPORT_FINITE) x = samples_at_epoch_end(&r->log, v - 1, &step);
        int used = 0;
        for (size_t i = 0; i < j->len; i++) {
            char label[160];
            int g = eval_key(j->keys[i], label, sizeof label);
            if (g < 0) continue;
            eval_series *e = NULL;
            for (int k = 0; k < r->n_ev; k++)
                if (!strcmp(r->ev[k].key, j->keys[i])) e = &r->ev[k];
            if (!e) {
                if (r->n_ev == MAX_EVAL_KEYS || strlen(j->keys[i]) >= sizeof e->key) continue;
                e = &r->ev[r->n_ev++];
                memset(e, 0, sizeof *e);
                snprintf(e->key, sizeof e->key, "%s", j->keys[i]);
                snprintf(e->label, sizeof e->label, "%s", label);
                e->group = g;
            }
            used = 1;
            if (!isfinite(x)) continue;
            if (e->n == e->cap) {
                size_t nc = e->cap ? e->cap * 2 : 16;
                double *nx = realloc(e->x, nc * sizeof *nx);
                if (nx) e->x = nx;
                double *ny = nx ? realloc(e->y, nc * sizeof *ny) : NULL;
                if (ny) e->y = ny;
                double *ns = ny ? realloc(e->step, nc * sizeof *ns) : NULL;
                if (ns) e->step = ns;
                unsigned char *nt = ns ? realloc(e->st, nc) : NULL;
                if (nt) e->st = nt;
                if (!nt) { status = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", path); break; }
                e->cap = nc;
            }
            e->x[e->n] = x;
            e->step[e->n] = step;
            e->st[e->n] = value_state(&j->items[i], &e->y[e->n]);
            e->n++;
        }
        if (used && !isfinite(x)) r->eval_unplaced++;
        if (used) { mc_json_free(r->last_eval); r->last_eval = j; }
        else mc_json_free(j);
    }
    free(line);
    fclose(f);
    return status;
}

static double file_mtime(const char *path) {
    struct stat sb;
    if (stat(path, &sb) != 0) return NAN;
    return (double)sb.st_mtim.tv_sec + sb.st_mtim.tv_nsec * 1e-9;
}

/* The creation time of a folder (statx birth time), NaN when the file system does not keep it. */
static double birth_time(const char *path) {
#if defined(STATX_BTIME)
    struct statx sx;
    if (statx(AT_FDCWD, path, 0, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
        return (double)sx.stx_btime.tv_sec + sx.stx_btime.tv_nsec * 1e-9;
#endif
    return NAN;
}

/* Seconds of training: each step's samples over its images per second. */
static double training_time(const mc_report_log *l) {
    double t = 0;
    for (size_t r = 0; r < l->n; r++) {
        if (l->state[MC_REPORT_IMAGES_PER_S][r] != MC_REPORT_FINITE || !(l->value[MC_REPORT_IMAGES_PER_S][r] > 0) ||
            l->state[MC_REPORT_SAMPLES][r] != MC_REPORT_FINITE)
            continue;
        double step = l->value[MC_REPORT_STEP][r], samples = l->value[MC_REPORT_SAMPLES][r], n;
        if (r > 0 && l->value[MC_REPORT_STEP][r - 1] == step - 1 && l->state[MC_REPORT_SAMPLES][r - 1] == MC_REPORT_FINITE)
            n = samples - l->value[MC_REPORT_SAMPLES][r - 1];
        else
            n = step > 0 ? samples / step : 0;
        if (n > 0) t += n / l->value[MC_REPORT_IMAGES_PER_S][r];
    }
    return t;
}

static mc_status load_run(const char *dir, run_data *r, mc_error *err) {
    memset(r, 0, sizeof *r);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    if (dl >= sizeof r->dir) return mc_fail(err, MC_ERR_INVALID_ARG, "report: run folder path too long");
    memcpy(r->dir, dir, dl);
    r->dir[dl] = 0;
    if (!mc_path_is_dir(r->dir)) return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no such run folder", r->dir);
    const char *base = strrchr(r->dir, '/');
    snprintf(r->label, sizeof r->label, "%s", base && base[1] ? base + 1 : r->dir);
    char path[4200];
    mc_status st;
    snprintf(path, sizeof path, "%s/params.json", r->dir);
    int has_params = mc_path_is_file(path);
    if (has_params) {
        char *text = NULL;
        size_t len = 0;
        if ((st = mc_file_read_all(path, (size_t)16 << 20, &text, &len, err)) != MC_OK) return st;
        st = mc_json_parse(text, len, &r->params, err);
        free(text);
        if (st != MC_OK) { mc_error_prefix(err, "%s", path); return st; }
    }
    snprintf(path, sizeof path, "%s/train.jsonl", r->dir);
    if (mc_path_is_file(path)) {
        if ((st = mc_report_read_log(path, &r->log, err)) != MC_OK) return st;
        r->has_log = 1;
        r->ended = file_mtime(path);
    } else if (!has_params) {
        return mc_fail(err, MC_ERR_NOT_FOUND, "%s: not a run folder (no train.jsonl, no params.json)", r->dir);
    }
    snprintf(path, sizeof path, "%s/results.jsonl", r->dir);
    if ((st = read_results(r, path, err)) != MC_OK) return st;
    r->train_time = r->has_log ? training_time(&r->log) : 0;
    r->started = birth_time(r->dir);
    if (!isfinite(r->started) && isfinite(r->ended)) { r->started = r->ended - r->train_time; r->started_est = 1; }
    return MC_OK;
}

/* ------------------------------------------------------------ plots */

static const char *const palette[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
static const char *const dashes[4] = {"", "6 3", "2 2", "8 3 2 3"};

/* Plot geometry (pixels). */
#define PW 660
#define PH 300
#define PL 74.0
#define PR 646.0
#define PT 14.0
#define PB 252.0

typedef struct series {
    int run;
    const char *metric;      /* data-metric: the train.jsonl or results.jsonl key */
    char label[1024];        /* legend: run and term (long paths cut; sb_esc mends a cut character) */
    const char *color, *dash;
    size_t n;
    const double *x;         /* [n] or, with xs, the row's value */
    const unsigned char *xst;
    const double *y;
    const unsigned char *yst;
    const double *step;      /* the step of each point (titles), or NULL */
    int eval;                /* points with titles, no smoothing */
} series;

typedef struct axis {
    double lo, hi;           /* the values at the ends */
    int log;
} axis;

static double ax_map(const axis *a, double v, double p0, double p1) {
    double t = a->log ? (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo)) : (v - a->lo) / (a->hi - a->lo);
    return p0 + t * (p1 - p0);
}

/* Nice ticks (1, 2, 5 x 10^k) in [lo, hi]; returns the count, *step the spacing. */
static int nice_ticks(double lo, double hi, int target, int integer, double *ticks, int max, double *step_out) {
    double span = hi - lo;
    double raw = span / target;
    if (!(raw > 0)) raw = 1;
    double mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    double step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
    if (integer && step < 1) step = 1;
    *step_out = step;
    int n = 0;
    double k0 = ceil(lo / step - 1e-9);
    for (int i = 0; n < max; i++) {
        double t = (k0 + i) * step;
        if (t > hi + step * 1e-9) break;
        if (fabs(t) < step * 1e-9) t = 0;
        ticks[n++] = t;
    }
    return n;
}

/* Ticks of a log axis: decades (every k-th when many), with 2 and 5 when few;
 * minor: the other multiples for the grid. */
static int log_ticks(double lo, double hi, double *ticks, int max, double *minor, int *n_minor, int max_minor) {
    double l0 = log10(lo), l1 = log10(hi);
    int d0 = (int)floor(l0), d1 = (int)ceil(l1);
    int stride = (int)ceil((l1 - l0) / 7);
    if (stride < 1) stride = 1;
    int n = 0;
    *n_minor = 0;
    for (int d = d0; d <= d1 && n < max; d++) {
        double t = pow(10, d);
        if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9) && d % stride == 0) ticks[n++] = t;
    }
    if (n < 3 && l1 - l0 < 3) {   /* few decades: 2 and 5 too */
        n = 0;
        for (int d = d0; d <= d1 && n < max; d++)
            for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) {   /* 1, 2, 5 */
                double t = m * pow(10, d);
                if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9) && n < max) ticks[n++] = t;
            }
    }
    if (l1 - l0 <= 6)
        for (int d = d0; d <= d1; d++)
            for (int m = 2; m <= 9; m++) {
                double t = m * pow(10, d);
                if (t > lo && t < hi && *n_minor < max_minor) minor[(*n_minor)++] = t;
            }
    return n;
}

typedef struct plot_opts {
    const mc_report_params *p;
    int allow_log;           /* the metric may get a log axis */
    double yscale;           /* shown = value * yscale (100 for fractions shown as %) */
    int xsi;                 /* k/M suffixes on the x axis */
    const char *xkey;        /* data-xkey: "step" or "samples" */
    const char *xlabel, *ylabel, *title;
    int pad_x;               /* room around the first and last points (their markers) */
} plot_opts;

static int is_finite_pt(const series *s, size_t i) {
    return s->yst[i] == MC_REPORT_FINITE && (!s->xst || s->xst[i] == MC_REPORT_FINITE);
}
/* A point that is on the x axis (its y may be non-finite; missing values are not points). */
static int has_x(const series *s, size_t i) {
    return (!s->xst || s->xst[i] == MC_REPORT_FINITE) && s->yst[i] != MC_REPORT_MISSING;
}

static void smooth_series(const series *s, const mc_report_params *p, double *out) {
    double last = 0;
    size_t k = 0;
    double wsum = 0;
    size_t wn = 0, head = 0;
    size_t *win = NULL;
    if (p->window >= 2) win = malloc((size_t)p->window * sizeof *win);
    for (size_t i = 0; i < s->n; i++) {
        out[i] = NAN;
        if (!is_finite_pt(s, i)) continue;
        double v = s->y[i];
        if (win) {   /* trailing mean of the last `window` finite values */
            if (wn == (size_t)p->window) { wsum -= s->y[win[head]]; win[head] = i; head = (head + 1) % wn; }
            else win[wn++] = i;
            wsum += v;
            out[i] = wsum / (double)wn;
        } else {     /* TensorBoard: debiased exponential moving average */
            double w = p->smooth;
            last = last * w + (1 - w) * v;
            k++;
            double debias = 1 - pow(w, (double)k);
            out[i] = debias > 0 ? last / debias : v;
        }
    }
    free(win);
}

/* The points of a curve: those on the x axis (a non-finite one breaks the line). */
static size_t pick_points(const series *s, size_t *idx) {
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (has_x(s, i)) idx[n++] = i;
    return n;
}

static const char *state_word(unsigned char st) {
    return st == MC_REPORT_NULL ? "null" : st == MC_REPORT_NAN ? "NaN" : st == MC_REPORT_INF ? "infinite" : "missing";
}

/* Polylines through the points idx[0..n) of values vals (finite ones; a
 * non-finite one breaks the line); a lone point is a circle. */
static void draw_curve(sbuf *b, const series *s, const size_t *idx, size_t n, const double *vals, const axis *ax,
                       const axis *ay, double yscale, const char *cls, const char *color, const char *attrs) {
    if (!color) color = s->color;
    size_t i = 0;
    while (i < n) {
        while (i < n && !(is_finite_pt(s, idx[i]) && isfinite(vals[idx[i]]))) i++;
        size_t j = i;
        while (j < n && is_finite_pt(s, idx[j]) && isfinite(vals[idx[j]])) j++;
        if (j == i) break;
        if (j - i == 1) {
            size_t k = idx[i];
            sb_printf(b, "<circle class=\"%s\" data-run=\"%d\" data-metric=\"%s\" cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" fill=\"%s\" %s/>\n",
                      cls, s->run, s->metric, ax_map(ax, s->x[k], PL, PR), ax_map(ay, vals[k] * yscale, PB, PT), color, attrs);
        } else {
            sb_printf(b, "<polyline class=\"%s\" data-run=\"%d\" data-metric=\"%s\" fill=\"none\" stroke=\"%s\"%s%s%s %s points=\"",
                      cls, s->run, s->metric, color, s->dash[0] ? " stroke-dasharray=\"" : "", s->dash,
                      s->dash[0] ? "\"" : "", attrs);
            for (size_t q = i; q < j; q++) {
                size_t k = idx[q];
                sb_printf(b, "%s%.2f,%.2f", q > i ? " " : "", ax_map(ax, s->x[k], PL, PR), ax_map(ay, vals[k] * yscale, PB, PT));
            }
            sb_puts(b, "\"/>\n");
        }
        i = j;
    }
}

/* A dense curve: per bucket of `chunk` points the band from the finite
 * minimum to the maximum, at the bucket's mean x; a bucket holding a
 * non-finite value ends a band. */
static void draw_band(sbuf *b, const series *s, size_t chunk, const axis *ax, const axis *ay, double yscale) {
    size_t nb = (s->n + chunk - 1) / chunk;
    double *bx = mc_malloc_array(nb ? nb : 1, 3 * sizeof(double));
    unsigned char *fl = malloc(nb ? nb : 1);   /* 1: finite values, 2: also a non-finite one */
    if (!bx || !fl) { free(bx); free(fl); b->oom = 1; return; }
    double *lo = bx + nb, *hi = bx + 2 * nb;
    for (size_t k = 0; k < nb; k++) {
        double sx = 0, mn = INFINITY, mx = -INFINITY;
        size_t cnt = 0;
        int bad = 0;
        for (size_t i = k * chunk; i < (k + 1) * chunk && i < s->n; i++) {
            if (!has_x(s, i)) continue;
            if (!is_finite_pt(s, i)) { bad = 1; continue; }
            sx += s->x[i];
            cnt++;
            if (s->y[i] < mn) mn = s->y[i];
            if (s->y[i] > mx) mx = s->y[i];
        }
        fl[k] = cnt ? (unsigned char)(1 + bad) : 0;
        bx[k] = cnt ? sx / (double)cnt : 0;
        lo[k] = mn;
        hi[k] = mx;
    }
    size_t i = 0;
    while (i < nb) {
        while (i < nb && !fl[i]) i++;
        if (i == nb) break;
        size_t j = i;
        while (j < nb && fl[j]) { j++; if (fl[j - 1] == 2) break; }
        sb_printf(b, "<polygon class=\"raw envelope\" data-run=\"%d\" data-metric=\"%s\" fill=\"%s\" fill-opacity=\"0.22\" "
                     "stroke=\"%s\" stroke-opacity=\"0.22\" stroke-width=\"0.8\" points=\"", s->run, s->metric, s->color, s->color);
        for (size_t k = i; k < j; k++)
            sb_printf(b, "%s%.2f,%.2f", k > i ? " " : "", ax_map(ax, bx[k], PL, PR), ax_map(ay, hi[k] * yscale, PB, PT));
        for (size_t k = j; k-- > i;)
            sb_printf(b, " %.2f,%.2f", ax_map(ax, bx[k], PL, PR), ax_map(ay, lo[k] * yscale, PB, PT));
        sb_puts(b, "\"/>\n");
        i = j;
    }
    free(bx);
    free(fl);
}

typedef struct legend_note {
    int nonfinite, envelope_chunk, smoothed, log_refused;
} legend_note;

/* One plot: an <svg> with axes, grid, curves and markers, and its legend. */
static void draw_plot(sbuf *b, const char *id, series *ss, int ns, const plot_opts *o) {
    const mc_report_params *p = o->p;
    /* the data's extent */
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY, ypos = INFINITY;
    int any_nonpos = 0;
    for (int k = 0; k < ns; k++) {
        series *s = &ss[k];
        for (size_t i = 0; i < s->n; i++) {
            if (!has_x(s, i)) continue;
            if (s->x[i] < xmin) xmin = s->x[i];
            if (s->x[i] > xmax) xmax = s->x[i];
            if (s->yst[i] != MC_REPORT_FINITE) continue;
            double v = s->y[i] * o->yscale;
            if (v < ymin) ymin = v;
            if (v > ymax) ymax = v;
            if (v > 0 && v < ypos) ypos = v;
            if (v <= 0) any_nonpos = 1;
        }
    }
    int have_x = xmin <= xmax, have_y = ymin <= ymax;
    axis ax = {0, 1, 0}, ay = {0, 1, 0};
    if (have_x) {
        ax.lo = xmin;
        ax.hi = xmax;
        if (!(ax.hi > ax.lo)) { ax.lo = xmin - 1; ax.hi = xmax + 1; }
        else if (o->pad_x) { double pad = (ax.hi - ax.lo) * 0.04; ax.lo -= pad; ax.hi += pad; }
        if (xmin >= 0 && ax.lo < 0) ax.lo = 0;
    }
    legend_note note = {0, 0, 0, 0};
    if (have_y) {
        int want_log = o->allow_log && (p->log_y == 1 || (p->log_y < 0 && ymax / ypos >= 10));
        if (want_log && any_nonpos) { want_log = 0; note.log_refused = p->log_y == 1; }
        ay.log = want_log;
        if (ay.log) {
            double l0 = log10(ymin), l1 = log10(ymax), pad = l1 > l0 ? (l1 - l0) * 0.04 : 0.2;
            ay.lo = pow(10, l0 - pad);
            ay.hi = pow(10, l1 + pad);
        } else {
            double span = ymax - ymin;
            if (!(span > 1e-12 * fmax(fabs(ymax), fabs(ymin))) || span == 0) {
                double pad = ymin != 0 ? fabs(ymin) * 0.1 : 1;
                ay.lo = ymin - pad;
                ay.hi = ymax + pad;
            } else {
                ay.lo = ymin - span * 0.04;
                ay.hi = ymax + span * 0.04;
            }
            if (ymin >= 0 && ay.lo < 0) ay.lo = 0;
            if (!(ay.hi > ay.lo)) ay.hi = ay.lo + 1;
        }
    }
    sb_printf(b, "<figure class=\"plot\" id=\"%s\">\n<figcaption>", id);
    sb_esc(b, o->title);
    sb_printf(b, "</figcaption>\n<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "data-xkey=\"%s\" data-x0=\"%.17g\" data-x1=\"%.17g\" data-y0=\"%.17g\" data-y1=\"%.17g\" data-ylog=\"%d\" "
                 "data-yscale=\"%g\" data-left=\"%g\" data-right=\"%g\" data-top=\"%g\" data-bottom=\"%g\">\n<title>",
              PW, PH, PW, PH, o->xkey, ax.lo, ax.hi, ay.lo, ay.hi, ay.log, o->yscale, PL, PR, PT, PB);
    sb_esc(b, o->title);
    sb_puts(b, "</title>\n");
    sb_printf(b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"#ffffff\" stroke=\"#bbbbbb\"/>\n", PL, PT,
              PR - PL, PB - PT);
    char lab[64];
    double ticks[64], minor[128], step = 1;
    int nt = 0, nm = 0;
    /* x axis */
    if (have_x) {
        nt = nice_ticks(ax.lo, ax.hi, 6, 1, ticks, 64, &step);
        for (int i = 0; i < nt; i++) {
            double px = ax_map(&ax, ticks[i], PL, PR);
            fmt_tick(lab, sizeof lab, ticks[i], step, o->xsi);
            sb_printf(b, "<line class=\"grid\" x1=\"%.2f\" y1=\"%g\" x2=\"%.2f\" y2=\"%g\" stroke=\"#eeeeee\"/>"
                         "<line x1=\"%.2f\" y1=\"%g\" x2=\"%.2f\" y2=\"%g\" stroke=\"#555555\"/>"
                         "<text class=\"tick\" x=\"%.2f\" y=\"%g\" text-anchor=\"middle\">%s</text>\n",
                      px, PT, px, PB, px, PB, px, PB + 5, px, PB + 18, lab);
        }
    }
    sb_printf(b, "<text class=\"axis\" x=\"%g\" y=\"%d\" text-anchor=\"middle\">", (PL + PR) / 2, PH - 14);
    sb_esc(b, o->xlabel);
    sb_puts(b, "</text>\n");
    /* y axis */
    if (have_y) {
        if (ay.log) {
            nt = log_ticks(ay.lo, ay.hi, ticks, 64, minor, &nm, 128);
            if (nt < 2) {   /* less than a decade and no 1-2-5 value in it: plain nice values */
                nt = nice_ticks(ay.lo, ay.hi, 4, 0, ticks, 64, &step);
                int w = 0;
                for (int i = 0; i < nt; i++) if (ticks[i] > 0) ticks[w++] = ticks[i];
                nt = w;
            }
            for (int i = 0; i < nm; i++) {
                double py = ax_map(&ay, minor[i], PB, PT);
                sb_printf(b, "<line class=\"grid minor\" x1=\"%g\" y1=\"%.2f\" x2=\"%g\" y2=\"%.2f\" stroke=\"#f4f4f4\"/>\n",
                          PL, py, PR, py);
            }
        } else {
            nt = nice_ticks(ay.lo, ay.hi, 5, 0, ticks, 64, &step);
        }
        for (int i = 0; i < nt; i++) {
            double py = ax_map(&ay, ticks[i], PB, PT);
            fmt_tick(lab, sizeof lab, ticks[i], ay.log ? ticks[i] : step, 0);
            sb_printf(b, "<line class=\"grid\" x1=\"%g\" y1=\"%.2f\" x2=\"%g\" y2=\"%.2f\" stroke=\"#e4e4e4\"/>"
                         "<line x1=\"%g\" y1=\"%.2f\" x2=\"%g\" y2=\"%.2f\" stroke=\"#555555\"/>"
                         "<text class=\"tick\" x=\"%g\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n",
                      PL, py, PR, py, PL - 5, py, PL, py, PL - 8, py + 4, lab);
        }
    } else {
        sb_printf(b, "<text class=\"empty\" x=\"%g\" y=\"%g\" text-anchor=\"middle\">no finite values</text>\n",
                  (PL + PR) / 2, (PT + PB) / 2);
    }
    sb_printf(b, "<text class=\"axis\" transform=\"translate(16 %g) rotate(-90)\" text-anchor=\"middle\">", (PT + PB) / 2);
    sb_esc(b, o->ylabel);
    if (ay.log) sb_puts(b, ", log scale");
    sb_puts(b, "</text>\n");

    /* curves */
    size_t maxn = 0;
    for (int k = 0; k < ns; k++) if (ss[k].n > maxn) maxn = ss[k].n;
    size_t *idx = mc_malloc_array(maxn ? maxn : 1, sizeof *idx);
    double *sm = mc_malloc_array(maxn ? maxn : 1, sizeof *sm);
    if (!idx || !sm) b->oom = 1;
    int smoothing = p->smooth > 0 || p->window >= 2;
    for (int k = 0; k < ns && idx && sm && have_x; k++) {
        series *s = &ss[k];
        size_t finite = 0;
        for (size_t i = 0; i < s->n; i++) finite += is_finite_pt(s, i);
        size_t budget = p->max_points > 1 ? (size_t)p->max_points : 2000;
        size_t chunk = s->eval || s->n <= budget ? 1 : (s->n + budget / 2 - 1) / (budget / 2);
        if (chunk > 1 && chunk > (size_t)note.envelope_chunk) note.envelope_chunk = (int)chunk;
        int smooth_this = smoothing && !s->eval && finite > 1;
        if (have_y) {
            if (chunk > 1) {
                draw_band(b, s, chunk, &ax, &ay, o->yscale);
            } else {
                size_t n = pick_points(s, idx);
                char attrs[64];
                snprintf(attrs, sizeof attrs, "stroke-width=\"%s\"%s", smooth_this ? "1" : "1.5",
                         smooth_this ? " stroke-opacity=\"0.4\" fill-opacity=\"0.4\"" : "");
                draw_curve(b, s, idx, n, s->y, &ax, &ay, o->yscale, "raw", NULL, attrs);
            }
            if (smooth_this) {
                note.smoothed = 1;
                smooth_series(s, p, sm);
                /* the smoothed curve: every point, or the last of each bucket */
                size_t m = 0;
                for (size_t i = 0; i < s->n; i++) {
                    if (!has_x(s, i)) continue;
                    if (chunk > 1 && is_finite_pt(s, i) && (i + 1) % chunk != 0 && i + 1 != s->n) continue;
                    idx[m++] = i;
                }
                draw_curve(b, s, idx, m, sm, &ax, &ay, o->yscale, "halo", "#ffffff", "stroke-width=\"3.6\" stroke-opacity=\"0.8\"");
                draw_curve(b, s, idx, m, sm, &ax, &ay, o->yscale, "smooth", NULL, "stroke-width=\"1.8\"");
            }
        }
        /* the points of an evaluation, with their values */
        if (s->eval && have_y)
            for (size_t i = 0; i < s->n; i++) {
                if (!is_finite_pt(s, i)) continue;
                char xv[64];
                fmt_tick(xv, sizeof xv, s->x[i], 1, 1);
                sb_printf(b, "<circle class=\"point\" data-run=\"%d\" data-metric=\"%s\" cx=\"%.2f\" cy=\"%.2f\" r=\"3.5\" "
                             "fill=\"#ffffff\" stroke=\"%s\" stroke-width=\"1.5\"><title>",
                          s->run, s->metric, ax_map(&ax, s->x[i], PL, PR), ax_map(&ay, s->y[i] * o->yscale, PB, PT), s->color);
                sb_esc(b, s->label);
                sb_printf(b, ": %.4g at %s samples", s->y[i] * o->yscale, xv);
                if (s->step && isfinite(s->step[i])) sb_printf(b, " (step %.0f)", s->step[i]);
                sb_puts(b, "</title></circle>\n");
            }
        /* non-finite values: a faint vertical line and a cross at the top */
        int marked = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (!has_x(s, i) || s->yst[i] == MC_REPORT_FINITE) continue;
            note.nonfinite++;
            if (marked++ >= 200) continue;
            double px = ax_map(&ax, s->x[i], PL, PR), py = PT + 7 + 3 * (k % 4);
            sb_printf(b, "<g class=\"nonfinite\" data-run=\"%d\" data-metric=\"%s\" data-x=\"%.17g\">"
                         "<line x1=\"%.2f\" y1=\"%g\" x2=\"%.2f\" y2=\"%g\" stroke=\"#d62728\" stroke-opacity=\"0.35\" stroke-dasharray=\"3 3\"/>"
                         "<path d=\"M%.2f %.2fl6 6m0 -6l-6 6\" stroke=\"%s\" stroke-width=\"2\" fill=\"none\"/><title>",
                      s->run, s->metric, s->x[i], px, PT, px, PB, px - 3, py - 3, s->color);
            sb_esc(b, s->label);
            sb_printf(b, ": %s", state_word(s->yst[i]));
            if (s->step && isfinite(s->step[i])) sb_printf(b, " at step %.0f", s->step[i]);
            if (strcmp(o->xkey, "step")) sb_printf(b, " (%.0f %s)", s->x[i], o->xkey);
            sb_puts(b, "</title></g>\n");
        }
    }
    free(idx);
    free(sm);
    sb_puts(b, "</svg>\n<div class=\"legend\">");
    for (int k = 0; k < ns; k++) {
        sb_printf(b, "<span class=\"key\"><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"26\" height=\"10\" viewBox=\"0 0 26 10\">"
                     "<line x1=\"1\" y1=\"5\" x2=\"25\" y2=\"5\" stroke=\"%s\" stroke-width=\"2.5\"%s%s%s/></svg>",
                  ss[k].color, ss[k].dash[0] ? " stroke-dasharray=\"" : "", ss[k].dash, ss[k].dash[0] ? "\"" : "");
        sb_esc(b, ss[k].label);
        sb_puts(b, "</span> ");
    }
    if (note.nonfinite)
        sb_printf(b, "<span class=\"note warn\">&#215; %d non-finite value%s (null, NaN or infinite)</span> ", note.nonfinite,
                  note.nonfinite == 1 ? "" : "s");
    if (note.smoothed) {
        if (p->window >= 2) sb_printf(b, "<span class=\"note\">smoothed: mean of %d steps; raw curve faint</span> ", p->window);
        else sb_printf(b, "<span class=\"note\">smoothed: EMA %g; raw curve faint</span> ", p->smooth);
    }
    if (note.envelope_chunk)
        sb_printf(b, "<span class=\"note\">raw values: band from the minimum to the maximum of every %d steps</span> ", note.envelope_chunk);
    if (note.log_refused) sb_puts(b, "<span class=\"note\">linear: values not all positive</span> ");
    sb_puts(b, "</div>\n</figure>\n");
}

/* ------------------------------------------------------------ the page */

typedef struct train_plot {
    const char *id, *title, *ylabel;
    int cols[7];
    int n;
    int allow_log;
} train_plot;

static const train_plot train_plots[] = {
    {"loss", "Loss", "loss (nats)", {MC_REPORT_LOSS}, 1, 1},
    {"terms", "Loss terms: contrastive and distillation", "loss (nats)", {MC_REPORT_CONTRASTIVE, MC_REPORT_DISTILL}, 2, 1},
    {"real", "Real captions: contrastive and distillation", "loss (nats)",
     {MC_REPORT_CONTRASTIVE_REAL, MC_REPORT_DISTILL_REAL}, 2, 1},
    {"syn", "Synthetic captions: contrastive and distillation", "loss (nats)",
     {MC_REPORT_CONTRASTIVE_SYN, MC_REPORT_DISTILL_SYN}, 2, 1},
    {"lr", "Learning rate", "learning rate", {MC_REPORT_LR}, 1, 0},
    {"logit_scale", "Logit scale", "logit scale exp(t)", {MC_REPORT_LOGIT_SCALE}, 1, 0},
    {"grad_norm", "Gradient norm (before clipping)", "gradient L2 norm", {MC_REPORT_GRAD_NORM}, 1, 1},
    {"images_per_s", "Throughput", "images / s", {MC_REPORT_IMAGES_PER_S}, 1, 0},
    {"data_wait", "Data wait", "s per step", {MC_REPORT_DATA_WAIT}, 1, 0},
    {"phases", "Time per phase", "s per step",
     {MC_REPORT_TIME_FORWARD, MC_REPORT_TIME_BACKWARD, MC_REPORT_TIME_LOSS, MC_REPORT_TIME_OPTIM, MC_REPORT_TIME_TEACHERS,
      MC_REPORT_TIME_COMM},
     6, 1},
};
#define N_TRAIN_PLOTS (int)(sizeof train_plots / sizeof train_plots[0])

static const char *nice_column(int c) {
    switch (c) {
    case MC_REPORT_CONTRASTIVE: case MC_REPORT_CONTRASTIVE_REAL: case MC_REPORT_CONTRASTIVE_SYN: return "contrastive";
    case MC_REPORT_DISTILL: case MC_REPORT_DISTILL_REAL: case MC_REPORT_DISTILL_SYN: return "distillation";
    case MC_REPORT_TIME_FORWARD: return "forward";
    case MC_REPORT_TIME_BACKWARD: return "backward";
    case MC_REPORT_TIME_LOSS: return "loss";
    case MC_REPORT_TIME_OPTIM: return "optimizer";
    case MC_REPORT_TIME_TEACHERS: return "teachers";
    case MC_REPORT_TIME_COMM: return "communication";
    case MC_REPORT_LR: return "learning rate";
    case MC_REPORT_LOGIT_SCALE: return "logit scale";
    case MC_REPORT_GRAD_NORM: return "gradient norm";
    case MC_REPORT_IMAGES_PER_S: return "images/s";
    case MC_REPORT_DATA_WAIT: return "data wait";
    default: return column_names[c];
    }
}

static int column_present(const mc_report_log *l, int c) {
    for (size_t r = 0; r < l->n; r++) if (l->state[c][r] != MC_REPORT_MISSING) return 1;
    return 0;
}

/* A params.json value as text (NULL: absent). */
static void param_text(const mc_json *v, char *out, size_t cap) {
    if (!v) { snprintf(out, cap, "-"); return; }
    char tmp[64];
    switch (v->type) {
    case MC_JSON_NULL: snprintf(out, cap, "-"); break;
    case MC_JSON_BOOL: snprintf(out, cap, "%s", v->boolean ? "true" : "false"); break;
    case MC_JSON_NUMBER: fmt_val(out, cap, v->number); break;
    case MC_JSON_STRING: snprintf(out, cap, "%s", v->string); break;
    case MC_JSON_ARRAY: {
        size_t n = 0;
        n += (size_t)snprintf(out, cap, "[");
        for (size_t i = 0; i < v->len && n < cap; i++) {
            if (v->items[i].type == MC_JSON_NUMBER) fmt_val(tmp, sizeof tmp, v->items[i].number);
            else if (v->items[i].type == MC_JSON_STRING) snprintf(tmp, sizeof tmp, "%s", v->items[i].string);
            else snprintf(tmp, sizeof tmp, "...");
            n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", tmp);
        }
        if (n < cap) snprintf(out + n, cap - n, "]");
        break;
    }
    default: snprintf(out, cap, "{...}"); break;
    }
}

static const mc_json *param(const run_data *r, const char *key) { return r->params ? mc_json_get(r->params, key) : NULL; }

/* One row of the runs table: a label and a value per run. */
typedef void (*row_fn)(const run_data *r, char *out, size_t cap);

static void row_folder(const run_data *r, char *o, size_t c) { snprintf(o, c, "%s", r->dir); }
static void row_model(const run_data *r, char *o, size_t c) {
    char m[2048], pre[2048];
    param_text(param(r, "model"), m, sizeof m);
    param_text(param(r, "pretrained"), pre, sizeof pre);
    if (strcmp(pre, "-")) snprintf(o, c, "%s (from %s)", m, pre);
    else snprintf(o, c, "%s", m);
}
static void row_data(const run_data *r, char *o, size_t c) {
    char d[2048];
    param_text(param(r, "train_data"), d, sizeof d);
    double dr = mc_json_number(param(r, "dataset_reinforcement"), 0), mix = mc_json_number(param(r, "mix_synthetic"), 0);
    double ns = mc_json_number(param(r, "train_num_samples"), 0);
    char nsb[64] = "one pass per epoch";
    if (ns > 0) snprintf(nsb, sizeof nsb, "%.0f samples per epoch%s", ns,
                         mc_json_number(param(r, "dataset_resampled"), 0) ? ", resampled" : "");
    snprintf(o, c, "%s; %s%s; %s", d, dr ? "reinforced (DataCompDR)" : "plain image-text", mix ? ", mixed synthetic" : "", nsb);
}
static void row_batch(const run_data *r, char *o, size_t c) {
    double b = mc_json_number(param(r, "batch_size"), NAN), a = mc_json_number(param(r, "accum_freq"), 1);
    if (!isfinite(b)) { snprintf(o, c, "-"); return; }
    if (a > 1) snprintf(o, c, "%.0f x %.0f accumulated = %.0f per step", b, a, b * a);
    else snprintf(o, c, "%.0f per step", b);
}
static void row_optim(const run_data *r, char *o, size_t c) {
    char v[6][64];
    static const char *k[6] = {"lr", "wd", "beta1", "beta2", "eps", "warmup"};
    for (int i = 0; i < 6; i++) param_text(param(r, k[i]), v[i], sizeof v[i]);
    char clip[64];
    param_text(param(r, "grad_clip_norm"), clip, sizeof clip);
    snprintf(o, c, "AdamW lr %s, wd %s, betas %s %s, eps %s; warm-up %s steps, cosine; clip %s", v[0], v[1], v[2], v[3],
             v[4], v[5], clip);
}
static void row_loss(const run_data *r, char *o, size_t c) {
    char w[128], d[128], s[128], m[1024];
    param_text(param(r, "distill_loss_weights"), w, sizeof w);
    param_text(param(r, "distill_teacher_dimension"), d, sizeof d);
    param_text(param(r, "distill_logit_scale"), s, sizeof s);
    param_text(param(r, "distill_model"), m, sizeof m);
    snprintf(o, c, "weights (contrastive, distillation) %s; teachers %s, scales %s%s%s", w, d, s,
             strcmp(m, "[]") && strcmp(m, "-") ? ", online " : "", strcmp(m, "[]") && strcmp(m, "-") ? m : "");
}
static void row_seed(const run_data *r, char *o, size_t c) {
    char s[64], t[64], w[64];
    param_text(param(r, "seed"), s, sizeof s);
    param_text(param(r, "threads"), t, sizeof t);
    param_text(param(r, "workers"), w, sizeof w);
    size_t last = r->log.n ? r->log.n - 1 : 0;
    double ranks = r->log.n && r->log.state[MC_REPORT_RANKS][last] == MC_REPORT_FINITE ? r->log.value[MC_REPORT_RANKS][last] : 1;
    char rk[64] = "";
    if (ranks > 1) snprintf(rk, sizeof rk, "; %.0f ranks (MPI)", ranks);
    snprintf(o, c, "seed %s; %s threads; %s loader workers%s", s, strcmp(t, "0") ? t : "default", w, rk);
}
static void row_machine(const run_data *r, char *o, size_t c) {
    const char *h = mc_json_str(param(r, "hostname"), NULL), *cpu = mc_json_str(param(r, "cpu"), NULL);
    if (!h && !cpu) snprintf(o, c, "not recorded (params.json has no hostname / cpu)");
    else snprintf(o, c, "%s; %s", h && *h ? h : "unknown host", cpu && *cpu ? cpu : "unknown CPU");
}
static void row_started(const run_data *r, char *o, size_t c) {
    char t[64];
    if (!isfinite(r->started)) { snprintf(o, c, "unknown"); return; }
    fmt_time(t, sizeof t, r->started);
    snprintf(o, c, "%s%s", t, r->started_est ? " (estimated: last step less the training time)" : " (run folder created)");
}
static void row_ended(const run_data *r, char *o, size_t c) {
    char t[64];
    if (!isfinite(r->ended)) { snprintf(o, c, "-"); return; }
    fmt_time(t, sizeof t, r->ended);
    snprintf(o, c, "%s", t);
}
static void row_duration(const run_data *r, char *o, size_t c) {
    char w[64], t[64];
    fmt_duration(w, sizeof w, isfinite(r->started) && isfinite(r->ended) ? r->ended - r->started : NAN);
    fmt_duration(t, sizeof t, r->train_time);
    snprintf(o, c, "%s wall (start to last step%s); %s training (the steps' own times)", w,
             r->started_est ? ", estimated" : "", t);
}
static size_t last_finite(const mc_report_log *l, int col) {
    for (size_t r = l->n; r-- > 0;) if (l->state[col][r] == MC_REPORT_FINITE) return r;
    return SIZE_MAX;
}
static void row_progress(const run_data *r, char *o, size_t c) {
    const mc_report_log *l = &r->log;
    if (!l->n) { snprintf(o, c, "no steps logged yet"); return; }
    double total = mc_json_number(param(r, "total_steps"), NAN), epochs = mc_json_number(param(r, "epochs"), NAN);
    char tot[64] = "", ep[96] = "", sm[64] = "";
    if (isfinite(total)) snprintf(tot, sizeof tot, " of %.0f", total);
    size_t last = l->n - 1;
    if (l->state[MC_REPORT_EPOCH][last] == MC_REPORT_FINITE) {
        if (isfinite(epochs)) snprintf(ep, sizeof ep, "; epoch %.0f of %.0f", l->value[MC_REPORT_EPOCH][last] + 1, epochs);
        else snprintf(ep, sizeof ep, "; epoch %.0f", l->value[MC_REPORT_EPOCH][last] + 1);
    }
    if (l->state[MC_REPORT_SAMPLES][last] == MC_REPORT_FINITE)
        snprintf(sm, sizeof sm, "; %.0f samples seen", l->value[MC_REPORT_SAMPLES][last]);
    snprintf(o, c, "step %.0f%s (%zu logged)%s%s", l->value[MC_REPORT_STEP][last], tot, l->n, ep, sm);
}
static void row_loss_now(const run_data *r, char *o, size_t c) {
    const mc_report_log *l = &r->log;
    size_t last = last_finite(l, MC_REPORT_LOSS);
    if (last == SIZE_MAX) { snprintf(o, c, "-"); return; }
    size_t best = last;
    for (size_t i = 0; i < l->n; i++)
        if (l->state[MC_REPORT_LOSS][i] == MC_REPORT_FINITE && l->value[MC_REPORT_LOSS][i] < l->value[MC_REPORT_LOSS][best]) best = i;
    snprintf(o, c, "%.4g at step %.0f; lowest %.4g at step %.0f", l->value[MC_REPORT_LOSS][last],
             l->value[MC_REPORT_STEP][last], l->value[MC_REPORT_LOSS][best], l->value[MC_REPORT_STEP][best]);
}
static void row_speed(const run_data *r, char *o, size_t c) {
    const mc_report_log *l = &r->log;
    size_t last = last_finite(l, MC_REPORT_SAMPLES);
    if (last == SIZE_MAX || !(r->train_time > 0)) { snprintf(o, c, "-"); return; }
    double wait = 0;
    for (size_t i = 0; i < l->n; i++) if (l->state[MC_REPORT_DATA_WAIT][i] == MC_REPORT_FINITE) wait += l->value[MC_REPORT_DATA_WAIT][i];
    /* the samples of the logged steps: the last count less what came before the first logged step */
    double first = l->value[MC_REPORT_STEP][0] > 1 && l->state[MC_REPORT_SAMPLES][0] == MC_REPORT_FINITE
                       ? l->value[MC_REPORT_SAMPLES][0] / l->value[MC_REPORT_STEP][0] * (l->value[MC_REPORT_STEP][0] - 1)
                       : 0;
    snprintf(o, c, "%.3g images/s on average; data wait %.1f%% of the time", (l->value[MC_REPORT_SAMPLES][last] - first) / r->train_time,
             100 * wait / r->train_time);
}
static void row_log(const run_data *r, char *o, size_t c) {
    const mc_report_log *l = &r->log;
    size_t nonfinite = 0;
    for (int col = MC_REPORT_LOSS; col < MC_REPORT_N_COLUMNS; col++)
        for (size_t i = 0; i < l->n; i++)
            nonfinite += l->state[col][i] != MC_REPORT_FINITE && l->state[col][i] != MC_REPORT_MISSING;
    int n = snprintf(o, c, "%zu line%s", l->lines, l->lines == 1 ? "" : "s");
    if (l->duplicates && n >= 0 && (size_t)n < c)
        n += snprintf(o + n, c - (size_t)n, "; %zu repeated step%s (the last line kept)", l->duplicates, l->duplicates == 1 ? "" : "s");
    if (l->unreadable && n >= 0 && (size_t)n < c)
        n += snprintf(o + n, c - (size_t)n, "; %zu unreadable (line %zu first)", l->unreadable, l->first_unreadable);
    if (nonfinite && n >= 0 && (size_t)n < c)
        n += snprintf(o + n, c - (size_t)n, "; %zu non-finite values", nonfinite);
    if (r->has_results && n >= 0 && (size_t)n < c)
        snprintf(o + n, c - (size_t)n, "; results.jsonl: %zu evaluations%s", r->eval_lines, r->eval_unreadable ? " (some unreadable)" : "");
}

typedef struct table_row {
    const char *label;
    row_fn fn;
    int setting;     /* differences are marked */
} table_row;

static const table_row run_rows[] = {
    {"folder", row_folder, 0},       {"model", row_model, 1},      {"data", row_data, 1},
    {"batch", row_batch, 1},         {"optimizer", row_optim, 1},  {"loss", row_loss, 1},
    {"seed, threads, ranks", row_seed, 1},  {"machine", row_machine, 1},  {"started", row_started, 0},
    {"last step logged", row_ended, 0}, {"duration", row_duration, 0}, {"progress", row_progress, 0},
    {"loss now", row_loss_now, 0},   {"throughput", row_speed, 0}, {"log", row_log, 0},
};

static void swatch(sbuf *b, const char *color) {
    sb_printf(b, "<span class=\"swatch\" style=\"background:%s\"></span>", color);
}

static void write_header(sbuf *b, run_data *runs, int n, const mc_report_params *p) {
    sb_puts(b, "<section id=\"runs\"><h2>Run");
    sb_puts(b, n > 1 ? "s</h2>\n" : "</h2>\n");
    sb_puts(b, "<table class=\"meta\">\n");
    if (n > 1) {
        sb_puts(b, "<tr><th></th>");
        for (int i = 0; i < n; i++) {
            sb_puts(b, "<th>");
            swatch(b, palette[i % 10]);
            sb_esc(b, runs[i].label);
            sb_puts(b, "</th>");
        }
        sb_puts(b, "</tr>\n");
    }
    char *vals = malloc((size_t)n * 8192);
    if (!vals) { b->oom = 1; return; }
    for (size_t k = 0; k < sizeof run_rows / sizeof run_rows[0]; k++) {
        int differ = 0;
        for (int i = 0; i < n; i++) {
            run_rows[k].fn(&runs[i], vals + (size_t)i * 8192, 8192);
            if (i && strcmp(vals + (size_t)i * 8192, vals)) differ = 1;
        }
        sb_printf(b, "<tr%s><th>", differ && run_rows[k].setting ? " class=\"diff\"" : "");
        sb_esc(b, run_rows[k].label);
        sb_puts(b, "</th>");
        for (int i = 0; i < n; i++) {
            sb_puts(b, "<td>");
            sb_esc(b, vals + (size_t)i * 8192);
            sb_puts(b, "</td>");
        }
        sb_puts(b, "</tr>\n");
    }
    free(vals);
    sb_puts(b, "</table>\n");
    if (n > 1) sb_puts(b, "<p class=\"small\">Settings that differ between the runs are in bold.</p>\n");
    /* command lines */
    for (int i = 0; i < n; i++) {
        const char *cmd = mc_json_str(param(&runs[i], "command_line"), NULL);
        if (!cmd) continue;
        sb_puts(b, "<p class=\"small\">");
        if (n > 1) { swatch(b, palette[i % 10]); sb_esc(b, runs[i].label); sb_puts(b, ": "); }
        sb_puts(b, "command line</p>\n<pre class=\"cmd\">");
        sb_esc(b, cmd);
        sb_puts(b, "</pre>\n");
    }
    /* every setting */
    int any = 0;
    for (int i = 0; i < n; i++) any |= runs[i].params && runs[i].params->type == MC_JSON_OBJECT;
    if (any) {
        sb_puts(b, "<details><summary>All settings (params.json)</summary>\n<table class=\"meta params\">\n");
        /* the keys of all runs, in first-seen order */
        for (int i = 0; i < n; i++) {
            const mc_json *pj = runs[i].params;
            if (!pj || pj->type != MC_JSON_OBJECT) continue;
            for (size_t k = 0; k < pj->len; k++) {
                const char *key = pj->keys[k];
                int seen = 0;
                for (int i2 = 0; i2 < i && !seen; i2++) seen = param(&runs[i2], key) != NULL;
                if (seen || !strcmp(key, "command_line")) continue;
                char first[2048], v[2048];
                int differ = 0;
                for (int j = 0; j < n; j++) {
                    param_text(param(&runs[j], key), v, sizeof v);
                    if (!j) memcpy(first, v, sizeof first);
                    else if (strcmp(v, first)) differ = 1;
                }
                sb_printf(b, "<tr%s><th>", differ ? " class=\"diff\"" : "");
                sb_esc(b, key);
                sb_puts(b, "</th>");
                for (int j = 0; j < n; j++) {
                    param_text(param(&runs[j], key), v, sizeof v);
                    sb_puts(b, "<td>");
                    sb_esc(b, v);
                    sb_puts(b, "</td>");
                }
                sb_puts(b, "</tr>\n");
            }
        }
        sb_puts(b, "</table>\n</details>\n");
    }
    sb_puts(b, "</section>\n");
    (void)p;
}

static void section_start(sbuf *b, const char *id, const char *title) {
    sb_printf(b, "<section id=\"%s\"><h2>", id);
    sb_esc(b, title);
    sb_puts(b, "</h2>\n<div class=\"grid\">\n");
}

/* The plots of one train_plot: against steps, against samples. */
static void write_train_plot(sbuf *b, run_data *runs, int n, const train_plot *tp, const mc_report_params *p) {
    series ss[MC_REPORT_MAX_RUNS * 5];
    int ns = 0;
    for (int c = 0, present = 0; c < tp->n; c++) {
        int col_present = 0;
        for (int i = 0; i < n; i++) col_present |= runs[i].has_log && column_present(&runs[i].log, tp->cols[c]);
        if (!col_present) continue;
        for (int i = 0; i < n; i++) {
            if (!runs[i].has_log || !column_present(&runs[i].log, tp->cols[c])) continue;
            series *s = &ss[ns++];
            memset(s, 0, sizeof *s);
            s->run = i;
            s->metric = column_names[tp->cols[c]];
            /* one run: a colour per term; several: a colour per run, a dash per term */
            s->color = n > 1 ? palette[i % 10] : palette[present % 10];
            s->dash = n > 1 ? dashes[present % 4] : "";
            if (n > 1 && tp->n > 1) snprintf(s->label, sizeof s->label, "%.900s: %s", runs[i].label, nice_column(tp->cols[c]));
            else if (n > 1) snprintf(s->label, sizeof s->label, "%.900s", runs[i].label);
            else snprintf(s->label, sizeof s->label, "%s", nice_column(tp->cols[c]));
            s->n = runs[i].log.n;
            s->y = runs[i].log.value[tp->cols[c]];
            s->yst = runs[i].log.state[tp->cols[c]];
            s->step = runs[i].log.value[MC_REPORT_STEP];
        }
        present++;
    }
    if (!ns) return;
    section_start(b, tp->id, tp->title);
    for (int xk = 0; xk < 2; xk++) {
        for (int k = 0; k < ns; k++) {
            const mc_report_log *l = &runs[ss[k].run].log;
            ss[k].x = l->value[xk ? MC_REPORT_SAMPLES : MC_REPORT_STEP];
            ss[k].xst = l->state[xk ? MC_REPORT_SAMPLES : MC_REPORT_STEP];
        }
        plot_opts o = {p, tp->allow_log, 1, 1, xk ? "samples" : "step", xk ? "samples seen" : "step", tp->ylabel, NULL, 0};
        char title[256], id[96];
        snprintf(title, sizeof title, "%s against %s", tp->title, xk ? "seen samples" : "steps");
        snprintf(id, sizeof id, "plot-%s-%s", tp->id, xk ? "samples" : "step");
        o.title = title;
        draw_plot(b, id, ss, ns, &o);
    }
    sb_puts(b, "</div>\n</section>\n");
}

/* Labels in natural order: "R@5" before "R@10". */
static int cmp_label(const void *a, const void *b) {
    const char *x = (*(const eval_series *const *)a)->label, *y = (*(const eval_series *const *)b)->label;
    while (*x && *y) {
        if (*x >= '0' && *x <= '9' && *y >= '0' && *y <= '9') {
            char *ex, *ey;
            unsigned long long u = strtoull(x, &ex, 10), v = strtoull(y, &ey, 10);
            if (u != v) return u < v ? -1 : 1;
            x = ex;
            y = ey;
            continue;
        }
        if (*x != *y) return (unsigned char)*x < (unsigned char)*y ? -1 : 1;
        x++;
        y++;
    }
    return (unsigned char)*x - (unsigned char)*y;
}

static void write_eval(sbuf *b, run_data *runs, int n, const mc_report_params *p) {
    int any = 0, any_file = 0;
    for (int i = 0; i < n; i++) { any |= runs[i].n_ev > 0; any_file |= runs[i].has_results; }
    sb_puts(b, "<section id=\"eval\"><h2>Evaluation</h2>\n");
    if (!any) {
        sb_puts(b, any_file ? "<p>results.jsonl holds no zero-shot or retrieval figures.</p>\n"
                            : "<p>No evaluations yet (no results.jsonl).</p>\n</section>\n");
        if (any_file) sb_puts(b, "</section>\n");
        return;
    }
    for (int i = 0; i < n; i++)
        if (runs[i].eval_unplaced) {
            sb_puts(b, "<p class=\"small warn\">");
            sb_esc(b, runs[i].label);
            sb_printf(b, ": %zu evaluation%s without samples, step or a logged epoch: not plotted.</p>\n",
                      runs[i].eval_unplaced, runs[i].eval_unplaced == 1 ? "" : "s");
        }
    sb_puts(b, "<div class=\"grid\">\n");
    for (int g = 0; g < G_COUNT; g++) {
        series ss[64];
        int ns = 0;
        for (int i = 0; i < n && ns < 64; i++) {
            eval_series *list[MAX_EVAL_KEYS];
            int nl = 0;
            for (int k = 0; k < runs[i].n_ev; k++) if (runs[i].ev[k].group == g) list[nl++] = &runs[i].ev[k];
            qsort(list, (size_t)nl, sizeof list[0], cmp_label);
            for (int k = 0; k < nl && ns < 64; k++) {
                series *s = &ss[ns++];
                memset(s, 0, sizeof *s);
                s->run = i;
                s->metric = list[k]->key;
                s->color = n > 1 ? palette[i % 10] : palette[k % 10];
                s->dash = n > 1 ? dashes[k % 4] : "";
                if (n > 1) snprintf(s->label, sizeof s->label, "%.800s: %.200s", runs[i].label, list[k]->label);
                else snprintf(s->label, sizeof s->label, "%s", list[k]->label);
                s->n = list[k]->n;
                s->x = list[k]->x;
                s->y = list[k]->y;
                s->yst = list[k]->st;
                s->step = list[k]->step;
                s->eval = 1;
            }
        }
        if (!ns) continue;
        char id[64];
        snprintf(id, sizeof id, "plot-eval-%s", g == G_ZEROSHOT ? "zeroshot" : g == G_I2T ? "i2t" : "t2i");
        plot_opts o = {p, 0, 100, 1, "samples", "samples seen", group_ylabel[g], group_title[g], 1};
        draw_plot(b, id, ss, ns, &o);
    }
    sb_puts(b, "</div>\n");
    /* the last evaluation of each run */
    sb_puts(b, "<h3>Last evaluation</h3>\n<table class=\"meta\">\n<tr><th></th>");
    for (int i = 0; i < n; i++) {
        sb_puts(b, "<th>");
        if (n > 1) swatch(b, palette[i % 10]);
        sb_esc(b, runs[i].label);
        sb_puts(b, "</th>");
    }
    sb_puts(b, "</tr>\n");
    static const char *ctx[3] = {"epoch", "step", "samples"};
    for (int c = 0; c < 3; c++) {
        sb_printf(b, "<tr><th>%s</th>", ctx[c]);
        for (int i = 0; i < n; i++) {
            char v[256] = "-";
            const mc_json *e = runs[i].last_eval ? mc_json_get(runs[i].last_eval, ctx[c]) : NULL;
            if (e) param_text(e, v, sizeof v);
            sb_puts(b, "<td>");
            sb_esc(b, v);
            sb_puts(b, "</td>");
        }
        sb_puts(b, "</tr>\n");
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < runs[i].n_ev; k++) {
            const char *key = runs[i].ev[k].key;
            int seen = 0;
            for (int i2 = 0; i2 < i && !seen; i2++)
                for (int k2 = 0; k2 < runs[i2].n_ev && !seen; k2++) seen = !strcmp(runs[i2].ev[k2].key, key);
            if (seen) continue;
            sb_puts(b, "<tr><th>");
            sb_esc(b, key);
            sb_puts(b, "</th>");
            for (int j = 0; j < n; j++) {
                const mc_json *e = runs[j].last_eval ? mc_json_get(runs[j].last_eval, key) : NULL;
                double v;
                unsigned char st = value_state(e, &v);
                if (st == MC_REPORT_FINITE) sb_printf(b, "<td>%.2f %%</td>", v * 100);
                else sb_printf(b, "<td>%s</td>", st == MC_REPORT_MISSING ? "-" : state_word(st));
            }
            sb_puts(b, "</tr>\n");
        }
    sb_puts(b, "</table>\n</section>\n");
}

static const char *css =
    "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:18px 24px;color:#222;background:#fafafa}\n"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 6px;border-bottom:1px solid #ddd}\n"
    "h3{font-size:14px;margin:12px 0 4px}.small{font-size:12px;color:#555;margin:6px 0 2px}\n"
    "nav{font-size:12px;margin:6px 0}nav a{margin-right:10px;color:#1f5fa0}\n"
    "table.meta{border-collapse:collapse;font-size:12px;background:#fff}\n"
    "table.meta th,table.meta td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}\n"
    "table.meta td{overflow-wrap:anywhere}\n"
    "table.meta th{background:#f2f2f2;font-weight:normal;white-space:nowrap}\n"
    "table.meta tr.diff td,table.meta tr.diff th{font-weight:bold}\n"
    "pre.cmd{font-size:11px;background:#fff;border:1px solid #ddd;padding:6px;white-space:pre-wrap;word-break:break-all;margin:2px 0}\n"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:10px}\n"
    "figure.plot{margin:0;background:#fff;border:1px solid #e2e2e2;padding:6px}\n"
    "figure.plot svg.chart{display:block;width:100%;height:auto;max-width:900px}\n"
    "figure.plot figcaption{font-size:13px;font-weight:bold;margin:0 0 2px 6px}\n"
    "svg text{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif}svg text.tick{font-size:11px;fill:#333}\n"
    "svg text.axis{font-size:12px;fill:#222}svg text.empty{font-size:13px;fill:#999}\n"
    ".legend{font-size:12px;margin:2px 6px}.legend .key{margin-right:12px;white-space:nowrap}\n"
    ".legend svg{vertical-align:middle;margin-right:3px}.note{color:#666;margin-right:12px}.warn{color:#b22}\n"
    ".swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}\n"
    "details{margin:8px 0;font-size:12px}\n";

mc_status mc_report_write(const char *const *run_dirs, int n_runs, const char *out_path, const mc_report_params *pp,
                          mc_error *err) {
    mc_report_params p = pp ? *pp : mc_report_default_params();
    if (n_runs < 1 || !run_dirs) return mc_fail(err, MC_ERR_INVALID_ARG, "report: no run folder given");
    if (n_runs > MC_REPORT_MAX_RUNS)
        return mc_fail(err, MC_ERR_INVALID_ARG, "report: at most %d runs in one report", MC_REPORT_MAX_RUNS);
    if (!out_path || !*out_path) return mc_fail(err, MC_ERR_INVALID_ARG, "report: no output path");
    if (!(p.smooth == -1 || (p.smooth >= 0 && p.smooth < 1)))
        return mc_fail(err, MC_ERR_INVALID_ARG, "report: smoothing must be in [0, 1) (or -1: automatic)");
    if (p.window < 0 || p.window == 1) return mc_fail(err, MC_ERR_INVALID_ARG, "report: the smoothing window must be 2 or more (0: none)");
    if (p.log_y < -1 || p.log_y > 1) return mc_fail(err, MC_ERR_INVALID_ARG, "report: log_y must be -1, 0 or 1");
    if (p.max_points < 4) p.max_points = 2000;
    run_data *runs = calloc((size_t)n_runs, sizeof *runs);
    if (!runs) return mc_fail(err, MC_ERR_NOMEM, "report: out of memory");
    mc_status st = MC_OK;
    int loaded = 0;
    for (int i = 0; i < n_runs && st == MC_OK; i++) {
        st = load_run(run_dirs[i], &runs[i], err);
        loaded = i + 1;
    }
    if (st == MC_OK) {   /* the same folder name twice: show the paths */
        char *same = calloc((size_t)n_runs, 1);
        for (int i = 0; i < n_runs && same; i++)
            for (int j = 0; j < n_runs; j++) same[i] |= i != j && !strcmp(runs[i].label, runs[j].label);
        for (int i = 0; i < n_runs && same; i++)
            if (same[i]) snprintf(runs[i].label, sizeof runs[i].label, "%s", runs[i].dir);
        free(same);
    }
    int auto_smooth = p.smooth < 0 && p.window < 2;
    if (st == MC_OK && auto_smooth) {   /* about 200 steps' worth of smoothing across the longest run */
        size_t longest = 0;
        for (int i = 0; i < n_runs; i++) if (runs[i].log.n > longest) longest = runs[i].log.n;
        p.smooth = longest > 500 ? 1 - 200.0 / (double)longest : 0.6;
        if (p.smooth > 0.999) p.smooth = 0.999;
        p.smooth = floor(p.smooth * 1000 + 0.5) / 1000;
    }
    sbuf b = {0};
    if (st == MC_OK) {
        char title[1024];
        if (p.title) snprintf(title, sizeof title, "%s", p.title);
        else if (n_runs == 1) snprintf(title, sizeof title, "Training run %.900s", runs[0].label);
        else {
            int k = snprintf(title, sizeof title, "Training runs");
            for (int i = 0; i < n_runs && k > 0 && (size_t)k < sizeof title; i++)
                k += snprintf(title + k, sizeof title - (size_t)k, "%s%s", i ? ", " : " ", runs[i].label);
        }
        sb_puts(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
        sb_esc(&b, title);
        sb_printf(&b, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<h1>", css);
        sb_esc(&b, title);
        char now[64];
        fmt_time(now, sizeof now, (double)time(NULL));
        sb_printf(&b, "</h1>\n<p class=\"small\">Written %s by mobileclip %s. ", now, mc_version());
        if (p.window >= 2) sb_printf(&b, "Smoothing: trailing mean of %d steps. ", p.window);
        else if (p.smooth > 0)
            sb_printf(&b, "Smoothing: exponential moving average %g (TensorBoard's%s). ", p.smooth,
                      auto_smooth ? "; chosen from the run length, --smooth sets it" : "");
        else sb_puts(&b, "No smoothing. ");
        sb_printf(&b, "Log axes: %s.</p>\n", p.log_y < 0 ? "automatic" : p.log_y ? "where the values are positive" : "none");
        sb_puts(&b, "<nav><a href=\"#runs\">runs</a>");
        for (int k = 0; k < N_TRAIN_PLOTS; k++) {
            int present = 0;
            for (int i = 0; i < n_runs; i++)
                for (int c = 0; c < train_plots[k].n; c++)
                    present |= runs[i].has_log && column_present(&runs[i].log, train_plots[k].cols[c]);
            if (!present) continue;
            sb_printf(&b, "<a href=\"#%s\">", train_plots[k].id);
            sb_esc(&b, train_plots[k].title);
            sb_puts(&b, "</a>");
        }
        sb_puts(&b, "<a href=\"#eval\">evaluation</a></nav>\n");
        write_header(&b, runs, n_runs, &p);
        int any_steps = 0;
        for (int i = 0; i < n_runs; i++) any_steps |= runs[i].log.n > 0;
        if (!any_steps) sb_puts(&b, "<p>No steps logged yet (train.jsonl is missing or empty).</p>\n");
        for (int k = 0; k < N_TRAIN_PLOTS; k++) write_train_plot(&b, runs, n_runs, &train_plots[k], &p);
        write_eval(&b, runs, n_runs, &p);
        sb_puts(&b, "</body>\n</html>\n");
        if (b.oom) st = mc_fail(err, MC_ERR_NOMEM, "report: out of memory");
    }
    for (int i = 0; i < loaded; i++) run_free(&runs[i]);
    free(runs);
    if (st == MC_OK) {
        char tmp[4200];
        if (strlen(out_path) + 5 > sizeof tmp) st = mc_fail(err, MC_ERR_INVALID_ARG, "report: output path too long");
        else {
            snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
            FILE *f = fopen(tmp, "w");
            if (!f) st = mc_fail(err, MC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
            else st = mc_file_commit(f, tmp, out_path, fwrite(b.p, 1, b.n, f) == b.n && !ferror(f), err);
        }
    }
    free(b.p);
    return st;
}

mc_status mc_report_write_run(const char *run_dir, mc_error *err) {
    char out[4200];
    if (snprintf(out, sizeof out, "%s/report.html", run_dir) >= (int)sizeof out)
        return mc_fail(err, MC_ERR_INVALID_ARG, "report: run folder path too long");
    mc_report_params p = mc_report_default_params();
    const char *dirs[1] = {run_dir};
    return mc_report_write(dirs, 1, out, &p, err);
}
