/*
 * serve_load.c - a loopback load test of 'mobileclip serve': for each kind
 * of request (text embeddings, image embeddings, text search) and each
 * number of concurrent clients, every client sends requests back to back on
 * its own keep-alive connection for a fixed time; prints requests/s, the
 * 50th and 99th percentile latency and the error count (a non-200 answer or
 * a failed connection), and the server's resident memory before and after
 * (from /proc/PID/status, --pid) after a warm-up pass over every row and at
 * the end.  Bounded in time: 1 + --seconds per row.
 *
 *   serve_load --port N [--host 127.0.0.1] [--pid PID] [--seconds 5]
 *              [--clients 1,4,16] [--kinds text,image,search] [--image FILE]
 *
 * Search rows run only when the server has an index (GET /health).  Exit
 * status 1 when any request failed or the memory grew by more than 10 %
 * and 16 MiB from the end of the warm-up to the end.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char host[64] = "127.0.0.1";
static int port;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int connect_server(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response (Content-Length bodies); returns the status, -1 on a
 * broken connection.  *buf grows as needed; the body is left NUL-terminated
 * at *body. */
static int read_response(int fd, char **buf, size_t *cap, char **body) {
    size_t n = 0;
    char *end = NULL;
    for (;;) {
        if (n + 1 >= *cap) {
            *cap *= 2;
            char *nb = realloc(*buf, *cap);
            if (!nb) return -1;
            *buf = nb;
        }
        ssize_t k = recv(fd, *buf + n, *cap - n - 1, 0);
        if (k <= 0) return -1;
        n += (size_t)k;
        (*buf)[n] = 0;
        if ((end = strstr(*buf, "\r\n\r\n"))) break;
    }
    int status;
    if (sscanf(*buf, "HTTP/1.%*d %d", &status) != 1) return -1;
    const char *cl = strcasestr(*buf, "\r\nContent-Length:");
    if (!cl || cl > end) return -1;
    size_t len = strtoull(cl + 17, NULL, 10), head = (size_t)(end + 4 - *buf);
    if (head + len + 1 > *cap) {
        *cap = head + len + 1;
        char *nb = realloc(*buf, *cap);
        if (!nb) return -1;
        *buf = nb;
    }
    while (n < head + len) {
        ssize_t k = recv(fd, *buf + n, head + len - n, 0);
        if (k <= 0) return -1;
        n += (size_t)k;
    }
    (*buf)[head + len] = 0;
    *body = *buf + head;
    return status;
}

/* ---- requests ---- */

enum { KIND_TEXT, KIND_IMAGE, KIND_SEARCH };
static const char *kind_names[] = {"text", "image", "search"};
static char *image_b64;

static const char *words[] = {"a photo of a dog", "a cat on a sofa", "receipts on a table", "a beach at sunset",
                              "mountains under snow", "a plate of pasta", "a red car", "people at a party"};

/* the request bytes for the i-th request of a client */
static char *make_request(int kind, int client, long i, size_t *len) {
    const char *w = words[(client + i) % 8];
    char *r = NULL, *body = NULL;
    int n = -1;
    if (kind == KIND_SEARCH) {
        char q[128];
        int k = 0;
        for (const char *p = w; *p && k < 120; p++) {
            if (*p == ' ') { memcpy(q + k, "%20", 3); k += 3; }
            else q[k++] = *p;
        }
        q[k] = 0;
        n = asprintf(&r, "GET /v1/search?q=%s&k=10 HTTP/1.1\r\nHost: %s\r\n\r\n", q, host);
    } else {
        int bl = kind == KIND_TEXT ? asprintf(&body, "{\"input\": [\"%s %ld\"]}", w, i)
                                   : asprintf(&body, "{\"input\": [{\"image\": \"%s\"}]}", image_b64);
        if (bl > 0)
            n = asprintf(&r, "POST /v1/embeddings HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                             "Content-Length: %d\r\n\r\n%s", host, bl, body);
        free(body);
    }
    *len = n > 0 ? (size_t)n : 0;
    return n > 0 ? r : NULL;
}

typedef struct client {
    int id, kind;
    double until;
    double *lat;              /* seconds, one per request */
    long n, cap, errors;
} client;

static void *client_run(void *arg) {
    client *c = arg;
    size_t cap = 1 << 16;
    char *buf = malloc(cap), *body;
    int fd = connect_server();
    for (long i = 0; now_s() < c->until; i++) {
        size_t len;
        char *req = make_request(c->kind, c->id, i, &len);
        double t0 = now_s();
        int status = -1;
        if (fd < 0) fd = connect_server();
        if (fd >= 0 && req && send_all(fd, req, len) == 0) status = read_response(fd, &buf, &cap, &body);
        free(req);
        double dt = now_s() - t0;
        if (status != 200) {
            c->errors++;
            if (fd >= 0) close(fd);
            fd = -1;
            if (status < 0) usleep(10000);
            continue;
        }
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 1024;
            c->lat = realloc(c->lat, (size_t)c->cap * sizeof *c->lat);
        }
        c->lat[c->n++] = dt;
    }
    if (fd >= 0) close(fd);
    free(buf);
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int server_pid;

static long rss_kib(int pid) {
    if (pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10);
    fclose(f);
    return v;
}

/* one row: n clients of a kind for secs seconds */
static long run_row(int kind, int n, double secs, int print) {
    client *cs = calloc((size_t)n, sizeof *cs);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        cs[i] = (client){i, kind, t0 + secs, NULL, 0, 0, 0};
        pthread_create(&th[i], NULL, client_run, &cs[i]);
    }
    long total = 0, errors = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += cs[i].n;
        errors += cs[i].errors;
    }
    double wall = now_s() - t0;
    double *all = malloc((size_t)(total ? total : 1) * sizeof *all);
    long k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, cs[i].lat, (size_t)cs[i].n * sizeof *all);
        k += cs[i].n;
        free(cs[i].lat);
    }
    qsort(all, (size_t)total, sizeof *all, cmp_double);
    double p50 = total ? all[(total - 1) / 2] : 0, p99 = total ? all[(long)((total - 1) * 0.99)] : 0;
    if (print)
        printf("%-7s %7d %9ld %10.1f %9.2f %9.2f %7ld %8.1f\n", kind_names[kind], n, total, total / wall, p50 * 1e3,
               p99 * 1e3, errors, rss_kib(server_pid) / 1024.0);
    fflush(stdout);
    free(all);
    free(cs);
    free(th);
    return errors;
}

