/* spin: writer threads that store to one global in a tight loop until told to stop, for
 * detaching from a target while it writes.
 *
 * usage: spin [WRITERS]   (1..16 writer threads, default 1; the main thread only reads commands)
 * ready pid=<pid> addr=<&spin_var> writer=<&spin_store> tids=<tid,...>  (the writers)
 * commands:
 *   count -> answers `done writes=<stores so far, all writers>`
 *   catch -> installs a SIGTRAP handler (SA_SIGINFO) that counts traps by si_code;
 *            answers `done catch=1`
 *   traps -> answers `done traps=N tkill=T hwbkpt=H brkpt=B` (counts since `catch`)
 *   icebp -> the main thread executes `icebp` (int1, 0xf1): a #DB with no reason in DR6, which
 *            the kernel answers with SIGTRAP TRAP_BRKPT; answers `done icebp=1` if it survives
 *   EOF   -> the writers stop and are joined; exit 0
 * Without `catch`, SIGTRAP keeps its default action: a SIGTRAP left for the program by a
 * tracer kills it. Each store to spin_var is one 8-byte volatile store with no load of it. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "fixture_io.h"

#define MAX_WRITERS 16

long spin_var = 0;

struct writer {
	pthread_t thread;
	pid_t tid;
	long writes; /* read by the main thread: relaxed atomics */
	char pad[64];
};

static struct writer writers[MAX_WRITERS];
static int stop_flag;
static int published;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static volatile sig_atomic_t traps, tkill_traps, hwbkpt_traps, brkpt_traps;

__attribute__((noinline, noclone)) void spin_store(long v)
{
	*(volatile long *)&spin_var = v;
	__asm__ volatile("" ::: "memory");
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	pthread_mutex_lock(&lock);
	w->tid = (pid_t)syscall(SYS_gettid);
	published++;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	for (long i = 1; !__atomic_load_n(&stop_flag, __ATOMIC_RELAXED); i++) {
		spin_store(i);
		__atomic_store_n(&w->writes, i, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void on_trap(int sig, siginfo_t *info, void *context)
{
	(void)sig;
	(void)context;
	traps++;
	if (info->si_code == SI_TKILL)
		tkill_traps++;
	else if (info->si_code == TRAP_HWBKPT)
		hwbkpt_traps++;
	else if (info->si_code == TRAP_BRKPT)
		brkpt_traps++;
}

int main(int argc, char **argv)
{
	int count = argc > 1 ? atoi(argv[1]) : 1;
	char line[256];

	if (count < 1 || count > MAX_WRITERS)
		fixture_fail("WRITERS must be 1..%d", MAX_WRITERS);
	for (int i = 0; i < count; i++)
		if (pthread_create(&writers[i].thread, NULL, writer_main, &writers[i]))
			fixture_fail("pthread_create failed");
	pthread_mutex_lock(&lock);
	while (published < count)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);

	printf("ready pid=%d addr=%p writer=%p tids=", (int)getpid(), (void *)&spin_var,
	       (void *)spin_store);
	for (int i = 0; i < count; i++)
		printf(i ? ",%d" : "%d", (int)writers[i].tid);
	printf("\n");
	fflush(stdout);

	while (fixture_read_command(line, sizeof line)) {
		if (strcmp(line, "count") == 0) {
			long total = 0;
			for (int i = 0; i < count; i++)
				total += __atomic_load_n(&writers[i].writes, __ATOMIC_RELAXED);
			printf("done writes=%ld\n", total);
		} else if (strcmp(line, "catch") == 0) {
			struct sigaction action;
			memset(&action, 0, sizeof action);
			action.sa_sigaction = on_trap;
			action.sa_flags = SA_SIGINFO | SA_RESTART;
			sigemptyset(&action.sa_mask);
			if (sigaction(SIGTRAP, &action, NULL))
				fixture_fail("sigaction failed");
			printf("done catch=1\n");
		} else if (strcmp(line, "traps") == 0) {
			printf("done traps=%d tkill=%d hwbkpt=%d brkpt=%d\n", (int)traps,
			       (int)tkill_traps, (int)hwbkpt_traps, (int)brkpt_traps);
		} else if (strcmp(line, "icebp") == 0) {
			__asm__ volatile(".byte 0xf1" ::: "memory");
			printf("done icebp=1\n");
		} else {
			fixture_fail("unknown command '%s' (expected count, catch, traps or icebp)",
				     line);
		}
		fflush(stdout);
	}
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < count; i++)
		pthread_join(writers[i].thread, NULL);
	return 0;
}
