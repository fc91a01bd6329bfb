/*
 * serve/server.h - the HTTP server (libmicrohttpd): the web page, the
 * embedding, classification and search endpoints, over one loaded model, an
 * encoder pool (pool.h) and optionally a photo index (mc_index, search/):
 * only files whose paths are in the index are ever served, by id.  The server never prints: what it has to say goes
 * to the log callback.  docs/serve.md describes the endpoints.
 */
#ifndef MC_SERVE_SERVER_H
#define MC_SERVE_SERVER_H

#include "serve/pool.h"
#include "serve/request.h"

typedef struct mc_server mc_server;

enum { MC_LOG_INFO = 0, MC_LOG_WARN, MC_LOG_ERROR };
/* One line, without its line end.  Called from the server's threads. */
typedef void (*mc_server_log_fn)(void *user, int level, const char *line);

typedef struct mc_server_params {
    const char *host;            /* address to listen on (default "127.0.0.1") */
    int port;                    /* default 8080; 0: a free port (see mc_server_port) */
    int max_connections;         /* open connections at once (default 64) */
    const char *model_name;      /* the "model" of responses (default "mobileclip") */
    mc_pool_params pool;
    mc_serve_limits limits;
    mc_server_log_fn log;        /* NULL: silent */
    void *log_user;
    int log_requests;            /* 1: one MC_LOG_INFO line per request */
    mc_index *index;             /* the photo index to search (opened read-only), or NULL */
    int thumbnail_size;          /* longest side of /v1/thumbnails (default 256) */
} mc_server_params;

mc_server_params mc_server_default_params(void);

/* Starts the encoder pool and the listening threads; returns at once.  The
 * model (and the index) must outlive the server.  An index of another
 * model, or of another embedding width, is refused (MC_ERR_INVALID_ARG). */
mc_status mc_server_start(const mc_model *model, const mc_server_params *params, mc_server **out, mc_error *err);
/* Re-reads the index (after 'mobileclip index' added to it): searches in
 * flight finish first, later ones see the new images.  MC_OK without an
 * index. */
mc_status mc_server_reload_index(mc_server *srv, mc_error *err);
/* The port it listens on. */
int mc_server_port(const mc_server *srv);
/* Stops taking connections, lets the requests in progress finish (waiting at
 * most drain_s seconds), then stops the threads and frees the server. */
void mc_server_stop(mc_server *srv, double drain_s);

/* The web page served at "/" (NUL-terminated HTML). */
extern const char mc_serve_page[];

#endif /* MC_SERVE_SERVER_H */
