/*
 * serve/server.c - the HTTP server (see server.h, docs/serve.md).
 *
 * libmicrohttpd runs one thread per connection (at most max_connections).
 * A connection thread reads the body (bounded), parses it (request.c),
 * tokenizes texts and decodes images itself, then hands the encoding to the
 * pool and waits: decoding runs in parallel across connections while the
 * pool's workers batch the forward passes.  Stopping: the listening socket
 * is closed first (MHD_quiesce_daemon), requests in progress finish, then
 * the daemon and the pool stop.
 */
#include "serve/server.h"
#include "io/image.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TEMPLATE "a photo of a {}."

struct mc_server {
    const mc_model *model;
    mc_model_info info;
    const mc_tokenizer *tok;
    mc_server_params p;
    char host[256];
    char model_name[256];
    mc_pool *pool;
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;                  /* requests between their first call and completion */
    int draining;
    int64_t served;
    double started;
};

/* one request's state, from the first call of the handler to completion */
typedef struct req_state {
    mc_sbuf body;
    int too_big;                 /* the body went over the limit: read and dropped */
    double t0;
    char what[160];              /* "METHOD /path" for the log */
} req_state;

mc_server_params mc_server_default_params(void) {
    mc_server_params p;
    memset(&p, 0, sizeof p);
    p.host = "127.0.0.1";
    p.port = 8080;
    p.max_connections = 64;
    p.model_name = "mobileclip";
    p.pool = mc_pool_default_params();
    p.limits = mc_serve_default_limits();
    return p;
}

static void logf_(mc_server *s, int level, const char *fmt, ...) MC_PRINTF(3, 4);
static void logf_(mc_server *s, int level, const char *fmt, ...) {
    if (!s->p.log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->p.log(s->p.log_user, level, line);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    mc_server *s = cls;
    if (!s->p.log) return;
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    s->p.log(s->p.log_user, MC_LOG_WARN, line);
}

/* ---- responses ---- */

static enum MHD_Result send_buf(mc_server *s, struct MHD_Connection *c, int http, const char *type, void *data,
                                size_t len, int must_free) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (http == 503) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    pthread_mutex_lock(&s->lock);
    int draining = s->draining;
    pthread_mutex_unlock(&s->lock);
    if (draining) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)http, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(mc_server *s, struct MHD_Connection *c, int http, mc_sbuf *b) {
    if (b->oom) {
        mc_sbuf_free(b);
        static const char oom[] = "{\"error\": {\"message\": \"out of memory\", \"type\": \"unavailable\", \"code\": 503}}\n";
        return send_buf(s, c, 503, "application/json", (void *)oom, sizeof oom - 1, 0);
    }
    char *p = b->p ? b->p : strdup("");
    size_t len = b->len;
    memset(b, 0, sizeof *b);
    return send_buf(s, c, http, "application/json", p, len, 1);
}

static enum MHD_Result send_error(mc_server *s, struct MHD_Connection *c, int http, const char *msg) {
    mc_sbuf b = {0};
    mc_sbuf_error(&b, http, msg);
    return send_json(s, c, http, &b);
}

/* ---- encoding ---- */

typedef struct encoded {
    float *emb;                  /* [n, D], in input order */
    int n_tokens;                /* tokens of the texts (usage) */
} encoded;

/* Tokenizes the texts and decodes the images of inputs[0..n) here, encodes
 * them in the pool; on failure *http and err say why. */
