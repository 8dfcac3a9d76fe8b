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

static const test_case cases[] = {
    {"malloc_comes_from_libhakmem", malloc_comes_from_libhakmem},
};
RUN_CASES(cases)
