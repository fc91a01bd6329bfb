/*
 * io/torchzip.c - reader for torch.save zip archives (.pt/.pth/.bin): the zip
 * container (central directory, zip64, stored entries only), a restricted
 * pickle machine that understands exactly what a state dict is made of
 * (nothing is ever imported or executed: globals are matched against a short
 * whitelist) and tensor reconstruction from storages.
 */
#include "io/torchzip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on hostile input. */
#define TZ_MAX_ENTRIES     (1u << 20)          /* zip entries */
#define TZ_MAX_PICKLE      (64u << 20)         /* data.pkl size */
#define TZ_MAX_STACK       (1u << 20)          /* pickle stack slots */
#define TZ_MAX_VALUES      (1u << 20)          /* pickle values (~15 per tensor; ~260 MB at most) */
#define TZ_MAX_MARKS       1024                /* MARK nesting */
#define TZ_MAX_MEMO        (1u << 22)          /* memo index */
#define TZ_MAX_TENSORS     32768               /* tensors in one state dict */
#define TZ_MAX_WRAP_DEPTH  4                   /* {"state_dict": {"model": ...}} */

/* ------------------------------------------------------------------ zip */

typedef struct tz_entry {
    const char *name;      /* not NUL-terminated: points into the file */
    size_t name_len;
    uint64_t local_off;
    uint64_t csize;
    uint64_t usize;
    unsigned method;
} tz_entry;

typedef struct tz_zip {
    const uint8_t *d;
    size_t size;
    const char *path;
    tz_entry *entries;     /* sorted by name */
    size_t n;
} tz_zip;

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32); }

