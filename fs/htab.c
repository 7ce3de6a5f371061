/*
 * A hash table of intrusive chains keyed by a 64-bit number, that grows
 * (fs_internal.h "htab"). The inode cache and the cluster's lock table
 * use it: both hold one entry per inode a host has touched, which is
 * 100,000 and more after a host fills a large directory, and a table of
 * fixed size made every lookup walk long chains (perf: 13% of the daemon
 * in the lock table's chains, 5% in the inode cache's).
 */
#include <errno.h>
#include <stdlib.h>

#include "fs_internal.h"

/* Never more than 2^HTAB_SHIFT_MAX chains (128 MiB of pointers): past
 * that, chains simply get longer. */
#define HTAB_SHIFT_MAX 24u

static size_t htab_chain(const struct htab *t, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> (64u - t->shift));
}

int htab_init(struct htab *t, unsigned shift)
{
	t->shift = shift;
	t->count = 0;
	t->tab = calloc((size_t)1 << shift, sizeof(*t->tab));
	return t->tab != NULL ? 0 : -ENOMEM;
}

void htab_fini(struct htab *t)
{
	free(t->tab);
	t->tab = NULL;
}

struct htab_link *htab_find(const struct htab *t, uint64_t key)
{
	struct htab_link *l = t->tab[htab_chain(t, key)];

	while (l != NULL && l->key != key) {
		l = l->next;
	}
	return l;
}

/* Four times the chains. Left as it is when memory is short: longer
 * chains still work. */
static void htab_grow(struct htab *t)
{
	size_t old_n = (size_t)1 << t->shift;
	struct htab_link **nt;

	if (t->shift + 2u > HTAB_SHIFT_MAX) {
		return;
	}
	nt = calloc(old_n << 2, sizeof(*nt));
	if (nt == NULL) {
		return;
	}
	t->shift += 2u;
	for (size_t b = 0; b < old_n; b++) {
		while (t->tab[b] != NULL) {
			struct htab_link *l = t->tab[b];
			size_t nb = htab_chain(t, l->key);

			t->tab[b] = l->next;
			l->next = nt[nb];
			nt[nb] = l;
		}
	}
	free(t->tab);
	t->tab = nt;
}

void htab_insert(struct htab *t, struct htab_link *l)
{
	size_t b = htab_chain(t, l->key);

	l->next = t->tab[b];
	t->tab[b] = l;
	if (++t->count > ((size_t)2 << t->shift)) {
		htab_grow(t);
	}
}

void htab_remove(struct htab *t, struct htab_link *l)
{
	struct htab_link **pp = &t->tab[htab_chain(t, l->key)];

	while (*pp != NULL) {
		if (*pp == l) {
			*pp = l->next;
			l->next = NULL;
			t->count--;
			return;
		}
		pp = &(*pp)->next;
	}
}

void htab_drain(struct htab *t, void (*fn)(struct htab_link *l, void *arg), void *arg)
{
	for (size_t b = 0; b < ((size_t)1 << t->shift); b++) {
		while (t->tab[b] != NULL) {
			struct htab_link *l = t->tab[b];

			t->tab[b] = l->next;
			l->next = NULL;
			t->count--;
			fn(l, arg);
		}
	}
}