static mc_status encode_inputs(mc_server *s, const mc_serve_input *in, int n, encoded *e, int *http, mc_error *err) {
    memset(e, 0, sizeof *e);
    size_t D = (size_t)s->info.embed_dim, L = (size_t)s->info.context_length;
    size_t S = (size_t)s->info.image_size, plane = 3 * S * S;
    int n_text = 0, n_img = 0;
    for (int i = 0; i < n; i++) {
        if (in[i].kind == MC_INPUT_TEXT) n_text++;
        else n_img++;
    }
    *http = 400;
    if (n_text && !s->tok) return mc_fail(err, MC_ERR_UNSUPPORTED, "the model has no text tower or tokenizer");
    if (n_img && !plane) return mc_fail(err, MC_ERR_UNSUPPORTED, "the model has no image tower");
    int32_t *tokens = n_text ? mc_malloc_array((size_t)n_text * L, sizeof *tokens) : NULL;
    float *pixels = n_img ? mc_malloc_array((size_t)n_img * plane, sizeof *pixels) : NULL;
    float *temb = n_text ? mc_malloc_array((size_t)n_text * D, sizeof(float)) : NULL;
    float *iemb = n_img ? mc_malloc_array((size_t)n_img * D, sizeof(float)) : NULL;
    e->emb = mc_malloc_array((size_t)n * D, sizeof(float));
    mc_status st = MC_OK;
    if ((n_text && (!tokens || !temb)) || (n_img && (!pixels || !iemb)) || !e->emb) {
        *http = 503;
        st = mc_fail(err, MC_ERR_NOMEM, "out of memory for %d inputs", n);
    }
    const mc_preprocess_params *pp = &s->info.preprocess;
    for (int i = 0, t = 0, m = 0; i < n && st == MC_OK; i++) {
        mc_error e1;
        if (in[i].kind == MC_INPUT_TEXT) {
            int32_t *ids = tokens + (size_t)t++ * L;
            if (mc_tokenizer_encode_n(s->tok, in[i].text, in[i].len, (int)L, ids, &e1) != MC_OK) {
                st = mc_fail(err, e1.status, "input %d: %s", i, e1.message);
                break;
            }
            for (size_t k = 0; k < L; k++) e->n_tokens += ids[k] != 0;
            continue;
        }
        mc_image img, res;
        int over = 0;
        st = mc_image_load_memory_max(in[i].image, in[i].len, pp->apply_exif, s->p.limits.max_image_pixels, &img,
                                      &over, &e1);
        if (st != MC_OK) {
            *http = over ? 413 : st == MC_ERR_NOMEM ? 503 : 400;
            st = mc_fail(err, st, "input %d: %s", i, e1.message);
            break;
        }
        st = mc_image_resize_crop(&img, pp->size, pp->interp, pp->resize_mode, &res, &e1);
        mc_image_free(&img);
        if (st != MC_OK) {
            *http = st == MC_ERR_NOMEM ? 503 : 400;
            st = mc_fail(err, st, "input %d: %s", i, e1.message);
            break;
        }
        mc_image_to_tensor(&res, pp->mean, pp->std, pixels + (size_t)m++ * plane);
        mc_image_free(&res);
    }
    int timed_out = 0;
    if (st == MC_OK && n_text)
        st = mc_pool_encode(s->pool, MC_POOL_TEXT, tokens, n_text, temb, s->p.limits.request_timeout_s, &timed_out, err);
    if (st == MC_OK && n_img)
        st = mc_pool_encode(s->pool, MC_POOL_IMAGE, pixels, n_img, iemb, s->p.limits.request_timeout_s, &timed_out, err);
    if (st != MC_OK && (timed_out || st == MC_ERR_NOMEM)) *http = 503;
    else if (st != MC_OK && *http == 400 && st != MC_ERR_IMAGE && st != MC_ERR_TOKENIZER && st != MC_ERR_FORMAT &&
             st != MC_ERR_UNSUPPORTED && st != MC_ERR_INVALID_ARG)
        *http = 500;
    if (st == MC_OK) {
        for (int i = 0, t = 0, m = 0; i < n; i++) {
            const float *src = in[i].kind == MC_INPUT_TEXT ? temb + (size_t)t++ * D : iemb + (size_t)m++ * D;
            memcpy(e->emb + (size_t)i * D, src, D * sizeof(float));
        }
        *http = 200;
    } else {
        free(e->emb);
        e->emb = NULL;
    }
    free(tokens);
    free(pixels);
    free(temb);
    free(iemb);
    return st;
}

/* ---- endpoints ---- */

static enum MHD_Result do_embeddings(mc_server *s, struct MHD_Connection *c, const mc_serve_request *rq) {
    encoded e;
    int http;
    mc_error err;
    if (encode_inputs(s, rq->inputs, rq->n_inputs, &e, &http, &err) != MC_OK)
        return send_error(s, c, http, err.message);
    int D = s->info.embed_dim;
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"object\": \"list\", \"data\": [");
    for (int i = 0; i < rq->n_inputs; i++) {
        mc_sbuf_printf(&b, "%s{\"object\": \"embedding\", \"index\": %d, \"embedding\": ", i ? ", " : "", i);
        mc_sbuf_floats(&b, e.emb + (size_t)i * D, D);
        mc_sbuf_puts(&b, "}");
    }
    mc_sbuf_puts(&b, "], \"model\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_printf(&b, ", \"usage\": {\"prompt_tokens\": %d, \"total_tokens\": %d}}\n", e.n_tokens, e.n_tokens);
    free(e.emb);
    return send_json(s, c, 200, &b);
}

