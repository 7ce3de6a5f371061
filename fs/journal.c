/*
 * journal: this host's metadata journal (fs_internal.h "journal",
 * docs/FORMAT.md 16, include/lunfs/journal.h). Physical redo logging of
 * whole records and blocks, with compound transactions as in jbd2.
 *
 * Writer
 *   Handles (one at a time, under vol.meta_lock) join the running
 *   transaction; jnl_dirty() adds an mcache entry to it once and pins it
 *   with a reference. Commit (jnl_stop(sync), jnl_sync, the commit timer,
 *   a transaction past a quarter of the ring, jnl_close):
 *     1. if data ordering was asked for, flush (new data blocks durable
 *        before the metadata that makes them reachable);
 *     2. copy every entry into a staging buffer laid out as the on-disk
 *        transaction: descriptors | payload (packed at sector granularity) |
 *        commit whose body_crc covers descriptors and payload;
 *     3. write it with one write at its ring position and flush: the
 *        transaction is durable exactly when its commit block is;
 *     4. write every image home (a batch, from the staging copy) and unpin.
 *   Home writes are not flushed here: the next checkpoint flushes them
 *   before the tail moves past their transaction, so until then replay
 *   redoes them.
 *
 * Ring
 *   A transaction occupies consecutive blocks and never wraps: when it
 *   does not fit before the ring's end, the rest is skipped and it starts
 *   at ring_first. The live part runs from `tail` for `used` blocks (skips
 *   included); `head` = where the next transaction goes. A checkpoint
 *   (flush home writes, write jsb with tail = head, flush) empties it; it
 *   runs before a commit when the ring is over half used or the
 *   transaction would not fit, and at close (state CLEAN). The flush after
 *   the jsb write matters: if the new tail were not durable before ring
 *   space is reused, replay could start at the old tail, apply old images
 *   and then stop at an overwritten transaction, losing later ones.
 *   Invariant: every transaction from the durable jsb tail to the last
 *   commit is intact in the ring, and every transaction before it is home
 *   and durable.
 *
 * Errors
 *   Any device error during commit or checkpoint aborts the journal: the
 *   cache now holds changes that are not durable, so every later
 *   jnl_start/jnl_dirty/commit fails with the error and the volume must be
 *   remounted; replay then restores the last durable state. The entries of
 *   the failed transaction stay pinned so that they can never be evicted
 *   and re-read as if they were true: the mcache must be destroyed.
 *
 * Replay (jnl_replay, no mounted volume needed)
 *   FORMAT.md 16.6: from the jsb tail, apply transactions while each is
 *   complete (descriptors, commit, body_crc) and carries the next sequence
 *   number, trying ring_first once when the expected position does not
 *   hold it (a skipped ring end). The journal is untrusted input: every
 *   length is bounded by the ring before anything is read or allocated,
 *   every tag must lie in the data region or this journal's orphan table,
 *   and the loop runs at most ring_blocks times. Then flush, and mark the
 *   journal CLEAN with the tail after the last applied transaction. Redo
 *   images make replay idempotent.
 *
 * Lock order: vol.meta_lock (held by every caller but jnl_replay) <
 * mcache's mutex. j->tlock only guards the timer's stop flag and is never
 * held while taking meta_lock; the timer takes meta_lock with trylock so
 * that jnl_close, called under meta_lock, can join it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_internal.h"
#include "lunfs/lockd.h"
#include "lunfs/crc32c.h"
#include "lunfs/journal.h"

#define JBLK LUNFS_META_BLOCK_SIZE
#define JRING_FIRST (1u + LUNFS_JOURNAL_ORPHAN_BLOCKS)
#define JNL_COMMIT_INTERVAL_DEFAULT_MS 5000u
/* When meta_lock is busy at a timer tick, try again this much later. */
#define JNL_TIMER_RETRY_MS 10u
/* Replay writes images home in batches of this many, from a bounce buffer. */
#define JNL_REPLAY_BATCH 64u

struct jnl_handle {
	struct jnl *j;
	unsigned credits;
	bool open;
	unsigned ndirty;             /* jnl_dirty calls that succeeded */
	uint64_t read_errors_at_start; /* mc_read_errors() at jnl_start */
};

struct jnl {
	struct lunfs_vol *v;
	struct lunfs_dev *dev;
	const struct lunfs_super *sb;
	const struct lunfs_codec *c;
	struct mcache *mc;
	uint32_t slot;
	uint64_t gen;
	uint64_t base;               /* byte address of journal block 0 */
	uint64_t ring_first, ring_end, ring_blocks; /* journal block numbers */

	/* Everything below, up to the timer, is under vol.meta_lock. */
	struct lunfs_jsb jsb;        /* as last written */
	uint64_t tail;               /* first live block */
	uint64_t used;               /* live blocks from tail, skips included */
	uint64_t head;               /* where the next transaction goes */
	uint64_t head_seq;           /* its sequence number; also the running tid */
	int err;                     /* sticky: the journal aborted */

