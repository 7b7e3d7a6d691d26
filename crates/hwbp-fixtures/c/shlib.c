/* shlib: a main program linked against libhwbpfix.so (rpath $ORIGIN).
 *
 * ready pid=<pid> addr=<&lib_value, inside libhwbpfix.so> bump=<&lib_bump>
 *       initial=7
 * commands:
 *   go N -> lib_bump(N): N 4-byte stores to lib_value (lib_bump reads it once
 *           before the loop); answers `done writes=N value=V`
 *   EOF  -> exit 0 */
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

extern int lib_bump(int n);
extern int *lib_value_address(void);

int main(void)
{
	char line[256];
	int *value = lib_value_address();

	printf("ready pid=%d addr=%p bump=%p initial=%d\n", (int)getpid(),
	       (void *)value, (void *)lib_bump, *value);
	fflush(stdout);
	while (fixture_read_command(line, sizeof line)) {
		int n;
		if (sscanf(line, "go %d", &n) != 1 || n < 0)
			fixture_fail("unknown command '%s' (expected 'go N')", line);
		int now = lib_bump(n);
		printf("done writes=%d value=%d\n", n, now);
		fflush(stdout);
	}
	return 0;
}
