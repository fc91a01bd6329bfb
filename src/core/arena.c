/*
 * core/arena.c - the weight arena (see arena.h).
 */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#include <unistd.h>
#endif

struct mc_arena_chunk {
    mc_arena_chunk *next;
    size_t size, used;
    unsigned char *mem;
};

#define MC_ARENA_CHUNK (16u << 20)

void *mc_arena_alloc(mc_arena *a, size_t bytes) {
    size_t need;
    if (!mc_size_add(bytes, 63, &need)) return NULL;
    need &= ~(size_t)63;
    if (need == 0) need = 64;
    mc_arena_chunk *c = a->head;
    if (!c || c->size - c->used < need) {
        size_t sz = need > MC_ARENA_CHUNK ? need : MC_ARENA_CHUNK;
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->mem = aligned_alloc(64, sz);
        if (!c->mem) { free(c); return NULL; }
        c->size = sz;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->mem + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, need);
    return p;
}

float *mc_arena_floats(mc_arena *a, size_t n) {
    size_t bytes;
    if (!mc_size_mul(n, sizeof(float), &bytes)) return NULL;
    return mc_arena_alloc(a, bytes);
}

void mc_arena_free(mc_arena *a) {
    mc_arena_chunk *c = a->head;
    while (c) {
        mc_arena_chunk *n = c->next;
        free(c->mem);
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

void mc_arena_release(mc_arena *a, const void *p, size_t bytes) {
    (void)a;
#ifdef __linux__
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !p) return;
    uintptr_t lo = ((uintptr_t)p + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(uintptr_t)(pg - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
#else
    (void)p, (void)bytes;
#endif
}
