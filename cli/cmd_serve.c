/*
 * cmd_serve.c - the 'serve' command: the HTTP server of src/serve/ (the web
 * page, embeddings, classification, and with --db search over a photo index
 * with its images and thumbnails) on one loaded model, until SIGTERM or
 * SIGINT, which drain the requests in progress and exit 0; SIGHUP re-reads
 * the index.
 * Prints "listening on http://HOST:PORT/" on stdout once it accepts
 * connections (with --port 0: the port it got).
 */
#include "cli.h"
#include "embed.h"
#include "progress.h"
#include "model/synth.h"
#include "serve/server.h"

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const cli_opt serve_opts[] = {
    {"model", 'm', 1, 0, "MODEL  checkpoint file, folder, or official name (see 'mobileclip list')"},
    {"random-weights", 0, 1, 0, "NAME  instead of -m: a built-in architecture (mobileclip_s0, ...) with seeded random\n"
                                "        weights, for load tests without a download"},
    {"db", 0, 1, 0, "FILE  a photo index made by 'mobileclip index' with the same model: search, images, thumbnails"},
    {"thumbnail-size", 0, 1, 0, "N  longest side of thumbnails (default 256)"},
    {"host", 0, 1, 0, "ADDR  numeric address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)"},
    {"port", 'p', 1, 0, "N  port (default 8080; 0: any free port, printed)"},
    {"workers", 0, 1, 0, "K  encoder threads, each with its own context (default: one per core, at most 4)"},
    {"threads", 't', 1, 0, "N  compute threads over all workers (default: one per core)"},
    {"batch", 'b', 1, 0, "N  most texts or images per forward pass, shared by concurrent requests (default 8)"},
    {"max-connections", 0, 1, 0, "N  open connections at once (default 64)"},
    {"max-body", 0, 1, 0, "BYTES  largest request body (default 32M; K, M, G suffixes)"},
    {"max-image-bytes", 0, 1, 0, "BYTES  largest image file in a request (default 16M)"},
    {"max-image-pixels", 0, 1, 0, "N  largest image, width x height (default 40000000)"},
    {"max-text-bytes", 0, 1, 0, "BYTES  longest text (default 16K)"},
    {"max-inputs", 0, 1, 0, "N  texts and images per request (default 64)"},
    {"max-labels", 0, 1, 0, "N  labels x templates per classification (default 1024)"},
    {"max-k", 0, 1, 0, "N  most search results (default 1000)"},
    {"timeout", 0, 1, 0, "SEC  longest wait for an encoder before 503 (default 30)"},
    {"connection-timeout", 0, 1, 0, "SEC  an idle or stalled connection is closed (default 30)"},
    {"drain", 0, 1, 0, "SEC  on SIGTERM, longest wait for the requests in progress (default 10)"},
    {"name", 0, 1, 0, "NAME  the model name in responses (default: the model's file or official name)"},
    {"vocab", 0, 1, 0, "FILE  the BPE vocabulary"},
    {"config", 0, 1, 0, "FILE  model config (default: beside the checkpoint)"},
    CLI_WEIGHTS_OPT,
    {"quiet", 'q', 0, 0, "no line per request on stderr"},
};

/* "123", "64K", "32M", "1G" (binary multiples) */
static int parse_bytes(const cli_args *a, const char *name, size_t *out) {
    const char *v = cli_get(a, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k') shift = 10, end++;
    else if (*end == 'M' || *end == 'm') shift = 20, end++;
    else if (*end == 'G' || *end == 'g') shift = 30, end++;
    if (errno || end == v || *end || v[0] == '-' || x == 0 || x > (SIZE_MAX >> shift))
        return cli_errorf("--%s: expected a positive byte count (K, M, G suffixes), got '%s'", name, v);
    *out = (size_t)x << shift;
    return 0;
}

static int parse_int_opt(const cli_args *a, const char *name, int min, int max, int *out) {
    const char *v = cli_get(a, name);
    if (v && (cli_parse_int(v, out) || *out < min || *out > max))
        return cli_errorf("--%s: expected an integer from %d to %d, got '%s'", name, min, max, v);
    return 0;
}

static int parse_seconds(const cli_args *a, const char *name, double *out) {
    const char *v = cli_get(a, name);
    if (!v) return 0;
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x > 0) || x > 86400)
        return cli_errorf("--%s: expected seconds in (0, 86400], got '%s'", name, v);
    *out = x;
    return 0;
}