static char *file_b64(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n + 1);
    if (!d || fread(d, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(d); return NULL; }
    fclose(f);
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc((size_t)n / 3 * 4 + 8), *w = o;
    for (long i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        *w++ = al[v >> 18];
        *w++ = al[(v >> 12) & 63];
        *w++ = i + 1 < n ? al[(v >> 6) & 63] : '=';
        *w++ = i + 2 < n ? al[v & 63] : '=';
    }
    *w = 0;
    free(d);
    return o;
}

static int has_index(void) {
    int fd = connect_server();
    if (fd < 0) return -1;
    char req[128];
    int n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: %s\r\n\r\n", host);
    size_t cap = 1 << 14;
    char *buf = malloc(cap), *body = NULL;
    int st = send_all(fd, req, (size_t)n) == 0 ? read_response(fd, &buf, &cap, &body) : -1;
    int idx = st == 200 && body && !strstr(body, "\"index\": null");
    close(fd);
    free(buf);
    return st == 200 ? idx : -1;
}

int main(int argc, char **argv) {
    int pid = 0;
    double secs = 5;
    const char *clients = "1,4,16", *kinds = "text,image,search", *image = "../shared/fixtures/images/chelsea_q90.jpg";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--port") && v) port = atoi(argv[++i]);
        else if (!strcmp(a, "--host") && v) snprintf(host, sizeof host, "%s", argv[++i]);
        else if (!strcmp(a, "--pid") && v) pid = atoi(argv[++i]);
        else if (!strcmp(a, "--seconds") && v) secs = atof(argv[++i]);
        else if (!strcmp(a, "--clients") && v) clients = argv[++i];
        else if (!strcmp(a, "--kinds") && v) kinds = argv[++i];
        else if (!strcmp(a, "--image") && v) image = argv[++i];
        else {
            fprintf(stderr, "usage: serve_load --port N [--host ADDR] [--pid PID] [--seconds S] [--clients 1,4,16]\n"
                            "                  [--kinds text,image,search] [--image FILE]\n");
            return 2;
        }
    }
    if (port <= 0 || !(secs > 0)) { fprintf(stderr, "serve_load: --port and a positive --seconds are required\n"); return 2; }
    int idx = has_index();
    if (idx < 0) { fprintf(stderr, "serve_load: no server answers GET /health on %s:%d\n", host, port); return 1; }
    if (strstr(kinds, "image") && !(image_b64 = file_b64(image))) {
        fprintf(stderr, "serve_load: cannot read %s\n", image);
        return 1;
    }
    int want[3] = {strstr(kinds, "text") != NULL, strstr(kinds, "image") != NULL, strstr(kinds, "search") != NULL};
    if (want[KIND_SEARCH] && !idx) {
        printf("(no index on the server: no search rows)\n");
        want[KIND_SEARCH] = 0;
    }
    server_pid = pid;
    long rss0 = rss_kib(pid);
    /* a warm-up pass over every row (1 s each, not counted), then the measured pass */
    long errors = 0, rss1 = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            rss1 = rss_kib(pid);
            printf("%-7s %7s %9s %10s %9s %9s %7s %8s\n", "kind", "clients", "requests", "req/s", "p50_ms", "p99_ms",
                   "errors", "rss_mib");
        }
        for (int k = 0; k < 3; k++) {
            if (!want[k]) continue;
            for (const char *p = clients; *p;) {
                int c = atoi(p);
                if (c > 0) errors += run_row(k, c, pass ? secs : (secs < 1 ? secs : 1), pass);
                p = strchr(p, ',');
                if (!p) break;
                p++;
            }
        }
    }
    long rss2 = rss_kib(pid);
    int grew = 0;
    if (pid > 0) {
        printf("server rss: %.1f MiB at start, %.1f MiB after warm-up, %.1f MiB at the end\n", rss0 / 1024.0,
               rss1 / 1024.0, rss2 / 1024.0);
        grew = rss2 > rss1 + rss1 / 10 && rss2 - rss1 > 16 * 1024;
        if (grew) printf("serve_load: the server's memory grew after warm-up\n");
    }
    printf("errors: %ld\n", errors);
    free(image_b64);
    return errors || grew ? 1 : 0;
}