static int name_cmp(const char *a, size_t al, const char *b, size_t bl) {
    size_t m = al < bl ? al : bl;
    int c = memcmp(a, b, m);
    if (c) return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static int entry_cmp(const void *x, const void *y) {
    const tz_entry *a = x, *b = y;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static const tz_entry *zip_find(const tz_zip *z, const char *name, size_t len) {
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(z->entries[mid].name, z->entries[mid].name_len, name, len);
        if (c == 0) return &z->entries[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

/* Reads the zip64 extended-information extra field of a central entry. */
static int zip64_extra(const uint8_t *ex, size_t exlen, tz_entry *e, uint32_t usz32, uint32_t csz32,
                       uint32_t off32) {
    size_t p = 0;
    while (p + 4 <= exlen) {
        uint16_t id = rd16(ex + p), len = rd16(ex + p + 2);
        if (p + 4 + len > exlen) return 0;
        if (id == 0x0001) {
            const uint8_t *f = ex + p + 4;
            size_t q = 0;
            if (usz32 == 0xFFFFFFFFu) { if (q + 8 > len) return 0; e->usize = rd64(f + q); q += 8; }
            if (csz32 == 0xFFFFFFFFu) { if (q + 8 > len) return 0; e->csize = rd64(f + q); q += 8; }
            if (off32 == 0xFFFFFFFFu) { if (q + 8 > len) return 0; e->local_off = rd64(f + q); q += 8; }
            return 1;
        }
        p += 4 + (size_t)len;
    }
    /* no zip64 field: only fine when nothing needed one */
    return usz32 != 0xFFFFFFFFu && csz32 != 0xFFFFFFFFu && off32 != 0xFFFFFFFFu;
}

static mc_status zip_open(tz_zip *z, mc_error *err) {
    const uint8_t *d = z->d;
    size_t size = z->size;
    if (size < 22) return mc_fail(err, MC_ERR_FORMAT, "%s: truncated zip archive", z->path);
    /* end of central directory: the last signature within the final 64 KiB + 22 bytes */
    size_t lim = size > 22 + 65535 ? size - 22 - 65535 : 0;
    size_t eocd = (size_t)-1;
    for (size_t p = size - 22 + 1; p-- > lim;) {
        if (rd32(d + p) == 0x06054b50u && p + 22 + rd16(d + p + 20) <= size) { eocd = p; break; }
    }
    if (eocd == (size_t)-1)
        return mc_fail(err, MC_ERR_FORMAT, "%s: no zip end-of-central-directory record (truncated?)",
                       z->path);
    uint64_t n_entries = rd16(d + eocd + 10);
    uint64_t cd_size = rd32(d + eocd + 12);
    uint64_t cd_off = rd32(d + eocd + 16);
    if (n_entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        if (eocd < 20 || rd32(d + eocd - 20) != 0x07064b50u)
            return mc_fail(err, MC_ERR_FORMAT, "%s: zip64 archive without a zip64 locator", z->path);
        uint64_t z64 = rd64(d + eocd - 20 + 8);
        if (z64 > size || size - z64 < 56 || rd32(d + z64) != 0x06064b50u)
            return mc_fail(err, MC_ERR_FORMAT, "%s: bad zip64 end-of-central-directory record", z->path);
        n_entries = rd64(d + z64 + 32);
        cd_size = rd64(d + z64 + 40);
        cd_off = rd64(d + z64 + 48);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return mc_fail(err, MC_ERR_FORMAT, "%s: zip central directory lies outside the file", z->path);
    if (n_entries > TZ_MAX_ENTRIES || n_entries > cd_size / 46)
        return mc_fail(err, MC_ERR_FORMAT, "%s: zip claims %llu entries in a %llu-byte directory",
                       z->path, (unsigned long long)n_entries, (unsigned long long)cd_size);
    z->entries = mc_calloc_array(n_entries ? (size_t)n_entries : 1, sizeof *z->entries);
    if (!z->entries) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", z->path);
    const uint8_t *cd = d + cd_off;
    size_t p = 0;
    for (uint64_t i = 0; i < n_entries; i++) {
        if (cd_size - p < 46 || rd32(cd + p) != 0x02014b50u)
            return mc_fail(err, MC_ERR_FORMAT, "%s: bad zip central directory entry %llu", z->path,
                           (unsigned long long)i);
        tz_entry *e = &z->entries[z->n];
        e->method = rd16(cd + p + 10);
        uint32_t csz = rd32(cd + p + 20), usz = rd32(cd + p + 24), off = rd32(cd + p + 42);
        size_t nl = rd16(cd + p + 28), xl = rd16(cd + p + 30), cl = rd16(cd + p + 32);
        if (cd_size - p - 46 < nl + xl + cl)
            return mc_fail(err, MC_ERR_FORMAT, "%s: zip central directory entry %llu overruns",
                           z->path, (unsigned long long)i);
        e->name = (const char *)cd + p + 46;
        e->name_len = nl;
        e->csize = csz;
        e->usize = usz;
        e->local_off = off;
        if (!zip64_extra(cd + p + 46 + nl, xl, e, usz, csz, off))
            return mc_fail(err, MC_ERR_FORMAT, "%s: bad zip64 field in entry %llu", z->path,
                           (unsigned long long)i);
        z->n++;
        p += 46 + nl + xl + cl;
    }
    qsort(z->entries, z->n, sizeof *z->entries, entry_cmp);
    return MC_OK;
}

/* The bytes of a stored entry, checked against the local header and the file. */
static mc_status zip_entry_data(const tz_zip *z, const tz_entry *e, const uint8_t **out,
                                size_t *len, mc_error *err) {
    if (e->method != 0)
        return mc_fail(err, MC_ERR_UNSUPPORTED,
                       "%s: zip entry '%.*s' is compressed (method %u); torch.save stores entries "
                       "uncompressed, so re-save the checkpoint with torch.save",
                       z->path, (int)e->name_len, e->name, e->method);
    if (e->csize != e->usize)
        return mc_fail(err, MC_ERR_FORMAT, "%s: stored zip entry '%.*s' has different sizes",
                       z->path, (int)e->name_len, e->name);
    if (e->local_off > z->size || z->size - e->local_off < 30 ||
        rd32(z->d + e->local_off) != 0x04034b50u)
        return mc_fail(err, MC_ERR_FORMAT, "%s: bad zip local header for '%.*s'", z->path,
                       (int)e->name_len, e->name);
    const uint8_t *lh = z->d + e->local_off;
    uint64_t start = e->local_off + 30 + (uint64_t)rd16(lh + 26) + rd16(lh + 28);
    if (start > z->size || e->csize > z->size - start)
        return mc_fail(err, MC_ERR_FORMAT, "%s: zip entry '%.*s' lies past the end of the file",
                       z->path, (int)e->name_len, e->name);
    *out = z->d + start;
    *len = (size_t)e->csize;
    return MC_OK;
}

/* --------------------------------------------------------------- pickle */

typedef enum pv_kind {
    PV_NONE, PV_BOOL, PV_INT, PV_FLOAT, PV_STR, PV_TUPLE, PV_LIST, PV_DICT,
    PV_GLOBAL, PV_STORAGE, PV_TENSOR
} pv_kind;

typedef enum tz_global {
    G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_REBUILD_PARAMETER_STATE,
    G_REBUILD_FROM_TYPE_V2, G_TENSOR_TYPE, G_PARAMETER_TYPE, G_STORAGE
} tz_global;

typedef struct pv pv;
struct pv {
    pv_kind kind;
    pv *all_next;          /* every value, for freeing */
    int64_t i;             /* INT, BOOL */
    double f;              /* FLOAT */
    char *s;               /* STR (NUL-terminated), GLOBAL "module.name" */
    size_t len;            /* STR byte length */
    pv **items;            /* TUPLE/LIST items; DICT: key, value, key, value ... */
    size_t n, cap;
    tz_global glob;        /* GLOBAL */
    mc_dtype dtype;        /* GLOBAL storage type, STORAGE, TENSOR */
    const uint8_t *sdata;  /* STORAGE bytes */
    uint64_t snumel;       /* STORAGE elements */
    pv *storage;           /* TENSOR */
    int64_t offset;
    int ndim;
    int64_t shape[MC_MAX_DIMS];
    int64_t stride[MC_MAX_DIMS];
};

typedef struct tz_vm {
    const tz_zip *zip;
    const char *prefix;    /* "<top>/" */
    size_t prefix_len;
    const char *path;
    const uint8_t *p, *end, *start;
    pv *all;
    size_t n_values;
    pv **stack;
    size_t sp, stack_cap;
    size_t marks[TZ_MAX_MARKS];
    size_t n_marks;
    pv **memo;
    size_t memo_cap;
    size_t memo_len;       /* defined entries: MEMOIZE's next index */
    mc_error *err;
} tz_vm;

static mc_status vfail(tz_vm *vm, mc_status st, const char *fmt, ...) MC_PRINTF(3, 4);
static mc_status vfail(tz_vm *vm, mc_status st, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mc_fail(vm->err, st, "%s: %.*sdata.pkl at byte %zu: %s", vm->path, (int)vm->prefix_len,
                   vm->prefix, (size_t)(vm->p - vm->start), msg);
}

static pv *pv_new(tz_vm *vm, pv_kind kind) {
    if (vm->n_values >= TZ_MAX_VALUES) return NULL; /* reported as out of memory */
    pv *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    vm->n_values++;
    v->kind = kind;
    v->all_next = vm->all;
    vm->all = v;
    return v;
}

static mc_status nomem(tz_vm *vm) {
    if (vm->n_values >= TZ_MAX_VALUES)
        return vfail(vm, MC_ERR_FORMAT, "more than %u pickle values", TZ_MAX_VALUES);
    return vfail(vm, MC_ERR_NOMEM, "out of memory");
}

static void vm_free(tz_vm *vm) {
    pv *v = vm->all;
    while (v) {
        pv *nx = v->all_next;
        free(v->s);
        free(v->items);
        free(v);
        v = nx;
    }
    vm->all = NULL;
    free(vm->stack);
    free(vm->memo);
}

static mc_status push(tz_vm *vm, pv *v) {
    if (!v) return nomem(vm);
    if (vm->sp == vm->stack_cap) {
        if (vm->stack_cap >= TZ_MAX_STACK) return vfail(vm, MC_ERR_FORMAT, "pickle stack too deep");
        size_t nc = vm->stack_cap ? vm->stack_cap * 2 : 256;
        pv **ns = realloc(vm->stack, nc * sizeof *ns);
        if (!ns) return nomem(vm);
        vm->stack = ns;
        vm->stack_cap = nc;
    }
    vm->stack[vm->sp++] = v;
    return MC_OK;
}

static mc_status item_add(tz_vm *vm, pv *c, pv *x) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 8;
        pv **ni = realloc(c->items, nc * sizeof *ni);
        if (!ni) return nomem(vm);
        c->items = ni;
        c->cap = nc;
    }
    c->items[c->n++] = x;
    return MC_OK;
}

/* Start of the items above the innermost MARK (which is removed). */
static mc_status pop_mark(tz_vm *vm, size_t *base) {
    if (vm->n_marks == 0) return vfail(vm, MC_ERR_FORMAT, "no MARK on the stack");
    *base = vm->marks[--vm->n_marks];
    if (*base > vm->sp) return vfail(vm, MC_ERR_FORMAT, "stack underflow below MARK");
    return MC_OK;
}

/* After pop_mark: the object the items go into sits just below base. */
static mc_status mark_target(tz_vm *vm, size_t base, pv **out) {
    size_t floor = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (base <= floor) return vfail(vm, MC_ERR_FORMAT, "no container below MARK");
    *out = vm->stack[base - 1];
    return MC_OK;
}

static mc_status need_stack(tz_vm *vm, size_t n) {
    size_t floor = vm->n_marks ? vm->marks[vm->n_marks - 1] : 0;
    if (vm->sp < floor + n) return vfail(vm, MC_ERR_FORMAT, "stack underflow");
    return MC_OK;
}

static mc_status make_tuple(tz_vm *vm, size_t base) {
    pv *t = pv_new(vm, PV_TUPLE);
    if (!t) return nomem(vm);
    size_t n = vm->sp - base;
    if (n) {
        t->items = mc_malloc_array(n, sizeof *t->items);
        if (!t->items) return nomem(vm);
        memcpy(t->items, vm->stack + base, n * sizeof *t->items);
        t->n = t->cap = n;
    }
    vm->sp = base;
    return push(vm, t);
}

static mc_status read_bytes(tz_vm *vm, size_t n, const uint8_t **out) {
    if ((size_t)(vm->end - vm->p) < n) return vfail(vm, MC_ERR_FORMAT, "truncated pickle");
    *out = vm->p;
    vm->p += n;
    return MC_OK;
}

static mc_status push_str(tz_vm *vm, uint64_t n) {
    const uint8_t *b = NULL;
    if (n > (uint64_t)(vm->end - vm->p)) return vfail(vm, MC_ERR_FORMAT, "string runs past the end");
    mc_status st = read_bytes(vm, (size_t)n, &b);
    if (st != MC_OK) return st;
    pv *v = pv_new(vm, PV_STR);
    if (!v || !(v->s = malloc((size_t)n + 1))) return nomem(vm);
    memcpy(v->s, b, (size_t)n);
    v->s[n] = 0;
    v->len = (size_t)n;
    return push(vm, v);
}

static mc_status memo_put(tz_vm *vm, uint64_t idx) {
    if (vm->sp == 0) return vfail(vm, MC_ERR_FORMAT, "memoize on an empty stack");
    if (idx >= TZ_MAX_MEMO) return vfail(vm, MC_ERR_FORMAT, "memo index %llu too large",
                                         (unsigned long long)idx);
    if (idx >= vm->memo_cap) {
        size_t nc = vm->memo_cap ? vm->memo_cap : 256;
        while (nc <= idx) nc *= 2;
        pv **nm = realloc(vm->memo, nc * sizeof *nm);
        if (!nm) return nomem(vm);
        memset(nm + vm->memo_cap, 0, (nc - vm->memo_cap) * sizeof *nm);
        vm->memo = nm;
        vm->memo_cap = nc;
    }
    if (!vm->memo[idx]) vm->memo_len++;
    vm->memo[idx] = vm->stack[vm->sp - 1];
    return MC_OK;
}

static mc_status memo_get(tz_vm *vm, uint64_t idx) {
    if (idx >= vm->memo_cap || !vm->memo[idx])
        return vfail(vm, MC_ERR_FORMAT, "memo entry %llu is not defined", (unsigned long long)idx);
    return push(vm, vm->memo[idx]);
}

static const struct { const char *module, *name; tz_global g; mc_dtype dtype; } globals[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT, MC_DTYPE_F32},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, MC_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, MC_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter_with_state", G_REBUILD_PARAMETER_STATE, MC_DTYPE_F32},
    {"torch._tensor", "_rebuild_from_type_v2", G_REBUILD_FROM_TYPE_V2, MC_DTYPE_F32},
    {"torch._tensor", "Tensor", G_TENSOR_TYPE, MC_DTYPE_F32},
    {"torch", "Tensor", G_TENSOR_TYPE, MC_DTYPE_F32},
    {"torch.nn.parameter", "Parameter", G_PARAMETER_TYPE, MC_DTYPE_F32},
    {"torch", "FloatStorage", G_STORAGE, MC_DTYPE_F32},
    {"torch", "HalfStorage", G_STORAGE, MC_DTYPE_F16},
    {"torch", "BFloat16Storage", G_STORAGE, MC_DTYPE_BF16},
    {"torch", "DoubleStorage", G_STORAGE, MC_DTYPE_F64},
    {"torch", "LongStorage", G_STORAGE, MC_DTYPE_I64},
    {"torch", "IntStorage", G_STORAGE, MC_DTYPE_I32},
    {"torch", "ShortStorage", G_STORAGE, MC_DTYPE_I16},
    {"torch", "CharStorage", G_STORAGE, MC_DTYPE_I8},
    {"torch", "ByteStorage", G_STORAGE, MC_DTYPE_U8},
    {"torch", "BoolStorage", G_STORAGE, MC_DTYPE_BOOL},
};

static mc_status push_global(tz_vm *vm, const char *mod, size_t ml, const char *name, size_t nl) {
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++) {
        if (strlen(globals[i].module) == ml && !memcmp(globals[i].module, mod, ml) &&
            strlen(globals[i].name) == nl && !memcmp(globals[i].name, name, nl)) {
            pv *v = pv_new(vm, PV_GLOBAL);
            if (!v) return nomem(vm);
            v->glob = globals[i].g;
            v->dtype = globals[i].dtype;
            return push(vm, v);
        }
    }
    /* print the name safely: it may hold any bytes */
    char shown[200];
    size_t k = 0;
    for (size_t i = 0; i < ml + 1 + nl && k + 5 < sizeof shown; i++) {
        unsigned char c = i < ml ? (unsigned char)mod[i] : i == ml ? '.' : (unsigned char)name[i - ml - 1];
        if (c >= 0x20 && c < 0x7f) shown[k++] = (char)c;
        else k += (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02x", c);
    }
    shown[k] = 0;
    return vfail(vm, MC_ERR_FORMAT,
                 "the pickle names the global '%s', which a state dict never needs; refusing it "
                 "(nothing was executed)", shown);
}

static int is_int(const pv *v) { return v && (v->kind == PV_INT || v->kind == PV_BOOL); }

static mc_status persistent_load(tz_vm *vm, pv *pid, pv **out) {
    if (pid->kind != PV_TUPLE || pid->n < 5 || pid->items[0]->kind != PV_STR ||
        strcmp(pid->items[0]->s, "storage") != 0)
        return vfail(vm, MC_ERR_FORMAT, "persistent id is not a ('storage', ...) tuple");
    pv *type = pid->items[1], *key = pid->items[2], *numel = pid->items[4];
    if (type->kind != PV_GLOBAL || type->glob != G_STORAGE)
        return vfail(vm, MC_ERR_FORMAT, "persistent id does not name a storage type");
    if (key->kind != PV_STR || key->len > 256 || memchr(key->s, '/', key->len) || !key->len)
        return vfail(vm, MC_ERR_FORMAT, "bad storage key");
    if (!is_int(numel) || numel->i < 0)
        return vfail(vm, MC_ERR_FORMAT, "bad storage size");
    char name[600];
    int nl = snprintf(name, sizeof name, "%.*sdata/%s", (int)vm->prefix_len, vm->prefix, key->s);
    if (nl < 0 || (size_t)nl >= sizeof name) return vfail(vm, MC_ERR_FORMAT, "storage name too long");
    const tz_entry *e = zip_find(vm->zip, name, (size_t)nl);
    if (!e) return vfail(vm, MC_ERR_FORMAT, "storage '%s' is not in the archive", name);
    const uint8_t *data;
    size_t len;
    mc_status st = zip_entry_data(vm->zip, e, &data, &len, vm->err);
    if (st != MC_OK) return st;
    size_t es = mc_dtype_size(type->dtype), need;
    if (!mc_size_mul((size_t)numel->i, es, &need) || need > len)
        return vfail(vm, MC_ERR_FORMAT, "storage '%s' claims %lld elements but holds %zu bytes",
                     name, (long long)numel->i, len);
    pv *s = pv_new(vm, PV_STORAGE);
    if (!s) return nomem(vm);
    s->dtype = type->dtype;
    s->sdata = data;
    s->snumel = (uint64_t)numel->i;
    *out = s;
    return MC_OK;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata]) */
static mc_status rebuild_tensor(tz_vm *vm, pv *args, pv **out) {
    if (args->n < 4 || args->items[0]->kind != PV_STORAGE || !is_int(args->items[1]) ||
        args->items[2]->kind != PV_TUPLE || args->items[3]->kind != PV_TUPLE)
        return vfail(vm, MC_ERR_FORMAT, "_rebuild_tensor_v2 with unexpected arguments");
    pv *s = args->items[0], *size = args->items[2], *stride = args->items[3];
    if (size->n != stride->n || size->n > MC_MAX_DIMS)
        return vfail(vm, MC_ERR_FORMAT, "tensor has %zu sizes and %zu strides (at most %d dims)",
                     size->n, stride->n, MC_MAX_DIMS);
    pv *t = pv_new(vm, PV_TENSOR);
    if (!t) return nomem(vm);
    t->storage = s;
    t->dtype = s->dtype;
    t->offset = args->items[1]->i;
    t->ndim = (int)size->n;
    uint64_t numel = 1, last = 0;
    if (t->offset < 0) return vfail(vm, MC_ERR_FORMAT, "negative storage offset");
    for (int k = 0; k < t->ndim; k++) {
        pv *a = size->items[k], *b = stride->items[k];
        if (!is_int(a) || !is_int(b) || a->i < 0 || b->i < 0)
            return vfail(vm, MC_ERR_FORMAT, "bad tensor size or stride");
        t->shape[k] = a->i;
        t->stride[k] = b->i;
        if (__builtin_mul_overflow(numel, (uint64_t)a->i, &numel))
            return vfail(vm, MC_ERR_FORMAT, "tensor size overflows");
    }
    if (numel > 0) {
        for (int k = 0; k < t->ndim; k++) {
            uint64_t span;
            if (__builtin_mul_overflow((uint64_t)(t->shape[k] - 1), (uint64_t)t->stride[k], &span) ||
                __builtin_add_overflow(last, span, &last))
                return vfail(vm, MC_ERR_FORMAT, "tensor strides overflow");
        }
        if (__builtin_add_overflow(last, (uint64_t)t->offset, &last) || last >= s->snumel)
            return vfail(vm, MC_ERR_FORMAT,
                         "tensor view reaches element %llu of a %llu-element storage",
                         (unsigned long long)last, (unsigned long long)s->snumel);
        if (numel > s->snumel)
            return vfail(vm, MC_ERR_FORMAT, "tensor of %llu elements expands a %llu-element storage",
                         (unsigned long long)numel, (unsigned long long)s->snumel);
    }
    *out = t;
    return MC_OK;
}

/* Applies a whitelisted callable (REDUCE). */
static mc_status call_global(tz_vm *vm, pv *fn, pv *args, int depth, pv **out) {
    if (fn->kind != PV_GLOBAL) return vfail(vm, MC_ERR_FORMAT, "REDUCE on a value that is not callable");
    if (args->kind != PV_TUPLE) return vfail(vm, MC_ERR_FORMAT, "REDUCE arguments are not a tuple");
    switch (fn->glob) {
    case G_ORDERED_DICT:
        if (args->n != 0) return vfail(vm, MC_ERR_FORMAT, "OrderedDict called with arguments");
        *out = pv_new(vm, PV_DICT);
        return *out ? MC_OK : nomem(vm);
    case G_REBUILD_TENSOR_V2:
        return rebuild_tensor(vm, args, out);
    case G_REBUILD_PARAMETER:
    case G_REBUILD_PARAMETER_STATE:
        if (args->n < 1 || args->items[0]->kind != PV_TENSOR)
            return vfail(vm, MC_ERR_FORMAT, "_rebuild_parameter without a tensor");
        *out = args->items[0];
        return MC_OK;
    case G_REBUILD_FROM_TYPE_V2: /* (func, type, args, state) */
        if (depth > 0 || args->n < 3 || args->items[1]->kind != PV_GLOBAL ||
            (args->items[1]->glob != G_TENSOR_TYPE && args->items[1]->glob != G_PARAMETER_TYPE) ||
            args->items[0]->kind != PV_GLOBAL || args->items[0]->glob == G_REBUILD_FROM_TYPE_V2)
            return vfail(vm, MC_ERR_FORMAT, "_rebuild_from_type_v2 with unexpected arguments");
        return call_global(vm, args->items[0], args->items[2], depth + 1, out);
    default:
        return vfail(vm, MC_ERR_FORMAT, "REDUCE on a type that cannot be called here");
    }
}

static int64_t sext(uint64_t v, unsigned bytes) {
    if (bytes == 0) return 0;
    if (bytes < 8 && (v >> (8 * bytes - 1)) & 1) v |= ~(uint64_t)0 << (8 * bytes);
    return (int64_t)v;
}

static mc_status push_int(tz_vm *vm, int64_t x) {
    pv *v = pv_new(vm, PV_INT);
    if (v) v->i = x;
    return push(vm, v);
}

static mc_status vm_run(tz_vm *vm, pv **result) {
    mc_status st = MC_OK;
    const uint8_t *b = NULL;
    while (st == MC_OK) {
        if (vm->p >= vm->end) return vfail(vm, MC_ERR_FORMAT, "pickle ends without STOP");
        uint8_t op = *vm->p++;
        switch (op) {
        case 0x80: /* PROTO */
            if ((st = read_bytes(vm, 1, &b)) != MC_OK) return st;
            if (b[0] < 2 || b[0] > 5) return vfail(vm, MC_ERR_UNSUPPORTED, "pickle protocol %u", b[0]);
            break;
        case 0x95: /* FRAME */
            st = read_bytes(vm, 8, &b);
            break;
        case '.': /* STOP */
            if (vm->sp == 0) return vfail(vm, MC_ERR_FORMAT, "STOP on an empty stack");
            *result = vm->stack[vm->sp - 1];
            return MC_OK;
        case '(': /* MARK */
            if (vm->n_marks >= TZ_MAX_MARKS) return vfail(vm, MC_ERR_FORMAT, "MARKs nested too deeply");
            vm->marks[vm->n_marks++] = vm->sp;
            break;
        case '0': /* POP */
            if ((st = need_stack(vm, 1)) == MC_OK) vm->sp--;
            break;
        case '1': { /* POP_MARK */
            size_t base;
            if ((st = pop_mark(vm, &base)) == MC_OK) vm->sp = base;
            break;
        }
        case '2': /* DUP */
            if ((st = need_stack(vm, 1)) == MC_OK) st = push(vm, vm->stack[vm->sp - 1]);
            break;
        case '}': st = push(vm, pv_new(vm, PV_DICT)); break;
        case ']': st = push(vm, pv_new(vm, PV_LIST)); break;
        case ')': st = push(vm, pv_new(vm, PV_TUPLE)); break;
        case 'N': st = push(vm, pv_new(vm, PV_NONE)); break;
        case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
            pv *v = pv_new(vm, PV_BOOL);
            if (v) v->i = op == 0x88;
            st = push(vm, v);
            break;
        }
        case 't': { /* TUPLE */
            size_t base;
            if ((st = pop_mark(vm, &base)) == MC_OK) st = make_tuple(vm, base);
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t k = (size_t)(op - 0x84);
            if ((st = need_stack(vm, k)) == MC_OK) st = make_tuple(vm, vm->sp - k);
            break;
        }
        case 'l': case 'd': { /* LIST, DICT */
            size_t base;
            if ((st = pop_mark(vm, &base)) != MC_OK) return st;
            if (op == 'd' && (vm->sp - base) % 2) return vfail(vm, MC_ERR_FORMAT, "odd DICT items");
            pv *c = pv_new(vm, op == 'l' ? PV_LIST : PV_DICT);
            if (!c) return nomem(vm);
            for (size_t k = base; k < vm->sp && st == MC_OK; k++) st = item_add(vm, c, vm->stack[k]);
            if (st != MC_OK) return st;
            vm->sp = base;
            st = push(vm, c);
            break;
        }
        case 'a': case 'e': { /* APPEND, APPENDS */
            size_t base;
            if (op == 'a') {
                if ((st = need_stack(vm, 2)) != MC_OK) return st;
                base = vm->sp - 1;
            } else if ((st = pop_mark(vm, &base)) != MC_OK) {
                return st;
            }
            pv *list = NULL;
            if ((st = mark_target(vm, base, &list)) != MC_OK) return st;
            if (list->kind != PV_LIST) return vfail(vm, MC_ERR_FORMAT, "APPEND to a non-list");
            for (size_t k = base; k < vm->sp && st == MC_OK; k++) st = item_add(vm, list, vm->stack[k]);
            vm->sp = base;
            break;
        }
        case 's': case 'u': { /* SETITEM, SETITEMS */
            size_t base;
            if (op == 's') {
                if ((st = need_stack(vm, 3)) != MC_OK) return st;
                base = vm->sp - 2;
            } else if ((st = pop_mark(vm, &base)) != MC_OK) {
                return st;
            }
            if ((vm->sp - base) % 2) return vfail(vm, MC_ERR_FORMAT, "SETITEMS with odd items");
            pv *dict = NULL;
            if ((st = mark_target(vm, base, &dict)) != MC_OK) return st;
            if (dict->kind != PV_DICT) return vfail(vm, MC_ERR_FORMAT, "SETITEM on a non-dict");
            for (size_t k = base; k < vm->sp && st == MC_OK; k++) st = item_add(vm, dict, vm->stack[k]);
            vm->sp = base;
            break;
        }
        case 'J':
            if ((st = read_bytes(vm, 4, &b)) == MC_OK) st = push_int(vm, (int32_t)rd32(b));
            break;
        case 'K':
            if ((st = read_bytes(vm, 1, &b)) == MC_OK) st = push_int(vm, b[0]);
            break;
        case 'M':
            if ((st = read_bytes(vm, 2, &b)) == MC_OK) st = push_int(vm, rd16(b));
            break;
        case 0x8a: { /* LONG1 */
            if ((st = read_bytes(vm, 1, &b)) != MC_OK) return st;
            unsigned n = b[0];
            if (n > 8) return vfail(vm, MC_ERR_UNSUPPORTED, "integer of %u bytes", n);
            if ((st = read_bytes(vm, n, &b)) != MC_OK) return st;
            uint64_t v = 0;
            for (unsigned k = n; k-- > 0;) v = (v << 8) | b[k];
            st = push_int(vm, sext(v, n));
            break;
        }
        case 'G': { /* BINFLOAT, big-endian */
            if ((st = read_bytes(vm, 8, &b)) != MC_OK) return st;
            uint64_t bits = 0;
            for (int k = 0; k < 8; k++) bits = (bits << 8) | b[k];
            pv *v = pv_new(vm, PV_FLOAT);
            if (v) memcpy(&v->f, &bits, 8);
            st = push(vm, v);
            break;
        }
        case 0x8c: case 'U': case 'C': /* SHORT_BINUNICODE, SHORT_BINSTRING, SHORT_BINBYTES */
            if ((st = read_bytes(vm, 1, &b)) == MC_OK) st = push_str(vm, b[0]);
            break;
        case 'X': case 'T': case 'B': /* BINUNICODE, BINSTRING, BINBYTES */
            if ((st = read_bytes(vm, 4, &b)) != MC_OK) return st;
            if (op == 'T' && (int32_t)rd32(b) < 0) return vfail(vm, MC_ERR_FORMAT, "negative length");
            st = push_str(vm, rd32(b));
            break;
        case 0x8d: case 0x8e: /* BINUNICODE8, BINBYTES8 */
            if ((st = read_bytes(vm, 8, &b)) == MC_OK) st = push_str(vm, rd64(b));
            break;
        case 'q':
            if ((st = read_bytes(vm, 1, &b)) == MC_OK) st = memo_put(vm, b[0]);
            break;
        case 'r':
            if ((st = read_bytes(vm, 4, &b)) == MC_OK) st = memo_put(vm, rd32(b));
            break;
        case 0x94: /* MEMOIZE: at the memo's length */
            st = memo_put(vm, vm->memo_len);
            break;
        case 'h':
            if ((st = read_bytes(vm, 1, &b)) == MC_OK) st = memo_get(vm, b[0]);
            break;
        case 'j':
            if ((st = read_bytes(vm, 4, &b)) == MC_OK) st = memo_get(vm, rd32(b));
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *m = vm->p, *nl1 = memchr(m, '\n', (size_t)(vm->end - m));
            if (!nl1) return vfail(vm, MC_ERR_FORMAT, "truncated GLOBAL");
            const uint8_t *nm = nl1 + 1, *nl2 = memchr(nm, '\n', (size_t)(vm->end - nm));
            if (!nl2) return vfail(vm, MC_ERR_FORMAT, "truncated GLOBAL");
            vm->p = nl2 + 1;
            st = push_global(vm, (const char *)m, (size_t)(nl1 - m), (const char *)nm,
                             (size_t)(nl2 - nm));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            if ((st = need_stack(vm, 2)) != MC_OK) return st;
            pv *mod = vm->stack[vm->sp - 2], *name = vm->stack[vm->sp - 1];
            if (mod->kind != PV_STR || name->kind != PV_STR)
                return vfail(vm, MC_ERR_FORMAT, "STACK_GLOBAL on non-strings");
            vm->sp -= 2;
            st = push_global(vm, mod->s, mod->len, name->s, name->len);
            break;
        }
        case 'R': { /* REDUCE */
            if ((st = need_stack(vm, 2)) != MC_OK) return st;
            pv *fn = vm->stack[vm->sp - 2], *args = vm->stack[vm->sp - 1], *res = NULL;
            if ((st = call_global(vm, fn, args, 0, &res)) != MC_OK) return st;
            vm->sp -= 2;
            st = push(vm, res);
            break;
        }
        case 'b': { /* BUILD: only a dict's own attributes (OrderedDict._metadata), ignored */
            if ((st = need_stack(vm, 2)) != MC_OK) return st;
            pv *state = vm->stack[vm->sp - 1], *obj = vm->stack[vm->sp - 2];
            if (obj->kind != PV_DICT || (state->kind != PV_NONE && state->kind != PV_DICT))
                return vfail(vm, MC_ERR_FORMAT, "BUILD on something other than a dict");
            vm->sp--;
            break;
        }
        case 'Q': { /* BINPERSID */
            if ((st = need_stack(vm, 1)) != MC_OK) return st;
            pv *s = NULL;
            if ((st = persistent_load(vm, vm->stack[vm->sp - 1], &s)) != MC_OK) return st;
            vm->stack[vm->sp - 1] = s;
            break;
        }
        default:
            vm->p--;
            return vfail(vm, MC_ERR_UNSUPPORTED, "pickle opcode 0x%02x is not used by state dicts", op);
        }
    }
    return st;
}

