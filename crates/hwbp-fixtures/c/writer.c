/* writer: one initialized .data variable written an exact number of times.
 *
 * ready pid=<pid> addr=<&counter> bump=<&bump_counter> stray=<&stray_write>
 *       main_reached=<&main_reached> initial=<initial counter value>
 * commands:
 *   go N   -> bump_counter() stores to counter exactly N times; counter ends
 *             at its previous value + N; answers `done writes=N value=V`
 *   stray  -> stray_write() stores to counter exactly once (value + 1000);
 *             answers `done stray=1 value=V`
 *   EOF    -> exit 0
 * Every store is one 8-byte volatile store with no load of counter, so a
 * write watch and a read/write watch both count exactly one hit per store. */
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

#define COUNTER_INITIAL 0x1234L

/* .data (initialized, non-zero): no loader or kernel write touches it. */
long counter = COUNTER_INITIAL;
/* Set as main's first action: 0 means the program has not reached main. */
volatile int main_reached = 0;

__attribute__((noinline, noclone)) void bump_counter(long value)
{
	*(volatile long *)&counter = value;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline, noclone)) void stray_write(long value)
{
	*(volatile long *)&counter = value;
	__asm__ volatile("" ::: "memory");
}

int main(void)
{
	char line[256];
	/* The value the next store writes, tracked locally so stores never read counter. */
	long value = COUNTER_INITIAL;

	main_reached = 1;
	printf("ready pid=%d addr=%p bump=%p stray=%p main_reached=%p initial=%ld\n",
	       (int)getpid(), (void *)&counter, (void *)bump_counter,
	       (void *)stray_write, (void *)&main_reached, COUNTER_INITIAL);
	fflush(stdout);

	while (fixture_read_command(line, sizeof line)) {
		long n;
		if (sscanf(line, "go %ld", &n) == 1 && n >= 0) {
			for (long i = 0; i < n; i++)
				bump_counter(++value);
			printf("done writes=%ld value=%ld\n", n, value);
		} else if (strcmp(line, "stray") == 0) {
			value += 1000;
			stray_write(value);
			printf("done stray=1 value=%ld\n", value);
		} else {
			fixture_fail("unknown command '%s' (expected 'go N' or 'stray')", line);
		}
		fflush(stdout);
	}
	return 0;
}
