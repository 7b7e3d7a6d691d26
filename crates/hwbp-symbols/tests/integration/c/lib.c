/* Shared library for hwbp-symbols tests. */
#include <stdio.h>

volatile long lib_exported = 3;
volatile long lib_var = 5;

__attribute__((noinline)) void lib_fn(long by)
{
	lib_var += by; /* LINE:lib_fn */
}

void lib_report(void)
{
	lib_fn(1);
	printf("lib_var=%p lib_fn=%p\n", (void *)&lib_var, (void *)lib_fn);
}
