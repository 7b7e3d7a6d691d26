/* Loaded with dlopen() after the test took its first snapshot. */
volatile long plugin_var = 7;