static void log_line(void *user, int level, const char *line) {
    (void)user;
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    strftime(ts, sizeof ts, "%H:%M:%S", localtime_r(&t, &tm));
    fprintf(stderr, "%s %s%s\n", ts, level == MC_LOG_ERROR ? "error: " : level == MC_LOG_WARN ? "warning: " : "", line);
}

/* the model's name in responses: the official name, else the file or folder name */
static void model_name(const char *arg, const char *official, char *out, size_t cap) {
    if (official) { snprintf(out, cap, "%s", official); return; }
    size_t n = strlen(arg);
    while (n > 1 && arg[n - 1] == '/') n--;
    const char *b = arg + n;
    while (b > arg && b[-1] != '/') b--;
    size_t len = (size_t)(arg + n - b);
    const char *dot = memchr(b, '.', len);
    if (dot && dot != b) len = (size_t)(dot - b);
    snprintf(out, cap, "%.*s", (int)len, b);
}

int cmd_serve(int argc, char **argv) {
    const int n_opts = (int)(sizeof serve_opts / sizeof serve_opts[0]);
    cli_args a;
    int help;
    if (cli_parse(argc, argv, serve_opts, n_opts, &a, &help)) return 2;
    if (help) {
        cli_print_help(stdout, "mobileclip serve -m MODEL [--host ADDR] [--port N] [options]",
                       "Serves the model over HTTP: a web page at /, POST /v1/embeddings (texts and\n"
                       "images, OpenAI-style), POST /v1/classify, GET /health; with --db a photo index:\n"
                       "GET /v1/search?q=TEXT&k=N, POST /v1/search (an image), GET /v1/images/ID and\n"
                       "/v1/thumbnails/ID, only of indexed files (docs/serve.md).\n"
                       "Runs until SIGTERM or SIGINT, which finish the requests in progress (--drain)\n"
                       "and exit 0; SIGHUP re-reads the index (after 'mobileclip index' added to it).\nPrints \"listening on http://HOST:PORT/\" once it accepts connections.",
                       serve_opts, n_opts);
        cli_args_free(&a);
        return 0;
    }
    mc_server_params sp = mc_server_default_params();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1) cores = 1;
    int threads = 0, workers = cores < 4 ? (int)cores : 4;
    double drain = 10, timeout = sp.limits.request_timeout_s, conn_timeout = sp.limits.connection_timeout_s;
    int bad = parse_int_opt(&a, "port", 0, 65535, &sp.port) || parse_int_opt(&a, "workers", 1, 256, &workers) ||
              parse_int_opt(&a, "threads", 0, 4096, &threads) || parse_int_opt(&a, "batch", 1, 1024, &sp.pool.max_batch) ||
              parse_int_opt(&a, "max-connections", 1, 65536, &sp.max_connections) ||
              parse_int_opt(&a, "max-inputs", 1, 1 << 20, &sp.limits.max_inputs) ||
              parse_int_opt(&a, "max-labels", 1, 1 << 20, &sp.limits.max_labels) ||
              parse_int_opt(&a, "max-k", 1, 1 << 24, &sp.limits.max_k) ||
              parse_int_opt(&a, "thumbnail-size", 16, 4096, &sp.thumbnail_size) ||
              parse_bytes(&a, "max-body", &sp.limits.max_body_bytes) ||
              parse_bytes(&a, "max-image-bytes", &sp.limits.max_image_bytes) ||
              parse_bytes(&a, "max-image-pixels", &sp.limits.max_image_pixels) ||
              parse_bytes(&a, "max-text-bytes", &sp.limits.max_text_bytes) || parse_seconds(&a, "timeout", &timeout) ||
              parse_seconds(&a, "connection-timeout", &conn_timeout) || parse_seconds(&a, "drain", &drain);
    if (bad) {
        cli_args_free(&a);
        return 2;
    }
    sp.limits.request_timeout_s = timeout;
    sp.limits.connection_timeout_s = conn_timeout < 1 ? 1 : (int)conn_timeout;
    if (cli_get(&a, "host")) sp.host = cli_get(&a, "host");
    int total = threads > 0 ? threads : (int)cores;
    sp.pool.n_workers = workers;
    sp.pool.threads_per_worker = total / workers > 0 ? total / workers : 1;
    sp.log = log_line;
    sp.log_requests = !cli_has(&a, "quiet");

