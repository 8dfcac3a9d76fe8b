/* Memory goes back to the OS after a burst: by itself (bounded caches),
 * and all of it with malloc_trim. Prints the RSS at each step. */
#include "common.h"

static void burst(unsigned char **p, size_t *sz, int n, uint64_t seed) {
    uint64_t rng = seed;
    for (int i = 0; i < n; i++) {
        uint64_t r = rng_next(&rng) % 100;
        sz[i] = r < 60 ? 16 + rng_next(&rng) % 500 : r < 98 ? 1000 + rng_next(&rng) % 16000 : 300000;
        p[i] = malloc(sz[i]);
        CHECK(p[i] != NULL, "malloc(%zu)", sz[i]);
        memset(p[i], 0x5a, sz[i]); /* touch every page */
    }
}

static void memory_returns_to_the_os_after_a_burst(void) {
    enum { N = 30000 }; /* about 280 MB */
    static unsigned char *p[N];
    static size_t sz[N];
    long base = rss_kib();
    burst(p, sz, N, 1);
    long peak = rss_kib();
    CHECK(peak - base > 200 * 1024, "the burst should be resident: %ld -> %ld KiB", base, peak);
    for (int i = 0; i < N; i++) free(p[i]);
    long after_free = rss_kib();
    malloc_trim(0);
    long after_trim = rss_kib();
    printf("rss KiB: base %ld peak %ld after free %ld after malloc_trim %ld\n", base, peak,
           after_free, after_trim);
    /* without a trim only the bounded caches stay: empty segments (32 MiB),
     * retired slabs awaiting decommit (8 MiB), large blocks (64 MiB) */
    CHECK(after_free - base < 120 * 1024, "after free: %ld KiB over the base", after_free - base);
    CHECK(after_trim - base < 16 * 1024, "after malloc_trim: %ld KiB over the base", after_trim - base);
    /* and the memory is usable again */
    burst(p, sz, N, 2);
    for (int i = 0; i < N; i++) free(p[i]);
}

static const test_case cases[] = {
    {"memory_returns_to_the_os_after_a_burst", memory_returns_to_the_os_after_a_burst},
};
RUN_CASES(cases)
