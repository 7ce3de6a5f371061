/*
 * Helpers shared by the `lunfs` subcommands (tools/commands.h).
 *
 * tool_volume_open is the one place that turns "the superblock could not be
 * read" into words an admin can act on. sb_read (format/super_io.c) only
 * says -ENODATA / -EUCLEAN / -EPROTONOSUPPORT; to tell "this is not lunfs
 * at all" from "this is lunfs with a damaged superblock", and to name the
 * newer version, we look at the raw magic, checksum and version fields of
 * both copies. That is the only place the tools read a disk struct, and it
 * only reads it to explain a failure: the decoded superblock still comes
 * from sb_read alone.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "commands.h"
#include "lunfs/crc32c.h"
#include "lunfs/super.h"

void tool_help(const struct tool_cmd *cmd)
{
	printf("Usage: lunfs %s %s\n\n%s", cmd->name, cmd->synopsis, cmd->help);
}

int tool_usage_error(const struct tool_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "lunfs %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUsage: lunfs %s %s\nTry 'lunfs help %s'.\n", cmd->name,
		cmd->synopsis, cmd->name);
	return TOOL_EXIT_USAGE;
}

void tool_err(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "lunfs %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int tool_flags_parse(const struct tool_cmd *cmd, int argc, char **argv, const char *shortopts,
		     const struct tool_flag *flags)
{
	/* A flag's getopt value: above every character, so that no short
	 * option stands for it. */
	enum { FLAG_VAL = 256 };
	struct option longopts[TOOL_FLAGS_MAX + 2];
	int n = 0, c;

	for (; flags[n].name != NULL; n++) {
		if (n == TOOL_FLAGS_MAX) {
			tool_err(cmd->name, "internal error: more than %d options", TOOL_FLAGS_MAX);
			return TOOL_EXIT_ERROR;
		}
		longopts[n] = (struct option){ flags[n].name, no_argument, NULL, FLAG_VAL + n };
	}
	longopts[n] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[n + 1] = (struct option){ NULL, 0, NULL, 0 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		if (c >= FLAG_VAL && c < FLAG_VAL + n) {
			*flags[c - FLAG_VAL].set = true;
		} else if (c == 'h') {
			tool_help(cmd);
			return TOOL_EXIT_OK;
		} else {
			return tool_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	return TOOL_FLAGS_GO_ON;
}

const char *tool_decode_str(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case -ENODATA:
		return "empty";
	case -ESTALE:
		return "stale";
	case -EUCLEAN:
		return "corrupt";
	case -EIO:
		return "I/O error";
	default:
		return err < 0 ? strerror(-err) : "ok";
	}
}

/* What the raw bytes of one superblock copy look like. */
enum sb_look {
	SB_LOOK_ABSENT,  /* outside the device, or all zeros */
	SB_LOOK_FOREIGN, /* no lunfs magic: something else is there */
	SB_LOOK_DAMAGED, /* lunfs magic, but the checksum does not match */
	SB_LOOK_INVALID, /* checksum fine, contents rejected by sb_decode */
	SB_LOOK_NEWER,   /* checksum fine, another major version */
	SB_LOOK_GOOD,    /* decodes */
	SB_LOOK_UNREADABLE,
};

struct sb_diag {
	enum sb_look look;
	uint16_t major, minor;
	uint64_t volume_size; /* SB_LOOK_GOOD only */
};

static void sb_diag_copy(struct lunfs_dev *dev, uint64_t addr, void *buf, struct sb_diag *d)
{
	struct lunfs_super_disk raw;
	struct lunfs_super sb;
	int err;

	memset(d, 0, sizeof(*d));
	if (addr < LUNFS_SB_OFFSET || addr > dev->size ||
	    dev->size - addr < LUNFS_META_BLOCK_SIZE) {
		d->look = SB_LOOK_ABSENT;
		return;
	}
	if (dev_read(dev, buf, LUNFS_META_BLOCK_SIZE, addr) < 0) {
		d->look = SB_LOOK_UNREADABLE;
		return;
	}
	memcpy(&raw, buf, sizeof(raw));
	err = sb_decode(buf, addr, &sb);
	if (err == -ENODATA) {
		d->look = SB_LOOK_ABSENT;
	} else if (le64_get(raw.magic) != LUNFS_SB_MAGIC) {
		d->look = SB_LOOK_FOREIGN;
	} else if (le32_get(raw.crc) != crc32c(0, &raw, offsetof(struct lunfs_super_disk, crc))) {
		d->look = SB_LOOK_DAMAGED;
	} else if (err == -EPROTONOSUPPORT) {
		d->look = SB_LOOK_NEWER;
		d->major = le16_get(raw.major);
		d->minor = le16_get(raw.minor);
	} else if (err == 0) {
		d->look = SB_LOOK_GOOD;
		d->volume_size = sb.volume_size;
	} else {
		d->look = SB_LOOK_INVALID;
	}
}

