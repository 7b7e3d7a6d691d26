// scoped: C++ namespaces and class static members, for `ns::var` and `Class::member`.
//
// ready pid=<pid> addr=<&net::port>; EOF -> exit 0.
#include <cstdio>
#include <unistd.h>

namespace net {
int port = 8080;
namespace inner {
long depth = -9;
}
} // namespace net

struct Point {
	int x;
	int y;
};

class Registry {
public:
	static int count;
	static Point corners[2];
	int instance_only;
};

int Registry::count = 3;
Point Registry::corners[2] = { { 1, 2 }, { -3, 4 } };

namespace geo {
Point origin = { 5, -6 };
}

struct Base {
	int a;
	bool on;
};

struct Derived : Base {
	long b;
};

Derived derived = { { 1, true }, 2 };

int main()
{
	std::printf("ready pid=%d addr=%p\n", (int)getpid(), (void *)&net::port);
	std::fflush(stdout);
	char line[64];
	while (std::fgets(line, sizeof line, stdin)) {
	}
	return net::port + (int)net::inner::depth + Registry::count + Registry::corners[1].x +
	       geo::origin.y + derived.a + (int)derived.b == 0;
}
