/* typed_b: the second file of the `typed` fixture; its own `file_static` (22) shadows
 * typed.c's (11) by file, for `'typed_b.c'::file_static`. */
static int file_static = 22;

__attribute__((noinline)) int bump_b(int n)
{
	static int calls = 200;
	calls += n;
	return calls;
}

int file_static_b(void)
{
	return ++file_static;
}
