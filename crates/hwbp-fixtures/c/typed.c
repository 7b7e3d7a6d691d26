/* typed: globals of every C type kind, for watch expressions, typed values and gdb checks.
 *
 * Built twice: `typed` (PIE, run live) and `typed_nopie` (fixed addresses, so its pointers'
 * initial values can be read from the file). typed_b.c defines a second `file_static`.
 *
 * ready pid=<pid> addr=<&cfg> head=<&head> cur=<&cur>
 * commands:
 *   max N     -> cfg.limits[2].max = N; answers `done max=N`
 *   retarget  -> cur = cur == &conns[0] ? &conns[1] : &conns[0]; answers `done cur=<cur>`
 *   state N   -> cur->state = N; answers `done state=N`
 *   calls     -> bump(1), parse(1), bump_b(1); answers `done calls=<bump's static>`
 *   EOF       -> exit 0 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include "fixture_io.h"

struct limit {
	int32_t min;
	int32_t max;
};

enum mode { MODE_OFF, MODE_ON, MODE_AUTO = 5 };
enum perm { PERM_R = 1, PERM_W = 2, PERM_X = 4 };

struct config {
	uint32_t id;            /*  0 */
	int16_t level;          /*  4 */
	char tag;               /*  6 */
	bool enabled;           /*  7 */
	struct limit range;     /*  8 */
	struct limit limits[3]; /* 16 */
	char name[8];           /* 40 */
	double ratio;           /* 48 */
	float scale;            /* 56 */
	enum mode mode;         /* 60 */
	enum perm perm;         /* 64 */
};

struct node {
	long value;
	struct node *next;
};

struct conn {
	int fd;
	int state;
	struct conn *peer;
};

typedef struct config config_t;

config_t cfg = {
	.id = 7,
	.level = -3,
	.tag = 's',
	.enabled = true,
	.range = { -1, 1 },
	.limits = { { 0, 1 }, { 2, 3 }, { 4, 5 } },
	.name = "abc",
	.ratio = 0.5,
	.scale = 3.14f,
	.mode = MODE_AUTO,
	.perm = PERM_R | PERM_W,
};
struct node nodes[3] = { { 10, &nodes[1] }, { 20, &nodes[2] }, { 30, NULL } };
struct node *head = &nodes[0];
struct conn conns[2] = { { 3, 1, &conns[1] }, { 4, 2, NULL } };
struct conn *cur = &conns[0];
struct conn *null_conn;
int counter = -1;
signed char sc = -56;
unsigned char uc = 200;
char letter = '\n';
bool flag = true;
float f32 = 1.5f;
double f64 = -2.25;
enum mode global_mode = MODE_ON;
enum perm global_perm = PERM_R | PERM_X;
enum perm odd_perm = 8 | PERM_W;
enum mode odd_mode = 3;
long long ll = -1234567890123LL;
unsigned long ul = 18446744073709551615UL;
short sh = -2;
uint32_t u32 = 4000000000u;
int matrix[2][3] = { { 1, 2, 3 }, { 4, 5, 6 } };
int *int_ptr = &matrix[1][0];
int zeros[12];
void *vp = &counter;
static int file_static = 11;

int bump_b(int n);
int file_static_b(void);

__attribute__((noinline)) int bump(int n)
{
	static int calls = 100;
	calls += n;
	return calls;
}

__attribute__((noinline)) int parse(int d)
{
	static int depth = 5;
	int tmp = d * 3;
	for (int i = 0; i < d; i++)
		tmp += *(volatile int *)&counter;
	depth += tmp;
	return depth;
}

int main(void)
{
	char line[128];
	printf("ready pid=%d addr=%p head=%p cur=%p\n", (int)getpid(), (void *)&cfg,
	       (void *)&head, (void *)&cur);
	fflush(stdout);
	while (fixture_read_command(line, sizeof line)) {
		int n;
		if (sscanf(line, "max %d", &n) == 1) {
			*(volatile int32_t *)&cfg.limits[2].max = n;
			printf("done max=%d\n", n);
		} else if (strcmp(line, "retarget") == 0) {
			*(struct conn *volatile *)&cur = cur == &conns[0] ? &conns[1] : &conns[0];
			printf("done cur=%p\n", (void *)cur);
		} else if (sscanf(line, "state %d", &n) == 1) {
			*(volatile int *)&cur->state = n;
			printf("done state=%d\n", n);
		} else if (strcmp(line, "calls") == 0) {
			int calls = bump(1);
			parse(1);
			bump_b(1);
			file_static++;
			printf("done calls=%d static=%d\n", calls, file_static + file_static_b());
		} else {
			fixture_fail("unknown command '%s'", line);
		}
		fflush(stdout);
	}
	return (int)head->value + (null_conn != NULL) + (vp == NULL) + sc + uc + letter + flag +
	       (int)f32 + (int)f64 + global_mode + global_perm + odd_perm + odd_mode + (int)ll +
	       (int)ul + sh + (int)u32 + *int_ptr + zeros[3] + matrix[0][0] == 12345;
}
