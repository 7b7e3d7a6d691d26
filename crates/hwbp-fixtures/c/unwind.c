/* Callchains through code without frame pointers (built -O1 -g -fomit-frame-pointer, as
 * distributions build): main -> work -> fill -> snprintf writes into the global `buf`.
 * Usage: unwind N   (N calls; prints the sum of snprintf's lengths at the end). */
#include <stdio.h>
#include <stdlib.h>

char buf[64];

__attribute__((noinline)) int fill(int i) {
    int n = snprintf(buf, sizeof buf, "value %d", i);
    return n + buf[1];
}

__attribute__((noinline)) int work(int i) {
    int n = fill(i);
    return n * 2 + buf[0];
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10;
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += work(i);
    printf("sum %ld\n", sum);
    return 0;
}
