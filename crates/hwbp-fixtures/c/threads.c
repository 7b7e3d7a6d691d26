/* threads: one global written by threads that exist before the watch and by
 * threads created after it.
 *
 * usage: threads [PRESTART]   (PRESTART threads started before ready, default 2)
 * ready pid=<pid> addr=<&shared_var> writer=<&thread_writer> prestarted=K
 *       tids=<tid,tid,...>   (the prestarted threads, in creation order)
 * commands (one go per run):
 *   go K M W -> the first K prestarted threads each write W times, then M new
 *               threads, created only after this line was read, each write W
 *               times; all through thread_writer(); K <= PRESTART.
 *               answers `done total=<(K+M)*W> new_tids=<tid,...>`
 *               (prestarted threads beyond K exit without writing)
 *   EOF      -> exit 0
 * Each write is one 8-byte volatile store with no load of shared_var. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "fixture_io.h"

#define MAX_THREADS 64

long shared_var = 1;

__attribute__((noinline, noclone)) long thread_writer(long writes)
{
	for (long i = 0; i < writes; i++) {
		*(volatile long *)&shared_var = i;
		__asm__ volatile("" ::: "memory");
	}
	return writes;
}

struct worker {
	pthread_t thread;
	pid_t tid;
	long writes; /* W, or 0 for a prestarted thread told not to write */
	long written;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int started;  /* prestarted threads that have published their tid */
static int released; /* set once the go line was parsed */

static void *prestarted_main(void *arg)
{
	struct worker *w = arg;
	pthread_mutex_lock(&lock);
	w->tid = (pid_t)syscall(SYS_gettid);
	started++;
	pthread_cond_broadcast(&changed);
	while (!released)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);
	w->written = thread_writer(w->writes);
	return NULL;
}

static void *new_thread_main(void *arg)
{
	struct worker *w = arg;
	w->tid = (pid_t)syscall(SYS_gettid);
	w->written = thread_writer(w->writes);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct worker pre[MAX_THREADS], post[MAX_THREADS];
	int prestart = argc > 1 ? atoi(argv[1]) : 2;
	char line[256];

	if (prestart < 0 || prestart > MAX_THREADS)
		fixture_fail("PRESTART must be 0..%d", MAX_THREADS);
	for (int i = 0; i < prestart; i++)
		if (pthread_create(&pre[i].thread, NULL, prestarted_main, &pre[i]))
			fixture_fail("pthread_create failed");
	pthread_mutex_lock(&lock);
	while (started < prestart)
		pthread_cond_wait(&changed, &lock);
	pthread_mutex_unlock(&lock);

	printf("ready pid=%d addr=%p writer=%p prestarted=%d tids=", (int)getpid(),
	       (void *)&shared_var, (void *)thread_writer, prestart);
	for (int i = 0; i < prestart; i++)
		printf(i ? ",%d" : "%d", (int)pre[i].tid);
	printf("\n");
	fflush(stdout);

	if (!fixture_read_command(line, sizeof line))
		fixture_fail("stdin closed before the go line");
	int k, m;
	long w;
	if (sscanf(line, "go %d %d %ld", &k, &m, &w) != 3 || k < 0 || k > prestart ||
	    m < 0 || m > MAX_THREADS || w < 0)
		fixture_fail("expected 'go K M W' with K <= %d, M <= %d, got '%s'",
			     prestart, MAX_THREADS, line);

	pthread_mutex_lock(&lock);
	for (int i = 0; i < prestart; i++)
		pre[i].writes = i < k ? w : 0;
	released = 1;
	pthread_cond_broadcast(&changed);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < m; i++) {
		post[i].writes = w;
		if (pthread_create(&post[i].thread, NULL, new_thread_main, &post[i]))
			fixture_fail("pthread_create failed");
	}

	long total = 0;
	for (int i = 0; i < prestart; i++) {
		pthread_join(pre[i].thread, NULL);
		total += pre[i].written;
	}
	for (int i = 0; i < m; i++) {
		pthread_join(post[i].thread, NULL);
		total += post[i].written;
	}
	printf("done total=%ld new_tids=", total);
	for (int i = 0; i < m; i++)
		printf(i ? ",%d" : "%d", (int)post[i].tid);
	printf("\n");
	fflush(stdout);

	while (fixture_read_command(line, sizeof line))
		;
	return 0;
}
