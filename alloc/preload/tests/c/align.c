/* Every alignment function, its alignments and its errors. */
#include "common.h"

static const size_t SIZES[] = {0, 1, 15, 16, 17, 100, 4096, 5000, 70000, 300000};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])
#define MAX_ALIGN MIB /* the largest alignment served from segments and the large tier's usual layout */

static void check_block(void *p, size_t align, size_t size, const char *fn) {
    CHECK(p != NULL, "%s(align %zu, size %zu)", fn, align, size);
    size_t want = align < 16 ? 16 : align;
    CHECK(((uintptr_t)p & (want - 1)) == 0, "%s(%zu, %zu) = %p misaligned", fn, align, size, p);
    CHECK(malloc_usable_size(p) >= size, "%s: usable %zu < %zu", fn, malloc_usable_size(p), size);
    fill(p, size, (unsigned)(align + size));
}

static void valid_alignments_are_honoured(void) {
    for (size_t align = 1; align <= MAX_ALIGN; align <<= 1) {
        for (size_t i = 0; i < NSIZES; i++) {
            size_t s = SIZES[i];
            void *p[3];
            p[0] = aligned_alloc(align, s);
            check_block(p[0], align, s, "aligned_alloc");
            p[1] = memalign(align, s);
            check_block(p[1], align, s, "memalign");
            p[2] = NULL;
            if (align >= sizeof(void *)) {
                void *q = (void *)1;
                int r = posix_memalign(&q, align, s);
                CHECK(r == 0, "posix_memalign(%zu, %zu) = %d", align, s, r);
                check_block(q, align, s, "posix_memalign");
                p[2] = q;
            }
            for (int k = 0; k < 3; k++) {
                if (!p[k]) continue;
                CHECK_FILLED(p[k], s, (unsigned)(align + s));
                free(p[k]);
            }
        }
    }
    /* many live aligned blocks at once do not overlap */
    enum { N = 3000 };
    static unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        size_t align = (size_t)16 << (i % 9), size = 1 + (size_t)(i * 37) % 5000;
        b[i] = aligned_alloc(align, size);
        check_block(b[i], align, size, "aligned_alloc");
    }
    for (int i = 0; i < N; i++) {
        size_t align = (size_t)16 << (i % 9), size = 1 + (size_t)(i * 37) % 5000;
        CHECK_FILLED(b[i], size, (unsigned)(align + size));
        free(b[i]);
    }
}

static void page_functions_give_pages(void) {
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < NSIZES; i++) {
        size_t s = SIZES[i];
        void *v = valloc(s);
        check_block(v, (size_t)page, s, "valloc");
        void *pv = pvalloc(s);
        size_t rounded = (s + (size_t)page - 1) & ~((size_t)page - 1);
        check_block(pv, (size_t)page, rounded, "pvalloc");
        free(v);
        free(pv);
    }
    errno = 0;
    CHECK(pvalloc(opaque(SIZE_MAX - 10)) == NULL && errno == ENOMEM, "pvalloc overflow");
}

static void posix_memalign_rejects_bad_alignments(void) {
    size_t bad[] = {0, 1, 2, 4, 12, 24, 48, 100, 4097, SIZE_MAX, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *q = (void *)0x1234;
        int r = posix_memalign(&q, opaque(bad[i]), 64);
        CHECK(r == EINVAL, "posix_memalign(align %#zx) = %d", bad[i], r);
        CHECK(q == (void *)0x1234, "posix_memalign wrote *memptr on failure");
    }
    void *q = (void *)0x1234;
    int r = posix_memalign(&q, 64, opaque(SIZE_MAX));
    CHECK(r == ENOMEM && q == (void *)0x1234, "posix_memalign(64, SIZE_MAX) = %d", r);
    /* alignments beyond half a segment: a mapping of their own */
    for (size_t al = 2 * MAX_ALIGN; al <= 64 * MAX_ALIGN; al *= 4) {
        r = posix_memalign(&q, opaque(al), 1000);
        CHECK(r == 0 && ((uintptr_t)q & (al - 1)) == 0, "posix_memalign(%zu MiB) = %d", al >> 20, r);
        memset(q, 0x5a, 1000);
        CHECK(malloc_usable_size(q) >= 1000, "usable size of an over-aligned block");
        void *q2 = realloc(q, 500);
        CHECK(q2 != NULL && ((unsigned char *)q2)[499] == 0x5a, "realloc of an over-aligned block");
        free(q2);
    }
}

static void aligned_alloc_rejects_bad_alignments(void) {
    size_t bad[] = {0, 3, 12, 24, 100, 4097, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = aligned_alloc(opaque(bad[i]), 64);
        CHECK(p == NULL && errno == EINVAL, "aligned_alloc(%#zx) = %p errno %d", bad[i], p, errno);
    }
    errno = 0;
    void *p = aligned_alloc(64, opaque(SIZE_MAX));
    CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(64, SIZE_MAX) errno %d", errno);
    errno = 0;
    /* a valid alignment the 47-bit address space cannot satisfy */
    p = aligned_alloc(opaque((size_t)1 << 46), 64);
    CHECK(p == NULL && errno == ENOMEM, "aligned_alloc(2^46) errno %d", errno);
}

static void memalign_rounds_up_like_glibc(void) {
    size_t odd[] = {3, 24, 48, 100, 1000, 3000, 5000};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        size_t pow = 1;
        while (pow < odd[i]) pow <<= 1;
        void *p = memalign(odd[i], 100);
        check_block(p, pow, 100, "memalign");
        free(p);
    }
    void *p = memalign(0, 100);
    check_block(p, 16, 100, "memalign");
    free(p);
    errno = 0;
    p = memalign(opaque(SIZE_MAX / 2 + 2), 64);
    CHECK(p == NULL && errno == EINVAL, "memalign(SIZE_MAX/2+2) errno %d", errno);
    errno = 0;
    p = memalign(64, opaque(SIZE_MAX));
    CHECK(p == NULL && errno == ENOMEM, "memalign(64, SIZE_MAX) errno %d", errno);
}

static void realloc_keeps_aligned_contents(void) {
    for (size_t align = 32; align <= MAX_ALIGN; align <<= 2) {
        unsigned char *p = aligned_alloc(align, 1000);
        check_block(p, align, 1000, "aligned_alloc");
        unsigned char *q = realloc(p, 100000);
        CHECK(q != NULL, "realloc");
        CHECK_FILLED(q, 1000, (unsigned)(align + 1000));
        q = realloc(q, 10);
        CHECK_FILLED(q, 10, (unsigned)(align + 1000));
        free(q);
    }
}

static const test_case cases[] = {
    {"valid_alignments_are_honoured", valid_alignments_are_honoured},
    {"page_functions_give_pages", page_functions_give_pages},
    {"posix_memalign_rejects_bad_alignments", posix_memalign_rejects_bad_alignments},
    {"aligned_alloc_rejects_bad_alignments", aligned_alloc_rejects_bad_alignments},
    {"memalign_rounds_up_like_glibc", memalign_rounds_up_like_glibc},
    {"realloc_keeps_aligned_contents", realloc_keeps_aligned_contents},
};
RUN_CASES(cases)
