/* chain: one fixed sequence of writes from main, for watch expressions checked against gdb's
 * `watch` from the first instruction (built -no-pie: every pointer's initial value is in the
 * file, so gdb and hwbp see the same memory before main).
 *
 * The value chain of `p->val`: p goes NULL -> &a -> &b -> &c; after each move one write goes
 * through the object p no longer points at (not a change of p->val). `hp->o->val` goes
 * through two pointers. Then one write of every C type kind. Without arguments it runs
 * through and exits 0. With `step` it prints `ready pid=<pid> addr=<&p>` and waits for one
 * line on stdin before each write, answering `done step=<N>` after it (N from 1), so a test
 * can watch each write settle; it exits 0 after the last one or at end of input. With
 * `step threads` the odd-numbered writes are made by a second thread (blocked in
 * pthread_cond_wait between them) and the even ones by main (blocked reading stdin between
 * them), so a watch moved while one thread is stopped must also move in the other. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

static bool stepping;
static bool threaded;
static int steps;

static pthread_mutex_t job_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t job_cond = PTHREAD_COND_INITIALIZER;
static void *job_dst;
static uint64_t job_val;
static size_t job_size;
static int job_state; /* 0 idle, 1 to do, 2 done */

static void store(void *dst, uint64_t val, size_t size)
{
	switch (size) {
	case 1: *(volatile uint8_t *)dst = (uint8_t)val; break;
	case 2: *(volatile uint16_t *)dst = (uint16_t)val; break;
	case 4: *(volatile uint32_t *)dst = (uint32_t)val; break;
	default: *(volatile uint64_t *)dst = val; break;
	}
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&job_lock);
	for (;;) {
		while (job_state != 1)
			pthread_cond_wait(&job_cond, &job_lock);
		store(job_dst, job_val, job_size);
		job_state = 2;
		pthread_cond_broadcast(&job_cond);
	}
	return NULL;
}

/* Makes the worker thread store `size` bytes of `val` at `dst`, and waits for it. */
static void on_worker(void *dst, uint64_t val, size_t size)
{
	pthread_mutex_lock(&job_lock);
	job_dst = dst;
	job_val = val;
	job_size = size;
	job_state = 1;
	pthread_cond_broadcast(&job_cond);
	while (job_state != 2)
		pthread_cond_wait(&job_cond, &job_lock);
	job_state = 0;
	pthread_mutex_unlock(&job_lock);
}

/* In step mode: waits for a command line before the write that follows. */
static void before_write(void)
{
	char line[64];
	if (stepping && !fixture_read_command(line, sizeof line))
		exit(0);
}

/* In step mode: answers the command after the write. */
static void after_write(void)
{
	if (stepping) {
		printf("done step=%d\n", ++steps);
		fflush(stdout);
	}
}

#define SET(x, v)                                                   \
	do {                                                        \
		before_write();                                     \
		__typeof__(x) value_ = (v);                         \
		if (threaded && steps % 2 == 0) {                   \
			uint64_t raw_ = 0;                          \
			memcpy(&raw_, &value_, sizeof value_);      \
			on_worker(&(x), raw_, sizeof value_);       \
		} else {                                            \
			*(volatile __typeof__(x) *)&(x) = value_;   \
		}                                                   \
		after_write();                                      \
	} while (0)

enum color { RED, GREEN, BLUE };
enum flags { F_A = 1, F_B = 2, F_C = 4 };

struct obj {
	int val;
	char tag;
};

struct holder {
	struct obj *o;
};

struct pair {
	int lo;
	int mid;
	int hi;
};

struct obj a = { 1, 'a' }, b = { 2, 'b' }, c = { 3, 'c' };
struct obj *p;
struct holder h = { &a };
struct holder *hp = &h;
int neg = 5;
char ch = 'x';
bool ok;
enum color color = RED;
enum flags fl = F_A;
float fv = 1.5f;
double dv = 0.25;
int *ip;
struct pair pr = { 1, 0, 2 };
short arr[4] = { 1, 2, 3, 4 };
uint8_t big[16384];

int main(int argc, char **argv)
{
	stepping = argc > 1 && strcmp(argv[1], "step") == 0;
	threaded = stepping && argc > 2 && strcmp(argv[2], "threads") == 0;
	if (threaded) {
		pthread_t thread;
		if (pthread_create(&thread, NULL, worker, NULL) != 0)
			fixture_fail("pthread_create failed");
	}
	if (stepping) {
		printf("ready pid=%d addr=%p\n", (int)getpid(), (void *)&p);
		fflush(stdout);
	}
	SET(p, &a);      /* p->val: <unreadable> -> 1 */
	SET(a.val, 10);  /* 1 -> 10 */
	SET(p, &b);      /* 10 -> 2 */
	SET(a.val, 11);  /* through the old object: no change of p->val */
	SET(b.val, 20);  /* 2 -> 20 */
	SET(p, &c);      /* 20 -> 3 */
	SET(b.val, 21);  /* through the old object */
	SET(c.val, 30);  /* 3 -> 30 */
	SET(h.o, &b);    /* hp->o->val: 11 -> 21 */
	SET(b.val, 22);  /* 21 -> 22 */
	SET(hp, (struct holder *)0); /* 22 -> <unreadable> */
	SET(neg, -7);
	SET(neg, -7);    /* same value: gdb reports nothing */
	SET(neg, 0);
	SET(ch, 's');
	SET(ok, true);
	SET(color, BLUE);
	SET(fl, F_A | F_C);
	SET(fv, -2.5f);
	SET(dv, 3.125);
	SET(ip, &neg);
	SET(pr.hi, 7);
	SET(arr[2], -3);
	SET(big[100], 1);
	return 0;
}
