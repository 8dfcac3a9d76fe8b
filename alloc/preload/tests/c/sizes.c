/* Sizes 0 .. 64 MiB with content checks across realloc, calloc zeroing
 * and overflow, impossible sizes, malloc(0) and realloc(p, 0). */
#include "common.h"

/* 0..256 one by one, then around every power of two and its midpoint up
 * to 1 MiB, then one size per power of two and midpoint up to 64 MiB.
 * Returns the count. */
static size_t size_list(size_t *out, size_t max) {
    size_t n = 0;
    for (size_t s = 0; s <= 256 && n < max; s++) out[n++] = s;
    for (size_t p = 512; p <= 64 * MIB && n + 5 <= max; p <<= 1) {
        if (p <= MIB) {
            out[n++] = p - 1;
            out[n++] = p;
            out[n++] = p + 1;
            out[n++] = p + p / 2 - 8;
        }
        out[n++] = p + p / 2 + 8;
        if (p == 64 * MIB) out[n - 1] = p;
    }
    return n;
}

static void malloc_sizes_hold_their_contents_across_realloc(void) {
    static size_t sizes[512];
    size_t n = size_list(sizes, 512);
    for (size_t i = 0; i < n; i++) {
        size_t s = sizes[i];
        unsigned seed = (unsigned)i;
        unsigned char *p = malloc(s);
        CHECK(p != NULL, "malloc(%zu)", s);
        CHECK(((uintptr_t)p & 15) == 0, "malloc(%zu) = %p not 16-aligned", s, (void *)p);
        CHECK(malloc_usable_size(p) >= s, "usable %zu < %zu", malloc_usable_size(p), s);
        fill(p, s, seed);
        /* grow, shrink a little, shrink a lot, grow across tiers */
        size_t steps[4] = {s + s / 2 + 17, s + 1, s / 3 + 1, (s < MIB ? 2 * s + 300000 : 100)};
        size_t have = s;
        for (int k = 0; k < 4; k++) {
            size_t t = steps[k];
            unsigned char *q = realloc(p, t);
            CHECK(q != NULL, "realloc(%p, %zu) from %zu", (void *)p, t, have);
            CHECK(((uintptr_t)q & 15) == 0, "realloc -> %p not 16-aligned", (void *)q);
            size_t keep = have < t ? have : t;
            CHECK_FILLED(q, keep, seed);
            CHECK(malloc_usable_size(q) >= t, "usable %zu < %zu", malloc_usable_size(q), t);
            seed += 101;
            fill(q, t, seed);
            p = q;
            have = t;
        }
        CHECK_FILLED(p, have, seed);
        free(p);
    }
}

static void many_live_blocks_do_not_overlap(void) {
    enum { N = 20000 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    uint64_t rng = 7;
    for (int i = 0; i < N; i++) {
        size_t s = rng_next(&rng) % (i % 100 == 0 ? 300000 : 2000);
        sizes[i] = s;
        blocks[i] = malloc(s);
        CHECK(blocks[i] != NULL, "malloc(%zu)", s);
        fill(blocks[i], s, (unsigned)i);
    }
    for (int i = 0; i < N; i += 2) {
        CHECK_FILLED(blocks[i], sizes[i], (unsigned)i);
        free(blocks[i]);
    }
    for (int i = 1; i < N; i += 2) CHECK_FILLED(blocks[i], sizes[i], (unsigned)i);
    for (int i = 1; i < N; i += 2) free(blocks[i]);
}

static void malloc_zero_gives_unique_freeable_blocks(void) {
    enum { N = 1000 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(0);
        CHECK(p[i] != NULL, "malloc(0) #%d", i);
        for (int j = 0; j < i; j++) CHECK(p[j] != p[i], "malloc(0) returned %p twice", p[i]);
    }
    for (int i = 0; i < N; i++) free(p[i]);
    void *r = realloc(NULL, 0);
    CHECK(r != NULL, "realloc(NULL, 0)");
    void *c = calloc(0, 8);
    CHECK(c != NULL && c != r, "calloc(0, 8)");
    free(r);
    free(c);
    free(NULL); /* a no-op */
}

static void impossible_sizes_fail_with_enomem(void) {
    size_t huge[] = {SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX / 2 + 1, (size_t)PTRDIFF_MAX,
                     (size_t)1 << 62, (size_t)1 << 47};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = malloc(opaque(huge[i]));
        CHECK(p == NULL && errno == ENOMEM, "malloc(%#zx) = %p errno %d", huge[i], p, errno);
    }
    /* a failed realloc leaves the block live and intact */
    unsigned char *p = malloc(1000);
    fill(p, 1000, 3);
    errno = 0;
    void *q = realloc(p, opaque(SIZE_MAX));
    CHECK(q == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX) = %p errno %d", q, errno);
    CHECK_FILLED(p, 1000, 3);
    errno = 0;
    q = reallocarray(p, opaque(SIZE_MAX / 2), 3);
    CHECK(q == NULL && errno == ENOMEM, "reallocarray overflow = %p errno %d", q, errno);
    CHECK_FILLED(p, 1000, 3);
    q = reallocarray(p, 10, 200);
    CHECK(q != NULL, "reallocarray(p, 10, 200)");
    CHECK_FILLED(q, 1000, 3);
    free(q);
}

