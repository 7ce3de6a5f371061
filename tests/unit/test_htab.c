/*
 * Unit tests of fs/htab.c: the growing hash table of the inode cache and
 * of the cluster's lock table. Every entry inserted is found by its key
 * while the table grows under it, removed ones are gone, neighbours with
 * colliding chains stay, and draining hands each entry out exactly once.
 */
#include <check.h>
#include <stdlib.h>

#include "../../fs/fs_internal.h"

#define N 100000u

struct item {
	uint64_t payload;
	struct htab_link link;
	unsigned drained;
};

static void count_drain(struct htab_link *l, void *arg)
{
	struct item *it = HTAB_ENTRY(l, struct item, link);

	it->drained++;
	(*(unsigned *)arg)++;
}

START_TEST(test_htab_grow_find_remove_drain)
{
	struct htab t;
	struct item *items = calloc(N, sizeof(*items));
	unsigned drained = 0;

	ck_assert_ptr_nonnull(items);
	ck_assert_int_eq(htab_init(&t, 4), 0);
	for (unsigned i = 0; i < N; i++) {
		/* Keys spaced like inode numbers of one directory, and a few
		 * far apart. */
		items[i].link.key = i % 1000 == 0 ? (uint64_t)i << 40 : 5000 + (uint64_t)i;
		items[i].payload = i;
		htab_insert(&t, &items[i].link);
		if (i % 997 == 0) {
			/* Everything so far is still found while the table grows. */
			for (unsigned j = 0; j <= i; j += 101) {
				struct htab_link *l = htab_find(&t, items[j].link.key);

				ck_assert_ptr_eq(l, &items[j].link);
			}
		}
	}
	ck_assert_uint_eq(t.count, N);
	ck_assert_uint_ge(t.shift, 14); /* grew: at most two per chain */
	ck_assert_uint_le(t.count, (size_t)2 << t.shift);
	for (unsigned i = 0; i < N; i += 2) {
		htab_remove(&t, &items[i].link);
	}
	htab_remove(&t, &items[0].link); /* not in it any more: no effect */
	ck_assert_uint_eq(t.count, N / 2);
	for (unsigned i = 0; i < N; i++) {
		struct htab_link *l = htab_find(&t, items[i].link.key);

		if (i % 2 == 0) {
			ck_assert_ptr_null(l);
		} else {
			ck_assert_ptr_eq(l, &items[i].link);
			ck_assert_uint_eq(HTAB_ENTRY(l, struct item, link)->payload, i);
		}
	}
	ck_assert_ptr_null(htab_find(&t, 3));
	htab_drain(&t, count_drain, &drained);
	ck_assert_uint_eq(drained, N / 2);
	ck_assert_uint_eq(t.count, 0);
	for (unsigned i = 0; i < N; i++) {
		ck_assert_uint_eq(items[i].drained, i % 2);
	}
	ck_assert_ptr_null(htab_find(&t, items[1].link.key));
	htab_fini(&t);
	free(items);
}
END_TEST

static Suite *htab_suite(void)
{
	Suite *s = suite_create("htab");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_htab_grow_find_remove_drain);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(htab_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
