/* `conds`: one global of every C integer width and signedness, each written the same
 * sequence 3, 0xffffffff, 5, 6, 0, 4000000000, 2 (converted to its type), one variable after
 * the other, then exit. No stdin protocol: launched under hwbp, every store is watched. */
#include <stddef.h>

signed char s8 = 1;
unsigned char u8 = 1;
short s16 = 1;
unsigned short u16 = 1;
int s32 = 1;
unsigned int u32 = 1;
long s64 = 1;
unsigned long u64 = 1;

static const unsigned long long sequence[] = {3, 0xffffffffULL, 5, 6, 0, 4000000000ULL, 2};

#define STORE_ALL(var, type)                                                 \
    for (size_t i = 0; i < sizeof sequence / sizeof sequence[0]; i++) {      \
        *(volatile type *)&var = (type)sequence[i];                          \
    }

int main(void) {
    STORE_ALL(s8, signed char)
    STORE_ALL(u8, unsigned char)
    STORE_ALL(s16, short)
    STORE_ALL(u16, unsigned short)
    STORE_ALL(s32, int)
    STORE_ALL(u32, unsigned int)
    STORE_ALL(s64, long)
    STORE_ALL(u64, unsigned long)
    return 0;
}
