/* Threads: cross-thread frees, thread exit with live blocks, many
 * short-lived threads, allocation from thread-exit destructors. */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>


static size_t random_size(uint64_t *rng) {
    uint64_t r = rng_next(rng) % 100;
    if (r < 70) return rng_next(rng) % 512;
    if (r < 95) return 512 + rng_next(rng) % 8192;
    if (r < 99) return 8192 + rng_next(rng) % 60000;
    return 200000 + rng_next(rng) % 600000;
}

/* ---- producers and consumers: every block freed by another thread ---- */

typedef struct {
    unsigned char *p;
    size_t size;
    unsigned seed;
} item;

#define RING 1024
static item ring[RING];
static size_t ring_head, ring_tail; /* head: next to take, tail: next to put */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cond = PTHREAD_COND_INITIALIZER;

#define PRODUCERS 3
#define CONSUMERS 2
#define PER_PRODUCER 20000

static void *producer(void *arg) {
    uint64_t rng = (uintptr_t)arg * 1000003u;
    for (int i = 0; i < PER_PRODUCER; i++) {
        item it;
        it.size = random_size(&rng);
        it.seed = (unsigned)rng_next(&rng);
        it.p = (i % 7 == 0) ? calloc(1, it.size) : malloc(it.size);
        CHECK(it.p != NULL, "malloc(%zu)", it.size);
        fill(it.p, it.size, it.seed);
        pthread_mutex_lock(&ring_lock);
        while (ring_tail - ring_head == RING) pthread_cond_wait(&ring_cond, &ring_lock);
        ring[ring_tail++ % RING] = it;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    long n = (long)(uintptr_t)arg;
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&ring_lock);
        while (ring_tail == ring_head) pthread_cond_wait(&ring_cond, &ring_lock);
        item it = ring[ring_head++ % RING];
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
        CHECK_FILLED(it.p, it.size, it.seed);
        if (i % 5 == 0) {
            /* a remote realloc: moves the block (or not), frees the old one */
            unsigned char *q = realloc(it.p, it.size + 100);
            CHECK(q != NULL, "realloc");
            CHECK_FILLED(q, it.size, it.seed);
            it.p = q;
        }
        free(it.p);
    }
    return NULL;
}

static void blocks_freed_by_other_threads(void) {
    pthread_t p[PRODUCERS], c[CONSUMERS];
    long total = (long)PRODUCERS * PER_PRODUCER;
    for (int i = 0; i < CONSUMERS; i++)
        pthread_create(&c[i], NULL, consumer, (void *)(uintptr_t)(total / CONSUMERS));
    for (int i = 0; i < PRODUCERS; i++) pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);
    CHECK(ring_head == ring_tail && ring_head == (size_t)total, "lost items");
}

/* ---- threads that exit while their blocks live on ---- */

#define EXIT_BLOCKS 2000
typedef struct {
    unsigned char *p[EXIT_BLOCKS];
    size_t size[EXIT_BLOCKS];
    unsigned seed;
    item *to_free; /* blocks of the previous thread, freed by this one */
    int to_free_count;
} exit_job;

static void *allocate_and_exit(void *arg) {
    exit_job *j = arg;
    uint64_t rng = j->seed;
    for (int i = 0; i < j->to_free_count; i++) {
        CHECK_FILLED(j->to_free[i].p, j->to_free[i].size, j->to_free[i].seed);
        free(j->to_free[i].p);
    }
    for (int i = 0; i < EXIT_BLOCKS; i++) {
        j->size[i] = rng_next(&rng) % 1000;
        j->p[i] = malloc(j->size[i]);
        CHECK(j->p[i] != NULL, "malloc");
        fill(j->p[i], j->size[i], j->seed + (unsigned)i);
    }
    return NULL; /* exits with 2000 live blocks (about 1 MB) */
}

static void blocks_outlive_their_thread(void) {
    static exit_job jobs[2];
    static item handoff[EXIT_BLOCKS / 2];
    int handoff_count = 0;
    long rss_after_warmup = 0;
    for (int round = 0; round < 200; round++) {
        exit_job *j = &jobs[round % 2];
        j->seed = (unsigned)round * 7919u;
        j->to_free = handoff;
        j->to_free_count = handoff_count;
        pthread_t t;
        pthread_create(&t, NULL, allocate_and_exit, j);
        pthread_join(t, NULL);
        /* this thread frees half of the dead thread's blocks; the next
         * thread frees the other half */
        handoff_count = 0;
        for (int i = 0; i < EXIT_BLOCKS; i++) {
            CHECK_FILLED(j->p[i], j->size[i], j->seed + (unsigned)i);
            if (i % 2 == 0) {
                free(j->p[i]);
            } else {
                item it = {j->p[i], j->size[i], j->seed + (unsigned)i};
                handoff[handoff_count++] = it;
            }
        }
        if (round == 20) rss_after_warmup = rss_kib();
    }
    for (int i = 0; i < handoff_count; i++) free(handoff[i].p);
    long rss = rss_kib();
    /* 200 rounds leave 200 MB behind if freed blocks of exited threads
     * were lost; reused memory keeps the RSS flat */
    CHECK(rss < rss_after_warmup + 64 * 1024, "RSS grew from %ld KiB to %ld KiB", rss_after_warmup, rss);
}

