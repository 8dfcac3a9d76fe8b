/* fork() in a multi-threaded program: the child can allocate and free. */
#include "common.h"
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>


static atomic_int stop;

/* Allocates and frees all the time, through every path that takes a lock:
 * refills, drains, fresh slabs, large blocks, remote frees. */
static void *churn(void *arg) {
    uint64_t rng = (uintptr_t)arg;
    enum { SLOTS = 512 };
    void *slot[SLOTS] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int i = (int)(rng_next(&rng) % SLOTS);
        free(slot[i]);
        uint64_t r = rng_next(&rng) % 100;
        size_t s = r < 80 ? rng_next(&rng) % 1024 : r < 98 ? rng_next(&rng) % 100000 : 300000 + rng_next(&rng) % 3000000;
        slot[i] = malloc(s);
        if (slot[i]) memset(slot[i], 1, s < 256 ? s : 256);
    }
    for (int i = 0; i < SLOTS; i++) free(slot[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    void *p = malloc(1000);
    memset(p, 2, 1000);
    return arg ? p : p;
}

/* What a child does: the same kinds of work, single- and multi-threaded. */
static int child_work(unsigned seed) {
    alarm(20); /* a deadlock kills the child, and the parent sees it */
    uint64_t rng = seed;
    enum { N = 2000 };
    static unsigned char *p[N];
    static size_t sz[N];
    for (int i = 0; i < N; i++) {
        sz[i] = rng_next(&rng) % (i % 100 == 0 ? 1000000 : 3000);
        p[i] = malloc(sz[i]);
        if (!p[i]) return 10;
        fill(p[i], sz[i], seed + (unsigned)i);
    }
    for (int i = 0; i < N; i++) {
        if (first_bad(p[i], sz[i], seed + (unsigned)i) != sz[i]) return 11;
        free(p[i]);
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL) != 0) return 12;
    void *r;
    pthread_join(t, &r);
    free(r); /* freed by the thread that did not allocate it */
    void *c = calloc(1000, 1000);
    c = realloc(c, 5000000);
    free(c);
    malloc_trim(0);
    return 0;
}

static void children_of_a_threaded_program_can_allocate(void) {
    enum { THREADS = 2, FORKS = 12 };
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int f = 0; f < FORKS; f++) {
        usleep(2000); /* let the threads get into their locks */
        pid_t pid = fork();
        CHECK(pid >= 0, "fork");
        if (pid == 0) {
            int rc = child_work((unsigned)f);
            if (f % 2) exit(rc); /* runs exit handlers and hakmem's destructor */
            _exit(rc);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child %d: %s %d", f, WIFEXITED(status) ? "exit status" : "killed by signal",
              WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
}

static void fork_from_a_child_thread(void) {
    /* a thread other than main forks; its child allocates */
    pthread_t t;
    pthread_create(&t, NULL, churn, (void *)(uintptr_t)9);
    for (int f = 0; f < 6; f++) {
        pid_t pid = fork();
        if (pid == 0) _exit(child_work(100u + (unsigned)f));
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d status %#x", f, status);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
}

static const test_case cases[] = {
    {"children_of_a_threaded_program_can_allocate", children_of_a_threaded_program_can_allocate},
    {"fork_from_a_child_thread", fork_from_a_child_thread},
};
RUN_CASES(cases)
