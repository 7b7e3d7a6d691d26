/* strings: a `const char *` global repointed at several strings, for strings read at the
 * trap: one is overwritten and freed right after the pointer is set, another rewritten, so a
 * string read after the write differs from the one the pointer pointed to at it.
 *
 * Built -O1 -g without frame pointers, -no-pie.
 * ready pid=<pid> addr=<&msg>
 * commands:
 *   repoint -> sets `msg` (one 8-byte store in the noinline `point`) to "alpha",
 *              "beta gamma", a heap copy of "doomed" (overwritten with 'X's and freed right
 *              after), `scratch` holding "scratch 1" (rewritten "scratch 2" right after),
 *              `long_text` (260 characters, past gdb's 200), NULL, and "alpha" again;
 *              answers `done writes=7`
 *   EOF     -> exit 0 */
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

#define L26 "abcdefghijklmnopqrstuvwxyz"

const char *msg = "start";
char scratch[32];
const char long_text[] = L26 L26 L26 L26 L26 L26 L26 L26 L26 L26;

__attribute__((noinline)) void point(const char *s)
{
	*(const char *volatile *)&msg = s;
	__asm__ volatile("" ::: "memory");
}

static void repoint(void)
{
	point("alpha");
	point("beta gamma");
	char *heap = malloc(32);
	if (!heap)
		fixture_fail("malloc");
	strcpy(heap, "doomed");
	point(heap);
	memset(heap, 'X', 6);
	__asm__ volatile("" ::: "memory");
	free(heap);
	strcpy(scratch, "scratch 1");
	point(scratch);
	strcpy(scratch, "scratch 2");
	__asm__ volatile("" ::: "memory");
	point(long_text);
	point(NULL);
	point("alpha");
}

int main(void)
{
	char command[64];
	printf("ready pid=%d addr=%p\n", (int)getpid(), (void *)&msg);
	fflush(stdout);
	while (fixture_read_command(command, sizeof command)) {
		if (strcmp(command, "repoint") != 0)
			fixture_fail("unknown command %s", command);
		repoint();
		printf("done writes=7\n");
		fflush(stdout);
	}
	return 0;
}
