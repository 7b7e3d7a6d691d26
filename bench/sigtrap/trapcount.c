/*
 * trapcount: writes one global `long` N times (default 1,000,000) and, instead of dying on a
 * SIGTRAP, records each one (si_code, si_addr, the interrupted RIP, the loop index and the CPU)
 * and carries on. Run it under a write watchpoint on `counter` (its address is printed by
 * `nm trapcount | grep counter`, fixed because the binary is built -no-pie), e.g.
 *     perf stat -e mem:0x404040/8:w -- ./trapcount 1000000
 * Output (stdout, one line per trap, then a summary):
 *     trap <k> index=<i> cpu=<c> si_code=<n> si_addr=<p> rip=<p> si_errno=<n>
 *     summary writes=<N> traps=<k> ...
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
#include <sys/resource.h>

volatile long counter;
static volatile long loop_index;

#define MAX_TRAPS 4096
struct trap_record {
    long index;
    int cpu;
    int code;
    int err;
    void *addr;
    unsigned long rip;
};
static struct trap_record traps[MAX_TRAPS];
static volatile int trap_count;

static void on_sigtrap(int sig, siginfo_t *info, void *uctx)
{
    (void)sig;
    int k = trap_count;
    if (k < MAX_TRAPS) {
        ucontext_t *uc = uctx;
        traps[k].index = loop_index;
        traps[k].cpu = sched_getcpu();
        traps[k].code = info->si_code;
        traps[k].err = info->si_errno;
        traps[k].addr = info->si_addr;
        traps[k].rip = (unsigned long)uc->uc_mcontext.gregs[REG_RIP];
    }
    trap_count = k + 1;
}

int main(int argc, char **argv)
{
    long writes = argc > 1 ? atol(argv[1]) : 1000000;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigtrap;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTRAP, &sa, NULL) != 0) {
        perror("sigaction");
        return 2;
    }
    int first_cpu = sched_getcpu();
    int cpu_changes = 0, last_cpu = first_cpu;
    for (long i = 0; i < writes; i++) {
        loop_index = i;
        counter = i;
        if ((i & 1023) == 0) {
            int c = sched_getcpu();
            if (c != last_cpu) {
                cpu_changes++;
                last_cpu = c;
            }
        }
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int n = trap_count;
    for (int k = 0; k < n && k < MAX_TRAPS; k++)
        printf("trap %d index=%ld cpu=%d si_code=%d si_addr=%p rip=%#lx si_errno=%d\n", k,
               traps[k].index, traps[k].cpu, traps[k].code, traps[k].addr, traps[k].rip,
               traps[k].err);
    printf("summary writes=%ld traps=%d counter_addr=%p first_cpu=%d last_cpu=%d "
           "cpu_changes_seen_every_1024=%d nvcsw=%ld nivcsw=%ld\n",
           writes, n, (void *)&counter, first_cpu, last_cpu, cpu_changes, ru.ru_nvcsw,
           ru.ru_nivcsw);
    fflush(stdout);
    return 0;
}
