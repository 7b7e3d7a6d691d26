/* tree_count: stores to its global tree_counter N+1 times for argument N (0, 1, ..., N:
 * one 8-byte volatile store each, no load), then exits 0. For watches over a script's
 * process tree: `sh -c 'tree_count 10; tree_count 20'` writes 11 and 21 times. */
#include <stdlib.h>

long tree_counter = -1;

__attribute__((noinline, noclone)) static void store(long value)
{
	*(volatile long *)&tree_counter = value;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0;
	for (long i = 0; i <= n; i++)
		store(i);
	return 0;
}
