/* aggregates: structs, arrays and strings written a piece at a time, for the shadow of a
 * watch wider than one debug register and for strings printed as gdb prints them.
 *
 * Built -O1 -g without frame pointers (as distributions build), twice: `aggregates` (PIE,
 * run live) and `aggregates_nopie` (fixed addresses: the initialized arrays below are read
 * from the file and compared with gdb's `print`).
 *
 * `aggregates burst N`: no protocol; writes wide.v[0..8] = r*8+k+1 for r in 0..N, one
 * member at a time, and exits 0 (a short-lived process).
 * Otherwise: ready pid=<pid> addr=<&pair> wide=<&wide> line=<&line> bits=<&bits>
 * commands:
 *   pair N  -> for i in 1..=N: pair.left = i, then pair.right = 100 + i (set_left,
 *              set_right; one 8-byte store each); answers `done writes=2N`
 *   fill N  -> for i in 1..=N: snprintf(line, sizeof line, "value %d", i); answers
 *              `done fills=N`
 *   bits N  -> for i in 1..=N: bits.a = i, bits.b = -i, bits.c = 10 * i (three stores of
 *              the bit-fields' bytes); answers `done writes=3N`
 *   text N  -> for i in 1..=N: text = names[i % 3] ("alpha", "beta\t2", line); answers
 *              `done writes=N`
 *   EOF     -> exit 0 */
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

struct pair {
	long left;
	long right;
};

struct wide {
	long v[8];
};

struct bits {
	unsigned a : 3;
	int b : 5;
	unsigned c : 12;
};

struct pair pair = { 5, 7 };
struct wide wide;
char line[32];
struct bits bits = { 5, -3, 1000 };
const char *text = "start";
static const char *const names[] = { "alpha", "beta\t2", line };

/* At rest, for gdb: each string rule once. */
#define L26 "abcdefghijklmnopqrstuvwxyz"
char buf[64] = "value 2";
char ten_a[12] = "aaaaaaaaaa";
char eleven_a[13] = "aaaaaaaaaaa";
char xs[300] = { [0 ... 298] = 'x' };
char letters[300] = L26 L26 L26 L26 L26 L26 L26 L26 L26 L26 L26;
char escapes[40] = "ab\"c\\d\001\177\200\377\t\n";
char no_nul[4] = { 'a', 'b', 'c', 'd' };
char empty[8];
char runs[40] = "ab" "xxxxxxxxxxxx" "cd" "yyyyyyyyyy" "e";
signed char schars[8] = { 1, -2, 'a' };
unsigned char uchars[8] = { 200, 'b', '\n' };
int ten_ints[10];
int eleven_ints[11];
int many_ints[250] = { [0 ... 249] = 7 };
int steps[30] = { [0 ... 14] = 1, [15 ... 29] = 2 };
int ramp[210] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

__attribute__((noinline)) void set_left(long v)
{
	*(volatile long *)&pair.left = v;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void set_right(long v)
{
	*(volatile long *)&pair.right = v;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void set_wide(int k, long v)
{
	*(volatile long *)&wide.v[k] = v;
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void fill(int i)
{
	snprintf(line, sizeof line, "value %d", i);
	__asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void set_bits(int i)
{
	volatile struct bits *b = &bits;
	b->a = (unsigned)i;
	b->b = -i;
	b->c = 10u * (unsigned)i;
}

__attribute__((noinline)) void set_text(int i)
{
	*(const char *volatile *)&text = names[i % 3];
	__asm__ volatile("" ::: "memory");
}

/* gdb stops here to print the final values. */
__attribute__((noinline)) void answered(void)
{
	__asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	char command[256];
	long n;
	if (argc == 3 && strcmp(argv[1], "burst") == 0) {
		n = atol(argv[2]);
		for (long r = 0; r < n; r++)
			for (int k = 0; k < 8; k++)
				set_wide(k, r * 8 + k + 1);
		return 0;
	}
	printf("ready pid=%d addr=%p wide=%p line=%p bits=%p\n", (int)getpid(),
	       (void *)&pair, (void *)&wide, (void *)line, (void *)&bits);
	fflush(stdout);
	while (fixture_read_command(command, sizeof command)) {
		if (sscanf(command, "pair %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++) {
				set_left(i);
				set_right(100 + i);
			}
			printf("done writes=%ld\n", 2 * n);
		} else if (sscanf(command, "fill %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++)
				fill((int)i);
			printf("done fills=%ld\n", n);
		} else if (sscanf(command, "bits %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++)
				set_bits((int)i);
			printf("done writes=%ld\n", 3 * n);
		} else if (sscanf(command, "text %ld", &n) == 1 && n >= 0) {
			for (long i = 1; i <= n; i++)
				set_text((int)i);
			printf("done writes=%ld\n", n);
		} else {
			fixture_fail("unknown command '%s'", command);
		}
		answered();
		fflush(stdout);
	}
	return 0;
}
