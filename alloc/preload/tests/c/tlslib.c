/* A library with thread-local storage, loaded with dlopen by bootstrap.c:
 * its TLS is dynamic, so each thread's block is allocated by glibc's
 * __tls_get_addr through malloc on the thread's first access. Its
 * constructor allocates too. */
#include <stdlib.h>
#include <string.h>

static __thread char tls_block[20000];
static __thread unsigned long tls_counter;
static char *from_constructor;

__attribute__((constructor)) static void lib_init(void) {
    from_constructor = malloc(1000);
    memset(from_constructor, 7, 1000);
}

__attribute__((destructor)) static void lib_fini(void) { free(from_constructor); }

unsigned long tls_touch(unsigned long seed) {
    for (size_t i = 0; i < sizeof tls_block; i += 64) tls_block[i] = (char)(seed + i);
    unsigned long sum = 0;
    for (size_t i = 0; i < sizeof tls_block; i += 64) sum += (unsigned char)tls_block[i];
    tls_counter++;
    return sum + tls_counter + (unsigned char)from_constructor[999];
}
