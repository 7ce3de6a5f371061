/*
 * The write gate (dev/dev_gate.c) over a memory device: every write,
 * discard and compare-and-write is asked for right before it goes down, in
 * waves of at most 32 I/Os; a refusal fails exactly the writes it covers,
 * and nothing of them reaches the device; reads and flushes pass.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/dev.h"

#define SS 512u
#define NIO 100u

/* allow(): refuses from the call number `refuse_from` on (0 = never). */
struct verdict {
	unsigned calls;
	unsigned refuse_from;
};

static int allow(void *arg)
{
	struct verdict *v = arg;

	v->calls++;
	return v->refuse_from != 0 && v->calls >= v->refuse_from ? -EIO : 0;
}

struct fixture {
	struct lunfs_dev *mem, *gate;
	struct verdict v;
	uint8_t *buf[NIO];
};

static void fx_init(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(dev_mem_open(1u << 20, SS, &fx->mem), 0);
	ck_assert_int_eq(dev_gate_open(fx->mem, allow, &fx->v, &fx->gate), 0);
	ck_assert_uint_eq(fx->gate->size, fx->mem->size);
	ck_assert_uint_eq(fx->gate->sector_size, SS);
	for (unsigned i = 0; i < NIO; i++) {
		fx->buf[i] = dev_buf_alloc(SS);
		ck_assert_ptr_nonnull(fx->buf[i]);
		memset(fx->buf[i], (int)(i + 1), SS);
	}
}

static void fx_fini(struct fixture *fx)
{
	for (unsigned i = 0; i < NIO; i++) {
		dev_buf_free(fx->buf[i]);
	}
	dev_close(fx->gate);   /* the gate only */
	dev_close(fx->mem);
}

/* Sector i of the memory device holds the byte (i + 1), or zeros. */
static bool sector_written(struct fixture *fx, unsigned i)
{
	uint8_t *b = dev_buf_alloc(SS);
	bool w;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(dev_read(fx->mem, b, SS, (uint64_t)i * SS), 0);
	w = b[0] == (uint8_t)(i + 1) && b[SS - 1] == (uint8_t)(i + 1);
	ck_assert(w || (b[0] == 0 && b[SS - 1] == 0));
	dev_buf_free(b);
	return w;
}

static void batch_fill(struct fixture *fx, struct lunfs_io *ios, enum lunfs_io_op op)
{
	for (unsigned i = 0; i < NIO; i++) {
		ios[i] = (struct lunfs_io){ .op = op, .buf = fx->buf[i], .len = SS, .off = (uint64_t)i * SS };
	}
}

START_TEST(test_gate_allows)
{
	struct fixture fx;
	struct lunfs_io ios[NIO];

	fx_init(&fx);
	batch_fill(&fx, ios, LUNFS_IO_WRITE);
	ck_assert_int_eq(dev_submit(fx.gate, ios, NIO), 0);
	/* One question per wave of 32: 100 writes, 4 waves. */
	ck_assert_uint_eq(fx.v.calls, 4);
	for (unsigned i = 0; i < NIO; i++) {
		ck_assert(sector_written(&fx, i));
	}
	ck_assert_int_eq(dev_flush(fx.gate), 0);
	fx_fini(&fx);
}
END_TEST

/* The lease lapses during a long batch (a host frozen in the middle of a
 * commit): the waves after the refusal write nothing. */
START_TEST(test_gate_refuses_mid_batch)
{
	struct fixture fx;
	struct lunfs_io ios[NIO];

	fx_init(&fx);
	fx.v.refuse_from = 2;
	batch_fill(&fx, ios, LUNFS_IO_WRITE);
	ck_assert_int_eq(dev_submit(fx.gate, ios, NIO), -EIO);
	for (unsigned i = 0; i < NIO; i++) {
		ck_assert_int_eq(ios[i].res, i < 32 ? (ssize_t)SS : -EIO);
		ck_assert(sector_written(&fx, i) == (i < 32));
	}
	fx_fini(&fx);
}
END_TEST

/* Refused: reads of a mixed wave still work; reads alone never ask;
 * discard and compare-and-write are refused and change nothing; flush
 * passes. */
START_TEST(test_gate_refuses_writes_only)
{
	struct fixture fx;
	struct lunfs_io ios[4];
	uint8_t *rd = dev_buf_alloc(SS), *cur = dev_buf_alloc(SS), *zero = dev_buf_alloc(SS);

	fx_init(&fx);
	ck_assert_ptr_nonnull(rd);
	ck_assert_ptr_nonnull(cur);
	ck_assert_ptr_nonnull(zero);
	ck_assert_int_eq(dev_write(fx.mem, fx.buf[7], SS, 7 * SS), 0);
	fx.v.refuse_from = 1;
	ios[0] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = fx.buf[1], .len = SS, .off = 1 * SS };
	ios[1] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = rd, .len = SS, .off = 7 * SS };
	ios[2] = (struct lunfs_io){ .op = LUNFS_IO_WRITE, .buf = fx.buf[2], .len = SS, .off = 2 * SS };
	ios[3] = (struct lunfs_io){ .op = LUNFS_IO_READ, .buf = cur, .len = SS, .off = 7 * SS };
	ck_assert_int_eq(dev_submit(fx.gate, ios, 4), -EIO);
	ck_assert_int_eq(ios[0].res, -EIO);
	ck_assert_int_eq(ios[2].res, -EIO);
	ck_assert_int_eq(ios[1].res, (ssize_t)SS);
	ck_assert_int_eq(ios[3].res, (ssize_t)SS);
	ck_assert_int_eq(memcmp(rd, fx.buf[7], SS), 0);
	ck_assert(!sector_written(&fx, 1));
	ck_assert(!sector_written(&fx, 2));

	fx.v.calls = 0;
	ck_assert_int_eq(dev_read(fx.gate, rd, SS, 7 * SS), 0);
	ck_assert_uint_eq(fx.v.calls, 0);
	ck_assert_int_eq(dev_discard(fx.gate, 7 * SS, SS), -EIO);
	ck_assert(sector_written(&fx, 7));
	ck_assert_int_eq(dev_caw(fx.gate, 7 * SS, fx.buf[7], zero, NULL), -EIO);
	ck_assert(sector_written(&fx, 7));
	ck_assert_int_eq(dev_flush(fx.gate), 0);
	/* Allowed again: the compare-and-write goes through. */
	fx.v.refuse_from = 0;
	ck_assert_int_eq(dev_caw(fx.gate, 7 * SS, fx.buf[7], zero, NULL), 0);
	ck_assert(!sector_written(&fx, 7));
	dev_buf_free(rd);
	dev_buf_free(cur);
	dev_buf_free(zero);
	fx_fini(&fx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("dev_gate");
	TCase *tc = tcase_create("gate");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_gate_allows);
	tcase_add_test(tc, test_gate_refuses_mid_batch);
	tcase_add_test(tc, test_gate_refuses_writes_only);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
