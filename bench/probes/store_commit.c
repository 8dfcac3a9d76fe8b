/* How many stores per cycle this CPU commits, by how they fall on cache
 * lines. Not a test and not part of any build: a probe behind the
 * "Why pair costs what it costs" notes in bench/README.md.
 *
 *   gcc -O2 bench/probes/store_commit.c -o /tmp/store_commit
 *   taskset -c 1 /tmp/store_commit
 *
 * Each loop body is a fixed list of 8-byte stores into one 4 KiB buffer
 * (all in L1). On the Golden Cove class Xeon this was measured on, stores
 * to different lines commit at one per cycle, and two stores in a row to
 * the same line commit together (two per cycle); stores that alternate
 * between lines do not pair. */
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static char buf[4096] __attribute__((aligned(64)));

#define N 200000000L
#define LOOP(name, body)                                                    \
    {                                                                       \
        double t0 = now();                                                  \
        for (long i = 0; i < N; i++)                                        \
            __asm__ volatile(body ::"r"(buf), "r"(i) : "memory");           \
        printf("%-34s %.3f ns per iteration\n", name, (now() - t0) / N * 1e9); \
    }

int main(void) {
    LOOP("no store", "");
    LOOP("1 store", "mov %1,(%0)");
    LOOP("2 stores, 1 line", "mov %1,(%0)\n mov %1,8(%0)");
    LOOP("2 stores, 2 lines", "mov %1,(%0)\n mov %1,64(%0)");
    LOOP("4 stores, 1 line", "mov %1,(%0)\n mov %1,8(%0)\n mov %1,16(%0)\n mov %1,24(%0)");
    LOOP("4 stores, 4 lines", "mov %1,(%0)\n mov %1,64(%0)\n mov %1,128(%0)\n mov %1,192(%0)");
    LOOP("4 stores, 2 lines, AABB", "mov %1,(%0)\n mov %1,8(%0)\n mov %1,64(%0)\n mov %1,72(%0)");
    LOOP("4 stores, 2 lines, ABAB", "mov %1,(%0)\n mov %1,64(%0)\n mov %1,8(%0)\n mov %1,72(%0)");
    LOOP("8 stores, 8 lines",
         "mov %1,(%0)\n mov %1,64(%0)\n mov %1,128(%0)\n mov %1,192(%0)\n"
         "mov %1,256(%0)\n mov %1,320(%0)\n mov %1,384(%0)\n mov %1,448(%0)");
    LOOP("8 stores, 4 lines, in pairs",
         "mov %1,(%0)\n mov %1,8(%0)\n mov %1,64(%0)\n mov %1,72(%0)\n"
         "mov %1,128(%0)\n mov %1,136(%0)\n mov %1,192(%0)\n mov %1,200(%0)");
    return 0;
}