/* ------------------------------------------------------ state dict -> tensors */

static int dict_has_tensor(const pv *d) {
    for (size_t k = 0; k + 1 < d->n; k += 2)
        if (d->items[k + 1]->kind == PV_TENSOR) return 1;
    return 0;
}

/* The dict that holds the tensors: the object itself, or one it wraps. */
static const pv *find_state_dict(const pv *obj, int depth, size_t *budget) {
    if (!obj || obj->kind != PV_DICT || depth > TZ_MAX_WRAP_DEPTH || *budget == 0) return NULL;
    /* a dict may hold itself many times over: bound the work of the walk */
    size_t cost = 1 + 9 * obj->n;
    if (cost > *budget) { *budget = 0; return NULL; }
    *budget -= cost;
    if (dict_has_tensor(obj)) return obj;
    static const char *const keys[] = {"state_dict", "model", "module", "model_state_dict",
                                       "state_dict_ema", "model_ema", "net"};
    for (size_t w = 0; w < sizeof keys / sizeof keys[0]; w++)
        for (size_t k = 0; k + 1 < obj->n; k += 2) {
            const pv *key = obj->items[k];
            if (key->kind == PV_STR && !strcmp(key->s, keys[w])) {
                const pv *r = find_state_dict(obj->items[k + 1], depth + 1, budget);
                if (r) return r;
            }
        }
    const pv *only = NULL;
    for (size_t k = 0; k + 1 < obj->n; k += 2) {
        const pv *r = find_state_dict(obj->items[k + 1], depth + 1, budget);
        if (r) {
            if (only) return NULL; /* ambiguous */
            only = r;
        }
    }
    return only;
}

