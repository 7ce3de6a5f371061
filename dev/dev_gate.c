/*
 * The write gate: a device that stacks on another and asks a callback
 * before every write it passes down (docs/DESIGN.md 5, "the lease is
 * checked right before each write").
 *
 * Why a device and not a check in each caller: a host may write only while
 * its lease is valid, and the window between the check and the submit must
 * stay small whatever the caller is (journal commit, checkpoint, home
 * writes, replay of a dead host's journal, orphan clearing, data). Those
 * paths issue their writes in long sequences (a commit is a flush, a
 * journal write, a flush and the home writes); one check at the start of
 * such a sequence left a host that was frozen in the middle of it free to
 * go on writing after others had recovered it. Stacked under the whole fs
 * core, the gate puts a check in front of every batch of at most
 * GATE_WAVE I/Os, which is what the file backend keeps in flight at once,
 * so no write is submitted long after the check that allowed it.
 *
 * Reads, flushes and closes pass unchecked: they change nothing on the
 * disk (a flush only makes durable what was allowed before). The gate does
 * not own the lower device; closing it frees the gate only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lunfs/dev.h"

/* Half the file backend's default queue depth (64) with deadlines: one
 * wave of its own submission loop. */
#define GATE_WAVE 32u

struct dev_gate {
	struct lunfs_dev dev; /* first: the vtable hands us &dev */
	struct lunfs_dev *lower;
	int (*allow)(void *arg);
	void *arg;
};

static struct dev_gate *gate_of(struct lunfs_dev *dev)
{
	return (struct dev_gate *)dev;
}

/* Fail every write of ios[0..n) with err, submit the reads. */
static int gate_reads_only(struct dev_gate *g, struct lunfs_io *ios, unsigned n, int err)
{
	struct lunfs_io reads[GATE_WAVE];
	unsigned idx[GATE_WAVE], nr = 0;
	int ret = err;

	for (unsigned i = 0; i < n; i++) {
		if (ios[i].op == LUNFS_IO_WRITE) {
			ios[i].res = err;
		} else {
			idx[nr] = i;
			reads[nr++] = ios[i];
		}
	}
	if (nr > 0) {
		(void)dev_submit(g->lower, reads, nr);
		for (unsigned r = 0; r < nr; r++) {
			ios[idx[r]].res = reads[r].res;
		}
	}
	return ret;
}

static int gate_submit(struct lunfs_dev *dev, struct lunfs_io *ios, unsigned n)
{
	struct dev_gate *g = gate_of(dev);
	int ret = 0;

	for (unsigned done = 0; done < n; done += GATE_WAVE) {
		unsigned k = n - done < GATE_WAVE ? n - done : GATE_WAVE;
		bool writes = false;
		int err = 0;

		for (unsigned i = 0; i < k; i++) {
			writes = writes || ios[done + i].op == LUNFS_IO_WRITE;
		}
		if (writes) {
			err = g->allow(g->arg);
		}
		/* Check, then act: nothing between the two but this call. */
		err = err < 0 ? gate_reads_only(g, ios + done, k, err) : dev_submit(g->lower, ios + done, k);
		if (err < 0 && ret == 0) {
			ret = err;
		}
	}
	return ret;
}

static int gate_flush(struct lunfs_dev *dev)
{
	return dev_flush(gate_of(dev)->lower);
}

static int gate_discard(struct lunfs_dev *dev, uint64_t off, uint64_t len)
{
	struct dev_gate *g = gate_of(dev);
	int err = g->allow(g->arg);

	return err < 0 ? err : dev_discard(g->lower, off, len);
}

static int gate_caw(struct lunfs_dev *dev, uint64_t off, const void *expect, const void *replace,
		    void *current)
{
	struct dev_gate *g = gate_of(dev);
	int err = g->allow(g->arg);

	return err < 0 ? err : dev_caw(g->lower, off, expect, replace, current);
}

static void gate_close(struct lunfs_dev *dev)
{
	free(gate_of(dev));
}

static const struct lunfs_dev_ops gate_ops = {
	.submit = gate_submit,
	.flush = gate_flush,
	.discard = gate_discard,
	.caw = gate_caw,
	.close = gate_close,
};

int dev_gate_open(struct lunfs_dev *lower, int (*allow)(void *arg), void *arg, struct lunfs_dev **out)
{
	struct dev_gate *g;

	*out = NULL;
	if (lower == NULL || allow == NULL) {
		return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL) {
		return -ENOMEM;
	}
	g->dev = *lower;
	g->dev.ops = &gate_ops;
	g->lower = lower;
	g->allow = allow;
	g->arg = arg;
	*out = &g->dev;
	return 0;
}