	struct mc_entry *tx_first, *tx_last;
	uint64_t tx_n;               /* entries */
	uint64_t tx_bytes;           /* payload bytes */
	bool tx_order_data;
	struct jnl_handle h;

	void *stage;                 /* staging buffer for a transaction */
	size_t stage_len;
	struct lunfs_io *ios;        /* home writes */
	size_t ios_len;
	struct lunfs_jdesc desc;     /* descriptor being encoded */

	/* The commit timer. tlock protects tstop. */
	pthread_t timer;
	bool timer_started;
	pthread_mutex_t tlock;
	pthread_cond_t tcond;
	bool tstop;
	uint32_t interval_ms;
};

static uint64_t jnl_div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* Ring blocks a transaction of n entries and `bytes` payload takes. */
static uint64_t jnl_tx_blocks(uint64_t n, uint64_t bytes)
{
	if (n == 0) {
		return 0;
	}
	return jnl_div_up(n, LUNFS_JTAGS_PER_DESC) + jnl_div_up(bytes, JBLK) + 1;
}

/* May an update of [dest, dest+len) go through journal `jbase`? The data
 * region, or this journal's own orphan table; whole sectors; on the device.
 * Shared by the writer (catch a bug before it poisons the log) and replay
 * (never write outside these ranges, whatever the journal says). */
static bool jnl_dest_ok(const struct lunfs_super *sb, const struct lunfs_dev *dev, uint64_t jbase,
			uint64_t dest, uint64_t len)
{
	const struct lunfs_region *d = &sb->regions[LUNFS_REGION_DATA];
	uint64_t ss = sb->sector_size;
	uint64_t orph = jbase + JBLK;
	uint64_t orph_end = jbase + (uint64_t)JRING_FIRST * JBLK;

	if (ss == 0 || len == 0 || len > JBLK || len % ss != 0 || dest % ss != 0) {
		return false;
	}
	if (dest > dev->size || len > dev->size - dest) {
		return false;
	}
	if (dest >= d->offset && dest - d->offset <= d->length && len <= d->length - (dest - d->offset)) {
		return true;
	}
	return dest >= orph && dest <= orph_end && len <= orph_end - dest;
}

/* Where journal `slot` lives, with the checks replay needs before trusting
 * the superblock's geometry on an unknown device. */
static int jnl_geometry(const struct lunfs_dev *dev, const struct lunfs_super *sb, uint32_t slot,
			uint64_t *base)
{
	uint64_t js = sb->journal_size;

	if (slot >= sb->max_hosts || js % JBLK != 0 || js < (uint64_t)(JRING_FIRST + 2) * JBLK) {
		return -EINVAL;
	}
	*base = layout_journal_addr(sb, slot);
	if (*base == 0 || *base % JBLK != 0 || *base > dev->size || js > dev->size - *base) {
		return -EINVAL;
	}
	return 0;
}

static int64_t jnl_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- replay -------------------------------------------------------------- */

struct jrep {
	struct lunfs_dev *dev;
	const struct lunfs_super *sb;
	const struct lunfs_codec *c;
	uint32_t slot;
	uint64_t base, ring_first, end;
	void *blk;                   /* one block */
	void *body;                  /* descriptors + payload of the current tx */
	size_t body_cap;
	void *bounce;                /* JNL_REPLAY_BATCH blocks */
	struct lunfs_jdesc desc;
	struct lunfs_io ios[JNL_REPLAY_BATCH];
};

struct jtx {
	uint64_t ndesc, npayload;
};

static uint64_t jrep_addr(const struct jrep *r, uint64_t blk)
{
	return r->base + blk * JBLK;
}

/* Decode descriptor i of the transaction in r->body into r->desc and
 * check it belongs: same seq, slot, shape; every tag allowed. */
static bool jrep_desc_ok(struct jrep *r, uint64_t p, uint64_t seq, const struct jtx *tx, uint64_t i)
{
	struct lunfs_jdesc *d = &r->desc;

	if (jdesc_decode(r->c, (const uint8_t *)r->body + i * JBLK, jrep_addr(r, p + i), d) != 0) {
		return false;
	}
	if (d->seq != seq || d->slot != r->slot || d->index != i || d->ndesc != tx->ndesc ||
	    d->npayload != tx->npayload) {
		return false;
	}
	for (uint32_t t = 0; t < d->ntags; t++) {
		if (!jnl_dest_ok(r->sb, r->dev, r->base, d->tags[t].dest, d->tags[t].len)) {
			return false;
		}
	}
	return true;
}

/* Is there a valid transaction with sequence `seq` at ring block p? Returns
 * 1 (and leaves it in r->body), 0 if not, or a negative errno if the
 * device failed (which must not be mistaken for the end of the log). */
