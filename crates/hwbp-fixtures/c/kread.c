/* kread: a user buffer that only the kernel writes, through read(2).
 *
 * ready pid=<pid> addr=<&buffer> size=64 payload_len=<bytes per read>
 * commands:
 *   go [N] -> N times (default 1): write the payload into a pipe from a
 *             separate source array, then read(2) it into buffer; user code
 *             never stores to buffer. answers `done reads=N bytes=<total>`
 *   EOF    -> exit 0 */
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

/* .data (initialized) so the loader's zeroing of .bss never touches it. */
char buffer[64] = "kread buffer before any read";

static const char payload[] = "hwbp kernel-mode write payload";

int main(void)
{
	char line[256];
	int fds[2];

	if (pipe(fds) != 0)
		fixture_fail("pipe failed");
	printf("ready pid=%d addr=%p size=%zu payload_len=%zu\n", (int)getpid(),
	       (void *)buffer, sizeof buffer, sizeof payload - 1);
	fflush(stdout);
	while (fixture_read_command(line, sizeof line)) {
		int n = 1;
		if (strcmp(line, "go") != 0 && (sscanf(line, "go %d", &n) != 1 || n < 0))
			fixture_fail("unknown command '%s' (expected 'go [N]')", line);
		long total = 0;
		for (int i = 0; i < n; i++) {
			if (write(fds[1], payload, sizeof payload - 1) != (ssize_t)(sizeof payload - 1))
				fixture_fail("write to pipe failed");
			ssize_t got = read(fds[0], buffer, sizeof payload - 1);
			if (got != (ssize_t)(sizeof payload - 1))
				fixture_fail("read from pipe returned %zd", got);
			total += got;
		}
		printf("done reads=%d bytes=%ld\n", n, total);
		fflush(stdout);
	}
	return 0;
}
