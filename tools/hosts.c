/*
 * `lunfs hosts [--json] [--all] [--no-wait] [--confirm-dead] DEVICE|MOUNTPOINT`:
 * the heartbeat slots, as recorded and as observed from here.
 *
 * The recorded state is what each slot's owner (or its recoverer) wrote.
 * The observed state comes from a lockd monitor (lockd/monitor.c), the
 * same code a mounted host uses to judge the others: the region is read,
 * and read again after twice the longest interval a claimed slot
 * advertises (as hb_scan_live does). A slot that changed meanwhile is
 * live; one that did not is "silent": not renewing while we watched, but
 * not dead either, because a host is dead only when its slot has stayed
 * unchanged for its OWN dead timeout on our clock. --confirm-dead keeps
 * watching silent slots until each has either moved or been watched for
 * its whole timeout, and then says "dead". The age shown is how long the
 * slot has been seen unchanged here; the timestamps hosts write are shown
 * for people only and never used to judge.
 *
 * Read-only: never writes to the volume.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "commands.h"
#include "lunfs/heartbeat.h"
#include "lunfs/lockd.h"
#include "view.h"

/* --confirm-dead never watches longer than this. */
#define HOSTS_WATCH_MAX_MS 600000u

struct hosts_opts {
	bool json, all, no_wait, confirm_dead;
};

static const char *hb_state_str(uint8_t s)
{
	switch (s) {
	case LUNFS_HB_FREE:
		return "free";
	case LUNFS_HB_JOINING:
		return "joining";
	case LUNFS_HB_LIVE:
		return "live";
	case LUNFS_HB_RECOVERING:
		return "recovering";
	case LUNFS_HB_LEAVING:
		return "leaving";
	default:
		return "unknown";
	}
}

static bool hosts_claimed(const struct lockd_host_info *h)
{
	return h->status == 0 && h->rec.state != LUNFS_HB_FREE;
}

static const char *hosts_recorded_str(const struct lockd_host_info *h)
{
	if (h->status == 0) {
		return hb_state_str(h->rec.state);
	}
	return h->status == -EUCLEAN ? "corrupt" : "free";
}

