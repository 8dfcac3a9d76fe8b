/* Misuse: each case prints the pointer it is about to misuse as
 * "ptr=0x..." and then misuses it; hakmem must print
 * "hakmem: <function>(): <what> 0x..." on stderr and abort. Getting past
 * the misuse is a failure (exit 3). */
#include "common.h"
#include <pthread.h>
#include <sys/mman.h>


extern void *__libc_malloc(size_t); /* glibc's own malloc: a foreign heap */

static void announce(const void *p) {
    printf("ptr=%#lx\n", (unsigned long)(uintptr_t)p);
    fflush(stdout);
}

static void undetected(const void *p) {
    fprintf(stderr, "misuse of %p was not detected\n", p);
    exit(3);
}

static void do_free(void *p) {
    announce(p);
    free(opaque_ptr(p));
    undetected(p);
}

static void do_realloc(void *p, size_t n) {
    announce(p);
    void *q = realloc(opaque_ptr(p), n);
    (void)q;
    undetected(p);
}

static void do_usable_size(void *p) {
    announce(p);
    size_t n = malloc_usable_size(opaque_ptr(p));
    fprintf(stderr, "usable size %zu\n", n);
    undetected(p);
}

static void free_stack_address(void) {
    char local[64];
    do_free(local + 16);
}

static void free_foreign_mmap(void) {
    void *p = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap");
    do_free((char *)p + 4096);
}

static void free_garbage(void) { do_free((void *)(uintptr_t)0x123450); }

static void free_non_canonical_address(void) { do_free((void *)(uintptr_t)0xdeadbeefdeadbee0ull); }

/* A live block's address with bits above the 47-bit user space set: the
 * registry index is masked, so this reads the byte of the block's own
 * segment, and the block-start test must refuse it. */
static void free_alias_above_user_space(void) {
    char *p = malloc(64);
    CHECK(p != NULL, "malloc");
    do_free((void *)((uintptr_t)p | (1ull << 47)));
}

static void free_kernel_half_alias(void) {
    char *p = malloc(2000);
    CHECK(p != NULL, "malloc");
    do_free((void *)((uintptr_t)p | 0xffff800000000000ull));
}

static void free_glibc_block(void) {
    void *p = __libc_malloc(64);
    CHECK(p != NULL, "__libc_malloc");
    do_free(p);
}

static void free_inside_small_block(void) {
    char *p = malloc(64);
    do_free(p + 16);
}

static void free_misaligned_small_block(void) {
    char *p = malloc(100);
    do_free(p + 1);
}

static void free_inside_large_block(void) {
    char *p = malloc(4 << 20);
    do_free(p + 8192);
}

static void free_segment_metadata(void) {
    char *p = malloc(64);
    do_free((char *)((uintptr_t)p & ~(((uintptr_t)2 << 20) - 1)) + 64);
}

static void double_free_small(void) {
    void *p = malloc(48);
    free(p); /* sits in the thread cache */
    do_free(p);
}

static void double_free_small_delayed(void) {
    void *p = malloc(48), *q = malloc(48);
    free(p);
    free(q);
    do_free(p);
}

static void double_free_after_drain(void) {
    enum { N = 5000 };
    static void *b[N];
    void *p = malloc(48);
    for (int i = 0; i < N; i++) b[i] = malloc(48);
    free(p);
    /* overflow the thread cache: p goes back to its slab's free list */
    for (int i = 0; i < N; i++) free(b[i]);
    do_free(p);
}

static void double_free_large(void) {
    void *p = malloc(4 << 20);
    free(p);
    do_free(p);
}

static void double_free_large_delayed(void) {
    void *p = malloc(3 << 20), *q = malloc(3 << 20);
    free(p);
    free(q);
    do_free(p);
}

static void *free_arg(void *p) {
    free(p);
    return NULL;
}

static void double_free_remote(void) {
    void *p = malloc(200);
    pthread_t t;
    pthread_create(&t, NULL, free_arg, p); /* the first free is remote */
    pthread_join(t, NULL);
    do_free(p);
}

static void *alloc_free_exit(void *arg) {
    void **pq = arg;
    pq[0] = malloc(200);
    pq[1] = malloc(200); /* stays live: the slab stays in use, abandoned */
    free(pq[0]);
    return NULL; /* the thread's exit flushes p out of its cache */
}

static void double_free_after_thread_exit(void) {
    pthread_t t;
    void *pq[2];
    pthread_create(&t, NULL, alloc_free_exit, pq);
    pthread_join(t, NULL);
    do_free(pq[0]);
}

static void *free_garbage_first(void *arg) {
    (void)arg;
    do_free((void *)(uintptr_t)0x7654320); /* the thread's first call */
    return NULL;
}

static void free_garbage_from_new_thread(void) {
    pthread_t t;
    pthread_create(&t, NULL, free_garbage_first, NULL);
    pthread_join(t, NULL);
}

static pthread_key_t late_key;

static void late_double_free(void *p) {
    /* runs after hakmem released this thread's heap */
    free(p);
    do_free(p);
}

static void *set_late_key(void *arg) {
    (void)arg;
    pthread_setspecific(late_key, malloc(80));
    return NULL;
}

static void double_free_in_exit_destructor(void) {
    pthread_key_create(&late_key, late_double_free);
    pthread_t t;
    pthread_create(&t, NULL, set_late_key, NULL);
    pthread_join(t, NULL);
}

static void realloc_freed_block(void) {
    void *p = malloc(64);
    free(p);
    do_realloc(p, 100);
}

static void realloc_to_zero_of_freed_block(void) {
    void *p = malloc(64);
    free(p);
    do_realloc(p, 0);
}

static void realloc_stack_address(void) {
    char local[64];
    do_realloc(local, 100);
}

static void usable_size_of_freed_block(void) {
    void *p = malloc(64);
    free(p);
    do_usable_size(p);
}

static void usable_size_inside_block(void) {
    char *p = malloc(64);
    do_usable_size(p + 32);
}

static const test_case cases[] = {
    {"free_stack_address", free_stack_address},
    {"free_foreign_mmap", free_foreign_mmap},
    {"free_garbage", free_garbage},
    {"free_non_canonical_address", free_non_canonical_address},
    {"free_alias_above_user_space", free_alias_above_user_space},
    {"free_kernel_half_alias", free_kernel_half_alias},
    {"free_glibc_block", free_glibc_block},
    {"free_inside_small_block", free_inside_small_block},
    {"free_misaligned_small_block", free_misaligned_small_block},
    {"free_inside_large_block", free_inside_large_block},
    {"free_segment_metadata", free_segment_metadata},
    {"double_free_small", double_free_small},
    {"double_free_small_delayed", double_free_small_delayed},
    {"double_free_after_drain", double_free_after_drain},
    {"double_free_large", double_free_large},
    {"double_free_large_delayed", double_free_large_delayed},
    {"double_free_remote", double_free_remote},
    {"double_free_after_thread_exit", double_free_after_thread_exit},
    {"free_garbage_from_new_thread", free_garbage_from_new_thread},
    {"double_free_in_exit_destructor", double_free_in_exit_destructor},
    {"realloc_freed_block", realloc_freed_block},
    {"realloc_to_zero_of_freed_block", realloc_to_zero_of_freed_block},
    {"realloc_stack_address", realloc_stack_address},
    {"usable_size_of_freed_block", usable_size_of_freed_block},
    {"usable_size_inside_block", usable_size_inside_block},
};
RUN_CASES(cases)