static mc_status add_tensor(mc_checkpoint *ckpt, const char *name, const pv *t, mc_error *err) {
    const pv *s = t->storage;
    size_t es = mc_dtype_size(t->dtype);
    size_t numel = 1;
    for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k]; /* checked at rebuild */
    size_t nbytes = numel * es;                                         /* <= storage bytes */
    int contiguous = 1;
    int64_t expect = 1;
    for (int k = t->ndim - 1; k >= 0; k--) {
        if (t->shape[k] != 1 && t->stride[k] != expect) contiguous = 0;
        expect *= t->shape[k];
    }
    if (numel == 0) return mc_checkpoint_add(ckpt, name, t->dtype, t->ndim, t->shape, s->sdata, 0, err);
    const uint8_t *src = s->sdata + (size_t)t->offset * es; /* in bounds: checked at rebuild */
    if (contiguous && (uintptr_t)src % es == 0)
        return mc_checkpoint_add(ckpt, name, t->dtype, t->ndim, t->shape, src, nbytes, err);
    uint8_t *copy = malloc(nbytes);
    if (!copy) return mc_fail(err, MC_ERR_NOMEM, "%s: out of memory", ckpt->path);
    mc_status st = mc_checkpoint_own(ckpt, copy, err);
    if (st != MC_OK) return st;
    if (contiguous) {
        memcpy(copy, src, nbytes);
    } else {
        int64_t idx[MC_MAX_DIMS] = {0};
        size_t off = 0; /* element offset from src; bounds proven at rebuild */
        for (size_t i = 0; i < numel; i++) {
            memcpy(copy + i * es, src + off * es, es);
            for (int k = t->ndim - 1; k >= 0; k--) {
                if (++idx[k] < t->shape[k]) { off += (size_t)t->stride[k]; break; }
                off -= (size_t)(t->stride[k] * (t->shape[k] - 1));
                idx[k] = 0;
            }
        }
    }
    return mc_checkpoint_add(ckpt, name, t->dtype, t->ndim, t->shape, copy, nbytes, err);
}

