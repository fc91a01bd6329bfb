/*
 * search/index.c - the photo index of mobileclip.h (mc_index_*): one SQLite
 * file in WAL mode, tables meta (key, value: schema, model_id, model_path,
 * dim) and images (id, path, size, mtime_ns, sha256, width, height,
 * embedding: dim float32, little-endian).  Incremental update walks the
 * folders, compares size and mtime (then the SHA-256) with the stored rows,
 * embeds what is new or changed through pipeline.c and commits one
 * transaction per batch.  Searches scan the embeddings held in memory
 * (scan.c) under a read lock; reload and update take the write lock.
 */
#include "core/core.h"
#include "io/download.h"
#include "search/pipeline.h"
#include "search/scan.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define SCHEMA_VERSION "1"
#define MAX_IMAGE_FILE_BYTES ((int64_t)512 << 20)

struct mc_index {
    sqlite3 *db;
    pthread_mutex_t db_lock;   /* one statement sequence at a time on db */
    pthread_rwlock_t lock;     /* the state below: searches read, reload and update write */
    int readonly;
    char path[4096];
    int loaded;                /* emb and ids hold the committed embeddings */
    float *emb;                /* [count, dim] */
    int64_t *ids;              /* [count], ascending */
    int64_t count;
    int dim;
    char model_id[256];
    char model_path[4096];
};

static mc_status db_fail(mc_index *idx, mc_error *err, const char *what) {
    int code = sqlite3_errcode(idx->db) & 0xff;
    mc_status st = code == SQLITE_NOTADB || code == SQLITE_CORRUPT ? MC_ERR_FORMAT
                   : code == SQLITE_NOMEM                          ? MC_ERR_NOMEM
                                                                   : MC_ERR_IO;
    return mc_fail(err, st, "%s: %s: %s", idx->path, what, sqlite3_errmsg(idx->db));
}

static mc_status exec(mc_index *idx, const char *sql, mc_error *err) {
    if (sqlite3_exec(idx->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(idx, err, sql);
    return MC_OK;
}

/* 1: found (copied into buf), 0: absent, -1: error (err set) */
static int meta_get(mc_index *idx, const char *key, char *buf, size_t cap, mc_error *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(idx->db, "SELECT value FROM meta WHERE key = ?", -1, &s, NULL) != SQLITE_OK) {
        db_fail(idx, err, "reading the index's meta table");
        return -1;
    }
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s), found = 0;
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(s, 0);
        snprintf(buf, cap, "%s", v ? v : "");
        found = 1;
    } else if (rc != SQLITE_DONE) {
        db_fail(idx, err, "reading the index's meta table");
        found = -1;
    }
    sqlite3_finalize(s);
    return found;
}

static mc_status meta_set(mc_index *idx, const char *key, const char *value, mc_error *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(idx->db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", -1, &s, NULL) != SQLITE_OK)
        return db_fail(idx, err, "writing the meta table");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? MC_OK : db_fail(idx, err, "writing the meta table");
}

/* Reads model_id, model_path and dim from meta (db_lock held). */
static mc_status read_meta(mc_index *idx, mc_error *err) {
    char dim[32] = "";
    idx->model_id[0] = idx->model_path[0] = 0;
    if (meta_get(idx, "model_id", idx->model_id, sizeof idx->model_id, err) < 0 ||
        meta_get(idx, "model_path", idx->model_path, sizeof idx->model_path, err) < 0 ||
        meta_get(idx, "dim", dim, sizeof dim, err) < 0)
        return err ? err->status : MC_ERR_IO;
    char *end;
    long d = dim[0] ? strtol(dim, &end, 10) : 0;
    if (dim[0] && (*end || d < 1 || d > 65536))
        return mc_fail(err, MC_ERR_FORMAT, "%s: meta 'dim' is '%s', not an embedding width", idx->path, dim);
    idx->dim = (int)d;
    return MC_OK;
}

static void drop_state(mc_index *idx) {
    free(idx->emb);
    free(idx->ids);
    idx->emb = NULL;
    idx->ids = NULL;
    idx->count = 0;
    idx->loaded = 0;
}

/* Loads meta and every embedding in one read transaction (write lock held). */
static mc_status load_state(mc_index *idx, mc_error *err) {
    drop_state(idx);
    pthread_mutex_lock(&idx->db_lock);
    mc_status st = exec(idx, "BEGIN", err);
    if (st != MC_OK) goto out_unlocked;
    if ((st = read_meta(idx, err)) != MC_OK) goto out;
    sqlite3_stmt *s = NULL;
    int64_t n = 0, cap = 0;
    if (sqlite3_prepare_v2(idx->db, "SELECT id, embedding FROM images WHERE embedding IS NOT NULL ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(idx, err, "reading the embeddings");
        goto out;
    }
    size_t row_bytes = (size_t)idx->dim * sizeof(float);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0);
        const void *b = sqlite3_column_blob(s, 1);
        int len = sqlite3_column_bytes(s, 1);
        if (idx->dim < 1 || (size_t)len != row_bytes || !b) {
            st = mc_fail(err, MC_ERR_FORMAT, "%s: image %lld: embedding of %d bytes, expected %zu (dim %d)", idx->path,
                         (long long)id, len, row_bytes, idx->dim);
            break;
        }
        if (n == cap) {
            int64_t nc = cap ? cap * 2 : 1024;
            float *ne = realloc(idx->emb, (size_t)nc * row_bytes);
            if (ne) idx->emb = ne;
            int64_t *ni = ne ? realloc(idx->ids, (size_t)nc * sizeof *ni) : NULL;
            if (ni) idx->ids = ni;
            if (!ne || !ni) {
                st = mc_fail(err, MC_ERR_NOMEM, "%s: out of memory holding %lld embeddings", idx->path, (long long)nc);
                break;
            }
            cap = nc;
        }
        memcpy(idx->emb + (size_t)n * idx->dim, b, row_bytes);
        idx->ids[n++] = id;
    }
    if (st == MC_OK && rc != SQLITE_DONE) st = db_fail(idx, err, "reading the embeddings");
    sqlite3_finalize(s);
    idx->count = n;
out:
    sqlite3_exec(idx->db, "COMMIT", NULL, NULL, NULL);
out_unlocked:
    pthread_mutex_unlock(&idx->db_lock);
    if (st != MC_OK) drop_state(idx);
    else idx->loaded = 1;
    return st;
}

