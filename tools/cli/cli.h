/*
 * Helpers shared by the lunfs programs (mkfs.lunfs, lunfs, fsck.lunfs):
 * a progress bar, size parsing and formatting, UUID formatting. They are
 * for the user interface only; the library (dev/ format/ lockd/ fs/) never
 * calls them.
 *
 * No mutable globals: a progress bar's state lives in struct cli_progress,
 * owned by the caller.
 */
#ifndef LUNFS_CLI_H
#define LUNFS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The release the programs report with -V/--version. */
#ifndef LUNFS_VERSION
#define LUNFS_VERSION "0.1.0"
#endif

/*
 * A progress bar on stderr. It appears only when stderr is a terminal, the
 * caller is not quiet, and the work has run for more than one second (a
 * quick job prints nothing). It redraws at most a few times a second:
 *
 *   Formatting:  42% [#########.............]  1.2 GiB / 2.9 GiB  310.4 MiB/s
 *
 * Single-threaded: one bar is updated by one thread.
 */
struct cli_progress {
	const char *what;        /* label shown before the bar; not copied */
	bool enabled;            /* stderr is a tty and not quiet */
	bool shown;              /* a line is on the screen (needs finishing) */
	struct timespec start;   /* CLOCK_MONOTONIC at init */
	uint64_t last_draw_ms;   /* ms since start of the last redraw */
	int last_len;            /* characters of the last line, to blank it */
};

void cli_progress_init(struct cli_progress *p, const char *what, bool quiet);
void cli_progress_update(struct cli_progress *p, uint64_t done, uint64_t total);
/* Adapter for library callbacks: `arg` is a struct cli_progress *. */
void cli_progress_cb(uint64_t done, uint64_t total, void *arg);
/* Ends the line with a newline if a bar was shown (drawing it at its last
 * state); with `ok` false the bar is erased instead, so that the error
 * message that follows starts on a clean line. */
void cli_progress_finish(struct cli_progress *p, bool ok);
/* Milliseconds since cli_progress_init (for "done in 1.3 s" summaries). */
uint64_t cli_progress_elapsed_ms(const struct cli_progress *p);

/* Parse a byte count: digits, optionally followed by K, M, G, T, P or E
 * (powers of 1024, either case), optionally followed by "iB" or "B":
 * "4096", "64K", "1M", "64T", "16MiB". Returns 0, -EINVAL for malformed
 * input, -ERANGE when it does not fit in 64 bits. */
int cli_parse_size(const char *s, uint64_t *out);
/* Parse a decimal unsigned 32-bit number (no suffix). 0, -EINVAL, -ERANGE. */
int cli_parse_u32(const char *s, uint32_t *out);

/* "512 B", "4.0 KiB", "64.0 TiB": one decimal above bytes. Returns buf. */
#define CLI_SIZE_STRLEN 16
char *cli_fmt_size(uint64_t bytes, char *buf, size_t len);
/* Lower-case canonical UUID text, 36 characters. Returns buf. */
#define CLI_UUID_STRLEN 37
char *cli_fmt_uuid(const uint8_t uuid[16], char *buf, size_t len);

#endif
