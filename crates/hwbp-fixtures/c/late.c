/* liblate.so: a library whose global a loader maps late (dlopen), for watches that wait
 * for the image that defines them.
 *
 * late_counter starts at 0; the constructor stores LATE_CONSTRUCTOR_VALUE once when the
 * library is loaded; late_bump(n) stores 1, 2, ..., n (one 8-byte volatile store each, no
 * load) and returns n. */

#define LATE_CONSTRUCTOR_VALUE 1000L

long late_counter = 0;

__attribute__((constructor)) static void late_init(void)
{
	*(volatile long *)&late_counter = LATE_CONSTRUCTOR_VALUE;
}

__attribute__((noinline, noclone)) long late_bump(long n)
{
	for (long i = 1; i <= n; i++)
		*(volatile long *)&late_counter = i;
	return n;
}
