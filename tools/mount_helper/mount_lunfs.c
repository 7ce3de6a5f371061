/*
 * mount.lunfs: the helper mount(8) runs for `mount -t lunfs` and for
 * /etc/fstab lines of type lunfs. mount(8) calls it as
 *
 *   mount.lunfs DEVICE MOUNTPOINT [-sfnv] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]
 *
 * (options after the operands; see mount(8) "EXTERNAL HELPERS"), and
 * expects mount(8)'s exit codes: 0 mounted, 1 incorrect invocation, 32
 * mount failure. It runs the same daemon as `lunfs mount` (fusemnt_run),
 * always in the background: it returns once the mount is in place, or has
 * failed with the reason on stderr.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../fuse/fusemnt.h"
#include "../cli/cli.h"

/* mount(8)'s exit codes. */
enum {
	MOUNT_EX_SUCCESS = 0,
	MOUNT_EX_USAGE = 1,
	MOUNT_EX_FAIL = 32,
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: mount.lunfs DEVICE MOUNTPOINT [-fnsv] [-o OPTIONS]\n"
		"\n"
		"The helper of mount(8) for lunfs volumes: `mount -t lunfs DEVICE DIR`\n"
		"and /etc/fstab lines such as\n"
		"  /dev/disk/by-id/wwn-0x600...  /vmfs/vol1  lunfs  host=esx1,_netdev  0 0\n"
		"run it. It mounts the volume with FUSE and leaves a daemon serving it;\n"
		"umount stops the daemon after flushing the volume.\n"
		"\n"
		"Options:\n"
		"  -o OPTIONS   host=NAME, ro, rw, discard, commit=MS, cache=SIZE; mount(8)'s\n"
		"               own (defaults, noauto, nofail, _netdev, x-*...) are ignored;\n"
		"               others (noatime, nosuid...) go to FUSE. See `lunfs help mount`.\n"
		"  -f           fake: check the options, mount nothing\n"
		"  -n, -s       accepted and ignored (no mtab; sloppy)\n"
		"  -v           say what is mounted\n"
		"  -h, --help   this text\n"
		"  -V, --version\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct fusemnt_args a = { .prog = "mount.lunfs" };
	bool fake = false, verbose = false;
	char *opts = NULL;
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "fnsvo:t:N:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			fake = true;
			break;
		case 'n':
		case 's':
		case 't':
			break;
		case 'v':
			verbose = true;
			break;
		case 'o': {
			size_t have = opts != NULL ? strlen(opts) : 0;
			char *n = realloc(opts, have + strlen(optarg) + 2);

			if (n == NULL) {
				fprintf(stderr, "mount.lunfs: out of memory\n");
				free(opts);
				return MOUNT_EX_FAIL;
			}
			if (have > 0) {
				n[have++] = ',';
			}
			strcpy(n + have, optarg);
			opts = n;
			break;
		}
		case 'N':
			fprintf(stderr, "mount.lunfs: mount namespaces (-N) are not supported\n");
			free(opts);
			return MOUNT_EX_USAGE;
		case 'h':
			usage(stdout);
			free(opts);
			return MOUNT_EX_SUCCESS;
		case 'V':
			printf("mount.lunfs %s\n", LUNFS_VERSION);
			free(opts);
			return MOUNT_EX_SUCCESS;
		default:
			fprintf(stderr, "mount.lunfs: unknown option '%s'\n", argv[optind - 1]);
			usage(stderr);
			free(opts);
			return MOUNT_EX_USAGE;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr, "mount.lunfs: %s\n",
			argc - optind < 2 ? "needs DEVICE and MOUNTPOINT" : "too many arguments");
		usage(stderr);
		free(opts);
		return MOUNT_EX_USAGE;
	}
	a.device = argv[optind];
	a.mountpoint = argv[optind + 1];
	a.options = opts;
	if (fake) {
		struct fusemnt_opts o;
		char err[160];

		ret = fusemnt_opts_parse(opts, &o, err, sizeof(err));
		fusemnt_opts_free(&o);
		free(opts);
		if (ret < 0) {
			fprintf(stderr, "mount.lunfs: %s\n", err[0] != '\0' ? err : "bad options");
			return MOUNT_EX_USAGE;
		}
		return MOUNT_EX_SUCCESS;
	}
	if (verbose) {
		fprintf(stderr, "mount.lunfs: mounting %s on %s%s%s\n", a.device, a.mountpoint,
			opts != NULL ? " with " : "", opts != NULL ? opts : "");
	}
	ret = fusemnt_run(&a);
	free(opts);
	switch (ret) {
	case FUSEMNT_OK:
		return MOUNT_EX_SUCCESS;
	case FUSEMNT_USAGE:
		return MOUNT_EX_USAGE;
	default:
		return MOUNT_EX_FAIL;
	}
}