static mc_status collect(mc_checkpoint *ckpt, const pv *root, mc_error *err) {
    size_t budget = (size_t)1 << 24;
    const pv *sd = find_state_dict(root, 0, &budget);
    if (!sd) return mc_fail(err, MC_ERR_FORMAT, "%s: the pickle holds no dict of tensors", ckpt->path);
    size_t count = 0;
    for (size_t k = 0; k + 1 < sd->n; k += 2) {
        const pv *key = sd->items[k], *val = sd->items[k + 1];
        if (val->kind != PV_TENSOR) continue; /* epoch numbers, names, nested dicts */
        if (key->kind != PV_STR || strlen(key->s) != key->len)
            return mc_fail(err, MC_ERR_FORMAT, "%s: a tensor's name is not a string", ckpt->path);
        if (++count > TZ_MAX_TENSORS)
            return mc_fail(err, MC_ERR_FORMAT, "%s: more than %d tensors", ckpt->path, TZ_MAX_TENSORS);
        const char *name = key->s;
        if (!strncmp(name, "module.", 7)) name += 7;
        mc_status st = add_tensor(ckpt, name, val, err);
        if (st != MC_OK) return st;
    }
    return MC_OK;
}

mc_status mc_torchzip_parse(mc_checkpoint *ckpt, mc_error *err) {
    tz_zip z = {ckpt->map.data, ckpt->map.size, ckpt->path, NULL, 0};
    mc_status st = zip_open(&z, err);
    if (st != MC_OK) { free(z.entries); return st; }
    /* "<top>/data.pkl" with a single top folder of any name */
    const tz_entry *pkl = NULL;
    size_t prefix_len = 0;
    for (size_t i = 0; i < z.n && !pkl; i++) {
        const tz_entry *e = &z.entries[i];
        if (e->name_len < 8 || memcmp(e->name + e->name_len - 8, "data.pkl", 8)) continue;
        size_t pl = e->name_len - 8;
        const char *slash = pl ? memchr(e->name, '/', pl) : NULL;
        if (pl == 0 || (slash && (size_t)(slash - e->name) == pl - 1)) {
            pkl = e;
            prefix_len = pl;
        }
    }
    if (!pkl) {
        free(z.entries);
        return mc_fail(err, MC_ERR_FORMAT, "%s: zip archive has no <name>/data.pkl: not a torch.save file",
                       ckpt->path);
    }
    char prefix[600];
    if (prefix_len >= sizeof prefix) {
        free(z.entries);
        return mc_fail(err, MC_ERR_FORMAT, "%s: archive folder name too long", ckpt->path);
    }
    memcpy(prefix, pkl->name, prefix_len);
    prefix[prefix_len] = 0;
    char bo_name[620];
    snprintf(bo_name, sizeof bo_name, "%sbyteorder", prefix);
    const tz_entry *bo = zip_find(&z, bo_name, strlen(bo_name));
    if (bo) {
        const uint8_t *bd;
        size_t bl;
        st = zip_entry_data(&z, bo, &bd, &bl, err);
        if (st == MC_OK && !(bl >= 6 && !memcmp(bd, "little", 6)))
            st = mc_fail(err, MC_ERR_UNSUPPORTED, "%s: big-endian torch.save archives are not supported",
                         ckpt->path);
        if (st != MC_OK) { free(z.entries); return st; }
    }
    const uint8_t *pd;
    size_t plen;
    st = zip_entry_data(&z, pkl, &pd, &plen, err);
    if (st == MC_OK && plen > TZ_MAX_PICKLE)
        st = mc_fail(err, MC_ERR_FORMAT, "%s: data.pkl is %zu bytes (at most %u)", ckpt->path, plen,
                     TZ_MAX_PICKLE);
    if (st != MC_OK) { free(z.entries); return st; }
    tz_vm vm;
    memset(&vm, 0, sizeof vm);
    vm.zip = &z;
    vm.prefix = prefix;
    vm.prefix_len = prefix_len;
    vm.path = ckpt->path;
    vm.p = vm.start = pd;
    vm.end = pd + plen;
    vm.err = err;
    pv *root = NULL;
    st = vm_run(&vm, &root);
    if (st == MC_OK) st = collect(ckpt, root, err);
    vm_free(&vm);
    free(z.entries);
    return st;
}
