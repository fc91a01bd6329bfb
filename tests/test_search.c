/*
 * test_search.c - the exact scan and the index API without a model:
 *   - the image names a folder walk picks (mc_image_name_supported);
 *   - mc_scan_topk (the kernels' gemv + heap) against its plain-loop oracle
 *     on odd sizes, k beyond n, and exact ties (integer-valued rows) ordered
 *     by id;
 *   - an index written through SQLite by hand: read-only open, searches from
 *     several threads at once equal to the oracle, stored images and
 *     embeddings, errors (dim mismatch, missing id, small buffer, read-only
 *     update), reload after another connection wrote, and hostile files (not
 *     SQLite, no index, an embedding of the wrong length).
 */
#include "test.h"
#include "mobileclip.h"
#include "search/scan.h"

#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

static void rand_unit(float *x, int64_t n, int d) {
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) {
            x[i * d + j] = test_frand();
            s += (double)x[i * d + j] * x[i * d + j];
        }
        for (int j = 0; j < d; j++) x[i * d + j] = (float)(x[i * d + j] / sqrt(s > 0 ? s : 1));
    }
}

/* hits equal the oracle's: same scores (within tol) rank by rank, and each
 * hit's own oracle score is its score */
static int same_ranking(const mc_search_hit *a, int na, const mc_search_hit *b, int nb, const float *ref_scores,
                        const int64_t *ids, int64_t n, float tol) {
    if (na != nb) return 0;
    for (int i = 0; i < na; i++) {
        if (fabsf(a[i].score - b[i].score) > tol) return 0;
        int64_t row = -1;
        for (int64_t r = 0; r < n; r++)
            if (ids[r] == a[i].id) row = r;
        if (row < 0 || fabsf(ref_scores[row] - a[i].score) > tol) return 0;
        if (i && (a[i].score > a[i - 1].score)) return 0;
    }
    return 1;
}

static void test_scan(void) {
    static const int64_t ns[] = {0, 1, 2, 7, 100, 1001, 5000};
    static const int dims[] = {1, 3, 32, 512, 513};
    static const int ks[] = {1, 5, 10, 6000};
    test_seed(7);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof dims / sizeof dims[0]; b++) {
            int64_t n = ns[a];
            int d = dims[b];
            float *emb = malloc((size_t)(n ? n : 1) * d * sizeof *emb), *q = malloc((size_t)d * sizeof *q);
            float *s1 = malloc((size_t)(n ? n : 1) * sizeof *s1), *s2 = malloc((size_t)(n ? n : 1) * sizeof *s2);
            int64_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
            mc_search_hit *h1 = malloc(6000 * sizeof *h1), *h2 = malloc(6000 * sizeof *h2);
            rand_unit(emb, n, d);
            rand_unit(q, 1, d);
            for (int64_t i = 0; i < n; i++) ids[i] = 1000 - 3 * i;   /* ids not in row order */
            for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
                int k = ks[c];
                int m1 = mc_scan_topk(emb, ids, n, d, q, k, s1, h1);
                int m2 = mc_scan_topk_ref(emb, ids, n, d, q, k, s2, h2);
                CHECK(m1 == (n < k ? n : k) && m2 == m1, "n %lld k %d: %d and %d hits", (long long)n, k, m1, m2);
                CHECK(same_ranking(h1, m1, h2, m2, s2, ids, n, 1e-5f), "scan vs oracle: n %lld dim %d k %d",
                      (long long)n, d, k);
            }
            free(emb), free(q), free(s1), free(s2), free(ids), free(h1), free(h2);
        }
    /* exact ties: rows of small integers, every dot product exact; ties go by id */
    enum { N = 300, D = 40 };
    static float emb[N * D], q[D], s[N];
    static int64_t ids[N];
    mc_search_hit h1[N], h2[N];
    for (int i = 0; i < N; i++) {
        ids[i] = (i * 7919) % 1009;   /* distinct, shuffled */
        for (int j = 0; j < D; j++) emb[i * D + j] = (float)(((i % 5) * (j + 1)) % 3 - 1);
    }
    for (int j = 0; j < D; j++) q[j] = (float)(j % 4 - 1);
    int m1 = mc_scan_topk(emb, ids, N, D, q, N, s, h1);
    int m2 = mc_scan_topk_ref(emb, ids, N, D, q, N, s, h2);
    int same = m1 == N && m2 == N;
    for (int i = 0; same && i < N; i++) same = h1[i].id == h2[i].id && h1[i].score == h2[i].score;
    int by_id = 1;
    for (int i = 1; i < N; i++)
        if (h1[i].score == h1[i - 1].score && h1[i].id < h1[i - 1].id) by_id = 0;
    CHECK(same && by_id, "exact ties: same order as the oracle (%d), ties by id ascending (%d)", same, by_id);
}

