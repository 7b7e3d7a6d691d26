/* sequence: one global written with known values, for exact old -> new checks.
 *
 * ready pid=<pid> addr=<&value> store=<&store_value> initial=0
 * commands:
 *   go N       -> store 1, 2, ..., N (one store each) through store_value();
 *                 answers `done writes=N value=N`
 *   dup N      -> store 1, 1, 2, 2, ..., N, N (each value twice);
 *                 answers `done writes=2N value=N`
 *   neg N      -> store 1, -1, 2, -2, ..., N, -N; answers `done writes=2N value=-N`
 *   threads M W-> create M new threads; thread k (1..M) stores k*1000000+i for
 *                 i = 1..W; all joined; answers `done writes=M*W new_tids=...`
 *   EOF        -> exit 0
 * Each store is one 8-byte volatile store with no load of value. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "fixture_io.h"

#define MAX_THREADS 32

long value = 0;

__attribute__((noinline, noclone)) void store_value(long v)
{
	*(volatile long *)&value = v;
	__asm__ volatile("" ::: "memory");
}

struct worker {
	pthread_t thread;
	pid_t tid;
	long base;
	long writes;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	for (long i = 1; i <= w->writes; i++)
		store_value(w->base + i);
	return NULL;
}

int main(void)
{
	char line[256];
	printf("ready pid=%d addr=%p store=%p initial=0\n", (int)getpid(),
	       (void *)&value, (void *)store_value);
	fflush(stdout);
	while (fixture_read_command(line, sizeof line)) {
		long n, m, w;
		if (sscanf(line, "go %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++)
				store_value(i);
			printf("done writes=%ld value=%ld\n", n, value);
		} else if (sscanf(line, "dup %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++) {
				store_value(i);
				store_value(i);
			}
			printf("done writes=%ld value=%ld\n", 2 * n, value);
		} else if (sscanf(line, "neg %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++) {
				store_value(i);
				store_value(-i);
			}
			printf("done writes=%ld value=%ld\n", 2 * n, value);
		} else if (sscanf(line, "threads %ld %ld", &m, &w) == 2 && m >= 0 &&
			   m <= MAX_THREADS && w >= 0) {
			static struct worker workers[MAX_THREADS];
			for (long k = 0; k < m; k++) {
				workers[k].base = (k + 1) * 1000000;
				workers[k].writes = w;
				if (pthread_create(&workers[k].thread, NULL, worker_main,
						   &workers[k]))
					fixture_fail("pthread_create failed");
			}
			for (long k = 0; k < m; k++)
				pthread_join(workers[k].thread, NULL);
			printf("done writes=%ld new_tids=", m * w);
			for (long k = 0; k < m; k++)
				printf(k ? ",%d" : "%d", (int)workers[k].tid);
			printf("\n");
		} else {
			fixture_fail("unknown command '%s'", line);
		}
		fflush(stdout);
	}
	return 0;
}
