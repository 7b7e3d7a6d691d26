/* libhwbpfix.so: data and code that live in a shared library, for watches
 * that must resolve addresses inside a library mapping. */

int lib_value = 7;

/* Stores to lib_value exactly n times (4-byte volatile stores, no loads);
 * lib_value ends at its previous value + n. Returns the new value. */
__attribute__((noinline, noclone)) int lib_bump(int n)
{
	int value = *(volatile int *)&lib_value;
	for (int i = 0; i < n; i++)
		*(volatile int *)&lib_value = ++value;
	return value;
}

/* The address of the library's own lib_value. The main program asks for it
 * instead of taking &lib_value itself, which in a PIE could make the linker
 * move the variable into the executable (a copy relocation). */
int *lib_value_address(void)
{
	return &lib_value;
}
