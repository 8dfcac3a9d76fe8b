/* Helpers shared by the C battery. Each program takes a case name as its
 * first argument, prints "ok <case>" and exits 0 when the case passes; a
 * failed check prints where and why and exits 1. Misuse cases are expected
 * to be killed by SIGABRT with hakmem's message. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, \
                    #cond);                                                  \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define MIB ((size_t)1 << 20)

/* The byte at offset i of a block filled with `seed`: differs between
 * neighbours and between offsets 256 or 64 KiB apart, so a lost, shifted
 * or misplaced copy shows. Simple enough for gcc to vectorise the loops
 * below (64 MiB blocks are filled and checked in milliseconds). */
static inline unsigned char pattern_byte(size_t i, unsigned seed) {
    return (unsigned char)(i + (i >> 8) * 7 + (i >> 16) * 13 + seed);
}

static inline void fill(void *p, size_t n, unsigned seed) {
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++) b[i] = pattern_byte(i, seed);
}

/* Index of the first byte of `p` not matching the pattern, or n. */
static inline size_t first_bad(const void *p, size_t n, unsigned seed) {
    const unsigned char *b = p;
    for (size_t c = 0; c < n; c += 4096) {
        size_t e = n - c < 4096 ? n : c + 4096;
        unsigned char diff = 0;
        for (size_t i = c; i < e; i++) diff |= (unsigned char)(b[i] ^ pattern_byte(i, seed));
        if (diff)
            for (size_t i = c; i < e; i++)
                if (b[i] != pattern_byte(i, seed)) return i;
    }
    return n;
}

#define CHECK_FILLED(p, n, seed)                                              \
    do {                                                                      \
        size_t bad_ = first_bad((p), (n), (seed));                            \
        CHECK(bad_ == (n), "block %p of %zu bytes corrupted at offset %zu",   \
              (void *)(p), (size_t)(n), bad_);                                \
    } while (0)

/* splitmix64 */
static inline uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Resident set size of this process, in KiB. */
static inline long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* No core files from the cases that are meant to abort. */
static inline void no_core_dumps(void) {
    struct rlimit r = {0, 0};
    setrlimit(RLIMIT_CORE, &r);
}

/* Hides a value from the optimiser (sizes the compiler must not fold,
 * pointers it must not reason about). */
static inline size_t opaque(size_t v) {
    __asm__ volatile("" : "+r"(v));
    return v;
}

static inline void *opaque_ptr(void *p) {
    __asm__ volatile("" : "+r"(p));
    return p;
}

typedef struct {
    const char *name;
    void (*run)(void);
} test_case;

static inline int run_case(int argc, char **argv, const test_case *cases, size_t n) {
    no_core_dumps();
    if (argc < 2) {
        for (size_t i = 0; i < n; i++) printf("%s\n", cases[i].name);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cases[i].name, argv[1]) == 0) {
            cases[i].run();
            printf("ok %s\n", argv[1]);
            return 0;
        }
    }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}

#define RUN_CASES(cases) \
    int main(int argc, char **argv) { return run_case(argc, argv, cases, sizeof cases / sizeof cases[0]); }
