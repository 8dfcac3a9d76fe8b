/* Preloaded before libhakmem.so by bootstrap's test: its constructor
 * allocates, possibly before hakmem's own constructor has run. */
#include <stdlib.h>
#include <string.h>

char *early_block;

__attribute__((constructor)) static void early_init(void) {
    void *tmp = calloc(3, 100);
    free(tmp);
    early_block = malloc(64);
    strcpy(early_block, "allocated in a constructor");
}