/* template with every "{}" replaced by label */
static char *fill_template(const char *tmpl, const char *label) {
    size_t n = 0, ll = strlen(label);
    for (const char *p = tmpl; (p = strstr(p, "{}")); p += 2) n++;
    size_t len = strlen(tmpl) + n * ll + 1;
    char *out = malloc(len), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        if (p[0] == '{' && p[1] == '}') {
            memcpy(o, label, ll);
            o += ll;
            p += 2;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

/* Zero-shot classification as 'mobileclip classify' does it: each label's
 * classifier is the mean of its normalised template embeddings,
 * re-normalised; probabilities are softmax(min(logit_scale, 100) * cosine). */
static enum MHD_Result do_classify(mc_server *s, struct MHD_Connection *c, const mc_serve_request *rq) {
    int nl = rq->n_labels, nt = rq->n_templates ? rq->n_templates : 1, D = s->info.embed_dim;
    int n_prompts = nl * nt, n_img = rq->n_inputs, total = n_prompts + n_img;
    mc_serve_input *in = calloc((size_t)total, sizeof *in);
    char **prompts = calloc((size_t)n_prompts, sizeof *prompts);
    float *cls = calloc((size_t)nl * (size_t)D, sizeof *cls);
    double *prob = malloc((size_t)nl * sizeof *prob);
    int *order = malloc((size_t)nl * sizeof *order);
    enum MHD_Result ret;
    encoded e = {0};
    if (!in || !prompts || !cls || !prob || !order) {
        ret = send_error(s, c, 503, "out of memory");
        goto out;
    }
    for (int l = 0; l < nl; l++)
        for (int t = 0; t < nt; t++) {
            const char *tmpl = rq->n_templates ? rq->templates[t]->string : DEFAULT_TEMPLATE;
            char *p = fill_template(tmpl, rq->labels[l]->string);
            if (!p) {
                ret = send_error(s, c, 503, "out of memory");
                goto out;
            }
            prompts[l * nt + t] = p;
            in[l * nt + t] = (mc_serve_input){MC_INPUT_TEXT, p, strlen(p), NULL};
        }
    for (int i = 0; i < n_img; i++) in[n_prompts + i] = rq->inputs[i];
    int http;
    mc_error err;
    if (encode_inputs(s, in, total, &e, &http, &err) != MC_OK) {
        ret = send_error(s, c, http, err.message);
        goto out;
    }
    for (int l = 0; l < nl; l++) {
        float *cl = cls + (size_t)l * D;
        for (int t = 0; t < nt; t++)
            for (int k = 0; k < D; k++) cl[k] += e.emb[(size_t)(l * nt + t) * D + k];
        double ss = 0;
        for (int k = 0; k < D; k++) {
            cl[k] /= (float)nt;
            ss += (double)cl[k] * cl[k];
        }
        double nrm = sqrt(ss) < 1e-12 ? 1e-12 : sqrt(ss);
        for (int k = 0; k < D; k++) cl[k] = (float)(cl[k] / nrm);
    }
    double scale = s->info.logit_scale;
    if (!(scale > 0)) scale = 100.0;
    if (scale > 100.0) scale = 100.0;
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"object\": \"list\", \"data\": [");
    for (int i = 0; i < n_img; i++) {
        const float *x = e.emb + (size_t)(n_prompts + i) * D;
        double mx = -INFINITY, sum = 0;
        for (int l = 0; l < nl; l++) {
            double dot = 0;
            for (int k = 0; k < D; k++) dot += (double)x[k] * cls[(size_t)l * D + k];
            prob[l] = scale * dot;
            if (prob[l] > mx) mx = prob[l];
            order[l] = l;
        }
        for (int l = 0; l < nl; l++) sum += (prob[l] = exp(prob[l] - mx));
        for (int l = 0; l < nl; l++) prob[l] /= sum;
        mc_sbuf_printf(&b, "%s{\"index\": %d, \"labels\": [", i ? ", " : "", i);
        for (int k = 0; k < rq->k; k++) {   /* top k by selection, ties keep label order */
            int best = k;
            for (int l = k + 1; l < nl; l++)
                if (prob[order[l]] > prob[order[best]]) best = l;
            int tmp = order[k];
            order[k] = order[best];
            order[best] = tmp;
            mc_sbuf_puts(&b, k ? ", {\"label\": " : "{\"label\": ");
            mc_sbuf_json_str(&b, rq->labels[order[k]]->string, rq->labels[order[k]]->len);
            mc_sbuf_printf(&b, ", \"probability\": %.6f}", prob[order[k]]);
        }
        mc_sbuf_puts(&b, "]}");
    }
    mc_sbuf_puts(&b, "], \"model\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_puts(&b, "}\n");
    ret = send_json(s, c, 200, &b);
out:
    if (prompts)
        for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(in);
    free(cls);
    free(prob);
    free(order);
    free(e.emb);
    return ret;
}

static enum MHD_Result do_health(mc_server *s, struct MHD_Connection *c) {
    mc_pool_stats ps;
    mc_pool_get_stats(s->pool, &ps);
    pthread_mutex_lock(&s->lock);
    int64_t served = s->served;
    int active = s->active;
    pthread_mutex_unlock(&s->lock);
    mc_sbuf b = {0};
    mc_sbuf_puts(&b, "{\"status\": \"ok\", \"version\": ");
    mc_sbuf_json_str(&b, mc_version(), strlen(mc_version()));
    mc_sbuf_puts(&b, ", \"model\": {\"name\": ");
    mc_sbuf_json_str(&b, s->model_name, strlen(s->model_name));
    mc_sbuf_puts(&b, ", \"image_arch\": ");
    mc_sbuf_json_str(&b, s->info.image_arch ? s->info.image_arch : "", s->info.image_arch ? strlen(s->info.image_arch) : 0);
    mc_sbuf_puts(&b, ", \"text_arch\": ");
    mc_sbuf_json_str(&b, s->info.text_arch ? s->info.text_arch : "", s->info.text_arch ? strlen(s->info.text_arch) : 0);
    mc_sbuf_printf(&b, ", \"embed_dim\": %d, \"image_size\": %d}", s->info.embed_dim, s->info.image_size);
    mc_sbuf_printf(&b, ", \"workers\": %d, \"max_batch\": %d, \"uptime_s\": %.1f", s->p.pool.n_workers,
                   s->p.pool.max_batch, mc_now_s() - s->started);
    mc_sbuf_printf(&b, ", \"requests\": {\"served\": %lld, \"active\": %d}", (long long)served, active);
    mc_sbuf_printf(&b, ", \"encoder\": {\"passes\": %lld, \"items\": %lld, \"shared_passes\": %lld, \"largest_batch\": %d}",
                   (long long)ps.passes, (long long)ps.items, (long long)ps.shared_passes, ps.max_batch_seen);
    mc_sbuf_puts(&b, ", \"index\": null}\n");
    return send_json(s, c, 200, &b);
}

/* ---- dispatch ---- */

static enum MHD_Result route(mc_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             req_state *rs) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/")) {
        if (!get) return send_error(s, c, 405, "use GET");
        return send_buf(s, c, 200, "text/html; charset=utf-8", (void *)mc_serve_page, strlen(mc_serve_page), 0);
    }
    if (!strcmp(url, "/health")) {
        if (!get) return send_error(s, c, 405, "use GET");
        return do_health(s, c);
    }
    mc_serve_req_type type;
    if (!strcmp(url, "/v1/embeddings")) type = MC_REQ_EMBEDDINGS;
    else if (!strcmp(url, "/v1/classify")) type = MC_REQ_CLASSIFY;
    else return send_error(s, c, 404, "no such endpoint");
    if (!post) return send_error(s, c, 405, "use POST with a JSON body");
    if (rs->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "body exceeds the limit of %zu bytes", s->p.limits.max_body_bytes);
        return send_error(s, c, 413, msg);
    }
    mc_serve_request rq;
    int http;
    mc_error err;
    if (mc_serve_parse(type, rs->body.p, rs->body.len, &s->p.limits, &rq, &http, &err) != MC_OK)
        return send_error(s, c, http, err.message);
    enum MHD_Result ret = type == MC_REQ_EMBEDDINGS ? do_embeddings(s, c, &rq) : do_classify(s, c, &rq);
    mc_serve_request_free(&rq);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls) {
    mc_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) {
        rs = calloc(1, sizeof *rs);
        if (!rs) return MHD_NO;
        rs->t0 = mc_now_s();
        snprintf(rs->what, sizeof rs->what, "%.15s %.140s", method, url);
        *con_cls = rs;
        pthread_mutex_lock(&s->lock);
        s->active++;
        int draining = s->draining;
        pthread_mutex_unlock(&s->lock);
        if (draining) return send_error(s, c, 503, "the server is shutting down");
        /* a declared oversized body is refused before it is read */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (*end == 0 && v > s->p.limits.max_body_bytes) {
                rs->too_big = 1;
                return route(s, c, url, method, rs);
            }
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rs->too_big && rs->body.len + *upload_size > s->p.limits.max_body_bytes) {
            rs->too_big = 1;
            mc_sbuf_free(&rs->body);
        }
        if (!rs->too_big) mc_sbuf_put(&rs->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rs->body.oom) return send_error(s, c, 503, "out of memory reading the body");
    return route(s, c, url, method, rs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    mc_server *s = cls;
    req_state *rs = *con_cls;
    if (!rs) return;
    if (s->p.log_requests) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
        logf_(s, MC_LOG_INFO, "%s %u %.1f ms%s", rs->what, ci ? ci->http_status : 0, (mc_now_s() - rs->t0) * 1e3,
              toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    }
    mc_sbuf_free(&rs->body);
    free(rs);
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    s->active--;
    s->served++;
    if (s->active == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* ---- start and stop ---- */

/* Frees what mc_server_start made (the daemon is stopped by then). */
static void server_free(mc_server *s) {
    mc_pool_free(s->pool);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s);
}

mc_status mc_server_start(const mc_model *model, const mc_server_params *params, mc_server **out, mc_error *err) {
    *out = NULL;
    if (!model) return mc_fail(err, MC_ERR_INVALID_ARG, "server: no model");
    mc_server_params p = params ? *params : mc_server_default_params();
    if (p.port < 0 || p.port > 65535) return mc_fail(err, MC_ERR_INVALID_ARG, "server: port %d is not in 0..65535", p.port);
    if (p.max_connections < 1) return mc_fail(err, MC_ERR_INVALID_ARG, "server: max_connections %d", p.max_connections);
    const mc_serve_limits *l = &p.limits;
    if (l->max_inputs < 1 || l->max_labels < 1 || l->max_k < 1 || !l->max_body_bytes || !l->max_image_bytes ||
        !l->max_image_pixels || !l->max_text_bytes || l->connection_timeout_s < 0 || !(l->request_timeout_s >= 0))
        return mc_fail(err, MC_ERR_INVALID_ARG, "server: a limit is zero or negative");
    const char *host = p.host ? p.host : "127.0.0.1";
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p.port);
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p.port);
        flags |= MHD_USE_IPv6;
    } else {
        return mc_fail(err, MC_ERR_INVALID_ARG, "server: host '%s' is not a numeric IPv4 or IPv6 address", host);
    }
    mc_server *s = calloc(1, sizeof *s);
    if (!s) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    s->model = model;
    mc_model_get_info(model, &s->info);
    s->tok = mc_model_tokenizer(model);
    snprintf(s->host, sizeof s->host, "%s", host);
    snprintf(s->model_name, sizeof s->model_name, "%s", p.model_name ? p.model_name : "mobileclip");
    p.host = s->host;
    p.model_name = s->model_name;
    s->p = p;
    s->started = mc_now_s();
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    mc_status st = mc_pool_new(model, &p.pool, &s->pool, err);
    if (st != MC_OK) {
        server_free(s);
        return st;
    }
    s->d = MHD_start_daemon(flags, (uint16_t)p.port, NULL, NULL, on_request, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)p.max_connections,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)l->connection_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_END);
    if (!s->d) {
        server_free(s);
        return mc_fail(err, MC_ERR_IO, "server: cannot listen on %s port %d (in use, or not allowed)", host, p.port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p.port;
    *out = s;
    return MC_OK;
}

int mc_server_port(const mc_server *s) { return s->port; }

void mc_server_stop(mc_server *s, double drain_s) {
    if (!s) return;
    /* no new connections; connections already open get 503 for new requests */
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    pthread_mutex_lock(&s->lock);
    s->draining = 1;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    double whole = floor(drain_s > 0 ? drain_s : 0);
    dl.tv_sec += (time_t)whole;
    dl.tv_nsec += (long)((drain_s - whole) * 1e9);
    if (dl.tv_nsec >= 1000000000L) { dl.tv_sec++; dl.tv_nsec -= 1000000000L; }
    int left = s->active;
    if (left) logf_(s, MC_LOG_INFO, "draining: %d request%s in progress", left, left == 1 ? "" : "s");
    while (s->active > 0 && drain_s > 0)
        if (pthread_cond_timedwait(&s->idle, &s->lock, &dl) != 0) break;
    left = s->active;
    pthread_mutex_unlock(&s->lock);
    if (left) logf_(s, MC_LOG_WARN, "stopping with %d request%s unfinished after %.3g s", left, left == 1 ? "" : "s", drain_s);
    MHD_stop_daemon(s->d);
    server_free(s);
}