static const char *sb_look_str(const struct sb_diag *d)
{
	switch (d->look) {
	case SB_LOOK_ABSENT:
		return "missing";
	case SB_LOOK_FOREIGN:
		return "no lunfs magic";
	case SB_LOOK_DAMAGED:
		return "checksum mismatch";
	case SB_LOOK_INVALID:
		return "invalid fields";
	case SB_LOOK_NEWER:
		return "unsupported format version";
	case SB_LOOK_GOOD:
		return "larger than the device";
	case SB_LOOK_UNREADABLE:
		return "read error";
	}
	return "unknown";
}

static bool sb_look_is_lunfs(enum sb_look l)
{
	return l == SB_LOOK_DAMAGED || l == SB_LOOK_INVALID || l == SB_LOOK_NEWER ||
	       l == SB_LOOK_GOOD;
}

/* Explain why sb_read failed with `err`. */
static void sb_explain(const char *cmd, const char *path, struct lunfs_dev *dev, int err)
{
	struct sb_diag p, b;
	void *buf = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);
	char s1[CLI_SIZE_STRLEN], s2[CLI_SIZE_STRLEN];

	if (buf == NULL) {
		tool_err(cmd, "%s: cannot read the superblock: %s", path, strerror(-err));
		return;
	}
	sb_diag_copy(dev, LUNFS_SB_OFFSET, buf, &p);
	sb_diag_copy(dev, sb_backup_addr(dev->size), buf, &b);
	dev_buf_free(buf);

	if (err == -EPROTONOSUPPORT) {
		if (p.look == SB_LOOK_NEWER && p.major > LUNFS_FORMAT_MAJOR) {
			tool_err(cmd, "%s: format version %u.%u is newer than this lunfs supports (%u.x)",
				 path, p.major, p.minor, LUNFS_FORMAT_MAJOR);
		} else if (p.look == SB_LOOK_NEWER) {
			tool_err(cmd, "%s: format version %u.%u is not supported by this lunfs (%u.x)",
				 path, p.major, p.minor, LUNFS_FORMAT_MAJOR);
		} else {
			tool_err(cmd, "%s: unsupported format version", path);
		}
		return;
	}
	if (err == -EOPNOTSUPP) {
		tool_err(cmd, "%s: the volume's records are smaller than the device's %u-byte sectors "
			 "(made on another device?); it cannot be read safely here",
			 path, dev->sector_size);
		return;
	}
	if (err == -EIO || p.look == SB_LOOK_UNREADABLE) {
		tool_err(cmd, "%s: I/O error reading the superblock", path);
		return;
	}
	if (err != -ENODATA && err != -EUCLEAN && err != -ESTALE) {
		tool_err(cmd, "%s: cannot read the superblock: %s", path, strerror(-err));
		return;
	}
	if (!sb_look_is_lunfs(p.look) && !sb_look_is_lunfs(b.look)) {
		tool_err(cmd, "%s: not a lunfs volume (no superblock)", path);
		return;
	}
	if (p.look == SB_LOOK_GOOD || b.look == SB_LOOK_GOOD) {
		uint64_t want = p.look == SB_LOOK_GOOD ? p.volume_size : b.volume_size;

		tool_err(cmd, "%s: the volume spans %s but the device has only %s "
			 "(truncated image or shrunk device?)", path,
			 cli_fmt_size(want, s1, sizeof(s1)), cli_fmt_size(dev->size, s2, sizeof(s2)));
		return;
	}
	tool_err(cmd, "%s: corrupt superblock (%s); backup also unusable (%s)", path,
		 sb_look_str(&p), sb_look_str(&b));
}

