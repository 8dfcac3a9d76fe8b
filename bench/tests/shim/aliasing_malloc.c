/* A broken allocator for bench/tests/harness_catches.rs: glibc's malloc,
 * except that for requests of ALIAS_MIN..ALIAS_MAX bytes every tenth one
 * gets the block the previous such request got, which is still live. Two
 * live blocks then overlap. The workloads' marks (first and last byte, a
 * function of the size) must catch it before either block is freed.
 *
 * With ALIASING_OFF set in the environment it aliases nothing: the control
 * run, which must pass.
 *
 * It calls glibc's __libc_malloc and __libc_free, not dlsym(RTLD_NEXT):
 * dlsym may allocate, and would then call back into this malloc. */
#include <stddef.h>
#include <stdlib.h>

#define ALIAS_MIN 3000
#define ALIAS_MAX 3100

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

static void *previous;
static unsigned long count;
static int mode; /* 0: not read yet, 1: aliasing, 2: off */

void *malloc(size_t n) {
    if (n < ALIAS_MIN || n > ALIAS_MAX)
        return __libc_malloc(n);
    if (mode == 0)
        mode = getenv("ALIASING_OFF") ? 2 : 1;
    count++;
    if (mode == 1 && previous && count % 10 == 0)
        return previous; /* a live block, handed out again */
    previous = __libc_malloc(n);
    return previous;
}

void free(void *p) {
    if (p == previous)
        previous = NULL; /* never hand out a freed block "again" */
    __libc_free(p);
}
