/* Locals to watch frame by frame (built -O0: at -O1 gcc keeps these in registers; the -O2
 * build, locals_o2, is for the refusals: locals in registers, optimized out, inlined).
 *
 *   locals recurse   recurse(3): b in every frame, written before and after the inner call
 *   locals calls     step(i) three times: one frame per call; acc written 4 times, once
 *                    unchanged
 *   locals shape     shape(3): a struct and an array local, members written one by one
 *   locals wait      prints ready and waits for stdin to close
 *   locals threads   two threads in work() at once (a barrier holds both frames live)
 *   locals longjmp   leaper() left twice by longjmp, then overlay() reuses its stack
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

__attribute__((noinline)) int recurse(int n)
{
    int b = n * 10;
    b += 1;
    if (n > 0)
        b += recurse(n - 1);
    b = b * 2;
    b = b * 1;
    return b;
}

int zero;

/* Inlined into its one caller when built -O2 (locals_o2): no frame of its own. */
static int helper(int q)
{
    int h = q * 3;
    return h + zero;
}

int zero = 0;

__attribute__((noinline)) int step(int i)
{
    int acc = i;
    acc += zero; /* a write that changes nothing */
    acc += 100;
    acc *= 2;
    return acc;
}

struct cfg {
    int len;
    int cap;
};

__attribute__((noinline)) int shape(int k)
{
    struct cfg cfg = {0, 0};
    int arr[4] = {0, 0, 0, 0};
    cfg.len = k;
    cfg.cap = k * 2;
    arr[3] = k + 7;
    arr[1] = 5;
    cfg.len += 1;
    return cfg.len + cfg.cap + arr[3] + arr[1];
}

static pthread_barrier_t barrier;

__attribute__((noinline)) int work(int id)
{
    int v = id;
    pthread_barrier_wait(&barrier);
    v += 1000;
    pthread_barrier_wait(&barrier);
    v += 1;
    return v;
}

static void *worker(void *arg)
{
    return (void *)(long)work((int)(long)arg);
}

static jmp_buf env;

__attribute__((noinline)) void leaper(int i)
{
    volatile int x = i + 1;
    x = x + 10;
    longjmp(env, 1);
}

__attribute__((noinline)) int overlay(void)
{
    volatile char pad[96];
    int sum = 0;
    for (int i = 0; i < 96; i++)
        pad[i] = (char)i;
    for (int i = 0; i < 96; i++)
        sum += pad[i];
    return sum;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "recurse";
    if (strcmp(mode, "recurse") == 0) {
        printf("recurse %d\n", recurse(3));
    } else if (strcmp(mode, "wait") == 0) {
        puts("ready");
        fflush(stdout);
        getchar(); /* until stdin closes: a process to plan against */
    } else if (strcmp(mode, "shape") == 0) {
        printf("shape %d\n", shape(3));
    } else if (strcmp(mode, "calls") == 0) {
        int total = 0;
        for (int i = 0; i < 3; i++)
            total += step(i);
        printf("calls %d\n", total + helper(total));
    } else if (strcmp(mode, "threads") == 0) {
        pthread_t t[2];
        pthread_barrier_init(&barrier, NULL, 2);
        for (long i = 0; i < 2; i++)
            pthread_create(&t[i], NULL, worker, (void *)(i + 1));
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        printf("threads done\n");
    } else if (strcmp(mode, "longjmp") == 0) {
        for (volatile int i = 0; i < 2; i++) {
            if (setjmp(env) == 0) {
                leaper(i);
                puts("not reached"); /* leaper's return address: never run */
            }
        }
        printf("longjmp %d\n", overlay());
    }
    return 0;
}
