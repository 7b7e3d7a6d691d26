/* Fixture for hwbp-symbols tests: prints its pid and addresses, then blocks on stdin. */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

volatile long counter = 1;
volatile long count_r;
extern volatile long lib_exported; /* copy-relocated into this executable */
void lib_report(void);

__attribute__((noinline)) void bump_counter(long by)
{
	counter += by; /* LINE:bump_counter */
}

static void wait_for_line(void)
{
	char c;
	while (read(0, &c, 1) == 1 && c != '\n')
		;
}

int main(int argc, char **argv)
{
	bump_counter(2);
	printf("pid=%d counter=%p bump_counter=%p lib_exported=%p\n", (int)getpid(),
	       (void *)&counter, (void *)bump_counter, (void *)&lib_exported);
	lib_report();
	printf("ready\n");
	fflush(stdout);
	wait_for_line();
	if (argc > 1) {
		void *plugin = dlopen(argv[1], RTLD_NOW);
		void *var = plugin ? dlsym(plugin, "plugin_var") : NULL;
		printf("plugin_var=%p\nready\n", var);
		fflush(stdout);
		wait_for_line();
	}
	return (int)count_r;
}
