/*
 * `lunfs mount [-f] [-d] [-o OPTIONS]... DEVICE MOUNTPOINT`: mount a volume
 * with FUSE. A thin command line over fusemnt_run() (fuse/fusemnt.c), which
 * mount.lunfs uses too; the options are documented there and in the help
 * text of the command table (tools/lunfs.c).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "../fuse/fusemnt.h"
#include "commands.h"

/* Several -o are joined with commas, as mount(8) does. */
static int opts_join(char **all, const char *more)
{
	size_t have = *all != NULL ? strlen(*all) : 0;
	size_t add = strlen(more);
	char *n = realloc(*all, have + add + 2);

	if (n == NULL) {
		return -ENOMEM;
	}
	if (have > 0) {
		n[have++] = ',';
	}
	memcpy(n + have, more, add + 1);
	*all = n;
	return 0;
}

int cmd_mount(const struct tool_cmd *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "options", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fusemnt_args a = { .prog = "lunfs mount" };
	char *opts = NULL;
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "fdo:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			a.foreground = true;
			break;
		case 'd':
			a.debug = true;
			break;
		case 'o':
			if (opts_join(&opts, optarg) < 0) {
				tool_err(cmd->name, "out of memory");
				free(opts);
				return TOOL_EXIT_ERROR;
			}
			break;
		case 'h':
			free(opts);
			tool_help(cmd);
			return TOOL_EXIT_OK;
		default:
			free(opts);
			if (optopt == 'o') {
				return tool_usage_error(cmd, "-o needs a list of options");
			}
			if (optopt != 0) {
				return tool_usage_error(cmd, "unknown option '-%c'", optopt);
			}
			return tool_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	/* getopt_long permutes: options may also follow the operands, as
	 * in `lunfs mount DEVICE DIR -o ro`. */
	if (argc - optind < 2) {
		free(opts);
		return tool_usage_error(cmd, optind >= argc ? "missing DEVICE and MOUNTPOINT"
							    : "missing MOUNTPOINT");
	}
	if (argc - optind > 2) {
		free(opts);
		return tool_usage_error(cmd, "too many arguments ('%s')", argv[optind + 2]);
	}
	a.device = argv[optind];
	a.mountpoint = argv[optind + 1];
	a.options = opts;
	ret = fusemnt_run(&a);
	free(opts);
	switch (ret) {
	case FUSEMNT_OK:
		return TOOL_EXIT_OK;
	case FUSEMNT_USAGE:
		return TOOL_EXIT_USAGE;
	default:
		return TOOL_EXIT_ERROR;
	}
}
