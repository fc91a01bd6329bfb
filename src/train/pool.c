/*
 * train/pool.c - buffers of a training step reused by size (pool.h).
 */
#include "train/pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)

struct mc_pool_blk {
    mc_pool_blk *next_all, *next_free;
    size_t size;          /* bytes */
    void *mem;
    int in_use;
    int mapped;           /* mem came from mmap (else aligned_alloc) */
};

static size_t bucket(size_t size) { return (size / 64 * 2654435761u) % MC_POOL_BUCKETS; }

/* size bytes (a multiple of 4096 from HUGE_PAGE on), 64-byte aligned; large
 * blocks on their own 2 MiB-aligned mapping with huge pages requested. */
static void *blk_alloc(size_t size, int *mapped) {
    *mapped = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (size >= HUGE_PAGE) {
        size_t len = size + HUGE_PAGE;
        unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return NULL;
        uintptr_t a = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        size_t head = a - (uintptr_t)m, tail = len - head - size;
        if (head) munmap(m, head);
        if (tail) munmap((void *)(a + size), tail);
        madvise((void *)a, size, MADV_HUGEPAGE);   /* a request: ignored where unsupported */
        *mapped = 1;
        return (void *)a;
    }
#endif
    return aligned_alloc(64, size);
}

static void blk_free(mc_pool_blk *b) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (b->mapped) { munmap(b->mem, b->size); return; }
#endif
    free(b->mem);
}

float *mc_pool_get(mc_pool *p, size_t n, int zero, mc_pool_blk **blk) {
    *blk = NULL;
    if (n > ((size_t)-1 - HUGE_PAGE) / sizeof(float)) return NULL;
    size_t size = (n * sizeof(float) + 63) & ~(size_t)63;
    if (size == 0) size = 64;
    if (size >= HUGE_PAGE) size = (size + 4095) & ~(size_t)4095;
    mc_pool_blk **pp = &p->free[bucket(size)], *b;
    while ((b = *pp) && b->size != size) pp = &b->next_free;
    int fresh = 0;
    if (b) {
        *pp = b->next_free;
    } else {
        b = calloc(1, sizeof *b);
        if (!b) return NULL;
        b->mem = blk_alloc(size, &b->mapped);
        if (!b->mem) { free(b); return NULL; }
        b->size = size;
        b->next_all = p->all;
        p->all = b;
        p->held += size;
        fresh = b->mapped;   /* fresh anonymous pages are zero */
    }
    b->in_use = 1;
    b->next_free = NULL;
    p->live += size;
    if (p->live > p->peak_live) p->peak_live = p->live;
    if (zero && !fresh) memset(b->mem, 0, size);
    *blk = b;
    return b->mem;
}

void mc_pool_put(mc_pool *p, mc_pool_blk *b) {
    if (!b || !b->in_use) return;
    b->in_use = 0;
    p->live -= b->size;
    mc_pool_blk **head = &p->free[bucket(b->size)];
    b->next_free = *head;
    *head = b;
}

void mc_pool_put_all(mc_pool *p) {
    for (mc_pool_blk *b = p->all; b; b = b->next_all) mc_pool_put(p, b);
}

void mc_pool_release(mc_pool *p) {
    mc_pool_blk *b = p->all;
    while (b) {
        mc_pool_blk *n = b->next_all;
        blk_free(b);
        free(b);
        b = n;
    }
    memset(p, 0, sizeof *p);
}
