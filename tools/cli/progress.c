/*
 * Progress bar and small formatting helpers for the lunfs programs.
 *
 * The bar is deliberately lazy: nothing is drawn during the first second, so
 * quick jobs and scripts (stderr not a terminal) see no output at all, and
 * redraws are throttled so that a caller may report progress as often as it
 * likes without flooding the terminal.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define PROGRESS_DELAY_MS 1000u  /* show nothing for quick jobs */
#define PROGRESS_REDRAW_MS 200u  /* at most 5 redraws a second */
#define PROGRESS_BAR_WIDTH 24

static uint64_t ts_ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - start->tv_sec) * 1000u +
	       (uint64_t)((now.tv_nsec - start->tv_nsec) / 1000000L);
}

void cli_progress_init(struct cli_progress *p, const char *what, bool quiet)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->enabled = !quiet && isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &p->start);
}

uint64_t cli_progress_elapsed_ms(const struct cli_progress *p)
{
	return ts_ms_since(&p->start);
}

static void progress_draw(struct cli_progress *p, uint64_t done, uint64_t total, uint64_t ms)
{
	char sdone[CLI_SIZE_STRLEN], stotal[CLI_SIZE_STRLEN], srate[CLI_SIZE_STRLEN];
	char bar[PROGRESS_BAR_WIDTH + 1];
	unsigned pct, fill;
	uint64_t rate;
	int len;

	if (done > total) {
		done = total;
	}
	/* Divide first where needed so that done * 100 cannot overflow. */
	pct = total == 0 ? 100u
	      : (unsigned)(total > UINT64_MAX / 100u ? done / (total / 100u) : done * 100u / total);
	if (pct > 100u) {
		pct = 100u;
	}
	fill = pct * PROGRESS_BAR_WIDTH / 100u;
	memset(bar, '#', fill);
	memset(bar + fill, '.', PROGRESS_BAR_WIDTH - fill);
	bar[PROGRESS_BAR_WIDTH] = '\0';
	rate = ms == 0 ? 0 : (done / ms) * 1000u + (done % ms) * 1000u / ms;
	len = fprintf(stderr, "\r%s: %3u%% [%s] %s / %s  %s/s", p->what, pct, bar,
		      cli_fmt_size(done, sdone, sizeof(sdone)),
		      cli_fmt_size(total, stotal, sizeof(stotal)),
		      cli_fmt_size(rate, srate, sizeof(srate)));
	/* A shorter line than the last one leaves debris: blank it out. */
	if (len > 0 && len < p->last_len) {
		fprintf(stderr, "%*s", p->last_len - len, "");
	}
	if (len > 0) {
		p->last_len = len;
	}
	fflush(stderr);
	p->shown = true;
	p->last_draw_ms = ms;
}

void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total)
{
	uint64_t ms;

	if (!p->enabled) {
		return;
	}
	ms = ts_ms_since(&p->start);
	if (ms < PROGRESS_DELAY_MS) {
		return;
	}
	if (p->shown && ms - p->last_draw_ms < PROGRESS_REDRAW_MS && done < total) {
		return;
	}
	progress_draw(p, done, total, ms);
}

void cli_progress_cb(uint64_t done, uint64_t total, void *arg)
{
	cli_progress_update(arg, done, total);
}

void cli_progress_finish(struct cli_progress *p, bool ok)
{
	if (!p->shown) {
		return;
	}
	if (ok) {
		fputc('\n', stderr);
	} else {
		fprintf(stderr, "\r%*s\r", p->last_len, "");
	}
	fflush(stderr);
	p->shown = false;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	static const char units[] = "KMGTPE";
	uint64_t v = 0;
	const char *c = s;
	const char *u;
	unsigned shift = 0;

	if (s == NULL || *c < '0' || *c > '9') {
		return -EINVAL;
	}
	for (; *c >= '0' && *c <= '9'; c++) {
		unsigned d = (unsigned)(*c - '0');

		if (v > (UINT64_MAX - d) / 10u) {
			return -ERANGE;
		}
		v = v * 10u + d;
	}
	if (*c != '\0') {
		u = strchr(units, *c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
		if (u == NULL) {
			return -EINVAL;
		}
		shift = 10u * (unsigned)(u - units + 1);
		c++;
		if (strcmp(c, "iB") == 0 || strcmp(c, "B") == 0 || strcmp(c, "ib") == 0 ||
		    strcmp(c, "b") == 0) {
			c += strlen(c);
		}
		if (*c != '\0') {
			return -EINVAL;
		}
		if (v > (UINT64_MAX >> shift)) {
			return -ERANGE;
		}
		v <<= shift;
	}
	*out = v;
	return 0;
}

int cli_parse_u32(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	const char *c = s;

	if (s == NULL || *c < '0' || *c > '9') {
		return -EINVAL;
	}
	for (; *c >= '0' && *c <= '9'; c++) {
		v = v * 10u + (unsigned)(*c - '0');
		if (v > UINT32_MAX) {
			return -ERANGE;
		}
	}
	if (*c != '\0') {
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

char *cli_fmt_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned i = 0;
	uint64_t scale = 1024u;

	if (bytes < 1024u) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return buf;
	}
	/* Pick the largest unit that keeps the value at least 1.0, in integer
	 * arithmetic so that 2^64 - 1 does not lose precision. */
	while (i + 1 < sizeof(units) / sizeof(units[0]) && bytes / scale >= 1024u) {
		scale *= 1024u;
		i++;
	}
	{
		uint64_t whole = bytes / scale;
		/* scale <= 2^60 and the remainder is below it, so times ten
		 * still fits in 64 bits. Truncated: never shows 1024.0 KiB. */
		uint64_t tenths = (bytes % scale) * 10u / scale;

		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[i]);
	}
	return buf;
}

char *cli_fmt_uuid(const uint8_t uuid[16], char *buf, size_t len)
{
	snprintf(buf, len,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 uuid[0], uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7],
		 uuid[8], uuid[9], uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
	return buf;
}