static int jrep_tx_load(struct jrep *r, uint64_t p, uint64_t seq, struct jtx *tx)
{
	struct lunfs_jcommit cm;
	uint64_t nbody;
	int err;

	err = dev_read(r->dev, r->blk, JBLK, jrep_addr(r, p));
	if (err != 0) {
		return err;
	}
	if (jdesc_decode(r->c, r->blk, jrep_addr(r, p), &r->desc) != 0) {
		return 0;
	}
	if (r->desc.seq != seq || r->desc.index != 0 || r->desc.slot != r->slot || r->desc.ndesc == 0) {
		return 0;
	}
	tx->ndesc = r->desc.ndesc;
	tx->npayload = r->desc.npayload;
	nbody = tx->ndesc + tx->npayload;
	if (p + nbody + 1 > r->end) {
		return 0;
	}
	/* The commit first: it is small, and without a valid one nothing
	 * bigger gets allocated or read on a hostile journal's word. */
	err = dev_read(r->dev, r->blk, JBLK, jrep_addr(r, p + nbody));
	if (err != 0) {
		return err;
	}
	if (jcommit_decode(r->c, r->blk, jrep_addr(r, p + nbody), &cm) != 0 || cm.seq != seq ||
	    cm.slot != r->slot || cm.ndesc != tx->ndesc || cm.npayload != tx->npayload) {
		return 0;
	}
	if (nbody * JBLK > r->body_cap) {
		void *nb = dev_buf_alloc(nbody * JBLK);

		if (nb == NULL) {
			return -ENOMEM;
		}
		dev_buf_free(r->body);
		r->body = nb;
		r->body_cap = nbody * JBLK;
	}
	err = dev_read(r->dev, r->body, nbody * JBLK, jrep_addr(r, p));
	if (err != 0) {
		return err;
	}
	if (crc32c(0, r->body, nbody * JBLK) != cm.body_crc) {
		return 0;
	}
	for (uint64_t i = 0; i < tx->ndesc; i++) {
		if (!jrep_desc_ok(r, p, seq, tx, i)) {
			return 0;
		}
	}
	return 1;
}

static int jrep_batch_submit(struct jrep *r, unsigned *n)
{
	int err = 0;

	if (*n > 0) {
		err = dev_submit(r->dev, r->ios, *n);
	}
	*n = 0;
	return err;
}

/* Write a validated transaction home, tags in order. Tags that overlap one
 * already in the batch go into the next batch, so that the later one wins
 * as the format requires (the device orders nothing within a batch). */
static int jrep_tx_apply(struct jrep *r, uint64_t p, uint64_t seq, const struct jtx *tx)
{
	const uint8_t *payload = (const uint8_t *)r->body + tx->ndesc * JBLK;
	unsigned n = 0;
	int err = 0;

	for (uint64_t i = 0; i < tx->ndesc; i++) {
		if (!jrep_desc_ok(r, p, seq, tx, i)) {
			return -EUCLEAN; /* validated a moment ago: cannot happen */
		}
		for (uint32_t t = 0; t < r->desc.ntags; t++) {
			const struct lunfs_jtag *tag = &r->desc.tags[t];
			bool overlap = false;

			for (unsigned k = 0; k < n && !overlap; k++) {
				overlap = tag->dest < r->ios[k].off + r->ios[k].len &&
					  r->ios[k].off < tag->dest + tag->len;
			}
			if (overlap || n == JNL_REPLAY_BATCH) {
				err = jrep_batch_submit(r, &n);
				if (err != 0) {
					return err;
				}
			}
			/* Through a bounce block: payload_off need only be
			 * a multiple of 512, the device may want more. */
			memcpy((uint8_t *)r->bounce + (size_t)n * JBLK, payload + tag->payload_off, tag->len);
			r->ios[n] = (struct lunfs_io){
				.op = LUNFS_IO_WRITE,
				.buf = (uint8_t *)r->bounce + (size_t)n * JBLK,
				.len = tag->len,
				.off = tag->dest,
			};
			n++;
		}
	}
	return jrep_batch_submit(r, &n);
}

/* Read and decode journal slot's superblock at base into *jsb.
 *
 * A torn superblock write: with sectors smaller than a block, a power cut
 * during the superblock write can leave its first sector (every field)
 * from one version and its last (the crc) from the other. The writer only
 * ever writes the superblock when every committed transaction is home and
 * durable and no ring block has been reused since the tail it replaces
 * (open, checkpoint, close, end of replay: each right after a flush), so
 * either version's fields are safe to replay from. Such a block (crc
 * wrong, everything between the fields and the crc zero, sectors < 4 KiB)
 * is therefore decoded with its crc recomputed, and *torn is set so that
 * the caller rewrites it. Anything else that fails to decode is -EUCLEAN. */
static int jnl_jsb_read(struct lunfs_dev *dev, const struct lunfs_super *sb,
			const struct lunfs_codec *c, uint64_t base, uint32_t slot, void *blk,
			struct lunfs_jsb *jsb, bool *torn)
{
	const size_t fields_end = offsetof(struct lunfs_jsb_disk, reserved);
	uint8_t *p = blk;
	int err;

