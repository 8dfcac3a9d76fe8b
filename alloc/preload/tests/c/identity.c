/* The preloaded library really is the allocator in use. */
#include "common.h"
#include <dlfcn.h>


static void malloc_comes_from_libhakmem(void) {
    const char *names[] = {"malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
                           "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
                           "malloc_trim", "cfree"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *f = dlsym(RTLD_DEFAULT, names[i]);
        Dl_info info;
        CHECK(f != NULL && dladdr(f, &info) && info.dli_fname, "%s not found", names[i]);
        CHECK(strstr(info.dli_fname, "libhakmem") != NULL, "%s comes from %s", names[i],
              info.dli_fname);
    }
    /* hakmem's classes: 16-byte blocks for 1..16 bytes (glibc gives 24) */
    void *p = malloc(1);
    CHECK(malloc_usable_size(p) == 16, "usable size of malloc(1): %zu", malloc_usable_size(p));
    free(p);
}

/* abi.rs places malloc and free at the start of 64-byte lines (a section
 * of their own each, aligned by an empty piece of assembly). The library is
 * mapped at a page boundary, so the address here has the alignment the
 * linker gave. Only on x86_64 Linux, where abi.rs does it. */
static void malloc_and_free_start_a_cache_line(void) {
#if defined(__x86_64__) && defined(__linux__)
    const char *names[] = {"malloc", "free"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *f = dlsym(RTLD_DEFAULT, names[i]);
        CHECK(f != NULL, "%s not found", names[i]);
        CHECK(((uintptr_t)f & 63) == 0, "%s at %p, not 64-byte aligned", names[i], f);
    }
#endif
}

static const test_case cases[] = {
    {"malloc_comes_from_libhakmem", malloc_comes_from_libhakmem},
    {"malloc_and_free_start_a_cache_line", malloc_and_free_start_a_cache_line},
};
RUN_CASES(cases)
