/* many: more variables than debug registers, for flexible (rotating) watches.
 *
 * ready pid=<pid> addr=<&v0> cfg=<&cfg> cfg_size=64
 * commands:
 *   go N MS     -> stores to v0, v1, ..., v11 in turn, N rounds (N stores to
 *                  each), rounds paced evenly over MS milliseconds (a short
 *                  sleep every 100 rounds); answers `done writes=N`
 *   fields N MS -> stores to cfg.id, cfg.limits[2].max and cfg.name[5] in
 *                  turn, N times each, paced evenly over MS milliseconds (a
 *                  sleep before every round);
 *                  answers `done writes=N`
 *   EOF         -> exit 0
 * Every store is one volatile store of the member's full width. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "fixture_io.h"

long v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11;

struct limit {
	long min;
	long max;
};

/* 64 bytes: id at 0, name at 8, limits at 16. */
struct config {
	long id;
	char name[8];
	struct limit limits[3];
};

struct config cfg;

static volatile long *const vars[12] = {
	&v0, &v1, &v2, &v3, &v4, &v5, &v6, &v7, &v8, &v9, &v10, &v11,
};

static void sleep_until(const struct timespec *start, long long offset_ns)
{
	long long ns = (long long)start->tv_nsec + offset_ns;
	struct timespec due = {
		.tv_sec = start->tv_sec + (time_t)(ns / 1000000000LL),
		.tv_nsec = (long)(ns % 1000000000LL),
	};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) != 0)
		;
}

/* Sleeps, every `every` rounds, until round `round` is due in a run of
 * `rounds` rounds over `ms` milliseconds. */
static void pace(const struct timespec *start, long round, long rounds, long ms,
		 long every)
{
	if (round % every == 0)
		sleep_until(start, (long long)ms * 1000000LL * round / rounds);
}

int main(void)
{
	char line[256];
	printf("ready pid=%d addr=%p cfg=%p cfg_size=%zu\n", (int)getpid(),
	       (void *)&v0, (void *)&cfg, sizeof cfg);
	fflush(stdout);
	while (fixture_read_command(line, sizeof line)) {
		long n, ms;
		struct timespec start;
		clock_gettime(CLOCK_MONOTONIC, &start);
		if (sscanf(line, "go %ld %ld", &n, &ms) == 2 && n >= 0 && ms >= 0) {
			for (long round = 0; round < n; round++) {
				pace(&start, round, n, ms, 100);
				for (int i = 0; i < 12; i++)
					*vars[i] = round;
			}
			printf("done writes=%ld\n", n);
		} else if (sscanf(line, "fields %ld %ld", &n, &ms) == 2 && n >= 0 &&
			   ms >= 0) {
			for (long round = 0; round < n; round++) {
				pace(&start, round, n, ms, 1);
				*(volatile long *)&cfg.id = round;
				*(volatile long *)&cfg.limits[2].max = round;
				*(volatile char *)&cfg.name[5] = (char)round;
			}
			printf("done writes=%ld\n", n);
		} else {
			fixture_fail("unknown command '%s'", line);
		}
		fflush(stdout);
	}
	return 0;
}