	*torn = false;
	err = dev_read(dev, blk, JBLK, base);
	if (err != 0) {
		return err;
	}
	err = jsb_decode(c, blk, base, sb->journal_size, jsb);
	if (err == -EUCLEAN && sb->sector_size < JBLK &&
	    buf_is_zero(p + fields_end, LUNFS_BLOCK_CRC_OFFSET - fields_end)) {
		uint32_t crc = crc32c(0, p, LUNFS_BLOCK_CRC_OFFSET);
		uint8_t saved[4];

		memcpy(saved, p + LUNFS_BLOCK_CRC_OFFSET, 4);
		for (unsigned i = 0; i < 4; i++) {
			p[LUNFS_BLOCK_CRC_OFFSET + i] = (uint8_t)(crc >> (8 * i));
		}
		err = jsb_decode(c, blk, base, sb->journal_size, jsb);
		memcpy(p + LUNFS_BLOCK_CRC_OFFSET, saved, 4);
		*torn = err == 0;
		if (err != 0) {
			err = -EUCLEAN;
		}
	}
	if (err == 0 && jsb->slot != slot) {
		err = -EUCLEAN;
	}
	return err;
}

int jnl_replay(struct lunfs_dev *dev, const struct lunfs_super *sb, const struct lunfs_codec *c,
	       uint32_t slot, uint64_t *applied)
{
	struct jrep *r;
	struct lunfs_jsb jsb;
	uint64_t seq, p, count = 0;
	bool torn;
	int err;

	*applied = 0;
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		return -ENOMEM;
	}
	r->dev = dev;
	r->sb = sb;
	r->c = c;
	r->slot = slot;
	err = jnl_geometry(dev, sb, slot, &r->base);
	if (err != 0) {
		goto out;
	}
	r->blk = dev_buf_alloc(JBLK);
	r->bounce = dev_buf_alloc((size_t)JNL_REPLAY_BATCH * JBLK);
	if (r->blk == NULL || r->bounce == NULL) {
		err = -ENOMEM;
		goto out;
	}
	err = jnl_jsb_read(dev, sb, c, r->base, slot, r->blk, &jsb, &torn);
	if (err == -ENODATA || err == -ESTALE) {
		err = 0; /* never used on this volume: nothing to replay */
		goto out;
	}
	if (err != 0) {
		goto out;
	}
	if (jsb.state != LUNFS_JOURNAL_DIRTY && !torn) {
		goto out;
	}
	if (jsb.state != LUNFS_JOURNAL_DIRTY) {
		/* Torn but clean: just seal it again. */
		jsb_encode(c, &jsb, r->base, r->blk);
		err = dev_write(dev, r->blk, JBLK, r->base);
		if (err == 0) {
			err = dev_flush(dev);
		}
		goto out;
	}
	r->ring_first = jsb.ring_first;
	r->end = jsb.ring_first + jsb.ring_blocks;
	seq = jsb.tail_seq;
	p = jsb.tail_block;
	/* Each block holds at most one descriptor 0 and sequence numbers only
	 * grow, so a chain cannot revisit a block: ring_blocks bounds it. */
	for (uint64_t iter = 0; iter < jsb.ring_blocks; iter++) {
		struct jtx tx;
		int found = jrep_tx_load(r, p, seq, &tx);

		if (found == 0 && p != r->ring_first) {
			found = jrep_tx_load(r, r->ring_first, seq, &tx);
			if (found == 1) {
				p = r->ring_first;
			}
		}
		if (found < 0) {
			err = found;
			goto out;
		}
		if (found == 0) {
			break;
		}
		err = jrep_tx_apply(r, p, seq, &tx);
		if (err != 0) {
			goto out;
		}
		count++;
		p += tx.ndesc + tx.npayload + 1;
		if (p == r->end) {
			p = r->ring_first;
		}
		seq++;
	}
	/* The images must be durable before the journal forgets them. */
	err = dev_flush(dev);
	if (err != 0) {
		goto out;
	}
	jsb.state = LUNFS_JOURNAL_CLEAN;
	jsb.tail_seq = seq;
	jsb.tail_block = p;
	jsb.seq = seq;
	jsb_encode(c, &jsb, r->base, r->blk);
	err = dev_write(dev, r->blk, JBLK, r->base);
	if (err != 0) {
		goto out;
	}
	err = dev_flush(dev);
	if (err != 0) {
		goto out;
	}
	*applied = count;
out:
	dev_buf_free(r->body);
	dev_buf_free(r->bounce);
	dev_buf_free(r->blk);
	free(r);
	return err;
}

/* ---- writer --------------------------------------------------------------- */

static void jnl_abort(struct jnl *j, int err)
{
	if (j->err == 0) {
		j->err = err < 0 ? err : -EIO;
	}
}

