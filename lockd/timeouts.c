/*
 * Every duration of the lease protocol, derived in one place from the
 * three settings a host runs with (the superblock's, copied into its
 * heartbeat slot so that observers judge it by them): docs/DESIGN.md
 * section 3, docs/FORMAT.md section 3.
 *
 *   I  hb_interval    renew this often
 *   D  io_deadline    an I/O not completed by then has failed
 *   T  dead_timeout   an observer that saw the slot unchanged for T calls it dead
 *   F  = T - D - I    fence time: a host whose last good renewal was
 *                     SUBMITTED more than F ago submits no more writes
 *   inequality T >= 3I + 2D, hence F >= 2I + D: two renewal attempts, each
 *   with a full I/O deadline, before a host must fence.
 *
 * Failure timeline with the defaults (I = 1 s, D = 2 s, T = 8 s), host A's
 * disk path fails right after a good renewal submitted at t = 0:
 *   t = 1, 2  A's renewals are submitted and fail (or miss D)
 *   t = 5     F: lockd_check_lease starts returning -EIO; A submits nothing
 *   t = 7     F + D: every write A submitted before F has landed or failed
 *   t = 8..9  observers have seen A's seq unchanged for T (plus their own
 *             sampling interval): A is dead, its locks may be taken.
 * T > F + D is what makes taking the locks safe; the extra I absorbs the
 * observer's sampling.
 *
 * Joining with a delta lease (PAXOS volumes, lockd/hb.c hb_delta_claim):
 *   C  = D / 8        claim window: a claimer submits its claim write at
 *                     most C after it submitted the read of the slot it
 *                     decided on (else it drops the attempt, writing nothing)
 *   W  = (C + D) * (1 + 1/1024)   join wait: after our claim write and
 *                     its flush have completed, wait W, then read the slot
 *                     back; still ours -> we own it.
 * Why W is enough. Let t be when our claim write completed; it has landed
 * by t. A rival's claim can only overwrite ours if the rival's read saw the
 * slot as it was before any claim landed (a read that sees a claim sees an
 * image other than the one it decided on, and drops the attempt; a claim
 * never restores an earlier image, its generation is new). That read was
 * therefore submitted before t; the rival submitted its write at most C
 * after submitting the read (< t + C), and that write, in flight for at
 * most D, has landed or failed by t + C + D. Our read-back is submitted at
 * t + W >= t + C + D, so it sees every rival claim that will ever land: the
 * last writer is the only claimer that reads its own claim back, and two
 * hosts can never both own a slot. The 1/1024 covers the rate difference
 * of two hosts' clocks (C is timed on the rival's, W on ours; NTP slews by
 * at most 500 ppm). Nothing here compares timestamps of two hosts.
 * Minimal: any W < C + D admits a rival whose read just preceded our
 * landing and whose write takes the full C + D, and lands after we have
 * read back. C trades join time against how slow a read may be before a
 * claim attempt is dropped and retried: with the defaults (D = 2 s)
 * C = 250 ms, far above an idle disk's read (~0.1 ms), and W = 2.25 s,
 * which keeps a join on an idle volume under 3 s (the old wait, 3 D =
 * 6 s, counted C as a whole D and started it at our submit, not at our
 * completion). All claimers must use the same C and D: they are the
 * superblock's, which every host joins with (a host's own timing applies
 * from its slot on, not to the claim). Not covered by timing: a claimer
 * frozen between its elapsed-time check and the submission of its write,
 * whose claim can then land arbitrarily late (the check-then-act case of
 * docs/DESIGN.md 5.5; sanlock's delta leases share it).
 *
 * Clocks: our own lease is judged on CLOCK_BOOTTIME, which keeps counting
 * through a suspend (a resumed host must assume its lease is gone). Other
 * hosts are timed on CLOCK_MONOTONIC (lockd/monitor.c), which stops during
 * our own suspend, so waking up never makes every other host look dead. The
 * clock is injectable (struct lockd_clock) so tests expire leases without
 * sleeping. Timestamps of different hosts are never compared.
 */
#include <errno.h>
#include <time.h>

#include "lockd_int.h"

#define NS_PER_MS 1000000ull

int lockd_timeouts_compute(uint32_t hb_interval_ms, uint32_t dead_timeout_ms,
			   uint32_t io_deadline_ms, struct lockd_timeouts *out)
{
	uint64_t i = hb_interval_ms, d = io_deadline_ms, t = dead_timeout_ms;

	if (i < LUNFS_HB_INTERVAL_MIN_MS || i > LUNFS_TIMING_MAX_MS || d < 1 ||
	    d > LUNFS_TIMING_MAX_MS || t > LUNFS_TIMING_MAX_MS || t < 3 * i + 2 * d) {
		return -EINVAL;
	}
	out->interval_ns = i * NS_PER_MS;
	out->io_deadline_ns = d * NS_PER_MS;
	out->dead_ns = t * NS_PER_MS;
	out->fence_ns = (t - d - i) * NS_PER_MS;
	/* Twice the interval: a host renewing on schedule moves at least
	 * once in that window even if one beat was late by an interval. */
	out->watch_ns = 2 * i * NS_PER_MS;
	/* The delta-lease join (see the top of this file). */
	out->claim_ns = d * NS_PER_MS / 8;
	out->join_wait_ns = out->claim_ns + out->io_deadline_ns;
	out->join_wait_ns += (out->join_wait_ns + 1023) / 1024; /* rounded up: "at least" */
	return 0;
}

static uint64_t lockd_clock_boottime(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t lockd_clock_mono(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void lockd_clock_nanosleep(void *arg, uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };

	(void)arg;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

void lockd_clock_default(struct lockd_clock *out)
{
	out->now_ns = lockd_clock_boottime;
	out->sleep_ns = lockd_clock_nanosleep;
	out->arg = NULL;
}

void lockd_clock_monotonic(struct lockd_clock *out)
{
	out->now_ns = lockd_clock_mono;
	out->sleep_ns = lockd_clock_nanosleep;
	out->arg = NULL;
}

uint64_t lockd_now(const struct lunfs_lockd *ld)
{
	return ld->clock.now_ns(ld->clock.arg);
}
