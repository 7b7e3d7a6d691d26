/* forever: writes a global in a loop and never ends by itself, for a watch that ends before
 * the command it launched (--max-hits, --duration): hwbp must end it, or leave it running
 * with --keep-running.
 *
 * usage: forever [PAUSE_US]   (pause between stores, default 1000 us; 0 for none)
 * ready pid=<pid> addr=<&forever_var> writer=<&forever_store>
 * Then stores 1, 2, 3, ... to forever_var, one 8-byte volatile store each through the noinline
 * forever_store, until killed. It reads no stdin and keeps stdout open. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

long forever_var = 0;

__attribute__((noinline, noclone)) void forever_store(long v)
{
	*(volatile long *)&forever_var = v;
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	long pause_us = argc > 1 ? atol(argv[1]) : 1000;
	struct timespec pause = { pause_us / 1000000, (pause_us % 1000000) * 1000 };

	if (pause_us < 0) {
		printf("error PAUSE_US must be >= 0\n");
		return 2;
	}
	printf("ready pid=%d addr=%p writer=%p\n", (int)getpid(), (void *)&forever_var,
	       (void *)forever_store);
	fflush(stdout);
	for (long i = 1;; i++) {
		forever_store(i);
		if (pause_us)
			nanosleep(&pause, NULL);
	}
}
