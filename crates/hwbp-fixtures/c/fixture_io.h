/* Shared stdin/stdout helpers for hwbp's C fixtures.
 *
 * Protocol: a fixture prints exactly one `ready pid=<pid> addr=<0xhex> ...`
 * line (flushed), then reads commands from stdin one line at a time, answers
 * each with a `done ...` line, and exits 0 at end of input. */
#ifndef HWBP_FIXTURE_IO_H
#define HWBP_FIXTURE_IO_H

#include <stdio.h>
#include <string.h>

/* Reads one command line into buf without its newline; returns 0 at EOF. */
static int fixture_read_command(char *buf, size_t size)
{
	if (!fgets(buf, (int)size, stdin))
		return 0;
	buf[strcspn(buf, "\n")] = '\0';
	return 1;
}

/* Reports a protocol error on stdout (where the test reads) and exits 2. */
#define fixture_fail(...)                        \
	do {                                     \
		printf("error " __VA_ARGS__);    \
		printf("\n");                    \
		fflush(stdout);                  \
		_exit(2);                        \
	} while (0)

#endif
