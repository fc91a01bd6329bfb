/*
 * dist/dist.c - data-parallel communication over MPI (dist.h).  Collectives
 * are the non-blocking MPI-3 ones, polled until done or until the timeout, so
 * that no rank waits forever for one that died or hangs.
 */
#include "dist/dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MC_HAVE_MPI
#include <mpi.h>
#endif

struct mc_dist {
    int rank, world;
    int mpi;                    /* MPI started by us */
    double timeout;
    char desc[160];
};

int mc_dist_built_with_mpi(void) {
#ifdef MC_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK", "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

mc_status mc_dist_init(int *argc, char ***argv, mc_dist **out, mc_error *err) {
    mc_dist *d = calloc(1, sizeof *d);
    if (!d) return mc_fail(err, MC_ERR_NOMEM, "out of memory");
    d->world = 1;
    d->timeout = 600;
    snprintf(d->desc, sizeof d->desc, "single process");
#ifdef MC_HAVE_MPI
    if (launched_by_mpi()) {
        int provided = 0, inited = 0;
        MPI_Initialized(&inited);
        if (!inited && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(d);
            return mc_fail(err, MC_ERR_IO, "MPI_Init_thread failed");
        }
        d->mpi = !inited;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->world);
        char lib[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(lib, &len);
        lib[strcspn(lib, ",\n")] = 0;
        snprintf(d->desc, sizeof d->desc, "MPI: rank %d of %d (%.100s)", d->rank, d->world, lib);
    }
#else
    (void)argc;
    (void)argv;
    /* several copies started by a launcher, but no MPI to join them: each
     * would train alone into the same run folder */
    const char *n = getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (launched_by_mpi() && n && atoi(n) > 1) {
        free(d);
        return mc_fail(err, MC_ERR_UNSUPPORTED,
                       "started by an MPI launcher as one of %s processes, but built without MPI (make MPI=1 with "
                       "libopenmpi-dev or libmpich-dev installed)", n);
    }
#endif
    *out = d;
    return MC_OK;
}

void mc_dist_finish(mc_dist *d) {
    if (!d) return;
#ifdef MC_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    free(d);
}

void mc_dist_abort(mc_dist *d, int code) {
#ifdef MC_HAVE_MPI
    if (d && d->world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#else
    (void)d;
    (void)code;
#endif
}

int mc_dist_rank(const mc_dist *d) { return d ? d->rank : 0; }
int mc_dist_world(const mc_dist *d) { return d ? d->world : 1; }
const char *mc_dist_describe(const mc_dist *d) { return d ? d->desc : "single process"; }
void mc_dist_set_timeout(mc_dist *d, double seconds) { if (d && seconds > 0) d->timeout = seconds; }

#ifdef MC_HAVE_MPI
/* Polls a request until it completes or the timeout passes. */
static mc_status wait_req(mc_dist *d, MPI_Request *req, const char *what, mc_error *err) {
    double t0 = mc_now_s();
    long pause_ns = 20000;
    for (;;) {
        int done = 0;
        int rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            char msg[MPI_MAX_ERROR_STRING];
            int len = 0;
            MPI_Error_string(rc, msg, &len);
            return mc_fail(err, MC_ERR_IO, "%s failed: %s", what, msg);
        }
        if (done) return MC_OK;
        if (mc_now_s() - t0 > d->timeout)
            return mc_fail(err, MC_ERR_IO,
                           "%s did not complete in %.0f s: another rank died or hangs (the ranks "
                           "that report this are the ones still alive)",
                           what, d->timeout);
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        if (pause_ns < 1000000) pause_ns *= 2;
    }
}

/* MPI counts are ints: large buffers go in pieces. */
#define MC_DIST_CHUNK ((size_t)1 << 28)
#endif

mc_status mc_dist_allgather_f32(mc_dist *d, const float *local, size_t n, float *global, mc_error *err) {
    if (!d || d->world == 1) { if (global != local) memmove(global, local, n * sizeof(float)); return MC_OK; }
#ifdef MC_HAVE_MPI
    if (n > (size_t)0x7fffffff) return mc_fail(err, MC_ERR_INVALID_ARG, "all-gather of %zu floats per rank", n);
    MPI_Request req;
    int rc = MPI_Iallgather(local, (int)n, MPI_FLOAT, global, (int)n, MPI_FLOAT, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) return mc_fail(err, MC_ERR_IO, "rank %d: MPI_Iallgather failed", d->rank);
    return wait_req(d, &req, "all-gather", err);
#else
    return mc_fail(err, MC_ERR_INTERNAL, "dist: a world of %d without MPI", d->world);
#endif
}

#ifdef MC_HAVE_MPI
static mc_status allreduce(mc_dist *d, void *buf, size_t n, MPI_Datatype type, size_t esize, MPI_Op op,
                           mc_error *err) {
    for (size_t off = 0; off < n; off += MC_DIST_CHUNK) {
        size_t c = n - off < MC_DIST_CHUNK ? n - off : MC_DIST_CHUNK;
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * esize, (int)c, type, op, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return mc_fail(err, MC_ERR_IO, "rank %d: MPI_Iallreduce failed", d->rank);
        mc_status st = wait_req(d, &req, "all-reduce", err);
        if (st != MC_OK) return st;
    }
    return MC_OK;
}
#endif

mc_status mc_dist_allreduce_sum_f32(mc_dist *d, float *buf, size_t n, mc_error *err) {
    if (!d || d->world == 1) return MC_OK;
#ifdef MC_HAVE_MPI
    return allreduce(d, buf, n, MPI_FLOAT, sizeof(float), MPI_SUM, err);
#else
    (void)buf; (void)n;
    return mc_fail(err, MC_ERR_INTERNAL, "dist: a world of %d without MPI", d->world);
#endif
}

mc_status mc_dist_allreduce_sum_f64(mc_dist *d, double *buf, size_t n, mc_error *err) {
    if (!d || d->world == 1) return MC_OK;
#ifdef MC_HAVE_MPI
    return allreduce(d, buf, n, MPI_DOUBLE, sizeof(double), MPI_SUM, err);
#else
    (void)buf; (void)n;
    return mc_fail(err, MC_ERR_INTERNAL, "dist: a world of %d without MPI", d->world);
#endif
}

mc_status mc_dist_reduce_scatter_sum_f32(mc_dist *d, const float *global, size_t n, float *local, mc_error *err) {
    if (!d || d->world == 1) { if (global != local) memmove(local, global, n * sizeof(float)); return MC_OK; }
#ifdef MC_HAVE_MPI
    if (n > (size_t)0x7fffffff) return mc_fail(err, MC_ERR_INVALID_ARG, "reduce-scatter of %zu floats per rank", n);
    MPI_Request req;
    int rc = MPI_Ireduce_scatter_block(global, local, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) return mc_fail(err, MC_ERR_IO, "rank %d: MPI_Ireduce_scatter_block failed", d->rank);
    return wait_req(d, &req, "reduce-scatter", err);
#else
    return mc_fail(err, MC_ERR_INTERNAL, "dist: a world of %d without MPI", d->world);
#endif
}

mc_status mc_dist_broadcast(mc_dist *d, void *buf, size_t bytes, int root, mc_error *err) {
    if (!d || d->world == 1) return MC_OK;
#ifdef MC_HAVE_MPI
    for (size_t off = 0; off < bytes; off += MC_DIST_CHUNK) {
        size_t c = bytes - off < MC_DIST_CHUNK ? bytes - off : MC_DIST_CHUNK;
        MPI_Request req;
        int rc = MPI_Ibcast((char *)buf + off, (int)c, MPI_BYTE, root, MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return mc_fail(err, MC_ERR_IO, "rank %d: MPI_Ibcast failed", d->rank);
        mc_status st = wait_req(d, &req, "broadcast", err);
        if (st != MC_OK) return st;
    }
    return MC_OK;
#else
    (void)buf; (void)bytes; (void)root;
    return mc_fail(err, MC_ERR_INTERNAL, "dist: a world of %d without MPI", d->world);
#endif
}

mc_status mc_dist_all_ok(mc_dist *d, int ok, int *all_ok, mc_error *err) {
    *all_ok = ok;
    if (!d || d->world == 1) return MC_OK;
#ifdef MC_HAVE_MPI
    int v = ok ? 1 : 0;
    mc_status st = allreduce(d, &v, 1, MPI_INT, sizeof(int), MPI_MIN, err);
    *all_ok = v;
    return st;
#else
    return mc_fail(err, MC_ERR_INTERNAL, "dist: a world of %d without MPI", d->world);
#endif
}