static void calloc_zeroes_reused_memory_and_checks_overflow(void) {
    size_t sizes[] = {1, 16, 24, 100, 1000, 4096, 40000, 200000, 300000, 2 * MIB, 10 * MIB};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t s = sizes[i];
        /* dirty a few blocks of the size, free them, then calloc: the
         * calloc is likely served by one of the dirty blocks */
        void *dirty[8];
        for (int k = 0; k < 8; k++) {
            dirty[k] = malloc(s);
            CHECK(dirty[k] != NULL, "malloc(%zu)", s);
            memset(dirty[k], 0xa5, s);
        }
        for (int k = 0; k < 8; k++) free(dirty[k]);
        for (int k = 0; k < 8; k++) {
            unsigned char *c = calloc(1, s);
            CHECK(c != NULL, "calloc(1, %zu)", s);
            for (size_t j = 0; j < s; j++) CHECK(c[j] == 0, "calloc(1, %zu)[%zu] = %#x", s, j, c[j]);
            dirty[k] = c;
        }
        for (int k = 0; k < 8; k++) free(dirty[k]);
    }
    size_t pairs[][2] = {{SIZE_MAX, 2}, {2, SIZE_MAX}, {(size_t)1 << 32, (size_t)1 << 32},
                         {SIZE_MAX / 16 + 1, 16}, {(size_t)1 << 40, 1 << 10}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        errno = 0;
        void *p = calloc(opaque(pairs[i][0]), opaque(pairs[i][1]));
        CHECK(p == NULL && errno == ENOMEM, "calloc(%#zx, %#zx) = %p errno %d", pairs[i][0],
              pairs[i][1], p, errno);
    }
}

static void realloc_to_zero_frees_like_glibc(void) {
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(opaque(100 + (size_t)i * 97));
        CHECK(p != NULL, "malloc");
        errno = 0;
        void *q = realloc(p, 0);
        CHECK(q == NULL && errno == 0, "realloc(p, 0) = %p errno %d", q, errno);
    }
    void *p = malloc(5 * MIB);
    CHECK(realloc(p, 0) == NULL, "realloc(large, 0)");
    p = malloc(64);
    CHECK(reallocarray(p, 0, 8) == NULL, "reallocarray(p, 0, 8)");
}

static const test_case cases[] = {
    {"malloc_sizes_hold_their_contents_across_realloc", malloc_sizes_hold_their_contents_across_realloc},
    {"many_live_blocks_do_not_overlap", many_live_blocks_do_not_overlap},
    {"malloc_zero_gives_unique_freeable_blocks", malloc_zero_gives_unique_freeable_blocks},
    {"impossible_sizes_fail_with_enomem", impossible_sizes_fail_with_enomem},
    {"calloc_zeroes_reused_memory_and_checks_overflow", calloc_zeroes_reused_memory_and_checks_overflow},
    {"realloc_to_zero_frees_like_glibc", realloc_to_zero_frees_like_glibc},
};
RUN_CASES(cases)
