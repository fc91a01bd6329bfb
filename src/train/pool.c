/*
 * train/pool.c - buffers of a training step reused by lifetime (pool.h):
 * best fit over the free ranges of the first chunk that has room (chunks in
 * the order they were made), split on the way out and merged with free
 * neighbours on the way back, so that memory freed by dead tensors of any
 * size serves the next ones and the chunks stay about as large as the most
 * that a step holds at once.  Taking the chunks in order makes every
 * micro-batch that makes the same requests place them where the first one
 * did: after the first, no new page is touched.
 */
#include "train/pool.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#define HUGE_PAGE ((size_t)2 << 20)
#define CHUNK_MIN ((size_t)256 << 20)
#define ALIGN 64

typedef struct chunk {
    struct chunk *next;
    unsigned char *mem;
    size_t size;
    size_t high;              /* the end of the highest range ever handed out */
    int mapped;               /* mem came from mmap (else aligned_alloc) */
    mc_pool_blk *first;       /* its ranges in address order */
} chunk;

/* A range of a chunk, free or handed out. */
struct mc_pool_blk {
    mc_pool_blk *prev, *next; /* neighbours in the chunk */
    chunk *ch;
    size_t off, size;
    int in_use;
};

/* size bytes, 2 MiB aligned, huge pages requested (Linux). */
static void *chunk_map(size_t size, int *mapped) {
    *mapped = 0;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    size_t len = size + HUGE_PAGE;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m != MAP_FAILED) {
        uintptr_t a = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
        size_t head = a - (uintptr_t)m, tail = len - head - size;
        if (head) munmap(m, head);
        if (tail) munmap((void *)(a + size), tail);
        madvise((void *)a, size, MADV_HUGEPAGE);   /* a request: ignored where unsupported */
        *mapped = 1;
        return (void *)a;
    }
#endif
    return aligned_alloc(HUGE_PAGE, size);
}

static chunk *chunk_new(mc_pool *p, size_t need) {
    size_t size = need > CHUNK_MIN ? (need + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1) : CHUNK_MIN;
    chunk *c = calloc(1, sizeof *c);
    mc_pool_blk *b = calloc(1, sizeof *b);
    if (c) c->mem = chunk_map(size, &c->mapped);
    if (!c || !b || !c->mem) { free(c); free(b); return NULL; }
    c->size = size;
    b->ch = c;
    b->size = size;
    c->first = b;
    chunk **end = &p->all;
    while (*end) end = &(*end)->next;
    *end = c;   /* the last: chunks are searched in the order they were made */
    p->held += size;
    return c;
}

float *mc_pool_get(mc_pool *p, size_t n, int zero, mc_pool_blk **blk) {
    *blk = NULL;
    if (n > ((size_t)-1 - 2 * HUGE_PAGE) / sizeof(float)) return NULL;
    size_t size = (n * sizeof(float) + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (size == 0) size = ALIGN;
    /* the first chunk with room; in it the smallest free range that holds it,
     * the lowest on a tie */
    mc_pool_blk *best = NULL;
    for (chunk *c = p->all; c && !best; c = c->next)
        for (mc_pool_blk *b = c->first; b; b = b->next)
            if (!b->in_use && b->size >= size && (!best || b->size < best->size)) best = b;
    if (!best) {
        chunk *c = chunk_new(p, size);
        if (!c) return NULL;
        best = c->first;
    }
    if (best->size > size) {   /* split: the rest stays free */
        mc_pool_blk *r = calloc(1, sizeof *r);
        if (!r) return NULL;
        r->ch = best->ch;
        r->off = best->off + size;
        r->size = best->size - size;
        r->prev = best;
        r->next = best->next;
        if (r->next) r->next->prev = r;
        best->next = r;
        best->size = size;
    }
    best->in_use = 1;
    if (best->off + size > best->ch->high) {
        p->touched += best->off + size - best->ch->high;
        best->ch->high = best->off + size;
    }
    p->made += size;
    if (p->made > p->peak_made) p->peak_made = p->made;
    p->live += size;
    if (p->live > p->peak_live) p->peak_live = p->live;
    float *mem = (float *)(best->ch->mem + best->off);
    if (zero) memset(mem, 0, size);
    *blk = best;
    return mem;
}

/* Merges b with its next neighbour (both free). */
static void merge_next(mc_pool_blk *b) {
    mc_pool_blk *n = b->next;
    b->size += n->size;
    b->next = n->next;
    if (b->next) b->next->prev = b;
    free(n);
}

void mc_pool_put(mc_pool *p, mc_pool_blk *b) {
    if (!b || !b->in_use) return;
    b->in_use = 0;
    p->live -= b->size;
    if (b->next && !b->next->in_use) merge_next(b);
    if (b->prev && !b->prev->in_use) merge_next(b->prev);
}

static void chunk_free(chunk *c) {
    mc_pool_blk *b = c->first;
    while (b) { mc_pool_blk *bn = b->next; free(b); b = bn; }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (c->mapped) munmap(c->mem, c->size); else free(c->mem);
#else
    free(c->mem);
#endif
    free(c);
}

void mc_pool_put_all(mc_pool *p) {
    for (chunk *c = p->all; c; c = c->next) {
        mc_pool_blk *b = c->first;
        while (b->next) {
            mc_pool_blk *n = b->next;
            free(b);
            b = n;
        }
        c->first = b;   /* the last range becomes the whole chunk */
        b->prev = NULL;
        b->off = 0;
        b->size = c->size;
        b->in_use = 0;
    }
    p->live = 0;
    p->made = 0;
}

void mc_pool_release(mc_pool *p) {
    while (p->all) { chunk *n = p->all->next; chunk_free(p->all); p->all = n; }
    memset(p, 0, sizeof *p);
}