/* ---- an index written by hand ---- */

enum { IN = 777, ID = 48 };
static float g_emb[IN * ID];

static void put_rows(const char *path, int first, int count, int blob_bytes) {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    sqlite3_exec(db, "INSERT OR REPLACE INTO meta VALUES('model_id', 'hand-made dim=48'), ('dim', '48')", NULL, NULL, NULL);
    sqlite3_stmt *s;
    sqlite3_prepare_v2(db, "INSERT INTO images(path, size, mtime_ns, sha256, width, height, embedding) VALUES(?, ?, 0, '', ?, ?, ?)",
                       -1, &s, NULL);
    for (int i = first; i < first + count; i++) {
        char p[64];
        snprintf(p, sizeof p, "/photos/img%04d.jpg", i);
        sqlite3_bind_text(s, 1, p, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 2, 1000 + i);
        sqlite3_bind_int(s, 3, 640 + i);
        sqlite3_bind_int(s, 4, 480);
        sqlite3_bind_blob(s, 5, g_emb + (size_t)i * ID, blob_bytes, SQLITE_STATIC);
        sqlite3_step(s);
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
}

typedef struct search_job {
    mc_index *idx;
    const float *queries;
    int n_queries, bad;
} search_job;

static void *search_thread(void *arg) {
    search_job *j = arg;
    float s[IN];
    int64_t ids[IN];
    for (int i = 0; i < IN; i++) ids[i] = i + 1;   /* AUTOINCREMENT from 1, in insertion order */
    for (int r = 0; r < 20; r++)
        for (int qi = 0; qi < j->n_queries; qi++) {
            mc_search_hit h[10], href[10];
            int n = 0;
            mc_error err;
            if (mc_index_search(j->idx, j->queries + qi * ID, ID, 10, h, &n, &err) != MC_OK) {
                j->bad++;
                continue;
            }
            int nr = mc_scan_topk_ref(g_emb, ids, IN, ID, j->queries + qi * ID, 10, s, href);
            if (!same_ranking(h, n, href, nr, s, ids, IN, 1e-5f)) j->bad++;
        }
    return NULL;
}

static void test_index_api(void) {
    char dir[] = "/tmp/mc_test_search.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    char path[256], bogus[256];
    snprintf(path, sizeof path, "%s/i.db", dir);
    snprintf(bogus, sizeof bogus, "%s/bogus.db", dir);
    mc_error err;
    mc_index *idx = NULL;
    mc_index_params p = mc_index_default_params();
    CHECK(p.readonly == 1 && p.create == 0, "default params");
    CHECK(mc_index_open(path, &p, &idx, &err) == MC_ERR_NOT_FOUND, "missing index: %s", err.message);
    p.readonly = 0;
    p.create = 1;
    CHECK(mc_index_open(path, &p, &idx, &err) == MC_OK, "create: %s", err.message);
    mc_index_info info;
    CHECK(mc_index_get_info(idx, &info, &err) == MC_OK && info.count == 0 && info.dim == 0 && !info.model_id[0],
          "a new index is empty: %lld %d '%s'", (long long)info.count, info.dim, info.model_id);
    mc_index_close(idx);

    test_seed(11);
    rand_unit(g_emb, IN, ID);
    put_rows(path, 0, IN - 77, ID * 4);
    p = mc_index_default_params();
    CHECK(mc_index_open(path, &p, &idx, &err) == MC_OK, "read-only open: %s", err.message);
    CHECK(mc_index_get_info(idx, &info, &err) == MC_OK && info.count == IN - 77 && info.dim == ID &&
              !strcmp(info.model_id, "hand-made dim=48"),
          "info: %lld %d '%s'", (long long)info.count, info.dim, info.model_id);
    float q[ID];
    rand_unit(q, 1, ID);
    mc_search_hit h[4];
    int n = -1;
    CHECK(mc_index_search(idx, q, ID - 1, 4, h, &n, &err) == MC_ERR_INVALID_ARG && n == 0, "dim mismatch: %s", err.message);
    mc_index_image im;
    CHECK(mc_index_get_image(idx, 5, &im, &err) == MC_OK && !strcmp(im.path, "/photos/img0004.jpg") && im.width == 644 &&
              im.height == 480 && im.size == 1004,
          "image 5: %s %dx%d %lld", im.path, im.width, im.height, (long long)im.size);
    char small[8], buf[64];
    CHECK(mc_index_get_path(idx, 5, small, sizeof small, &err) == MC_ERR_INVALID_ARG, "small buffer");
    CHECK(mc_index_get_path(idx, 5, buf, sizeof buf, &err) == MC_OK && !strcmp(buf, "/photos/img0004.jpg"), "path 5: %s", buf);
    CHECK(mc_index_get_path(idx, 99999, buf, sizeof buf, &err) == MC_ERR_NOT_FOUND, "missing id: %s", err.message);
    float e[ID];
    CHECK(mc_index_get_embedding(idx, 5, e, ID, &err) == MC_OK && max_abs_diff(e, g_emb + 4 * ID, ID) == 0, "embedding 5");
    mc_index_update_params up = mc_index_update_default_params();
    const char *dirs[] = {dir};
    CHECK(mc_index_update(idx, NULL, dirs, 1, &up, NULL, &err) == MC_ERR_INVALID_ARG &&
              strstr(err.message, "read-only"),
          "update of a read-only index: %s", err.message);

    /* another connection adds rows: reload sees them; then threads search at once */
    put_rows(path, IN - 77, 77, ID * 4);
    CHECK(mc_index_search(idx, q, ID, 4, h, &n, &err) == MC_OK && n == 4, "search before reload: %s", err.message);
    CHECK(mc_index_reload(idx, &err) == MC_OK, "reload: %s", err.message);
    float queries[8 * ID];
    rand_unit(queries, 8, ID);
    memcpy(queries, g_emb + 776 * ID, ID * sizeof(float));   /* the last row added: found after the reload */
    pthread_t th[4];
    search_job jobs[4];
    for (int t = 0; t < 4; t++) {
        jobs[t] = (search_job){idx, queries, 8, 0};
        pthread_create(&th[t], NULL, search_thread, &jobs[t]);
    }
    int bad = 0;
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        bad += jobs[t].bad;
    }
    CHECK(bad == 0, "4 threads x 160 searches equal the oracle: %d differ", bad);
    CHECK(mc_index_search(idx, queries, ID, 1, h, &n, &err) == MC_OK && n == 1 && h[0].id == IN && fabsf(h[0].score - 1) < 1e-5f,
          "the row added by the other connection is found: id %lld score %f", (long long)h[0].id, h[0].score);
    mc_index_close(idx);

    /* hostile files */
    FILE *f = fopen(bogus, "w");
    fputs("this is not an SQLite database, it only has the name of one\n", f);
    fclose(f);
    CHECK(mc_index_open(bogus, &p, &idx, &err) == MC_ERR_FORMAT && strstr(err.message, "not a mobileclip index"),
          "a text file: %s", err.message);
    sqlite3 *db;
    snprintf(bogus, sizeof bogus, "%s/other.db", dir);
    sqlite3_open(bogus, &db);
    sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(mc_index_open(bogus, &p, &idx, &err) == MC_ERR_FORMAT, "another SQLite file: %s", err.message);
    put_rows(path, 0, 0, 0);
    sqlite3_open(path, &db);
    sqlite3_exec(db, "UPDATE images SET embedding = x'00010203' WHERE id = 9", NULL, NULL, NULL);
    sqlite3_close(db);
    CHECK(mc_index_open(path, &p, &idx, &err) == MC_OK, "open: %s", err.message);
    CHECK(mc_index_search(idx, q, ID, 4, h, &n, &err) == MC_ERR_FORMAT && strstr(err.message, "image 9"),
          "an embedding of 4 bytes: %s", err.message);
    mc_index_close(idx);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
}

static void test_names(void) {
    static const char *yes[] = {"a.jpg", "B.JPEG", "c.Jpe", "/x/d.png", "e.webp", "dir.d/f.PNG"};
    static const char *no[] = {"a.gif", "jpg", "a.jpg.txt", "a", "dir.jpg/file", "", ".png.bak"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) CHECK(mc_image_name_supported(yes[i]), "%s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) CHECK(!mc_image_name_supported(no[i]), "%s", no[i]);
    CHECK(!mc_image_name_supported(NULL), "NULL");
}

int main(void) {
    test_names();
    test_scan();
    test_index_api();
    return test_summary("test_search");
}
