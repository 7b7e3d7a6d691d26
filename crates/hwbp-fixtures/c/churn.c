/* churn: short-lived threads, a fork and an exec, all writing one watched variable.
 *
 * ready pid=<pid> addr=<&churn_var> writer=<&churn_write> image=<1 first, 2 after exec>
 * commands:
 *   go T K  -> starts T threads, at most 64 alive at a time, each storing to churn_var
 *              exactly K times through churn_write() and then exiting; waits for all;
 *              answers `done threads=T writes=T*K`
 *   fork K  -> fork()s a child that stores K times and _exit(0)s; waits for it;
 *              answers `done child=<pid> writes=K status=0`
 *   exec    -> re-executes this program (same pid, new image), which prints a new ready
 *              line with image=2 and serves commands again
 *   EOF     -> exit 0
 * Every store is one 8-byte volatile store with no load of churn_var. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fixture_io.h"

#define MAX_ALIVE 64

long churn_var = 1;

__attribute__((noinline, noclone)) void churn_write(long value)
{
	*(volatile long *)&churn_var = value;
	__asm__ volatile("" ::: "memory");
}

static void *thread_main(void *arg)
{
	long k = (long)arg;
	for (long i = 0; i < k; i++)
		churn_write(i);
	return NULL;
}

static void run_threads(long threads, long k)
{
	pthread_t batch[MAX_ALIVE];
	for (long started = 0; started < threads;) {
		long n = threads - started < MAX_ALIVE ? threads - started : MAX_ALIVE;
		for (long i = 0; i < n; i++)
			if (pthread_create(&batch[i], NULL, thread_main, (void *)k) != 0)
				fixture_fail("pthread_create failed after %ld threads", started + i);
		for (long i = 0; i < n; i++)
			pthread_join(batch[i], NULL);
		started += n;
	}
}

int main(int argc, char **argv)
{
	char line[256];
	int image = argc > 1 ? atoi(argv[1]) : 1;

	printf("ready pid=%d addr=%p writer=%p image=%d\n", (int)getpid(), (void *)&churn_var,
	       (void *)churn_write, image);
	fflush(stdout);

	while (fixture_read_command(line, sizeof line)) {
		long t, k;
		if (sscanf(line, "go %ld %ld", &t, &k) == 2 && t >= 0 && k >= 0) {
			run_threads(t, k);
			printf("done threads=%ld writes=%ld\n", t, t * k);
		} else if (sscanf(line, "fork %ld", &k) == 1 && k >= 0) {
			int status = -1;
			pid_t child = fork();
			if (child < 0)
				fixture_fail("fork failed");
			if (child == 0) {
				thread_main((void *)k);
				_exit(0);
			}
			waitpid(child, &status, 0);
			printf("done child=%d writes=%ld status=%d\n", (int)child, k, status);
		} else if (strcmp(line, "exec") == 0) {
			char *args[] = { argv[0], "2", NULL };
			fflush(stdout);
			execv("/proc/self/exe", args);
			fixture_fail("execv failed");
		} else {
			fixture_fail("unknown command '%s' (expected 'go T K', 'fork K' or 'exec')", line);
		}
		fflush(stdout);
	}
	return 0;
}