/* ---- a thousand short-lived threads ---- */

static atomic_long short_done;

static void *short_lived(void *arg) {
    uint64_t rng = (uintptr_t)arg;
    void *keep[64];
    for (int i = 0; i < 64; i++) {
        size_t s = random_size(&rng);
        keep[i] = malloc(s);
        CHECK(keep[i] != NULL, "malloc");
        memset(keep[i], i, s);
    }
    for (int i = 0; i < 64; i += 2) free(keep[i]);
    atomic_fetch_add(&short_done, 1);
    /* half of its blocks are returned to the caller, still live */
    void **out = malloc(32 * sizeof(void *));
    for (int i = 0; i < 32; i++) out[i] = keep[2 * i + 1];
    return out;
}

static void a_thousand_short_lived_threads(void) {
    enum { THREADS = 1000, WAVE = 16 };
    long rss_start = rss_kib();
    for (int w = 0; w < THREADS / WAVE + 1; w++) {
        pthread_t t[WAVE];
        int n = 0;
        for (; n < WAVE && w * WAVE + n < THREADS; n++)
            CHECK(pthread_create(&t[n], NULL, short_lived, (void *)(uintptr_t)(w * WAVE + n + 1)) == 0,
                  "pthread_create");
        for (int i = 0; i < n; i++) {
            void **out;
            pthread_join(t[i], (void **)&out);
            for (int k = 0; k < 32; k++) free(out[k]);
            free(out);
        }
    }
    CHECK(atomic_load(&short_done) == THREADS, "%ld threads done", atomic_load(&short_done));
    long rss = rss_kib();
    CHECK(rss < rss_start + 96 * 1024, "RSS grew from %ld KiB to %ld KiB", rss_start, rss);
}

/* ---- allocation from thread-exit destructors (after hakmem's own) ---- */

static pthread_key_t late_key;

static void late_destructor(void *v) {
    /* runs after hakmem released this thread's heap: the thread can still
     * allocate, reallocate and free */
    unsigned char *p = v;
    CHECK_FILLED(p, 300, 5);
    void *q = malloc(1000);
    CHECK(q != NULL, "malloc in destructor");
    fill(q, 1000, 6);
    p = realloc(p, 5000);
    CHECK_FILLED(p, 300, 5);
    free(p);
    free(q);
    void *r = malloc(40);
    free(r);
}

static void *with_late_destructor(void *arg) {
    (void)arg;
    void *p = malloc(300);
    fill(p, 300, 5);
    pthread_setspecific(late_key, p);
    return NULL;
}

static void threads_allocate_in_exit_destructors(void) {
    pthread_key_create(&late_key, late_destructor);
    for (int i = 0; i < 200; i++) {
        pthread_t t;
        pthread_create(&t, NULL, with_late_destructor, NULL);
        pthread_join(t, NULL);
    }
}

/* ---- a thread's first call: free(NULL), or a malloc that must fail ---- */

static void *first_call_is_free_null(void *arg) {
    (void)arg;
    free(NULL); /* before the thread has a heap: a no-op */
    unsigned char *p = malloc(100);
    CHECK(p != NULL, "malloc after free(NULL)");
    fill(p, 100, 9);
    free(NULL); /* with a heap: still a no-op */
    CHECK_FILLED(p, 100, 9);
    free(p);
    return NULL;
}

static void *first_call_is_a_failing_malloc(void *arg) {
    (void)arg;
    errno = 0;
    void *p = malloc(opaque(SIZE_MAX)); /* before the thread has a heap */
    CHECK(p == NULL && errno == ENOMEM, "first malloc(SIZE_MAX) = %p errno %d", p, errno);
    unsigned char *q = malloc(64);
    CHECK(q != NULL, "malloc(64)");
    fill(q, 64, 3);
    errno = 0;
    p = malloc(opaque(SIZE_MAX)); /* with a heap */
    CHECK(p == NULL && errno == ENOMEM, "malloc(SIZE_MAX) = %p errno %d", p, errno);
    CHECK_FILLED(q, 64, 3);
    free(q);
    return NULL;
}

static void a_threads_first_call_may_be_free_null_or_fail(void) {
    for (int i = 0; i < 50; i++) {
        pthread_t t[2];
        CHECK(pthread_create(&t[0], NULL, first_call_is_free_null, NULL) == 0, "pthread_create");
        CHECK(pthread_create(&t[1], NULL, first_call_is_a_failing_malloc, NULL) == 0,
              "pthread_create");
        pthread_join(t[0], NULL);
        pthread_join(t[1], NULL);
    }
}

static const test_case cases[] = {
    {"blocks_freed_by_other_threads", blocks_freed_by_other_threads},
    {"blocks_outlive_their_thread", blocks_outlive_their_thread},
    {"a_thousand_short_lived_threads", a_thousand_short_lived_threads},
    {"threads_allocate_in_exit_destructors", threads_allocate_in_exit_destructors},
    {"a_threads_first_call_may_be_free_null_or_fail", a_threads_first_call_may_be_free_null_or_fail},
};
RUN_CASES(cases)
