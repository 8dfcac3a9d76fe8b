/* The first calls come from the dynamic loader, from thread-local storage
 * set-up and from dlsym/dlerror: nothing may recurse or deadlock. */
#include "common.h"

#include <dlfcn.h>
#include <pthread.h>

typedef unsigned long (*touch_fn)(unsigned long);

static touch_fn touch;

static void *touch_tls(void *arg) {
    unsigned long seed = (uintptr_t)arg, expect = 0;
    for (size_t i = 0; i < 20000; i += 64) expect += (unsigned char)(seed + i);
    for (unsigned long k = 1; k <= 3; k++)
        CHECK(touch(seed) == expect + k + 7, "TLS of the dlopened library");
    return NULL;
}

/* argv[2]: path of tlslib.so */
static const char *lib_path;

static void dlopened_library_tls_and_dlerror(void) {
    for (int round = 0; round < 5; round++) {
        void *h = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
        CHECK(h != NULL, "dlopen %s: %s", lib_path, dlerror());
        touch = (touch_fn)(uintptr_t)dlsym(h, "tls_touch");
        CHECK(touch != NULL, "dlsym tls_touch");
        /* a failing lookup makes dlerror allocate its message */
        CHECK(dlsym(h, "no_such_symbol") == NULL, "dlsym of a missing symbol");
        const char *err = dlerror();
        CHECK(err != NULL && strstr(err, "no_such_symbol") != NULL, "dlerror: %s", err);
        pthread_t t[8];
        for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, touch_tls, (void *)(uintptr_t)(i + round));
        for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
        touch_tls((void *)(uintptr_t)99);
        CHECK(dlclose(h) == 0, "dlclose");
    }
}

static void allocation_in_an_earlier_constructor(void) {
    char **early = dlsym(RTLD_DEFAULT, "early_block");
    CHECK(early != NULL && *early != NULL, "early.so not preloaded");
    CHECK(strcmp(*early, "allocated in a constructor") == 0, "early block: %s", *early);
    free(*early); /* a hakmem block, whichever constructor ran first */
}

static const test_case cases[] = {
    {"dlopened_library_tls_and_dlerror", dlopened_library_tls_and_dlerror},
    {"allocation_in_an_earlier_constructor", allocation_in_an_earlier_constructor},
};

int main(int argc, char **argv) {
    lib_path = argc > 2 ? argv[2] : "";
    return run_case(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