mc_index_params mc_index_default_params(void) {
    mc_index_params p = {1, 0};
    return p;
}

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS images("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " path TEXT NOT NULL UNIQUE,"
    " size INTEGER NOT NULL,"
    " mtime_ns INTEGER NOT NULL,"
    " sha256 TEXT NOT NULL,"
    " width INTEGER NOT NULL,"
    " height INTEGER NOT NULL,"
    " embedding BLOB);"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('schema', '" SCHEMA_VERSION "');";

mc_status mc_index_open(const char *db_path, const mc_index_params *params, mc_index **out, mc_error *err) {
    if (!db_path || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_open: NULL argument");
    *out = NULL;
    mc_index_params p = params ? *params : mc_index_default_params();
    struct stat sb;
    if (stat(db_path, &sb) != 0 && (p.readonly || !p.create))
        return mc_fail(err, MC_ERR_NOT_FOUND, "%s: no such index (create it with 'mobileclip index')", db_path);
    mc_index *idx = calloc(1, sizeof *idx);
    if (!idx) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    snprintf(idx->path, sizeof idx->path, "%s", db_path);
    idx->readonly = p.readonly != 0;
    pthread_mutex_init(&idx->db_lock, NULL);
    pthread_rwlock_init(&idx->lock, NULL);
    int flags = SQLITE_OPEN_FULLMUTEX |
                (idx->readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (p.create ? SQLITE_OPEN_CREATE : 0));
    mc_status st = MC_OK;
    if (sqlite3_open_v2(db_path, &idx->db, flags, NULL) != SQLITE_OK) {
        st = idx->db ? db_fail(idx, err, "cannot open") : mc_fail(err, MC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(idx->db, 10000);
    if (!idx->readonly) {
        /* WAL: readers (search, serve) go on while a batch commits; FULL: a commit survives power loss */
        sqlite3_stmt *s;
        const char *mode = "";
        if (sqlite3_prepare_v2(idx->db, "PRAGMA journal_mode=WAL", -1, &s, NULL) == SQLITE_OK) {
            if (sqlite3_step(s) == SQLITE_ROW) mode = (const char *)sqlite3_column_text(s, 0);
            int wal = mode && !strcasecmp(mode, "wal");
            sqlite3_finalize(s);
            if (!wal) {
                st = db_fail(idx, err, "cannot switch to WAL mode");
                goto fail;
            }
        } else {
            st = db_fail(idx, err, "not an index");
            goto fail;
        }
        if ((st = exec(idx, "PRAGMA synchronous=FULL", err)) != MC_OK || (st = exec(idx, SCHEMA, err)) != MC_OK)
            goto fail;
    }
    char schema[32];
    int found = meta_get(idx, "schema", schema, sizeof schema, err);
    if (found < 0) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: not a mobileclip index (%s)", db_path, sqlite3_errmsg(idx->db));
        goto fail;
    }
    if (!found || strcmp(schema, SCHEMA_VERSION)) {
        st = mc_fail(err, MC_ERR_FORMAT, "%s: index schema '%s', this version reads '%s'", db_path,
                     found ? schema : "(none)", SCHEMA_VERSION);
        goto fail;
    }
    if ((st = read_meta(idx, err)) != MC_OK) goto fail;
    *out = idx;
    return MC_OK;
fail:
    mc_index_close(idx);
    return st;
}

void mc_index_close(mc_index *idx) {
    if (!idx) return;
    drop_state(idx);
    sqlite3_close(idx->db);
    pthread_mutex_destroy(&idx->db_lock);
    pthread_rwlock_destroy(&idx->lock);
    free(idx);
}

mc_status mc_index_get_info(mc_index *idx, mc_index_info *info, mc_error *err) {
    if (!idx || !info) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    pthread_rwlock_rdlock(&idx->lock);
    pthread_mutex_lock(&idx->db_lock);
    mc_status st = MC_OK;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(idx->db, "SELECT COUNT(*) FROM images WHERE embedding IS NOT NULL", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW) {
        st = db_fail(idx, err, "counting the images");
    } else {
        info->count = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
    /* the file's meta now (another process may have indexed since the open) */
    char dim[32] = "";
    if (st == MC_OK && (meta_get(idx, "model_id", info->model_id, sizeof info->model_id, err) < 0 ||
                        meta_get(idx, "model_path", info->model_path, sizeof info->model_path, err) < 0 ||
                        meta_get(idx, "dim", dim, sizeof dim, err) < 0))
        st = err ? err->status : MC_ERR_IO;
    pthread_mutex_unlock(&idx->db_lock);
    info->dim = atoi(dim);
    pthread_rwlock_unlock(&idx->lock);
    return st;
}

mc_status mc_index_search(mc_index *idx, const float *query, int dim, int k, mc_search_hit *hits, int *n_hits,
                          mc_error *err) {
    if (!idx || !query || !n_hits || (k > 0 && !hits))
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_search: NULL argument");
    *n_hits = 0;
    if (k < 0) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_search: k = %d", k);
    pthread_rwlock_rdlock(&idx->lock);
    while (!idx->loaded) {   /* first search: load under the write lock, then search under the read lock */
        pthread_rwlock_unlock(&idx->lock);
        pthread_rwlock_wrlock(&idx->lock);
        mc_status st = idx->loaded ? MC_OK : load_state(idx, err);
        pthread_rwlock_unlock(&idx->lock);
        if (st != MC_OK) return st;
        pthread_rwlock_rdlock(&idx->lock);
    }
    mc_status st = MC_OK;
    if (idx->count > 0 && dim != idx->dim) {
        st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: query of %d dims, the index holds %d-dim embeddings (%s)", idx->path,
                     dim, idx->dim, idx->model_id);
    } else if (idx->count > 0 && k > 0) {
        float *scores = malloc((size_t)idx->count * sizeof *scores);
        if (!scores) st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
        else *n_hits = mc_scan_topk(idx->emb, idx->ids, idx->count, idx->dim, query, k, scores, hits);
        free(scores);
    }
    pthread_rwlock_unlock(&idx->lock);
    return st;
}

/* One row of images by id, under the database lock: `sql` selects the
 * columns that `read` takes from the row (its status is the call's); no such
 * row is MC_ERR_NOT_FOUND. */
typedef mc_status (*row_reader)(mc_index *idx, sqlite3_stmt *s, int64_t id, void *out, mc_error *err);
static mc_status read_row(mc_index *idx, const char *sql, const char *what, int64_t id, row_reader read, void *out,
                          mc_error *err) {
    pthread_mutex_lock(&idx->db_lock);
    sqlite3_stmt *s;
    mc_status st;
    if (sqlite3_prepare_v2(idx->db, sql, -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(idx, err, what);
        pthread_mutex_unlock(&idx->db_lock);
        return st;
    }
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) st = read(idx, s, id, out, err);
    else if (rc == SQLITE_DONE) st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: no image with id %lld", idx->path, (long long)id);
    else st = db_fail(idx, err, what);
    sqlite3_finalize(s);
    pthread_mutex_unlock(&idx->db_lock);
    return st;
}

static mc_status image_row(mc_index *idx, sqlite3_stmt *s, int64_t id, void *dst, mc_error *err) {
    mc_index_image *out = dst;
    const char *p = (const char *)sqlite3_column_text(s, 0);
    mc_status st = MC_OK;
    if (!p || strlen(p) >= sizeof out->path)
        st = mc_fail(err, MC_ERR_FORMAT, "%s: image %lld: stored path missing or too long", idx->path, (long long)id);
    else
        snprintf(out->path, sizeof out->path, "%s", p);
    out->id = id;
    out->width = sqlite3_column_int(s, 1);
    out->height = sqlite3_column_int(s, 2);
    out->size = sqlite3_column_int64(s, 3);
    out->mtime_ns = sqlite3_column_int64(s, 4);
    return st;
}

mc_status mc_index_get_image(mc_index *idx, int64_t id, mc_index_image *out, mc_error *err) {
    if (!idx || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_get_image: NULL argument");
    memset(out, 0, sizeof *out);
    return read_row(idx, "SELECT path, width, height, size, mtime_ns FROM images WHERE id = ?", "reading an image", id,
                    image_row, out, err);
}

mc_status mc_index_get_path(mc_index *idx, int64_t id, char *buf, size_t cap, mc_error *err) {
    if (!buf || !cap) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_get_path: NULL argument");
    buf[0] = 0;
    mc_index_image *im = malloc(sizeof *im);
    if (!im) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = mc_index_get_image(idx, id, im, err);
    if (st == MC_OK) {
        size_t len = strlen(im->path);
        if (len >= cap) st = mc_fail(err, MC_ERR_INVALID_ARG, "image %lld: path of %zu bytes, buffer of %zu", (long long)id, len, cap);
        else memcpy(buf, im->path, len + 1);
    }
    free(im);
    return st;
}

typedef struct {
    float *out;
    int dim;
} embedding_dst;

static mc_status embedding_row(mc_index *idx, sqlite3_stmt *s, int64_t id, void *dst, mc_error *err) {
    embedding_dst *d = dst;
    const void *b = sqlite3_column_blob(s, 0);
    int len = sqlite3_column_bytes(s, 0);
    if (!b) return mc_fail(err, MC_ERR_NOT_FOUND, "%s: image %lld has no embedding yet", idx->path, (long long)id);
    if (d->dim < 1 || (size_t)len != (size_t)d->dim * sizeof(float))
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: image %lld: embedding of %d bytes, asked for %d floats", idx->path,
                       (long long)id, len, d->dim);
    memcpy(d->out, b, (size_t)len);
    return MC_OK;
}

mc_status mc_index_get_embedding(mc_index *idx, int64_t id, float *out, int dim, mc_error *err) {
    if (!idx || !out) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_get_embedding: NULL argument");
    embedding_dst d = {out, dim};
    return read_row(idx, "SELECT embedding FROM images WHERE id = ?", "reading an embedding", id, embedding_row, &d,
                    err);
}

mc_status mc_index_reload(mc_index *idx, mc_error *err) {
    if (!idx) return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_reload: NULL argument");
    pthread_rwlock_wrlock(&idx->lock);
    mc_status st = load_state(idx, err);
    pthread_rwlock_unlock(&idx->lock);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Incremental update                                                        */
/* ------------------------------------------------------------------------ */

mc_index_update_params mc_index_update_default_params(void) {
    mc_index_update_params p;
    memset(&p, 0, sizeof p);
    p.workers = 1;
    p.decode_threads = 2;
    p.batch = 16;
    return p;
}

typedef struct file_ent {
    char *path;
    int64_t size, mtime_ns;
    int64_t row;               /* index into the stored rows, or -1 */
    /* filled by prepare */
    char sha[65];
    int width, height;
} file_ent;

typedef struct row_ent {
    int64_t id;
    char *path;
    int64_t size, mtime_ns;
    char sha[65];
    int has_emb;
    int seen;
} row_ent;

typedef struct str_list {
    char **v;
    size_t n, cap;
} str_list;

typedef struct update {
    mc_index *idx;
    const mc_index_update_params *p;
    mc_index_update_stats *st;
    mc_preprocess_params pp;
    file_ent *files;           /* all image files found */
    size_t n_files, cap_files;
    row_ent *rows;             /* stored rows, sorted by path */
    size_t n_rows;
    str_list bad_dirs;         /* folders that could not be listed: nothing under them is forgotten */
    size_t *todo;              /* files to read: indices into files */
    size_t n_todo, n_done;
    sqlite3_stmt *upsert, *touch, *forget;
    int dim;
} update;


static int64_t mtime_ns_of(const struct stat *sb) {
    return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

static void skip(update *u, const char *path, mc_index_skip why, const char *msg) {
    u->st->skipped++;
    u->st->skipped_by[why]++;
    if (u->p->on_skip) u->p->on_skip(u->p->skip_user, path, why, msg);
}

static mc_status push_str(str_list *l, const char *s, mc_error *err) {
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, nc * sizeof *nv);
        if (!nv) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
        l->v = nv;
        l->cap = nc;
    }
    if (!(l->v[l->n] = strdup(s))) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    l->n++;
    return MC_OK;
}

static mc_status add_file(update *u, const char *path, const struct stat *sb, mc_error *err) {
    if (u->n_files == u->cap_files) {
        size_t nc = u->cap_files ? u->cap_files * 2 : 256;
        file_ent *nf = realloc(u->files, nc * sizeof *nf);
        if (!nf) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
        u->files = nf;
        u->cap_files = nc;
    }
    file_ent *f = &u->files[u->n_files];
    memset(f, 0, sizeof *f);
    if (!(f->path = strdup(path))) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    f->size = (int64_t)sb->st_size;
    f->mtime_ns = mtime_ns_of(sb);
    f->row = -1;
    u->n_files++;
    return MC_OK;
}

/* Lists the image files under dir (an absolute path), recursively. */
static mc_status walk(update *u, const char *dir, int depth, mc_error *err) {
    if (depth > 256) {
        skip(u, dir, MC_INDEX_SKIP_UNREADABLE, "folders nested deeper than 256");
        return push_str(&u->bad_dirs, dir, err);
    }
    DIR *d = opendir(dir);
    if (!d) {
        char msg[256];
        snprintf(msg, sizeof msg, "cannot open folder: %s", strerror(errno));
        skip(u, dir, MC_INDEX_SKIP_UNREADABLE, msg);
        return push_str(&u->bad_dirs, dir, err);
    }
    mc_status st = MC_OK;
    struct dirent *e;
    size_t dl = strlen(dir);
    while (st == MC_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t len = dl + strlen(e->d_name) + 2;
        char *path = malloc(len);
        if (!path) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
        snprintf(path, len, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", e->d_name);
        struct stat sb;
        if (lstat(path, &sb) != 0) {
            if (mc_image_name_supported(e->d_name)) {
                char msg[256];
                snprintf(msg, sizeof msg, "cannot stat: %s", strerror(errno));
                skip(u, path, MC_INDEX_SKIP_UNREADABLE, msg);
            }
        } else if (S_ISDIR(sb.st_mode)) {
            st = walk(u, path, depth + 1, err);
        } else if (mc_image_name_supported(e->d_name)) {
            /* a symbolic link to a file counts as that file; links to folders are not followed */
            if (S_ISLNK(sb.st_mode) && stat(path, &sb) != 0) {
                char msg[256];
                snprintf(msg, sizeof msg, "broken link: %s", strerror(errno));
                skip(u, path, MC_INDEX_SKIP_UNREADABLE, msg);
            } else if (S_ISREG(sb.st_mode)) {
                st = add_file(u, path, &sb, err);
            }
        }
        free(path);
    }
    closedir(d);
    return st;
}

static int cmp_rows(const void *a, const void *b) {
    return strcmp(((const row_ent *)a)->path, ((const row_ent *)b)->path);
}

static mc_status load_rows(update *u, mc_error *err) {
    mc_index *idx = u->idx;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(idx->db,
                           "SELECT id, path, size, mtime_ns, sha256, embedding IS NOT NULL FROM images ORDER BY path",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(idx, err, "reading the images");
    size_t cap = 0;
    mc_status st = MC_OK;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (u->n_rows == cap) {
            size_t nc = cap ? cap * 2 : 256;
            row_ent *nr = realloc(u->rows, nc * sizeof *nr);
            if (!nr) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
            u->rows = nr;
            cap = nc;
        }
        row_ent *r = &u->rows[u->n_rows];
        memset(r, 0, sizeof *r);
        const char *p = (const char *)sqlite3_column_text(s, 1), *h = (const char *)sqlite3_column_text(s, 4);
        if (!p || !(r->path = strdup(p))) { st = mc_fail(err, MC_ERR_NOMEM, "out of memory"); break; }
        r->id = sqlite3_column_int64(s, 0);
        r->size = sqlite3_column_int64(s, 2);
        r->mtime_ns = sqlite3_column_int64(s, 3);
        snprintf(r->sha, sizeof r->sha, "%s", h ? h : "");
        r->has_emb = sqlite3_column_int(s, 5);
        u->n_rows++;
    }
    if (st == MC_OK && rc != SQLITE_DONE) st = db_fail(idx, err, "reading the images");
    sqlite3_finalize(s);
    /* SQLite's BINARY order is memcmp's; sort again so bsearch with strcmp holds whatever the collation */
    if (st == MC_OK && u->n_rows) qsort(u->rows, u->n_rows, sizeof *u->rows, cmp_rows);
    return st;
}

static int64_t find_row(const update *u, const char *path) {
    size_t lo = 0, hi = u->n_rows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(u->rows[mid].path, path);
        if (c == 0) return (int64_t)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

static int under(const char *path, const char *dir) {
    size_t n = strlen(dir);
    if (n && dir[n - 1] == '/') n--;
    return !strncmp(path, dir, n) && path[n] == '/';
}

/* Reads the whole file into *data (malloc'd). */
static mc_status read_file(const char *path, char **data, size_t *len, mc_error *err) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return mc_fail(err, MC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return mc_fail(err, MC_ERR_IO, "%s: cannot stat", path);
    }
    if ((int64_t)sb.st_size > MAX_IMAGE_FILE_BYTES) {
        fclose(f);
        return mc_fail(err, MC_ERR_IMAGE, "%s: %lld bytes, more than the %lld an image may have", path,
                       (long long)sb.st_size, (long long)MAX_IMAGE_FILE_BYTES);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return mc_fail(err, MC_ERR_IO, "%s: read failed%s", path, bad ? "" : " (the file shrank)");
    }
    *data = buf;
    *len = n;
    return MC_OK;
}

/* pipeline prepare: read, hash; keep when the content is the stored one; else decode */
static int prepare(void *user, size_t i, float *pixels, mc_error *err) {
    update *u = user;
    file_ent *f = &u->files[u->todo[i]];
    char *data;
    size_t len = 0;
    if (read_file(f->path, &data, &len, err) != MC_OK) return MC_PIPE_FAILED;
    mc_sha256_hex(data, len, f->sha);
    const row_ent *r = f->row >= 0 ? &u->rows[f->row] : NULL;
    if (r && r->has_emb && !strcmp(r->sha, f->sha)) {
        free(data);
        return MC_PIPE_KEEP;
    }
    mc_image img, res;
    mc_status st = mc_image_load_memory(data, len, u->pp.apply_exif, &img, err);
    free(data);
    if (st == MC_OK) {
        f->width = img.width;
        f->height = img.height;
        st = mc_image_resize_crop(&img, u->pp.size, u->pp.interp, u->pp.resize_mode, &res, err);
        mc_image_free(&img);
        if (st == MC_OK) {
            mc_image_to_tensor(&res, u->pp.mean, u->pp.std, pixels);
            mc_image_free(&res);
        }
    }
    if (st != MC_OK) {
        if (!strstr(err->message, f->path)) mc_error_prefix(err, "%s", f->path);
        return MC_PIPE_FAILED;
    }
    return MC_PIPE_ENCODE;
}

static mc_status step_done(mc_index *idx, sqlite3_stmt *s, const char *what, mc_error *err) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? MC_OK : db_fail(idx, err, what);
}

/* pipeline consume: one transaction per batch */
static mc_status consume(void *user, size_t first, size_t count, const int *state, const mc_error *errs,
                         const float *emb, mc_error *err) {
    update *u = user;
    mc_index *idx = u->idx;
    if (!emb) return MC_OK;   /* the run failed: nothing of this batch is committed */
    pthread_mutex_lock(&idx->db_lock);
    mc_status st = exec(idx, "BEGIN IMMEDIATE", err);
    int64_t added = 0, updated = 0, kept = 0, removed = 0;
    size_t e = 0;
    for (size_t k = 0; k < count && st == MC_OK; k++) {
        file_ent *f = &u->files[u->todo[first + k]];
        const row_ent *r = f->row >= 0 ? &u->rows[f->row] : NULL;
        if (state[k] == MC_PIPE_ENCODE) {
            sqlite3_stmt *s = u->upsert;
            sqlite3_bind_text(s, 1, f->path, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 2, f->size);
            sqlite3_bind_int64(s, 3, f->mtime_ns);
            sqlite3_bind_text(s, 4, f->sha, -1, SQLITE_STATIC);
            sqlite3_bind_int(s, 5, f->width);
            sqlite3_bind_int(s, 6, f->height);
            sqlite3_bind_blob(s, 7, emb + e++ * (size_t)u->dim, u->dim * (int)sizeof(float), SQLITE_STATIC);
            st = step_done(idx, s, "storing an embedding", err);
            if (r) updated++;
            else added++;
        } else if (state[k] == MC_PIPE_KEEP) {
            sqlite3_stmt *s = u->touch;
            sqlite3_bind_int64(s, 1, f->size);
            sqlite3_bind_int64(s, 2, f->mtime_ns);
            sqlite3_bind_int64(s, 3, r->id);
            st = step_done(idx, s, "updating an image's mtime", err);
            kept++;
        } else if (r) {   /* changed into something we cannot read: its old embedding is stale */
            sqlite3_bind_int64(u->forget, 1, r->id);
            st = step_done(idx, u->forget, "forgetting an image", err);
            removed++;
        }
    }
    if (st == MC_OK) st = exec(idx, "COMMIT", err);
    else sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&idx->db_lock);
    if (st != MC_OK) return st;
    u->st->added += added;
    u->st->updated += updated;
    u->st->unchanged += kept;
    u->st->removed += removed;
    for (size_t k = 0; k < count; k++)
        if (state[k] == MC_PIPE_FAILED)
            skip(u, u->files[u->todo[first + k]].path,
                 errs[k].status == MC_ERR_IO ? MC_INDEX_SKIP_UNREADABLE : MC_INDEX_SKIP_UNDECODABLE, errs[k].message);
    u->n_done += count;
    if (u->p->progress) u->p->progress(u->p->progress_user, (int64_t)u->n_done, (int64_t)u->n_todo);
    return MC_OK;
}

/* The model check: an empty index takes the model; another model's is
 * refused, or with reembed its embeddings dropped in one transaction. */
static mc_status adopt_model(update *u, const mc_model *model, mc_error *err) {
    mc_index *idx = u->idx;
    char id[256], dim[32], mpath[4096] = "";
    mc_status st = mc_model_id(model, id, sizeof id, err);
    if (st != MC_OK) return st;
    const char *mp = mc_model_path(model);
    if (mp[0] && !realpath(mp, mpath)) snprintf(mpath, sizeof mpath, "%s", mp);
    snprintf(dim, sizeof dim, "%d", u->dim);
    pthread_mutex_lock(&idx->db_lock);
    if ((st = read_meta(idx, err)) != MC_OK) goto out;
    int same = !strcmp(idx->model_id, id);
    if (same && !strcmp(idx->model_path, mpath)) goto out;
    if (!same && idx->model_id[0]) {
        sqlite3_stmt *s;
        int64_t n = 0;
        if (sqlite3_prepare_v2(idx->db, "SELECT COUNT(*) FROM images WHERE embedding IS NOT NULL", -1, &s, NULL) == SQLITE_OK &&
            sqlite3_step(s) == SQLITE_ROW)
            n = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        if (n > 0 && !u->p->reembed) {
            st = mc_fail(err, MC_ERR_INVALID_ARG,
                         "%s: the index holds %lld embeddings of model '%s', not of '%s'; "
                         "re-embed them with this model (--reembed) or use another index",
                         idx->path, (long long)n, idx->model_id, id);
            goto out;
        }
    }
    if ((st = exec(idx, "BEGIN IMMEDIATE", err)) != MC_OK) goto out;
    if (!same) st = exec(idx, "UPDATE images SET embedding = NULL", err);
    if (st == MC_OK) st = meta_set(idx, "model_id", id, err);
    if (st == MC_OK) st = meta_set(idx, "model_path", mpath, err);
    if (st == MC_OK) st = meta_set(idx, "dim", dim, err);
    if (st == MC_OK) st = exec(idx, "COMMIT", err);
    else sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    if (st == MC_OK) st = read_meta(idx, err);
out:
    pthread_mutex_unlock(&idx->db_lock);
    return st;
}

/* Forgets the stored images under the walked folders that the walk did not find. */
static mc_status forget_gone(update *u, char **roots, int n_roots, mc_error *err) {
    mc_index *idx = u->idx;
    pthread_mutex_lock(&idx->db_lock);
    mc_status st = exec(idx, "BEGIN IMMEDIATE", err);
    int64_t removed = 0;
    for (size_t i = 0; i < u->n_rows && st == MC_OK; i++) {
        const row_ent *r = &u->rows[i];
        if (r->seen) continue;
        int in_root = 0, in_bad = 0;
        for (int k = 0; k < n_roots && !in_root; k++) in_root = under(r->path, roots[k]);
        for (size_t k = 0; k < u->bad_dirs.n && !in_bad; k++) in_bad = under(r->path, u->bad_dirs.v[k]);
        if (!in_root || in_bad) continue;
        sqlite3_bind_int64(u->forget, 1, r->id);
        st = step_done(idx, u->forget, "forgetting an image", err);
        removed++;
    }
    if (st == MC_OK) st = exec(idx, "COMMIT", err);
    else sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_unlock(&idx->db_lock);
    if (st == MC_OK) u->st->removed += removed;
    return st;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mc_status mc_index_update(mc_index *idx, const mc_model *model, const char *const *dirs, int n_dirs,
                          const mc_index_update_params *params, mc_index_update_stats *stats, mc_error *err) {
    if (idx && idx->readonly)
        return mc_fail(err, MC_ERR_INVALID_ARG, "%s: opened read-only; open it read-write to index", idx->path);
    if (!idx || !model || (n_dirs > 0 && !dirs) || n_dirs < 0)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_update: NULL argument");
    mc_index_update_params p = params ? *params : mc_index_update_default_params();
    mc_index_update_stats local;
    if (!stats) stats = &local;
    memset(stats, 0, sizeof *stats);
    double t0 = now_s();
    mc_model_info info;
    mc_model_get_info(model, &info);
    if (info.image_size < 1 || info.embed_dim < 1)
        return mc_fail(err, MC_ERR_INVALID_ARG, "mc_index_update: the model has no image tower");
    update u;
    memset(&u, 0, sizeof u);
    u.idx = idx;
    u.p = &p;
    u.st = stats;
    u.pp = info.preprocess;
    u.dim = info.embed_dim;
    char **roots = calloc((size_t)(n_dirs ? n_dirs : 1), sizeof *roots);
    if (!roots) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    mc_status st = MC_OK;
    for (int i = 0; i < n_dirs && st == MC_OK; i++) {
        struct stat sb;
        if (!dirs[i] || !(roots[i] = realpath(dirs[i], NULL)))
            st = mc_fail(err, MC_ERR_NOT_FOUND, "%s: cannot open folder: %s", dirs[i] ? dirs[i] : "(null)", strerror(errno));
        else if (stat(roots[i], &sb) != 0 || !S_ISDIR(sb.st_mode))
            st = mc_fail(err, MC_ERR_INVALID_ARG, "%s: not a folder", dirs[i]);
    }
    /* the write lock for the whole update: searches on this handle wait, other processes read the WAL */
    pthread_rwlock_wrlock(&idx->lock);
    if (st == MC_OK) st = adopt_model(&u, model, err);
    for (int i = 0; i < n_dirs && st == MC_OK; i++) st = walk(&u, roots[i], 0, err);
    stats->found = (int64_t)u.n_files;
    pthread_mutex_lock(&idx->db_lock);
    if (st == MC_OK) st = load_rows(&u, err);
    if (st == MC_OK &&
        (sqlite3_prepare_v2(idx->db,
                            "INSERT INTO images(path, size, mtime_ns, sha256, width, height, embedding) "
                            "VALUES(?, ?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
                            "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, width = excluded.width, "
                            "height = excluded.height, embedding = excluded.embedding",
                            -1, &u.upsert, NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(idx->db, "UPDATE images SET size = ?, mtime_ns = ? WHERE id = ?", -1, &u.touch, NULL) != SQLITE_OK ||
         sqlite3_prepare_v2(idx->db, "DELETE FROM images WHERE id = ?", -1, &u.forget, NULL) != SQLITE_OK))
        st = db_fail(idx, err, "preparing the index statements");
    pthread_mutex_unlock(&idx->db_lock);
    if (st == MC_OK && !(u.todo = malloc((u.n_files ? u.n_files : 1) * sizeof *u.todo)))
        st = mc_fail(err, MC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < u.n_files && st == MC_OK; i++) {
        file_ent *f = &u.files[i];
        f->row = find_row(&u, f->path);
        row_ent *r = f->row >= 0 ? &u.rows[f->row] : NULL;
        if (r) r->seen = 1;
        if (r && r->has_emb && r->size == f->size && r->mtime_ns == f->mtime_ns) stats->unchanged++;
        else u.todo[u.n_todo++] = i;
    }
    if (st == MC_OK) st = forget_gone(&u, roots, n_dirs, err);
    if (st == MC_OK && u.n_todo) {
        if (p.progress) p.progress(p.progress_user, 0, (int64_t)u.n_todo);
        mc_pipeline pl = {0};
        pl.model = model;
        pl.pp = &u.pp;
        pl.n = u.n_todo;
        pl.batch = p.batch;
        pl.decode_threads = p.decode_threads;
        pl.workers = p.workers;
        pl.threads = p.threads;
        pl.normalize = 1;
        pl.prepare = prepare;
        pl.consume = consume;
        pl.user = &u;
        st = mc_pipeline_run(&pl, err);
    }
    /* the next search loads what was committed */
    drop_state(idx);
    pthread_rwlock_unlock(&idx->lock);
    sqlite3_finalize(u.upsert);
    sqlite3_finalize(u.touch);
    sqlite3_finalize(u.forget);
    for (size_t i = 0; i < u.n_files; i++) free(u.files[i].path);
    for (size_t i = 0; i < u.n_rows; i++) free(u.rows[i].path);
    for (size_t i = 0; i < u.bad_dirs.n; i++) free(u.bad_dirs.v[i]);
    for (int i = 0; i < n_dirs; i++) free(roots[i]);
    free(u.bad_dirs.v);
    free(u.files);
    free(u.rows);
    free(u.todo);
    free(roots);
    stats->seconds = now_s() - t0;
    return st;
}
