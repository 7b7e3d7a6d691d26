// A C++ method's local to watch frame by frame (built -O0): shop::Counter::bump::t, two calls.
#include <cstdio>
namespace shop {
struct Counter {
    int total = 0;
    __attribute__((noinline)) int bump(int by);
};
int Counter::bump(int by)
{
    int t = total;
    t += by;
    t *= 3;
    total = t;
    return t;
}
}
int main()
{
    shop::Counter c;
    int r = c.bump(2);
    r += c.bump(5);
    std::printf("cxx %d\n", r);
    return 0;
}
