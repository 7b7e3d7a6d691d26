// Callchains through C++ namespaces and an inlined frame (built -O1 -g -fomit-frame-pointer):
// main -> shapes::detail::Recorder::record (noinline) -> shapes::detail::store (always
// inlined) writes the global `shapes::g_total`. Usage: unwind_cxx N
#include <cstdlib>
#include <cstdio>

namespace shapes {
long g_total;

namespace detail {
__attribute__((always_inline)) inline void store(long v) { g_total = g_total * 3 + v; }

struct Recorder {
    long scale;
    __attribute__((noinline)) long record(long v) {
        store(v * scale);
        return g_total & 0xff;
    }
};
}  // namespace detail
}  // namespace shapes

int main(int argc, char **argv) {
    int n = argc > 1 ? std::atoi(argv[1]) : 10;
    shapes::detail::Recorder recorder{2};
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += recorder.record(i);
    std::printf("sum %ld\n", sum);
    return 0;
}
