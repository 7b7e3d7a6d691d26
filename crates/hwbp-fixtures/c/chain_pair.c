/* chain_pair: a struct watched through a pointer (`*cur`, 16 bytes: two pieces and the
 * pointer's), for the shadow of a value chain.
 *
 * Built -O1 -g without frame pointers, -no-pie.
 * ready pid=<pid> addr=<&cur>
 * commands (each answers `done writes=N`):
 *   pair A B    -> cur->left = A, then right away cur->right = B (set_left, set_right: one
 *                  8-byte store each)
 *   point first|second|null -> cur = &first, &second or NULL
 *   stray V     -> first.left = V (not through cur)
 *   leave V     -> cur = &second, then right away first.left = V (the object cur left;
 *                  writes=2)
 *   EOF         -> exit 0
 * first starts {1, 2}, second {30, 40}; cur starts at &first. */
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

struct pair {
	long left;
	long right;
};

struct pair first = { 1, 2 };
struct pair second = { 30, 40 };
struct pair *cur = &first;

__attribute__((noinline)) void set_left(struct pair *p, long v)
{
	*(volatile long *)&p->left = v;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void set_right(struct pair *p, long v)
{
	*(volatile long *)&p->right = v;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void point(struct pair *p)
{
	*(struct pair *volatile *)&cur = p;
	__asm__ volatile("" ::: "memory");
}

int main(void)
{
	char command[64];
	char name[16];
	long a, b;
	printf("ready pid=%d addr=%p\n", (int)getpid(), (void *)&cur);
	fflush(stdout);
	while (fixture_read_command(command, sizeof command)) {
		int writes = 1;
		if (sscanf(command, "pair %ld %ld", &a, &b) == 2) {
			set_left(cur, a);
			set_right(cur, b);
			writes = 2;
		} else if (sscanf(command, "point %15s", name) == 1) {
			if (strcmp(name, "first") == 0)
				point(&first);
			else if (strcmp(name, "second") == 0)
				point(&second);
			else if (strcmp(name, "null") == 0)
				point(NULL);
			else
				fixture_fail("unknown pair %s", name);
		} else if (sscanf(command, "stray %ld", &a) == 1) {
			set_left(&first, a);
		} else if (sscanf(command, "leave %ld", &a) == 1) {
			point(&second);
			set_left(&first, a);
			writes = 2;
		} else {
			fixture_fail("unknown command %s", command);
		}
		printf("done writes=%d\n", writes);
		fflush(stdout);
	}
	return 0;
}