/* Write the journal superblock as `state` with tail = head, durably. */
static int jnl_jsb_write(struct jnl *j, uint32_t state)
{
	void *blk = dev_buf_alloc(JBLK);
	int err;

	if (blk == NULL) {
		return -ENOMEM;
	}
	j->jsb.state = state;
	j->jsb.owner_gen = j->gen;
	j->jsb.tail_seq = j->head_seq;
	j->jsb.tail_block = j->head;
	j->jsb.seq = j->head_seq;
	jsb_encode(j->c, &j->jsb, j->base, blk);
	err = dev_write(j->dev, blk, JBLK, j->base);
	if (err == 0) {
		err = dev_flush(j->dev);
	}
	dev_buf_free(blk);
	return err;
}

/* Home writes of every committed transaction are done; make them durable
 * and move the tail to the head: the ring is empty after this. */
static int jnl_checkpoint(struct jnl *j, uint32_t state)
{
	int err;

	err = dev_flush(j->dev);
	if (err == 0) {
		err = jnl_jsb_write(j, state);
	}
	if (err != 0) {
		jnl_abort(j, err);
		return err;
	}
	j->tail = j->head;
	j->used = 0;
	return 0;
}

/* Where a transaction of `total` blocks goes; false if the live part of
 * the ring leaves no room. *need = blocks it consumes, a skipped end
 * included. */
static bool jnl_place(struct jnl *j, uint64_t total, uint64_t *pos, uint64_t *need)
{
	uint64_t free_blocks = j->ring_blocks - j->used;

	if (j->head + total <= j->ring_end) {
		*pos = j->head;
		*need = total;
	} else if (j->used == 0) {
		/* Empty ring: start over at ring_first. The durable tail may
		 * still name the old head; replay's ring_first rule finds
		 * the transaction there. */
		j->tail = j->ring_first;
		j->head = j->ring_first;
		*pos = j->ring_first;
		*need = total;
	} else {
		*pos = j->ring_first;
		*need = (j->ring_end - j->head) + total;
	}
	return *need <= free_blocks;
}

static int jnl_stage_reserve(struct jnl *j, size_t bytes, size_t nios)
{
	if (bytes > j->stage_len) {
		void *nb = dev_buf_alloc(bytes);

		if (nb == NULL) {
			return -ENOMEM;
		}
		dev_buf_free(j->stage);
		j->stage = nb;
		j->stage_len = bytes;
	}
	if (nios > j->ios_len) {
		struct lunfs_io *ni = calloc(nios, sizeof(*ni));

		if (ni == NULL) {
			return -ENOMEM;
		}
		free(j->ios);
		j->ios = ni;
		j->ios_len = nios;
	}
	return 0;
}

/* Lay out the running transaction at ring block pos in j->stage: tags and
 * payload in list order, then the commit. Also prepares the home writes
 * in j->ios, pointing into the staged payload. */
static void jnl_stage_build(struct jnl *j, uint64_t pos, uint64_t ndesc, uint64_t npayload)
{
	uint8_t *stage = j->stage;
	uint8_t *payload = stage + ndesc * JBLK;
	struct lunfs_jdesc *d = &j->desc;
	struct lunfs_jcommit cm;
	struct mc_entry *e = j->tx_first;
	uint64_t off = 0;

	memset(stage, 0, (size_t)(ndesc + npayload + 1) * JBLK);
	for (uint64_t i = 0; i < ndesc; i++) {
		memset(d, 0, sizeof(*d));
		d->seq = j->head_seq;
		d->slot = j->slot;
		d->index = (uint32_t)i;
		d->ndesc = (uint32_t)ndesc;
		d->npayload = (uint32_t)npayload;
		while (e != NULL && d->ntags < LUNFS_JTAGS_PER_DESC) {
			struct lunfs_io *io = &j->ios[i * LUNFS_JTAGS_PER_DESC + d->ntags];

			d->tags[d->ntags].dest = e->addr;
			d->tags[d->ntags].len = e->len;
			d->tags[d->ntags].payload_off = (uint32_t)off;
			d->ntags++;
			memcpy(payload + off, e->buf, e->len);
			*io = (struct lunfs_io){
				.op = LUNFS_IO_WRITE,
				.buf = payload + off,
				.len = e->len,
				.off = e->addr,
			};
			off += e->len;
			e = e->tx_next;
		}
		jdesc_encode(j->c, d, j->base + (pos + i) * JBLK, stage + i * JBLK);
	}
	memset(&cm, 0, sizeof(cm));
	cm.seq = j->head_seq;
	cm.slot = j->slot;
	cm.ndesc = (uint32_t)ndesc;
	cm.npayload = (uint32_t)npayload;
	cm.body_crc = crc32c(0, stage, (size_t)(ndesc + npayload) * JBLK);
	cm.commit_time_ns = (uint64_t)jnl_realtime_ns();
	cm.writer_gen = j->gen;
	jcommit_encode(j->c, &cm, j->base + (pos + ndesc + npayload) * JBLK,
		       stage + (ndesc + npayload) * JBLK);
}