#ifdef __GLIBC__
    /* A fixed mmap threshold: request-sized buffers (bodies, decoded images,
     * pixels) go back to the system when freed, instead of glibc raising the
     * threshold and keeping them in the heaps of the connection threads,
     * where the resident size grew with each new mix of sizes. */
    mallopt(M_MMAP_THRESHOLD, 256 << 10);
    /* Two heaps for the connection threads' small allocations: with one per
     * thread (glibc's default up to 8 per core) the resident size crept up
     * over the first load-test rounds; with two it is flat (docs/serve.md). */
    mallopt(M_ARENA_MAX, 2);
#endif
    /* SIGTERM and SIGINT are taken by sigwait below: blocked before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    mc_model *model = NULL;
    mc_server *srv = NULL;
    mc_index *index = NULL;
    const char *official = NULL;
    int rc = 0;
    const char *random = cli_get(&a, "random-weights");
    mc_error err;
    if (random) {
        if (cli_get(&a, "model")) { rc = cli_errorf("serve: -m and --random-weights exclude each other") + 1; goto out; }
        mc_model_params mp = mc_model_default_params();
        if (cli_parse_weights(cli_get(&a, "weights"), &mp.weight_dtype)) { rc = 2; goto out; }
        char vocab[4096];
        mp.vocab_path = cli_get(&a, "vocab");
        if (!mp.vocab_path) {   /* the synthetic model has no folder to look in: the usual places */
            if (mc_tokenizer_find_vocab(".", vocab, sizeof vocab, &err) != MC_OK) { rc = cli_error(&err); goto out; }
            mp.vocab_path = vocab;
        }
        if (mc_synth_model_load(random, 1234, &mp, &model, &err) != MC_OK) { rc = cli_error(&err); goto out; }
        official = random;
    } else {
        cli_model_opts mo = {cli_get(&a, "model"), cli_get(&a, "config"), cli_get(&a, "vocab"), 1, 1, 1,
                             cli_get(&a, "weights")};
        if ((rc = cli_model_load(&mo, &model, NULL, 0, &official))) goto out;
    }
    char name[256];
    if (cli_get(&a, "name")) snprintf(name, sizeof name, "%s", cli_get(&a, "name"));
    else model_name(cli_get(&a, "model"), official, name, sizeof name);
    sp.model_name = name;
    const char *db = cli_get(&a, "db");
    if (db) {
        mc_index_params ip = mc_index_default_params();   /* read-only */
        if (mc_index_open(db, &ip, &index, &err) != MC_OK) { rc = cli_error(&err); goto out; }
        sp.index = index;
    }
    if (mc_server_start(model, &sp, &srv, &err) != MC_OK) { rc = cli_error(&err); goto out; }
    const char *h = sp.host;
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "mobileclip: serving %s with %d worker%s x %d thread%s, batches of up to %d\n", name, workers,
            workers == 1 ? "" : "s", sp.pool.threads_per_worker, sp.pool.threads_per_worker == 1 ? "" : "s",
            sp.pool.max_batch);
    if (index) {
        mc_index_info ii;
        if (mc_index_get_info(index, &ii, &err) == MC_OK)
            fprintf(stderr, "mobileclip: index %s: %lld images\n", db, (long long)ii.count);
    }
    printf("listening on http://%s%s%s:%d/\n", v6 ? "[" : "", h, v6 ? "]" : "", mc_server_port(srv));
    fflush(stdout);
    int sig = 0;
    for (;;) {
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig != SIGHUP) break;
        if (mc_server_reload_index(srv, &err) != MC_OK) cli_error(&err);
    }
    fprintf(stderr, "mobileclip: %s: finishing the requests in progress (at most %.3g s)\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", drain);
    mc_server_stop(srv, drain);
    fprintf(stderr, "mobileclip: stopped\n");
out:
    mc_index_close(index);
    mc_model_free(model);
    cli_args_free(&a);
    return rc;
}
