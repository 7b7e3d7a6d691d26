/* loader: dlopens a library given on the command line, calls its late_bump(N), dlcloses it;
 * ROUNDS times. Defines no watched variable itself.
 *
 * usage: loader LIB [N [ROUNDS [wait]]]   (N = 3, ROUNDS = 1 by default)
 * With `wait`, prints `ready pid=<pid> addr=<&rounds_done>` and waits for a line on stdin before the first dlopen
 * (for attaching with -p). Prints `done rounds=ROUNDS last=V` at the end; exits 1 when the
 * library or late_bump cannot be found. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rounds finished; stored once per round. */
long rounds_done = 0;

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: loader LIB [N [ROUNDS [wait]]]\n");
		return 2;
	}
	long n = argc > 2 ? atol(argv[2]) : 3;
	long rounds = argc > 3 ? atol(argv[3]) : 1;
	if (argc > 4 && strcmp(argv[4], "wait") == 0) {
		char line[64];
		printf("ready pid=%d addr=%p\n", (int)getpid(), (void *)&rounds_done);
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			return 1;
	}
	long last = 0;
	for (long r = 0; r < rounds; r++) {
		void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
		if (!lib) {
			fprintf(stderr, "loader: %s\n", dlerror());
			return 1;
		}
		long (*bump)(long) = (long (*)(long))dlsym(lib, "late_bump");
		if (!bump) {
			fprintf(stderr, "loader: %s\n", dlerror());
			return 1;
		}
		last = bump(n);
		dlclose(lib);
		*(volatile long *)&rounds_done = r + 1;
	}
	printf("done rounds=%ld last=%ld\n", rounds, last);
	fflush(stdout);
	return 0;
}