/* Unpin the entries of a committed transaction. */
static void jnl_tx_release(struct jnl *j)
{
	struct mc_entry *e = j->tx_first;

	while (e != NULL) {
		struct mc_entry *next = e->tx_next;

		e->tx_next = NULL;
		e->dirty_tid = 0;
		mc_put(j->mc, e);
		e = next;
	}
	j->tx_first = NULL;
	j->tx_last = NULL;
	j->tx_n = 0;
	j->tx_bytes = 0;
	j->tx_order_data = false;
}

static int jnl_commit(struct jnl *j)
{
	uint64_t ndesc, npayload, total, pos, need;
	int err;

	if (j->err != 0) {
		return j->err;
	}
	if (j->tx_n == 0) {
		j->tx_order_data = false;
		return 0;
	}
	/* Self-fencing: a host whose lease has lapsed, or whose slot was
	 * taken over while it was frozen, writes no metadata: the journal
	 * aborts and the mount answers EIO (DESIGN 5.5). */
	if (j->v != NULL && j->v->ld != NULL) {
		err = lockd_check_lease(j->v->ld);
		if (err < 0) {
			goto out_abort;
		}
	}
	ndesc = jnl_div_up(j->tx_n, LUNFS_JTAGS_PER_DESC);
	npayload = jnl_div_up(j->tx_bytes, JBLK);
	total = ndesc + npayload + 1;
	if (total > j->ring_blocks) {
		err = -EFBIG; /* jnl_dirty keeps this from happening */
		goto out_abort;
	}
	/* The stage must exist before anything changes on disk. j->ios is
	 * indexed by descriptor slot, hence ndesc * 250. */
	err = jnl_stage_reserve(j, (size_t)total * JBLK, (size_t)ndesc * LUNFS_JTAGS_PER_DESC);
	if (err != 0) {
		goto out_abort;
	}
	if (j->used > j->ring_blocks / 2 || !jnl_place(j, total, &pos, &need)) {
		err = jnl_checkpoint(j, LUNFS_JOURNAL_DIRTY);
		if (err != 0) {
			return err;
		}
		if (!jnl_place(j, total, &pos, &need)) {
			err = -EFBIG; /* total <= ring_blocks fits an empty ring */
			goto out_abort;
		}
	}
	jnl_stage_build(j, pos, ndesc, npayload);
	if (j->tx_order_data) {
		err = dev_flush(j->dev);
		if (err != 0) {
			goto out_abort;
		}
	}
	err = dev_write(j->dev, j->stage, (size_t)total * JBLK, j->base + pos * JBLK);
	if (err != 0) {
		goto out_abort;
	}
	err = dev_flush(j->dev);
	if (err != 0) {
		goto out_abort;
	}
	/* Durable from here on. The ring state moves now so that a failed
	 * home write below still leaves it describing the disk. */
	j->used += need;
	j->head = pos + total;
	if (j->head == j->ring_end) {
		j->head = j->ring_first;
	}
	j->head_seq++;
	/* Home writes: ios were laid out per descriptor slot; compact them. */
	{
		uint64_t n = 0;

		for (uint64_t i = 0; i < ndesc; i++) {
			uint64_t in_desc = j->tx_n - i * LUNFS_JTAGS_PER_DESC;

			if (in_desc > LUNFS_JTAGS_PER_DESC) {
				in_desc = LUNFS_JTAGS_PER_DESC;
			}
			for (uint64_t t = 0; t < in_desc; t++) {
				j->ios[n++] = j->ios[i * LUNFS_JTAGS_PER_DESC + t];
			}
		}
		for (struct mc_entry *e = j->tx_first; e != NULL; e = e->tx_next) {
			e->home_pending++;
		}
		err = dev_submit(j->dev, j->ios, (unsigned)n);
		for (struct mc_entry *e = j->tx_first; e != NULL; e = e->tx_next) {
			e->home_pending--;
		}
	}
	if (err != 0) {
		/* The transaction is durable in the journal, and replay will
		 * put it home; but the disk is failing: stop here. */
		goto out_abort;
	}
	jnl_tx_release(j);
	return 0;

out_abort:
	jnl_abort(j, err);
	return err;
}

/* ---- the commit timer ------------------------------------------------------ */

