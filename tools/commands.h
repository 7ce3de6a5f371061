/*
 * The `lunfs` command: its subcommands and the helpers they share.
 *
 * tools/lunfs.c holds the command table and dispatches; each subcommand
 * lives in its own file (tools/inspect.c, ...) and exports one handler.
 * tools/common.c has what several subcommands need: parsing flag options,
 * opening a volume read-only with clear messages, and making on-disk
 * strings and times safe to print. Like the rest of tools/, this is user interface over the
 * library; nothing in dev/ format/ lockd/ fs/ calls it.
 */
#ifndef LUNFS_TOOLS_COMMANDS_H
#define LUNFS_TOOLS_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/probe.h"

/* Exit codes of every lunfs command. A crash (signal) is always a bug. */
enum tool_exit {
	TOOL_EXIT_OK = 0,
	TOOL_EXIT_ERROR = 1, /* the command could not do its work */
	TOOL_EXIT_USAGE = 2, /* bad command line */
};

/* One entry of the command table (tools/lunfs.c). */
struct tool_cmd {
	const char *name;     /* "inspect" */
	const char *summary;  /* one line for `lunfs help` */
	const char *synopsis; /* arguments after the name: "[--json] DEVICE" */
	const char *help;     /* description and options, for `lunfs help NAME` */
	/* argv[0] is the command name; getopt may be used (optind is 1 on
	 * entry). Returns an enum tool_exit value. */
	int (*run)(const struct tool_cmd *cmd, int argc, char **argv);
};

/* Handlers. */
int cmd_inspect(const struct tool_cmd *cmd, int argc, char **argv);
int cmd_mount(const struct tool_cmd *cmd, int argc, char **argv);   /* tools/mount.c */
int cmd_hosts(const struct tool_cmd *cmd, int argc, char **argv);   /* tools/hosts.c */
int cmd_locks(const struct tool_cmd *cmd, int argc, char **argv);   /* tools/locks.c */
int cmd_snapshot(const struct tool_cmd *cmd, int argc, char **argv); /* tools/snapshot.c */
int cmd_clone(const struct tool_cmd *cmd, int argc, char **argv);   /* tools/clone.c */
int cmd_du(const struct tool_cmd *cmd, int argc, char **argv);      /* tools/du.c */
int cmd_df(const struct tool_cmd *cmd, int argc, char **argv);      /* tools/df.c */

/* --- tools/common.c -------------------------------------------------------- */

/* Full help of a command on stdout (`lunfs help CMD`, `lunfs CMD --help`). */
void tool_help(const struct tool_cmd *cmd);
/* "lunfs CMD: <message>", the synopsis and a pointer to the help, on
 * stderr. Returns TOOL_EXIT_USAGE, so a handler can `return` it. */
int tool_usage_error(const struct tool_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "lunfs CMD: <message>" on stderr. */
void tool_err(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An option without an argument: --NAME sets *set. */
struct tool_flag {
	const char *name;
	bool *set;
};

#define TOOL_FLAGS_MAX 8
/* tool_flags_parse: no exit yet, the operands start at optind. */
#define TOOL_FLAGS_GO_ON (-1)

/*
 * The options of a command that has only flags (at most TOOL_FLAGS_MAX,
 * the table ended by a NULL name) and -h/--help: getopt_long from optind
 * with `shortopts`, "h", or "+h" to stop at the first operand (a verb that
 * has options of its own after it). Returns TOOL_FLAGS_GO_ON, or what the
 * handler returns now: TOOL_EXIT_OK once the help is printed,
 * TOOL_EXIT_USAGE after "unknown option" (tool_usage_error).
 */
int tool_flags_parse(const struct tool_cmd *cmd, int argc, char **argv, const char *shortopts,
		     const struct tool_flag *flags);

/* A volume opened read-only by a tool. */
struct tool_volume {
	const char *path;
	struct lunfs_dev *dev;
	struct lunfs_super sb;
	/* Codec for reading records. It never checks HMACs: a read-only tool
	 * may show an HMAC volume without knowing the secret (format/frame.c),
	 * so records of such a volume are checked by crc32c only. */
	struct lunfs_codec codec;
	enum lunfs_sb_copy copy;      /* which superblock copy was used */
	int primary_err;              /* the primary copy's own result */
	char primary_why[40];         /* backup used: what is wrong with the primary */
	uint32_t unknown_incompat;    /* incompat feature bits this build lacks */
};

/* Open `path` read-only (compare-and-write never used) and read its
 * superblock. On failure, explains why on stderr as "lunfs CMD: PATH: ..."
 * (not a lunfs volume, corrupt, newer format, ...) and returns the negative
 * errno; on success the caller owns v->dev (tool_volume_close). */
int tool_volume_open(const char *cmd, const char *path, struct tool_volume *v);
void tool_volume_close(struct tool_volume *v);

/* Short words for the results of a decoder (include/lunfs/format.h):
 * "ok", "empty", "stale", "corrupt", or strerror's text. */
const char *tool_decode_str(int err);

/*
 * Copy a string that came from the disk (label, host name) so that it is
 * safe to print and valid UTF-8 for JSON: valid UTF-8 sequences other than
 * control characters are kept, every other byte becomes "\xNN". `out` must
 * have room for 4 * strlen(in) + 1 bytes; TOOL_SAFE_STR(n) sizes it for an
 * input of at most n bytes. Returns out.
 */
#define TOOL_SAFE_STR(n) (4u * (n) + 1u)
char *tool_str_safe(const char *in, char *out, size_t outlen);

/* CLOCK_REALTIME nanoseconds as "2025-11-25 15:30:00 UTC"; "-" for 0. */
#define TOOL_TIME_STRLEN 40
char *tool_fmt_time(uint64_t ns, char *buf, size_t len);

#endif