int tool_volume_open(const char *cmd, const char *path, struct tool_volume *v)
{
	struct lunfs_dev_file_opts opts = {
		.read_only = true,
		.exclusive = false,
		/* No deadline: a tool has no lease to lose, and an admin
		 * looking at a slow disk wants an answer, not -ETIMEDOUT. */
		.io_deadline_ms = 0,
		.queue_depth = 0,
		/* Read-only: the tools never compare-and-write, whatever the
		 * volume's backend (inspect shows it). */
		.caw = LUNFS_CAW_LOCAL,
	};
	struct stat st;
	int err;

	memset(v, 0, sizeof(*v));
	v->path = path;
	/* dev_file_open would say EINVAL for these; say what is wrong. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		tool_err(cmd, "%s: %s", path, S_ISDIR(st.st_mode) ? "is a directory" :
			 "not a block device or an image file");
		return S_ISDIR(st.st_mode) ? -EISDIR : -ENODEV;
	}
	err = dev_file_open(path, &opts, &v->dev);
	if (err < 0) {
		tool_err(cmd, "%s: cannot open: %s", path, strerror(-err));
		v->dev = NULL;
		return err;
	}
	err = sb_read(v->dev, &v->sb, &v->copy, &v->primary_err);
	if (err < 0) {
		sb_explain(cmd, path, v->dev, err);
		goto fail;
	}
	if (v->copy == LUNFS_SB_BACKUP) {
		struct sb_diag p;
		void *buf = dev_buf_alloc(LUNFS_META_BLOCK_SIZE);

		p.look = SB_LOOK_UNREADABLE;
		if (buf != NULL) {
			sb_diag_copy(v->dev, LUNFS_SB_OFFSET, buf, &p);
			dev_buf_free(buf);
		}
		snprintf(v->primary_why, sizeof(v->primary_why), "%s", sb_look_str(&p));
		tool_err(cmd, "%s: WARNING: the primary superblock is unusable (%s); "
			 "using the backup copy at offset %" PRIu64 ". Run fsck.lunfs to repair it.",
			 path, v->primary_why, sb_backup_addr(v->dev->size));
	}
	(void)sb_features_check(&v->sb, false, &v->unknown_incompat);
	sb_codec(&v->sb, &v->codec);
	v->codec.have_hmac = false;
	return 0;
fail:
	dev_close(v->dev);
	v->dev = NULL;
	return err;
}

void tool_volume_close(struct tool_volume *v)
{
	dev_close(v->dev);
	v->dev = NULL;
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0) {
			lo = 0xa0; /* overlong */
		} else if (c == 0xed) {
			hi = 0x9f; /* UTF-16 surrogates */
		}
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0) {
			lo = 0x90; /* overlong */
		} else if (c == 0xf4) {
			hi = 0x8f; /* above U+10FFFF */
		}
	} else {
		return 0;
	}
	if (left < n || s[1] < lo || s[1] > hi) {
		return 0;
	}
	for (size_t i = 2; i < n; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf) {
			return 0;
		}
	}
	return n;
}

char *tool_str_safe(const char *in, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t len = strlen(in), o = 0;

	if (outlen == 0) {
		return out;
	}
	for (size_t i = 0; i < len;) {
		size_t n = s[i] < 0x80 ? (s[i] >= 0x20 && s[i] != 0x7f) : utf8_seq_len(s + i, len - i);

		if (n > 0) {
			if (o + n >= outlen) {
				break;
			}
			memcpy(out + o, s + i, n);
			o += n;
			i += n;
		} else {
			if (o + 4 >= outlen) {
				break;
			}
			snprintf(out + o, outlen - o, "\\x%02x", s[i]);
			o += 4;
			i++;
		}
	}
	out[o] = '\0';
	return out;
}

char *tool_fmt_time(uint64_t ns, char *buf, size_t len)
{
	time_t secs = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (ns == 0) {
		snprintf(buf, len, "-");
		return buf;
	}
	if (gmtime_r(&secs, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0) {
		snprintf(buf, len, "@%" PRIu64, ns / 1000000000u);
	}
	return buf;
}