static void jnl_timespec_after(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Sleep up to ms unless stopped; caller holds tlock. Returns tstop. */
static bool jnl_timer_sleep_locked(struct jnl *j, uint32_t ms)
{
	struct timespec ts;

	jnl_timespec_after(&ts, ms);
	while (!j->tstop) {
		if (pthread_cond_timedwait(&j->tcond, &j->tlock, &ts) == ETIMEDOUT) {
			break;
		}
	}
	return j->tstop;
}

static void *jnl_timer_main(void *arg)
{
	struct jnl *j = arg;

	pthread_mutex_lock(&j->tlock);
	while (!jnl_timer_sleep_locked(j, j->interval_ms)) {
		bool done = false;

		while (!done) {
			pthread_mutex_unlock(&j->tlock);
			/* trylock: jnl_close holds meta_lock while it joins us. */
			if (pthread_mutex_trylock(&j->v->meta_lock) == 0) {
				if (!j->h.open && j->err == 0) {
					(void)jnl_commit(j); /* an error aborts the journal */
				}
				pthread_mutex_unlock(&j->v->meta_lock);
				done = true;
			}
			pthread_mutex_lock(&j->tlock);
			if (!done && jnl_timer_sleep_locked(j, JNL_TIMER_RETRY_MS)) {
				done = true;
			}
		}
	}
	pthread_mutex_unlock(&j->tlock);
	return NULL;
}

static int jnl_timer_start(struct jnl *j)
{
	pthread_condattr_t ca;
	int err;

	err = -pthread_condattr_init(&ca);
	if (err != 0) {
		return err;
	}
	err = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (err == 0) {
		err = -pthread_cond_init(&j->tcond, &ca);
	}
	pthread_condattr_destroy(&ca);
	if (err != 0) {
		return err;
	}
	err = -pthread_mutex_init(&j->tlock, NULL);
	if (err != 0) {
		goto out_cond;
	}
	err = -pthread_create(&j->timer, NULL, jnl_timer_main, j);
	if (err != 0) {
		goto out_mutex;
	}
	j->timer_started = true;
	return 0;

out_mutex:
	pthread_mutex_destroy(&j->tlock);
out_cond:
	pthread_cond_destroy(&j->tcond);
	return err;
}

static void jnl_timer_stop(struct jnl *j)
{
	if (!j->timer_started) {
		return;
	}
	pthread_mutex_lock(&j->tlock);
	j->tstop = true;
	pthread_cond_broadcast(&j->tcond);
	pthread_mutex_unlock(&j->tlock);
	pthread_join(j->timer, NULL);
	pthread_mutex_destroy(&j->tlock);
	pthread_cond_destroy(&j->tcond);
	j->timer_started = false;
}

/* ---- the interface ---------------------------------------------------------- */

static void jnl_free(struct jnl *j)
{
	dev_buf_free(j->stage);
	free(j->ios);
	free(j);
}

int jnl_open(struct lunfs_vol *v, uint32_t slot, uint64_t owner_gen, struct jnl **out)
{
	struct jnl *j;
	void *blk = NULL;
	uint64_t applied = 0;
	bool torn;
	int err;

	*out = NULL;
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		return -ENOMEM;
	}
	j->v = v;
	j->dev = v->dev;
	j->sb = &v->sb;
	j->c = &v->codec;
	j->mc = v->mc;
	j->slot = slot;
	j->gen = owner_gen;
	j->h.j = j;
	j->interval_ms = v->opts.commit_interval_ms != 0 ? v->opts.commit_interval_ms
							 : JNL_COMMIT_INTERVAL_DEFAULT_MS;
	err = jnl_geometry(j->dev, j->sb, slot, &j->base);
	if (err != 0) {
		goto out_free;
	}
	err = jnl_replay(j->dev, j->sb, j->c, slot, &applied);
	if (err != 0) {
		goto out_free;
	}
	if (applied > 0 && j->mc != NULL) {
		/* Replay wrote behind the cache's back. */
		mc_drop_clean(j->mc);
	}
	blk = dev_buf_alloc(JBLK);
	if (blk == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	err = jnl_jsb_read(j->dev, j->sb, j->c, j->base, slot, blk, &j->jsb, &torn);
	if (err == -ENODATA || err == -ESTALE) {
		jsb_init(&j->jsb, (uint16_t)slot, j->sb->journal_size);
		err = 0;
	}
	if (err != 0) {
		goto out_blk;
	}
	j->ring_first = j->jsb.ring_first;
	j->ring_blocks = j->jsb.ring_blocks;
	j->ring_end = j->ring_first + j->ring_blocks;
	j->head = j->jsb.tail_block;
	j->tail = j->head;
	j->head_seq = j->jsb.tail_seq != 0 ? j->jsb.tail_seq : 1;
	/* DIRTY before the first transaction: a crash from now on is seen. */
	err = jnl_jsb_write(j, LUNFS_JOURNAL_DIRTY);
	if (err != 0) {
		goto out_blk;
	}
	err = jnl_timer_start(j);
	if (err != 0) {
		goto out_blk;
	}
	dev_buf_free(blk);
	*out = j;
	return 0;

out_blk:
	dev_buf_free(blk);
out_free:
	jnl_free(j);
	return err;
}

int jnl_close(struct jnl *j)
{
	int err;

	if (j == NULL) {
		return 0;
	}
	jnl_timer_stop(j);
	err = j->err;
	if (err == 0 && j->h.open) {
		err = -EBUSY; /* a caller bug: don't commit half an operation */
		jnl_abort(j, err);
	}
	if (err == 0) {
		err = jnl_commit(j);
	}
	if (err == 0) {
		err = jnl_checkpoint(j, LUNFS_JOURNAL_CLEAN);
	}
	/* After an abort the journal stays DIRTY on disk for replay, and the
	 * failed transaction's entries stay pinned in the mcache, which the
	 * caller destroys. */
	jnl_free(j);
	return err;
}

/* A fenced mount (vol_abandon): stop the timer and free, writing nothing.
 * The ring and the journal superblock stay as they are on disk: the
 * recoverer replays them, and our slot's journal may already belong to
 * another host. */
void jnl_abandon(struct jnl *j)
{
	if (j == NULL) {
		return;
	}
	jnl_timer_stop(j);
	jnl_free(j);
}

/* Before a lock that covers metadata leaves this host, nothing of what it
 * covers may stay in our ring: were we to die later, the recoverer's
 * replay would write those (by then old) images over the next holder's
 * changes. So commit, and checkpoint: the ring is empty afterwards. */
int jnl_flush_home(struct jnl *j)
{
	int err;

	if (j->h.open) {
		return -EBUSY;
	}
	if (j->err != 0) {
		return j->err;
	}
	err = jnl_commit(j);
	if (err == 0 && j->used > 0) {
		err = jnl_checkpoint(j, LUNFS_JOURNAL_DIRTY);
	} else if (err == 0) {
		/* Nothing in the ring: the home writes of earlier commits
		 * still want to be durable before someone else reads them. */
		err = dev_flush(j->dev);
	}
	return err;
}

int jnl_start(struct jnl *j, unsigned credits, struct jnl_handle **out)
{
	uint64_t cbytes = (uint64_t)credits * JBLK;
	int err;

	*out = NULL;
	if (j->err != 0) {
		return j->err;
	}
	if (j->h.open) {
		return -EBUSY;
	}
	if (jnl_tx_blocks(credits, cbytes) > j->ring_blocks) {
		return -E2BIG;
	}
	/* Commit first if this handle could push the compound transaction
	 * past a quarter of the ring. */
	if (j->tx_n > 0 && jnl_tx_blocks(j->tx_n + credits, j->tx_bytes + cbytes) > j->ring_blocks / 4) {
		err = jnl_commit(j);
		if (err != 0) {
			return err;
		}
	}
	j->h.credits = credits;
	j->h.open = true;
	j->h.ndirty = 0;
	j->h.read_errors_at_start = mc_read_errors(j->mc);
	*out = &j->h;
	return 0;
}

int jnl_dirty(struct jnl_handle *h, struct mc_entry *e)
{
	struct jnl *j = h->j;

	if (j->err != 0) {
		return j->err;
	}
	if (!h->open) {
		return -EINVAL;
	}
	h->ndirty++;
	if (e->dirty_tid == j->head_seq) {
		return 0; /* already in the running transaction */
	}
	if (e->dirty_tid != 0) {
		return -EINVAL;
	}
	/* A tag replay would refuse would end the log there: refuse it now. */
	if (!jnl_dest_ok(j->sb, j->dev, j->base, e->addr, e->len)) {
		return -EINVAL;
	}
	if (jnl_tx_blocks(j->tx_n + 1, j->tx_bytes + e->len) > j->ring_blocks) {
		return -ENOSPC;
	}
	mc_hold(j->mc, e);
	e->dirty_tid = j->head_seq;
	e->tx_next = NULL;
	if (j->tx_last != NULL) {
		j->tx_last->tx_next = e;
	} else {
		j->tx_first = e;
	}
	j->tx_last = e;
	j->tx_n++;
	j->tx_bytes += e->len;
	return 0;
}

uint64_t jnl_running_seq(struct jnl *j)
{
	return j->head_seq;
}

void jnl_order_data(struct jnl_handle *h)
{
	h->j->tx_order_data = true;
}

int jnl_stop(struct jnl_handle *h, bool sync)
{
	struct jnl *j = h->j;

	if (!h->open) {
		return -EINVAL;
	}
	h->open = false;
	if (j->err != 0) {
		return j->err;
	}
	/* A metadata read failed while this handle was changing things: the
	 * operation may have stopped half-way, with part of its changes made
	 * in the cache. Those must never commit, so the journal aborts (the
	 * volume answers EIO until it is remounted, and replay restores the
	 * last durable state), as ext4 does with errors=remount-ro. */
	if (h->ndirty > 0 && mc_read_errors(j->mc) != h->read_errors_at_start) {
		jnl_abort(j, -EIO);
		return j->err;
	}
	if (sync || jnl_tx_blocks(j->tx_n, j->tx_bytes) > j->ring_blocks / 4) {
		return jnl_commit(j);
	}
	return 0;
}

/* With nothing to commit this still flushes: fsync of a file whose data
 * was overwritten in place changes no metadata, yet must reach the disk.
 * That flush failing changes nothing in the journal, so it does not abort. */
int jnl_sync(struct jnl *j)
{
	if (j->h.open) {
		return -EBUSY;
	}
	if (j->err != 0) {
		return j->err;
	}
	if (j->tx_n == 0) {
		j->tx_order_data = false;
		return dev_flush(j->dev);
	}
	return jnl_commit(j);
}