/* The observed state in words (see the top of the file). */
static const char *hosts_observed_str(const struct lockd_host_info *h, bool watched)
{
	if (h->status != 0) {
		return h->status == -EUCLEAN ? "corrupt" : "free";
	}
	if (h->rec.state == LUNFS_HB_FREE) {
		return "free";
	}
	if (!watched) {
		return "unobserved";
	}
	if (h->state == LOCKD_HOST_DEAD) {
		return "dead";
	}
	if (h->changes == 0) {
		return "silent";
	}
	return lockd_host_state_name(h->state);
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* Watch until the observation rule is met. */
static int hosts_observe(struct lockd_monitor *m, uint32_t n, struct lockd_host_info *info,
			 const struct hosts_opts *o, uint32_t *observed_ms)
{
	uint32_t wait_ms = 0, step_ms = UINT32_MAX, waited = 0;
	int err;

	*observed_ms = 0;
	err = lockd_monitor_read(m);
	if (err < 0) {
		return err;
	}
	lockd_monitor_snapshot(m, info);
	if (o->no_wait) {
		return 0;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (hosts_claimed(&info[i])) {
			if (info[i].rec.hb_interval_ms > wait_ms / 2) {
				wait_ms = 2 * info[i].rec.hb_interval_ms;
			}
			if (info[i].rec.hb_interval_ms < step_ms) {
				step_ms = info[i].rec.hb_interval_ms;
			}
		}
	}
	if (wait_ms == 0) {
		return 0;
	}
	/* Read every shortest interval: a slot is judged by reads only. */
	while (waited < wait_ms) {
		sleep_ms(step_ms);
		waited += step_ms;
		err = lockd_monitor_read(m);
		if (err < 0) {
			return err;
		}
	}
	lockd_monitor_snapshot(m, info);
	while (o->confirm_dead && waited < HOSTS_WATCH_MAX_MS) {
		bool pending = false;

		for (uint32_t i = 0; i < n; i++) {
			if (hosts_claimed(&info[i]) && info[i].changes == 0 &&
			    info[i].state != LOCKD_HOST_DEAD && info[i].state != LOCKD_HOST_RECOVERING) {
				pending = true;
			}
		}
		if (!pending) {
			break;
		}
		sleep_ms(step_ms);
		waited += step_ms;
		err = lockd_monitor_read(m);
		if (err < 0) {
			return err;
		}
		lockd_monitor_snapshot(m, info);
	}
	*observed_ms = waited;
	return 0;
}

static void hosts_json(const struct tool_volume *v, const struct lockd_host_info *info,
		       const struct hosts_opts *o, uint32_t observed_ms, bool watched)
{
	struct json_object *root = json_object_new_object();
	struct json_object *arr = json_object_new_array();
	char uuid[CLI_UUID_STRLEN], name[TOOL_SAFE_STR(64)];

	view_j_str(root, "device", v->path);
	view_j_u64(root, "max_hosts", v->sb.max_hosts);
	view_j_u64(root, "observed_ms", observed_ms);
	for (uint32_t i = 0; i < v->sb.max_hosts && arr != NULL; i++) {
		const struct lockd_host_info *h = &info[i];
		struct json_object *e, *reqs;

		if (!o->all && !hosts_claimed(h)) {
			continue;
		}
		e = view_j_push_obj(arr);
		view_j_u64(e, "slot", i);
		view_j_str(e, "recorded", hosts_recorded_str(h));
		view_j_str(e, "observed", hosts_observed_str(h, watched));
		if (h->status != 0) {
			continue;
		}
		view_j_str(e, "name", tool_str_safe(h->rec.host_name, name, sizeof(name)));
		view_j_str(e, "uuid", cli_fmt_uuid(h->rec.host_uuid, uuid, sizeof(uuid)));
		view_j_u64(e, "generation", h->rec.generation);
		view_j_u64(e, "seq", h->rec.seq);
		view_j_u64(e, "age_ms", h->age_ms);
		view_j_u64(e, "changes", h->changes);
		view_j_u64(e, "pid", h->rec.pid);
		view_j_u64(e, "hb_interval_ms", h->rec.hb_interval_ms);
		view_j_u64(e, "dead_timeout_ms", h->rec.dead_timeout_ms);
		view_j_u64(e, "io_deadline_ms", h->rec.io_deadline_ms);
		view_j_time(e, "mount_time", h->rec.mount_time_ns);
		view_j_time(e, "beat_time", h->rec.beat_time_ns);
		if (h->rec.recoverer_slot != 0) {
			struct json_object *r = json_object_new_object();

			view_j_u64(r, "slot", h->rec.recoverer_slot - 1u);
			view_j_u64(r, "generation", h->rec.recoverer_gen);
			view_j_put(e, "recoverer", r);
		} else {
			view_j_null(e, "recoverer");
		}
		reqs = json_object_new_array();
		for (unsigned q = 0; q < LUNFS_HB_REQUESTS && reqs != NULL; q++) {
			const struct lunfs_hb_request *rq = &h->rec.requests[q];
			struct json_object *r;

			if (rq->target_slot == 0) {
				continue;
			}
			r = view_j_push_obj(reqs);
			view_j_u64(r, "target_slot", rq->target_slot - 1u);
			view_j_u64(r, "lock_addr", rq->lock_addr);
			view_j_u64(r, "mode", rq->mode);
			view_j_u64(r, "serial", rq->serial);
		}
		view_j_put(e, "requests", reqs);
	}
	view_j_put(root, "hosts", arr);
	view_j_print(root);
	json_object_put(root);
}

static void hosts_print(const struct tool_volume *v, const struct lockd_host_info *info,
			const struct hosts_opts *o, uint32_t observed_ms, bool watched)
{
	char uuid[CLI_UUID_STRLEN], name[TOOL_SAFE_STR(64)], timing[48];
	unsigned shown = 0;

	printf("%s: %u host slots; ", v->path, v->sb.max_hosts);
	if (watched) {
		printf("observed for %.1f s from here\n", observed_ms / 1000.0);
	} else {
		printf("not observed (--no-wait): liveness unknown\n");
	}
	printf("%-4s  %-16s  %-36s  %-10s  %-10s  %6s  %10s  %9s  %7s  %s\n", "SLOT", "NAME", "UUID",
	       "RECORDED", "OBSERVED", "GEN", "SEQ", "AGE", "PID", "TIMING I/T/D ms");
	for (uint32_t i = 0; i < v->sb.max_hosts; i++) {
		const struct lockd_host_info *h = &info[i];
		char age[24];

		if (!o->all && !hosts_claimed(h)) {
			continue;
		}
		shown++;
		if (h->status != 0) {
			printf("%-4u  %-16s  %-36s  %-10s  %-10s\n", i, "-", "-", hosts_recorded_str(h),
			       hosts_observed_str(h, watched));
			continue;
		}
		if (watched) {
			snprintf(age, sizeof(age), "%.1f s", h->age_ms / 1000.0);
		} else {
			snprintf(age, sizeof(age), "-");
		}
		snprintf(timing, sizeof(timing), "%u/%u/%u", h->rec.hb_interval_ms, h->rec.dead_timeout_ms,
			 h->rec.io_deadline_ms);
		printf("%-4u  %-16s  %-36s  %-10s  %-10s  %6" PRIu64 "  %10" PRIu64 "  %9s  %7u  %s", i,
		       tool_str_safe(h->rec.host_name, name, sizeof(name)),
		       cli_fmt_uuid(h->rec.host_uuid, uuid, sizeof(uuid)), hosts_recorded_str(h),
		       hosts_observed_str(h, watched), h->rec.generation, h->rec.seq, age, h->rec.pid, timing);
		if (h->rec.recoverer_slot != 0) {
			printf("  (recoverer: slot %u gen %" PRIu64 ")", h->rec.recoverer_slot - 1u,
			       h->rec.recoverer_gen);
		}
		printf("\n");
	}
	if (shown == 0) {
		printf("(no host has the volume mounted)\n");
	}
}

int cmd_hosts(const struct tool_cmd *cmd, int argc, char **argv)
{
	struct hosts_opts o = { 0 };
	const struct tool_flag flags[] = {
		{ "json", &o.json },
		{ "all", &o.all },
		{ "no-wait", &o.no_wait },
		{ "confirm-dead", &o.confirm_dead },
		{ NULL, NULL },
	};
	struct lockd_host_info *info = NULL;
	struct lockd_monitor *m = NULL;
	struct tool_volume v;
	char dev[PATH_MAX];
	uint32_t observed_ms = 0;
	int err, ret;

	ret = tool_flags_parse(cmd, argc, argv, "h", flags);
	if (ret != TOOL_FLAGS_GO_ON) {
		return ret;
	}
	ret = TOOL_EXIT_ERROR;
	if (optind != argc - 1) {
		return tool_usage_error(cmd, optind >= argc ? "missing DEVICE|MOUNTPOINT" : "too many arguments");
	}
	if (o.no_wait && o.confirm_dead) {
		return tool_usage_error(cmd, "--no-wait and --confirm-dead exclude each other");
	}
	if (view_device_resolve(cmd->name, argv[optind], dev, sizeof(dev)) < 0) {
		return TOOL_EXIT_ERROR;
	}
	if (tool_volume_open(cmd->name, dev, &v) < 0) {
		return TOOL_EXIT_ERROR;
	}
	info = calloc(v.sb.max_hosts, sizeof(*info));
	if (info == NULL) {
		tool_err(cmd->name, "out of memory");
		goto out;
	}
	err = lockd_monitor_open(v.dev, &v.sb, &v.codec, NULL, &m);
	if (err == 0) {
		err = hosts_observe(m, v.sb.max_hosts, info, &o, &observed_ms);
	}
	if (err < 0) {
		tool_err(cmd->name, "%s: cannot read the heartbeat region: %s", dev, strerror(-err));
		goto out;
	}
	if (o.json) {
		hosts_json(&v, info, &o, observed_ms, !o.no_wait);
	} else {
		hosts_print(&v, info, &o, observed_ms, !o.no_wait);
	}
	ret = TOOL_EXIT_OK;
out:
	lockd_monitor_close(m);
	free(info);
	tool_volume_close(&v);
	return ret;
}
