/*
 * Heartbeat region scans for tools that are not (yet) members of the
 * cluster: mkfs asks "is this volume in use", inspect lists the slots.
 *
 * Liveness is never judged from the timestamps that hosts write (their
 * clocks are not ours): a host is live only if we see its seq move while
 * we watch, on our own clock. We watch for twice the longest interval any
 * claimed slot advertises, so a host renewing on schedule moves at least
 * once, even if one beat was late by up to an interval.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lunfs/heartbeat.h"
#include "lunfs/probe.h"
#include "lockd_int.h"

void hb_scan_decode(const struct lunfs_super *sb, const struct lunfs_codec *c, const uint8_t *buf,
		    struct lunfs_hb_slot *slots, int *status)
{
	for (uint32_t i = 0; i < sb->max_hosts; i++) {
		uint64_t addr = layout_hb_addr(sb, i);

		status[i] = hb_decode(c, buf + (uint64_t)i * sb->sector_size, addr, &slots[i]);
		if (status[i] != 0) {
			memset(&slots[i], 0, sizeof(slots[i]));
		}
	}
}

int hb_scan_read(struct lunfs_dev *dev, const struct lunfs_super *sb,
		 const struct lunfs_codec *c, struct lunfs_hb_slot *slots, int *status)
{
	uint64_t len = (uint64_t)sb->max_hosts * sb->sector_size;
	uint8_t *buf = dev_buf_alloc(len);
	int err;

	if (buf == NULL) {
		return -ENOMEM;
	}
	err = dev_read(dev, buf, len, sb->regions[LUNFS_REGION_HEARTBEAT].offset);
	if (err < 0) {
		goto out;
	}
	hb_scan_decode(sb, c, buf, slots, status);
	err = 0;
out:
	dev_buf_free(buf);
	return err;
}

static bool hb_slot_claimed(const struct lunfs_hb_slot *s, int status)
{
	return status == 0 && s->state != LUNFS_HB_FREE;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

int hb_scan_live(struct lunfs_dev *dev, const struct lunfs_super *sb,
		 const struct lunfs_codec *c, uint32_t max_wait_ms, bool *live,
		 uint32_t *claimed)
{
	uint32_t n = sb->max_hosts, nclaimed = 0, wait_ms = 0;
	struct lunfs_hb_slot *a = calloc(n, sizeof(*a));
	struct lunfs_hb_slot *b = calloc(n, sizeof(*b));
	int *sa = calloc(n, sizeof(*sa));
	int *sbs = calloc(n, sizeof(*sbs));
	int err, nlive = 0;

	if (a == NULL || b == NULL || sa == NULL || sbs == NULL) {
		err = -ENOMEM;
		goto out;
	}
	if (live != NULL) {
		memset(live, 0, n * sizeof(*live));
	}
	err = hb_scan_read(dev, sb, c, a, sa);
	if (err < 0) {
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (hb_slot_claimed(&a[i], sa[i])) {
			nclaimed++;
			if (a[i].hb_interval_ms > wait_ms / 2) {
				wait_ms = 2 * a[i].hb_interval_ms;
			}
		}
	}
	if (nclaimed == 0) {
		err = 0;
		goto out;
	}
	if (wait_ms > max_wait_ms) {
		wait_ms = max_wait_ms;
	}
	sleep_ms(wait_ms);
	err = hb_scan_read(dev, sb, c, b, sbs);
	if (err < 0) {
		goto out;
	}
	for (uint32_t i = 0; i < n; i++) {
		bool moved;

		if (!hb_slot_claimed(&a[i], sa[i]) && !hb_slot_claimed(&b[i], sbs[i])) {
			continue;
		}
		/* A slot that changed in any way (seq, generation, or from
		 * free to claimed) has a writer. */
		moved = sa[i] != sbs[i] || a[i].seq != b[i].seq ||
			a[i].generation != b[i].generation || a[i].state != b[i].state;
		if (moved) {
			nlive++;
			if (live != NULL) {
				live[i] = true;
			}
		}
	}
	err = 0;
out:
	if (claimed != NULL) {
		*claimed = nclaimed;
	}
	free(a);
	free(b);
	free(sa);
	free(sbs);
	return err < 0 ? err : nlive;
}
