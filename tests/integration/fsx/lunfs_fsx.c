/*
 * lunfs_fsx: a file-operation exerciser in the spirit of xfstests' fsx.
 *
 * Algorithm. One file is driven by a seeded random sequence of operations
 * (pwrite, pread, mmap read/write, ftruncate up and down, fallocate in
 * every mode the kernel and filesystem accept, copy_file_range inside the
 * file, fsync/fdatasync, close and reopen). Every operation is applied to
 * the file and to an in-memory model of what the file must contain; every
 * read (pread, mmap, and a full-file sweep every -c operations and at the
 * end) is compared with the model, and st_size is checked after every
 * operation; a mapping of the page that holds EOF must show zeros past
 * EOF (fsx's check_eofpage). The first difference stops the run: it
 * prints the first differing offset, the bytes around it, a guess at which
 * operation wrote the bad byte, and the last -L operations from a ring
 * log, then exits 1. An errno the operation must not return (ENOSPC
 * included) is a failure too. The same seed replays the same sequence (on
 * a filesystem where the probe enables the same ops): the seed is printed
 * first.
 *
 * Model. A sparse map of 64 KiB pages (a chained hash on the page index);
 * an absent page reads as zeros, so -l 64G costs memory only for the pages
 * written. Invariant: every model byte at or past the model size is zero,
 * which makes "extension reads zeros" (truncate up, fallocate, writes past
 * EOF) free: growing the size needs no model change.
 *
 * Data. A byte written at file offset x by operation n is
 * (n + x + hash8(x >> 8)) mod 256: the hash term makes data shifted by any
 * multiple of 256 bytes differ, and from a bad byte the op number mod 256
 * can be read back (copies move data, so the guess is only a guess).
 *
 * Offsets and lengths are biased towards the boundaries where filesystems
 * break: unaligned, page (4 KiB) aligned, file-block (1 MiB) aligned, one
 * byte short of a page or block boundary, and around the current EOF.
 * Lengths run from 1 byte to -o (default 256 KiB).
 *
 * Modes: buffered (default); -Z: one O_DIRECT descriptor, reads and writes
 * aligned to 4 KiB (-A: any smaller power of two) with page-aligned
 * buffers, no mmap; -2: two descriptors to
 * the same file, one O_DIRECT and one buffered, read/write/copy/truncate
 * alternate between them at random and every full sweep reads through both,
 * which checks page cache / direct I/O coherence on one host (mmap goes
 * through the buffered one).
 *
 * -W FILE saves the final model (size and content, holes as holes) so that
 * a script can cmp it with the file after a remount.
 *
 * Standalone test tool: built by tests/integration/test_fsx.sh with
 * `cc -O2 -std=c11 -D_GNU_SOURCE`. All state hangs off struct fsx.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif
#ifndef FALLOC_FL_ZERO_RANGE
#define FALLOC_FL_ZERO_RANGE 0x10
#endif

#define FSX_PAGE 4096u
#define FSX_BLOCK (1024u * 1024u)	/* lunfs's default file block */
#define MODEL_PAGE (64u * 1024u)
#define SWEEP_CHUNK (1024u * 1024u)
/* Above this size a full sweep reads the model's pages and random samples
 * of the holes instead of every byte (a 64 GiB sparse file). */
#define SWEEP_DENSE_LIMIT (256ull * 1024 * 1024)
#define SWEEP_HOLE_SAMPLES 64u

enum fsx_op {
	OP_READ,
	OP_WRITE,
	OP_MAPREAD,
	OP_MAPWRITE,
	OP_TRUNCATE,
	OP_FALLOC,
	OP_FALLOC_KEEP,
	OP_PUNCH,
	OP_ZERO,
	OP_ZERO_KEEP,
	OP_COPY,
	OP_FSYNC,
	OP_FDATASYNC,
	OP_REOPEN,
	OP_NR
};

static const char *const op_names[OP_NR] = {
	[OP_READ] = "read",
	[OP_WRITE] = "write",
	[OP_MAPREAD] = "mapread",
	[OP_MAPWRITE] = "mapwrite",
	[OP_TRUNCATE] = "truncate",
	[OP_FALLOC] = "falloc",
	[OP_FALLOC_KEEP] = "falloc_keep",
	[OP_PUNCH] = "punch_hole",
	[OP_ZERO] = "zero_range",
	[OP_ZERO_KEEP] = "zero_range_keep",
	[OP_COPY] = "copy_range",
	[OP_FSYNC] = "fsync",
	[OP_FDATASYNC] = "fdatasync",
	[OP_REOPEN] = "reopen",
};

/* Relative frequencies: data ops dominate, like fsx. */
static const unsigned op_weights[OP_NR] = {
	[OP_READ] = 20,
	[OP_WRITE] = 22,
	[OP_MAPREAD] = 8,
	[OP_MAPWRITE] = 8,
	[OP_TRUNCATE] = 6,
	[OP_FALLOC] = 4,
	[OP_FALLOC_KEEP] = 4,
	[OP_PUNCH] = 5,
	[OP_ZERO] = 4,
	[OP_ZERO_KEEP] = 3,
	[OP_COPY] = 6,
	[OP_FSYNC] = 2,
	[OP_FDATASYNC] = 2,
	[OP_REOPEN] = 1,
};

static const int falloc_modes[OP_NR] = {
	[OP_FALLOC] = 0,
	[OP_FALLOC_KEEP] = FALLOC_FL_KEEP_SIZE,
	[OP_PUNCH] = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	[OP_ZERO] = FALLOC_FL_ZERO_RANGE,
	[OP_ZERO_KEEP] = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
};

struct model_page {
	uint64_t idx;
	struct model_page *next;
	unsigned char data[MODEL_PAGE];
};

struct model {
	struct model_page **buckets;
	size_t nbuckets;	/* power of two */
	size_t npages;
	uint64_t size;
};

/* Which descriptor an operation went through (two-fd mode). */
enum fsx_fdsel { FD_MAIN, FD_DIRECT };

struct log_entry {
	uint64_t n;
	enum fsx_op op;
	enum fsx_fdsel fdsel;
	uint64_t off;
	uint64_t len;
	uint64_t aux;		/* copy: destination offset; truncate: new size */
	uint64_t size_before;
	uint64_t size_after;
	int64_t ret;
};

struct fsx {
	/* options */
	uint64_t seed;
	uint64_t nops;
	uint64_t maxlen;
	uint64_t maxoplen;
	uint64_t check_every;
	unsigned log_len;
	bool debug;
	bool direct;		/* -Z: the only descriptor is O_DIRECT */
	bool twofd;		/* -2: a buffered and an O_DIRECT descriptor */
	uint64_t dio_align;	/* -A: direct reads/writes are multiples of it */
	const char *path;
	const char *save_path;
	const char *verify_path;	/* -V: check FILE against a saved model */
	bool enabled[OP_NR];

	uint64_t rng;
	int fd;			/* buffered, or O_DIRECT under -Z */
	int dfd;		/* O_DIRECT under -2, else -1 */
	struct model m;
	unsigned char *buf;	/* maxoplen + FSX_PAGE, page aligned */
	unsigned char *cmpbuf;	/* as large as buf */
	unsigned char *sweepbuf;	/* SWEEP_CHUNK, page aligned */
	struct log_entry *log;
	uint64_t log_count;	/* entries ever logged */
	uint64_t opcount[OP_NR];
	uint64_t skipped;
	uint64_t sweeps;
	uint64_t n;		/* number of the current op, from 1 */
};

/* ---- random numbers (splitmix64: seedable, fast, good enough) ---------- */

static uint64_t rnd64(struct fsx *f)
{
	uint64_t z = (f->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n == 0 gives 0. */
static uint64_t rnd_below(struct fsx *f, uint64_t n)
{
	if (n == 0) {
		return 0;
	}
	return rnd64(f) % n;
}

/* ---- sparse model ------------------------------------------------------- */

static size_t model_bucket(const struct model *m, uint64_t idx)
{
	return (size_t)((idx * 0x9E3779B97F4A7C15ull) >> 20) & (m->nbuckets - 1);
}

static struct model_page *model_page_find(const struct model *m, uint64_t idx)
{
	struct model_page *p;

	for (p = m->buckets[model_bucket(m, idx)]; p != NULL; p = p->next) {
		if (p->idx == idx) {
			return p;
		}
	}
	return NULL;
}

static int model_init(struct model *m)
{
	m->nbuckets = 1024;
	m->npages = 0;
	m->size = 0;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	return m->buckets == NULL ? -ENOMEM : 0;
}

static void model_free(struct model *m)
{
	size_t i;

	for (i = 0; i < m->nbuckets; i++) {
		struct model_page *p = m->buckets[i];

		while (p != NULL) {
			struct model_page *next = p->next;

			free(p);
			p = next;
		}
	}
	free(m->buckets);
	m->buckets = NULL;
}

/* Keep chains short: double the table when it is fuller than 1 per bucket. */
static int model_grow(struct model *m)
{
	size_t nb = m->nbuckets * 2, i;
	struct model_page **nbk = calloc(nb, sizeof(*nbk));
	struct model_page **old = m->buckets;
	size_t oldn = m->nbuckets;

	if (nbk == NULL) {
		return -ENOMEM;
	}
	m->buckets = nbk;
	m->nbuckets = nb;
	for (i = 0; i < oldn; i++) {
		struct model_page *p = old[i];

		while (p != NULL) {
			struct model_page *next = p->next;
			size_t b = model_bucket(m, p->idx);

			p->next = nbk[b];
			nbk[b] = p;
			p = next;
		}
	}
	free(old);
	return 0;
}

static struct model_page *model_page_get(struct model *m, uint64_t idx)
{
	struct model_page *p = model_page_find(m, idx);
	size_t b;

	if (p != NULL) {
		return p;
	}
	if (m->npages >= m->nbuckets && model_grow(m) < 0) {
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return NULL;
	}
	p->idx = idx;
	b = model_bucket(m, idx);
	p->next = m->buckets[b];
	m->buckets[b] = p;
	m->npages++;
	return p;
}

static void model_page_drop(struct model *m, uint64_t idx)
{
	struct model_page **pp = &m->buckets[model_bucket(m, idx)];

	while (*pp != NULL) {
		if ((*pp)->idx == idx) {
			struct model_page *p = *pp;

			*pp = p->next;
			free(p);
			m->npages--;
			return;
		}
		pp = &(*pp)->next;
	}
}

static void model_read(const struct model *m, uint64_t off, uint64_t len, unsigned char *out)
{
	while (len > 0) {
		uint64_t idx = off / MODEL_PAGE;
		uint64_t in = off % MODEL_PAGE;
		uint64_t n = MODEL_PAGE - in < len ? MODEL_PAGE - in : len;
		const struct model_page *p = model_page_find(m, idx);

		if (p != NULL) {
			memcpy(out, p->data + in, n);
		} else {
			memset(out, 0, n);
		}
		out += n;
		off += n;
		len -= n;
	}
}

static int model_write(struct model *m, uint64_t off, uint64_t len, const unsigned char *in)
{
	while (len > 0) {
		uint64_t idx = off / MODEL_PAGE;
		uint64_t po = off % MODEL_PAGE;
		uint64_t n = MODEL_PAGE - po < len ? MODEL_PAGE - po : len;
		struct model_page *p = model_page_get(m, idx);

		if (p == NULL) {
			return -ENOMEM;
		}
		memcpy(p->data + po, in, n);
		in += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Zero [off, off+len): whole pages are dropped, partial ones cleared. */
static void model_zero(struct model *m, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;

	if (len == 0) {
		return;
	}
	/* A huge range (truncating 64 GiB to 0) walks the table, not the range. */
	if (len / MODEL_PAGE > 2 * (uint64_t)m->npages + 16) {
		size_t i;

		for (i = 0; i < m->nbuckets; i++) {
			struct model_page **pp = &m->buckets[i];

			while (*pp != NULL) {
				struct model_page *p = *pp;
				uint64_t ps = p->idx * MODEL_PAGE, pe = ps + MODEL_PAGE;

				if (ps >= off && pe <= end) {
					*pp = p->next;
					free(p);
					m->npages--;
					continue;
				}
				if (pe > off && ps < end) {
					uint64_t a = ps > off ? ps : off;
					uint64_t b = pe < end ? pe : end;

					memset(p->data + (a - ps), 0, b - a);
				}
				pp = &p->next;
			}
		}
		return;
	}
	while (off < end) {
		uint64_t idx = off / MODEL_PAGE;
		uint64_t po = off % MODEL_PAGE;
		uint64_t n = MODEL_PAGE - po < end - off ? MODEL_PAGE - po : end - off;

		if (n == MODEL_PAGE) {
			model_page_drop(m, idx);
		} else {
			struct model_page *p = model_page_find(m, idx);

			if (p != NULL) {
				memset(p->data + po, 0, n);
			}
		}
		off += n;
	}
}

/* Resize keeping the invariant: bytes at or past the size are zero. */
static void model_resize(struct model *m, uint64_t size)
{
	if (size < m->size) {
		model_zero(m, size, m->size - size);
	}
	m->size = size;
}

/* ---- logging and failure reports --------------------------------------- */

static void log_print_entry(const struct log_entry *e)
{
	printf("  #%-7" PRIu64 " %-15s", e->n, op_names[e->op]);
	switch (e->op) {
	case OP_FSYNC:
	case OP_FDATASYNC:
	case OP_REOPEN:
		break;
	case OP_TRUNCATE:
		printf(" to 0x%" PRIx64, e->aux);
		break;
	case OP_COPY:
		printf(" 0x%" PRIx64 " -> 0x%" PRIx64 " len 0x%" PRIx64 " (end 0x%" PRIx64 ")",
		       e->off, e->aux, e->len, e->aux + e->len);
		break;
	default:
		printf(" 0x%" PRIx64 " len 0x%" PRIx64 " (end 0x%" PRIx64 ")", e->off, e->len,
		       e->off + e->len);
		break;
	}
	printf("%s size 0x%" PRIx64 " -> 0x%" PRIx64 " ret %" PRId64 "\n",
	       e->fdsel == FD_DIRECT ? " [direct fd]" : "", e->size_before, e->size_after,
	       e->ret);
}

static void log_dump(const struct fsx *f)
{
	uint64_t first = f->log_count > f->log_len ? f->log_count - f->log_len : 0;
	uint64_t i;

	printf("LOG of the last %" PRIu64 " operations (oldest first; seed %" PRIu64 "):\n",
	       f->log_count - first, f->seed);
	for (i = first; i < f->log_count; i++) {
		log_print_entry(&f->log[i % f->log_len]);
	}
}

static struct log_entry *log_add(struct fsx *f, enum fsx_op op, enum fsx_fdsel fdsel,
				 uint64_t off, uint64_t len, uint64_t aux)
{
	struct log_entry *e = &f->log[f->log_count % f->log_len];

	f->log_count++;
	e->n = f->n;
	e->op = op;
	e->fdsel = fdsel;
	e->off = off;
	e->len = len;
	e->aux = aux;
	e->size_before = f->m.size;
	e->size_after = f->m.size;
	e->ret = 0;
	return e;
}

static void fsx_die(struct fsx *f)
{
	if (f->verify_path != NULL) {
		printf("FAILED: %s does not match the model saved in %s\n", f->path,
		       f->verify_path);
		fflush(stdout);
		exit(1);
	}
	log_dump(f);
	printf("FAILED: seed %" PRIu64 ", at operation %" PRIu64 "\n", f->seed, f->n);
	fflush(stdout);
	exit(1);
}

static void fsx_errno_fail(struct fsx *f, const char *what, int err)
{
	printf("ERROR: op #%" PRIu64 " %s: %s (errno %d)\n", f->n, what, strerror(err), err);
	fsx_die(f);
}

/* ---- data pattern --------------------------------------------------------- */

static unsigned char pattern_hash8(uint64_t x256)
{
	return (unsigned char)((x256 * 0x9E3779B97F4A7C15ull) >> 56);
}

static void pattern_fill(unsigned char *buf, uint64_t off, uint64_t len, uint64_t n)
{
	uint64_t i = 0;

	while (i < len) {
		uint64_t x = off + i;
		unsigned char h = (unsigned char)(pattern_hash8(x >> 8) + n);
		uint64_t run = 256 - (x & 255);

		if (run > len - i) {
			run = len - i;
		}
		for (uint64_t k = 0; k < run; k++) {
			buf[i + k] = (unsigned char)(h + (unsigned char)(x + k));
		}
		i += run;
	}
}

/* The op number (mod 256) whose pattern would put byte v at offset x. */
static unsigned pattern_op_guess(uint64_t x, unsigned char v)
{
	return (unsigned char)(v - (unsigned char)x - pattern_hash8(x >> 8));
}

/*
 * Compare got (len bytes read at off) with the model. On a difference,
 * print the first differing offset with context, and fail the run.
 */
static void fsx_compare(struct fsx *f, const char *what, uint64_t off, const unsigned char *got,
			uint64_t len, unsigned char *want)
{
	uint64_t i, ndiff = 0, first = UINT64_MAX, last = 0;

	model_read(&f->m, off, len, want);
	if (memcmp(got, want, len) == 0) {
		return;
	}
	for (i = 0; i < len; i++) {
		if (got[i] != want[i]) {
			if (first == UINT64_MAX) {
				first = i;
			}
			last = i;
			ndiff++;
		}
	}
	printf("MISMATCH (%s) reading 0x%" PRIx64 " len 0x%" PRIx64 ": first bad byte at file "
	       "offset 0x%" PRIx64 " (%" PRIu64 "), last at 0x%" PRIx64 ", %" PRIu64
	       " bytes differ\n",
	       what, off, len, off + first, off + first, off + last, ndiff);
	printf("  offset             expected                                        got\n");
	for (i = first & ~(uint64_t)15; i < len && i < (first & ~(uint64_t)15) + 64; i += 16) {
		uint64_t k;

		printf("  0x%012" PRIx64 "  ", off + i);
		for (k = i; k < i + 16; k++) {
			if (k < len) {
				printf("%02x", want[k]);
			} else {
				printf("  ");
			}
		}
		printf("  ");
		for (k = i; k < i + 16; k++) {
			if (k < len) {
				printf("%02x", got[k]);
			}
		}
		printf("\n");
	}
	if (got[first] == 0) {
		printf("  the bad data is zeros (a lost write, or a stale/unwritten extent?)\n");
	} else {
		printf("  the bad byte 0x%02x fits the pattern of an op numbered %u mod 256\n",
		       got[first], pattern_op_guess(off + first, got[first]));
	}
	fsx_die(f);
}

/* ---- I/O helpers ------------------------------------------------------------ */

static int fsx_fd(const struct fsx *f, enum fsx_fdsel sel)
{
	return sel == FD_DIRECT ? f->dfd : f->fd;
}

static bool fsx_sel_is_direct(const struct fsx *f, enum fsx_fdsel sel)
{
	return f->direct || sel == FD_DIRECT;
}

/* pread until len bytes or EOF; returns bytes read or -errno. */
static int64_t fsx_pread_full(int fd, unsigned char *buf, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		if (r == 0) {
			break;
		}
		done += (uint64_t)r;
	}
	return (int64_t)done;
}

/* pwrite all of it; returns len or -errno (a write of 0 bytes is -EIO). */
static int64_t fsx_pwrite_full(int fd, const unsigned char *buf, uint64_t len, uint64_t off)
{
	uint64_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, buf + done, len - done, (off_t)(off + done));

		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		if (r == 0) {
			return -EIO;
		}
		done += (uint64_t)r;
	}
	return (int64_t)done;
}

static int fsx_open(struct fsx *f, bool trunc)
{
	int flags = O_RDWR | O_CREAT | (trunc ? O_TRUNC : 0);

	f->fd = open(f->path, flags | (f->direct ? O_DIRECT : 0), 0644);
	if (f->fd < 0) {
		return -errno;
	}
	if (f->twofd) {
		f->dfd = open(f->path, O_RDWR | O_DIRECT);
		if (f->dfd < 0) {
			int err = -errno;

			close(f->fd);
			f->fd = -1;
			return err;
		}
	}
	return 0;
}

static int fsx_close(struct fsx *f)
{
	int ret = 0;

	if (f->dfd >= 0 && close(f->dfd) < 0) {
		ret = -errno;
	}
	f->dfd = -1;
	if (f->fd >= 0 && close(f->fd) < 0) {
		ret = -errno;
	}
	f->fd = -1;
	return ret;
}

/* Every descriptor must report the model size. */
static void fsx_check_size(struct fsx *f, const char *when)
{
	struct stat st;
	int fds[2] = { f->fd, f->dfd };

	for (int i = 0; i < 2; i++) {
		if (fds[i] < 0) {
			continue;
		}
		if (fstat(fds[i], &st) < 0) {
			fsx_errno_fail(f, "fstat", errno);
		}
		if ((uint64_t)st.st_size != f->m.size) {
			printf("SIZE MISMATCH after %s (%s fd): st_size 0x%" PRIx64
			       " (%" PRIu64 "), model 0x%" PRIx64 " (%" PRIu64 ")\n",
			       when, i == 0 ? "main" : "direct", (uint64_t)st.st_size,
			       (uint64_t)st.st_size, f->m.size, f->m.size);
			fsx_die(f);
		}
	}
}

/* ---- picking offsets and lengths ------------------------------------------ */

/* An offset in [0, limit), biased towards the boundaries that matter. */
static uint64_t fsx_off_pick(struct fsx *f, uint64_t limit)
{
	uint64_t base, off;
	unsigned r;

	if (limit == 0) {
		return 0;
	}
	base = rnd_below(f, limit);
	r = (unsigned)rnd_below(f, 100);
	if (r < 30) {
		off = base;
	} else if (r < 48) {
		off = base & ~(uint64_t)(FSX_PAGE - 1);
	} else if (r < 63) {
		off = base & ~(uint64_t)(FSX_BLOCK - 1);
	} else if (r < 75) {
		/* just short of a block boundary: straddles it */
		off = (base | (FSX_BLOCK - 1)) - rnd_below(f, 2 * FSX_PAGE);
	} else if (r < 85) {
		/* just short of a page boundary */
		off = (base | (FSX_PAGE - 1)) - rnd_below(f, 512);
	} else {
		/* around the current EOF */
		uint64_t s = f->m.size;
		uint64_t d = rnd_below(f, 64 * 1024 + 1);

		off = rnd_below(f, 2) != 0 ? s + d : (s > d ? s - d : 0);
	}
	if (off >= limit) {
		off = base;
	}
	return off;
}

/* A length in [1, max], biased to small, page multiples and 1 MiB crossings. */
static uint64_t fsx_len_pick(struct fsx *f, uint64_t max)
{
	unsigned r = (unsigned)rnd_below(f, 100);
	uint64_t len;

	if (max <= 1) {
		return 1;
	}
	if (r < 20) {
		len = 1 + rnd_below(f, max < FSX_PAGE ? max : FSX_PAGE);
	} else if (r < 40 && max >= FSX_PAGE) {
		len = (1 + rnd_below(f, max / FSX_PAGE)) * FSX_PAGE;
	} else if (r < 45) {
		len = 1 + rnd_below(f, 16);
	} else {
		len = 1 + rnd_below(f, max);
	}
	return len > max ? max : len;
}

/* A [off, off+len) range inside [0, maxlen); aligned if the I/O is direct. */
static void fsx_range_pick(struct fsx *f, bool aligned, uint64_t *offp, uint64_t *lenp)
{
	uint64_t off = fsx_off_pick(f, f->maxlen);
	uint64_t len = fsx_len_pick(f, f->maxoplen);

	if (aligned) {
		off &= ~(f->dio_align - 1);
		len = (len + f->dio_align - 1) & ~(f->dio_align - 1);
	}
	if (len > f->maxlen - off) {
		len = f->maxlen - off;
	}
	*offp = off;
	*lenp = len;
}

/* A read range: mostly inside the file, sometimes across EOF. */
static void fsx_read_range_pick(struct fsx *f, bool aligned, uint64_t *offp, uint64_t *lenp)
{
	uint64_t size = f->m.size;
	uint64_t off, len;

	if (size == 0 || rnd_below(f, 10) == 0) {
		fsx_range_pick(f, aligned, offp, lenp);
		return;
	}
	off = fsx_off_pick(f, size);
	len = fsx_len_pick(f, f->maxoplen);
	if (aligned) {
		off &= ~(f->dio_align - 1);
		len = (len + f->dio_align - 1) & ~(f->dio_align - 1);
	} else if (len > size - off) {
		len = size - off;
	}
	*offp = off;
	*lenp = len;
}

/* ---- operations ------------------------------------------------------------ */

static enum fsx_fdsel fsx_fdsel_pick(struct fsx *f)
{
	if (!f->twofd) {
		return FD_MAIN;
	}
	return rnd_below(f, 2) != 0 ? FD_DIRECT : FD_MAIN;
}

static void op_read(struct fsx *f)
{
	enum fsx_fdsel sel = fsx_fdsel_pick(f);
	bool aligned = fsx_sel_is_direct(f, sel);
	uint64_t off, len, want;
	struct log_entry *e;
	int64_t r;

	fsx_read_range_pick(f, aligned, &off, &len);
	e = log_add(f, OP_READ, sel, off, len, 0);
	want = off >= f->m.size ? 0 : (f->m.size - off < len ? f->m.size - off : len);
	r = fsx_pread_full(fsx_fd(f, sel), f->buf, len, off);
	e->ret = r;
	if (r < 0) {
		fsx_errno_fail(f, "pread", (int)-r);
	}
	if ((uint64_t)r != want) {
		printf("SHORT/LONG READ: pread 0x%" PRIx64 " len 0x%" PRIx64 " returned %" PRId64
		       ", expected %" PRIu64 " (size 0x%" PRIx64 ")\n",
		       off, len, r, want, f->m.size);
		fsx_die(f);
	}
	fsx_compare(f, sel == FD_DIRECT ? "pread, direct fd" : "pread", off, f->buf, want,
		    f->cmpbuf);
}

static void op_write(struct fsx *f)
{
	enum fsx_fdsel sel = fsx_fdsel_pick(f);
	uint64_t off, len;
	struct log_entry *e;
	int64_t r;

	fsx_range_pick(f, fsx_sel_is_direct(f, sel), &off, &len);
	e = log_add(f, OP_WRITE, sel, off, len, 0);
	pattern_fill(f->buf, off, len, f->n);
	r = fsx_pwrite_full(fsx_fd(f, sel), f->buf, len, off);
	e->ret = r;
	if (r < 0) {
		fsx_errno_fail(f, "pwrite", (int)-r);
	}
	if (model_write(&f->m, off, len, f->buf) < 0) {
		fsx_errno_fail(f, "model", ENOMEM);
	}
	if (off + len > f->m.size) {
		f->m.size = off + len;
	}
	e->size_after = f->m.size;
}

static void op_mapread(struct fsx *f)
{
	long pg = FSX_PAGE;
	uint64_t off, len, moff;
	struct log_entry *e;
	unsigned char *p;

	if (f->m.size == 0) {
		f->skipped++;
		return;
	}
	off = fsx_off_pick(f, f->m.size);
	len = fsx_len_pick(f, f->maxoplen);
	if (len > f->m.size - off) {
		len = f->m.size - off;
	}
	e = log_add(f, OP_MAPREAD, FD_MAIN, off, len, 0);
	moff = off & ~(uint64_t)(pg - 1);
	p = mmap(NULL, len + (off - moff), PROT_READ, MAP_SHARED, f->fd, (off_t)moff);
	if (p == MAP_FAILED) {
		e->ret = -errno;
		fsx_errno_fail(f, "mmap (read)", errno);
	}
	memcpy(f->buf, p + (off - moff), len);
	/* Like fsx's check_eofpage: a mapping of the page holding EOF shows
	 * zeros past EOF (the page is mapped whole), never stale data. */
	if (off + len == f->m.size && f->m.size % FSX_PAGE != 0) {
		uint64_t eof = f->m.size - moff;
		uint64_t pend = (eof + FSX_PAGE - 1) & ~(uint64_t)(FSX_PAGE - 1);

		for (uint64_t i = eof; i < pend; i++) {
			if (p[i] != 0) {
				printf("MAPREAD PAST EOF: byte 0x%02x at file offset 0x%" PRIx64
				       " in the EOF page (size 0x%" PRIx64 ") is not zero\n",
				       p[i], moff + i, f->m.size);
				fsx_die(f);
			}
		}
	}
	if (munmap(p, len + (off - moff)) < 0) {
		fsx_errno_fail(f, "munmap", errno);
	}
	e->ret = (int64_t)len;
	fsx_compare(f, "mapread", off, f->buf, len, f->cmpbuf);
}

static void op_mapwrite(struct fsx *f)
{
	uint64_t off, len, moff, end;
	struct log_entry *e;
	unsigned char *p;

	fsx_range_pick(f, false, &off, &len);
	e = log_add(f, OP_MAPWRITE, FD_MAIN, off, len, 0);
	end = off + len;
	/* Storing past EOF through a mapping faults: extend first, like fsx. */
	if (end > f->m.size) {
		if (ftruncate(f->fd, (off_t)end) < 0) {
			e->ret = -errno;
			fsx_errno_fail(f, "ftruncate (mapwrite extend)", errno);
		}
		model_resize(&f->m, end);
	}
	moff = off & ~(uint64_t)(FSX_PAGE - 1);
	p = mmap(NULL, end - moff, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, (off_t)moff);
	if (p == MAP_FAILED) {
		e->ret = -errno;
		fsx_errno_fail(f, "mmap (write)", errno);
	}
	pattern_fill(f->buf, off, len, f->n);
	memcpy(p + (off - moff), f->buf, len);
	if (msync(p, end - moff, MS_SYNC) < 0) {
		e->ret = -errno;
		fsx_errno_fail(f, "msync", errno);
	}
	if (munmap(p, end - moff) < 0) {
		fsx_errno_fail(f, "munmap", errno);
	}
	if (model_write(&f->m, off, len, f->buf) < 0) {
		fsx_errno_fail(f, "model", ENOMEM);
	}
	e->ret = (int64_t)len;
	e->size_after = f->m.size;
}

static void op_truncate(struct fsx *f)
{
	enum fsx_fdsel sel = fsx_fdsel_pick(f);
	unsigned r = (unsigned)rnd_below(f, 100);
	uint64_t size;
	struct log_entry *e;

	if (r < 5) {
		size = 0;
	} else if (r < 35) {
		size = rnd_below(f, f->maxlen + 1);
	} else if (r < 55) {
		size = rnd_below(f, f->maxlen + 1) & ~(uint64_t)(FSX_BLOCK - 1);
	} else if (r < 65) {
		size = rnd_below(f, f->maxlen + 1) & ~(uint64_t)(FSX_PAGE - 1);
	} else {
		/* near the current size, up or down */
		uint64_t d = rnd_below(f, f->maxoplen + 1);

		size = rnd_below(f, 2) != 0 ? f->m.size + d : (f->m.size > d ? f->m.size - d : 0);
		if (size > f->maxlen) {
			size = f->maxlen;
		}
	}
	e = log_add(f, OP_TRUNCATE, sel, 0, 0, size);
	if (ftruncate(fsx_fd(f, sel), (off_t)size) < 0) {
		e->ret = -errno;
		fsx_errno_fail(f, "ftruncate", errno);
	}
	model_resize(&f->m, size);
	e->size_after = size;
}

static void op_fallocate(struct fsx *f, enum fsx_op op)
{
	enum fsx_fdsel sel = fsx_fdsel_pick(f);
	int mode = falloc_modes[op];
	uint64_t off, len, end;
	struct log_entry *e;

	fsx_range_pick(f, false, &off, &len);
	end = off + len;
	e = log_add(f, op, sel, off, len, 0);
	if (fallocate(fsx_fd(f, sel), mode, (off_t)off, (off_t)len) < 0) {
		e->ret = -errno;
		fsx_errno_fail(f, op_names[op], errno);
	}
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		uint64_t zend = end < f->m.size ? end : f->m.size;

		/* Only bytes inside the size are visible; past it they are
		 * zero already (model invariant). */
		if (off < zend) {
			model_zero(&f->m, off, zend - off);
		}
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > f->m.size) {
		model_resize(&f->m, end);
	}
	e->size_after = f->m.size;
}

static bool ranges_overlap(uint64_t a, uint64_t b, uint64_t len)
{
	return a < b + len && b < a + len;
}

static void op_copy(struct fsx *f)
{
	enum fsx_fdsel sel = fsx_fdsel_pick(f);
	uint64_t src, dst, len, done = 0;
	struct log_entry *e;
	int tries;

	if (f->m.size == 0) {
		f->skipped++;
		return;
	}
	src = fsx_off_pick(f, f->m.size);
	len = fsx_len_pick(f, f->maxoplen);
	if (len > f->m.size - src) {
		len = f->m.size - src;
	}
	for (tries = 0; tries < 8; tries++) {
		dst = fsx_off_pick(f, f->maxlen - len + 1);
		if (!ranges_overlap(src, dst, len)) {
			break;
		}
	}
	if (tries == 8) {
		f->skipped++;
		return;
	}
	e = log_add(f, OP_COPY, sel, src, len, dst);
	/* The model copy is taken first: the source is unchanged by it. */
	model_read(&f->m, src, len, f->cmpbuf);
	/* copy_file_range may copy less than asked; carry on like cp. */
	while (done < len) {
		loff_t so = (loff_t)(src + done), d = (loff_t)(dst + done);
		ssize_t r = copy_file_range(fsx_fd(f, sel), &so, fsx_fd(f, sel), &d, len - done, 0);

		if (r < 0) {
			if (errno == EINTR) {
				continue;
			}
			e->ret = -errno;
			fsx_errno_fail(f, "copy_file_range", errno);
		}
		if (r == 0) {
			printf("SHORT COPY: copy_file_range returned 0 after %" PRIu64 " of %" PRIu64
			       " bytes inside the file\n",
			       done, len);
			fsx_die(f);
		}
		done += (uint64_t)r;
	}
	e->ret = (int64_t)done;
	if (model_write(&f->m, dst, len, f->cmpbuf) < 0) {
		fsx_errno_fail(f, "model", ENOMEM);
	}
	if (dst + len > f->m.size) {
		f->m.size = dst + len;
	}
	e->size_after = f->m.size;
}

static void op_sync(struct fsx *f, enum fsx_op op)
{
	enum fsx_fdsel sel = fsx_fdsel_pick(f);
	struct log_entry *e = log_add(f, op, sel, 0, 0, 0);
	int r = op == OP_FSYNC ? fsync(fsx_fd(f, sel)) : fdatasync(fsx_fd(f, sel));

	if (r < 0) {
		e->ret = -errno;
		fsx_errno_fail(f, op_names[op], errno);
	}
}

static void op_reopen(struct fsx *f)
{
	struct log_entry *e = log_add(f, OP_REOPEN, FD_MAIN, 0, 0, 0);
	int r = fsx_close(f);

	if (r < 0) {
		e->ret = r;
		fsx_errno_fail(f, "close", -r);
	}
	r = fsx_open(f, false);
	if (r < 0) {
		e->ret = r;
		fsx_errno_fail(f, "reopen", -r);
	}
}

/* ---- full sweep ------------------------------------------------------------ */

/* Read [off, off+len) through fd and compare. A direct descriptor reads a
 * whole number of pages (the tail past EOF comes back short). */
static void sweep_range(struct fsx *f, int fd, bool direct, const char *what, uint64_t off,
			uint64_t len)
{
	uint64_t rlen = direct ? (len + FSX_PAGE - 1) & ~(uint64_t)(FSX_PAGE - 1) : len;
	uint64_t want = f->m.size - off < rlen ? f->m.size - off : rlen;
	int64_t r = fsx_pread_full(fd, f->sweepbuf, rlen, off);

	if (r < 0) {
		fsx_errno_fail(f, "pread (full check)", (int)-r);
	}
	if ((uint64_t)r != want) {
		printf("SHORT READ in full check (%s): 0x%" PRIx64 " len 0x%" PRIx64
		       " returned %" PRId64 " (size 0x%" PRIx64 ")\n",
		       what, off, len, r, f->m.size);
		fsx_die(f);
	}
	/* sweepbuf is SWEEP_CHUNK; cmpbuf is at least maxoplen, so compare
	 * in pieces of the smaller one. */
	for (uint64_t done = 0; done < len;) {
		uint64_t n = len - done < f->maxoplen ? len - done : f->maxoplen;

		fsx_compare(f, what, off + done, f->sweepbuf + done, n, f->cmpbuf);
		done += n;
	}
}

static void sweep_fd(struct fsx *f, int fd, bool direct, const char *what)
{
	uint64_t size = f->m.size;
	int64_t r;

	if (size <= SWEEP_DENSE_LIMIT) {
		for (uint64_t off = 0; off < size; off += SWEEP_CHUNK) {
			sweep_range(f, fd, direct, what, off,
				    size - off < SWEEP_CHUNK ? size - off : SWEEP_CHUNK);
		}
	} else {
		/* Every page the model holds, then random windows, which are
		 * mostly holes and must read as zeros. */
		for (size_t b = 0; b < f->m.nbuckets; b++) {
			for (struct model_page *p = f->m.buckets[b]; p != NULL; p = p->next) {
				uint64_t ps = p->idx * MODEL_PAGE;

				if (ps < size) {
					sweep_range(f, fd, direct, what, ps,
						    size - ps < MODEL_PAGE ? size - ps : MODEL_PAGE);
				}
			}
		}
		for (unsigned i = 0; i < SWEEP_HOLE_SAMPLES; i++) {
			uint64_t ps = rnd_below(f, size) & ~(uint64_t)(MODEL_PAGE - 1);

			sweep_range(f, fd, direct, what, ps, size - ps < MODEL_PAGE ? size - ps : MODEL_PAGE);
		}
	}
	/* Nothing past EOF. */
	r = fsx_pread_full(fd, f->sweepbuf, FSX_PAGE, size & ~(uint64_t)(FSX_PAGE - 1));
	if (r < 0) {
		fsx_errno_fail(f, "pread at EOF (full check)", (int)-r);
	}
	if ((uint64_t)r != size - (size & ~(uint64_t)(FSX_PAGE - 1))) {
		printf("READ AT EOF (%s): %" PRId64 " bytes from 0x%" PRIx64 ", size 0x%" PRIx64
		       "\n",
		       what, r, size & ~(uint64_t)(FSX_PAGE - 1), size);
		fsx_die(f);
	}
}

static void fsx_sweep(struct fsx *f)
{
	fsx_check_size(f, "(full check)");
	sweep_fd(f, f->fd, f->direct, f->direct ? "full check, direct" : "full check");
	if (f->dfd >= 0) {
		sweep_fd(f, f->dfd, true, "full check, direct fd");
	}
	f->sweeps++;
}

/* ---- probes, setup, main loop -------------------------------------------- */

static bool errno_means_unsupported(int err)
{
	return err == EOPNOTSUPP || err == ENOSYS || err == EXDEV;
}

/* Like fsx: find out which fallocate modes and copy_file_range work here;
 * the file is empty before and after. */
static void fsx_probe(struct fsx *f)
{
	static const enum fsx_op fops[] = { OP_FALLOC, OP_FALLOC_KEEP, OP_PUNCH, OP_ZERO,
					    OP_ZERO_KEEP };

	for (size_t i = 0; i < sizeof(fops) / sizeof(fops[0]); i++) {
		enum fsx_op op = fops[i];

		if (!f->enabled[op]) {
			continue;
		}
		if (fallocate(f->fd, falloc_modes[op], 0, 1) < 0) {
			if (!errno_means_unsupported(errno)) {
				fsx_errno_fail(f, "fallocate probe", errno);
			}
			printf("# %s disabled: fallocate mode 0x%x: %s\n", op_names[op],
			       falloc_modes[op], strerror(errno));
			f->enabled[op] = false;
		}
		if (ftruncate(f->fd, 0) < 0) {
			fsx_errno_fail(f, "ftruncate (probe)", errno);
		}
	}
	if (f->enabled[OP_COPY]) {
		loff_t so = 0, d = 2 * FSX_PAGE;
		ssize_t r;

		int64_t w;

		pattern_fill(f->buf, 0, FSX_PAGE, 0);
		w = fsx_pwrite_full(f->fd, f->buf, FSX_PAGE, 0);
		if (w < 0) {
			fsx_errno_fail(f, "pwrite (probe)", (int)-w);
		}
		r = copy_file_range(f->fd, &so, f->fd, &d, FSX_PAGE, 0);
		if (r < 0) {
			if (!errno_means_unsupported(errno)) {
				fsx_errno_fail(f, "copy_file_range probe", errno);
			}
			printf("# copy_range disabled: copy_file_range: %s\n", strerror(errno));
			f->enabled[OP_COPY] = false;
		}
		if (ftruncate(f->fd, 0) < 0) {
			fsx_errno_fail(f, "ftruncate (probe)", errno);
		}
	}
}

static void fsx_step(struct fsx *f)
{
	unsigned total = 0, pick;
	enum fsx_op op;

	for (op = 0; op < OP_NR; op++) {
		total += f->enabled[op] ? op_weights[op] : 0;
	}
	pick = (unsigned)rnd_below(f, total);
	for (op = 0; op < OP_NR; op++) {
		if (!f->enabled[op]) {
			continue;
		}
		if (pick < op_weights[op]) {
			break;
		}
		pick -= op_weights[op];
	}
	switch (op) {
	case OP_READ:
		op_read(f);
		break;
	case OP_WRITE:
		op_write(f);
		break;
	case OP_MAPREAD:
		op_mapread(f);
		break;
	case OP_MAPWRITE:
		op_mapwrite(f);
		break;
	case OP_TRUNCATE:
		op_truncate(f);
		break;
	case OP_FALLOC:
	case OP_FALLOC_KEEP:
	case OP_PUNCH:
	case OP_ZERO:
	case OP_ZERO_KEEP:
		op_fallocate(f, op);
		break;
	case OP_COPY:
		op_copy(f);
		break;
	case OP_FSYNC:
	case OP_FDATASYNC:
		op_sync(f, op);
		break;
	case OP_REOPEN:
		op_reopen(f);
		break;
	case OP_NR:
		return;
	}
	f->opcount[op]++;
	if (f->debug && f->log_count > 0) {
		log_print_entry(&f->log[(f->log_count - 1) % f->log_len]);
	}
	fsx_check_size(f, op_names[op]);
}

/* Write the model as a file: content, holes as holes, the model size. */
static int fsx_save(struct fsx *f)
{
	int fd = open(f->save_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int ret = 0;

	if (fd < 0) {
		return -errno;
	}
	for (size_t b = 0; b < f->m.nbuckets && ret == 0; b++) {
		for (struct model_page *p = f->m.buckets[b]; p != NULL; p = p->next) {
			uint64_t ps = p->idx * MODEL_PAGE;
			uint64_t n = f->m.size - ps < MODEL_PAGE ? f->m.size - ps : MODEL_PAGE;
			int64_t r;

			if (ps >= f->m.size) {
				continue;
			}
			r = fsx_pwrite_full(fd, p->data, n, ps);
			if (r < 0) {
				ret = (int)r;
				break;
			}
		}
	}
	if (ret == 0 && ftruncate(fd, (off_t)f->m.size) < 0) {
		ret = -errno;
	}
	if (close(fd) < 0 && ret == 0) {
		ret = -errno;
	}
	return ret;
}

/*
 * Load a model saved by -W: its size, and every non-zero 64 KiB page of its
 * data regions (SEEK_DATA/SEEK_HOLE, so a 64 GiB sparse save loads fast).
 */
static int fsx_load(struct fsx *f)
{
	int fd = open(f->verify_path, O_RDONLY);
	struct stat st;
	off_t pos = 0;
	int ret = 0;

	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	while (pos < st.st_size) {
		off_t data = lseek(fd, pos, SEEK_DATA);
		off_t hole;

		if (data < 0) {
			ret = errno == ENXIO ? 0 : -errno;
			break;
		}
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0) {
			ret = -errno;
			break;
		}
		for (uint64_t ps = (uint64_t)data & ~(uint64_t)(MODEL_PAGE - 1);
		     ps < (uint64_t)hole && ret == 0; ps += MODEL_PAGE) {
			int64_t r = fsx_pread_full(fd, f->sweepbuf, MODEL_PAGE, ps);
			bool zero = true;

			if (r < 0) {
				ret = (int)r;
				break;
			}
			for (int64_t i = 0; i < r && zero; i++) {
				zero = f->sweepbuf[i] == 0;
			}
			if (!zero && model_write(&f->m, ps, (uint64_t)r, f->sweepbuf) < 0) {
				ret = -ENOMEM;
			}
		}
		pos = hole;
	}
	f->m.size = (uint64_t)st.st_size;
out:
	close(fd);
	return ret;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s) {
		return -EINVAL;
	}
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	case 't':
	case 'T':
		v <<= 40;
		end++;
		break;
	default:
		break;
	}
	if (*end != '\0') {
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: lunfs_fsx [-S seed] [-N ops] [-l maxlen] [-o maxoplen] [-c check_every]\n"
		"                 [-L log_len] [-d] [-Z | -2] [-A align] [-X op]... [-W savefile] FILE\n"
		"       lunfs_fsx -V savefile [-Z | -2] FILE\n"
		"  -Z  O_DIRECT (aligned reads/writes, no mmap)\n"
		"  -2  two descriptors, one O_DIRECT and one buffered, used at random\n"
		"  -A  direct read/write alignment, a power of two <= 4096 (default 4096;\n"
		"      512 is what QEMU cache=none issues on 512-byte-sector disks)\n"
		"  -X  disable an op by name (read write mapread mapwrite truncate falloc\n"
		"      falloc_keep punch_hole zero_range zero_range_keep copy_range fsync\n"
		"      fdatasync reopen)\n"
		"  -W  save the final expected content to savefile\n"
		"  -V  no ops: only check FILE (which must exist) against a model\n"
		"      saved by -W (also with -Z or -2)\n");
}

static int fsx_parse(struct fsx *f, int argc, char **argv)
{
	int c;

	f->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
	f->nops = 10000;
	f->maxlen = 16ull << 20;
	f->maxoplen = 256ull << 10;
	f->check_every = 500;
	f->log_len = 100;
	f->dio_align = FSX_PAGE;
	for (int i = 0; i < OP_NR; i++) {
		f->enabled[i] = true;
	}
	while ((c = getopt(argc, argv, "S:N:l:o:c:L:dZ2A:X:W:V:h")) != -1) {
		uint64_t v = 0;

		switch (c) {
		case 'S':
			f->seed = strtoull(optarg, NULL, 0);
			break;
		case 'N':
		case 'l':
		case 'o':
		case 'c':
		case 'L':
		case 'A':
			if (parse_size(optarg, &v) < 0) {
				fprintf(stderr, "lunfs_fsx: bad number for -%c: %s\n", c, optarg);
				return -EINVAL;
			}
			if (c == 'N') {
				f->nops = v;
			} else if (c == 'l') {
				f->maxlen = v;
			} else if (c == 'o') {
				f->maxoplen = v;
			} else if (c == 'c') {
				f->check_every = v;
			} else if (c == 'A') {
				f->dio_align = v;
			} else {
				f->log_len = (unsigned)v;
			}
			break;
		case 'd':
			f->debug = true;
			break;
		case 'Z':
			f->direct = true;
			break;
		case '2':
			f->twofd = true;
			break;
		case 'X': {
			int i;

			for (i = 0; i < OP_NR; i++) {
				if (strcmp(optarg, op_names[i]) == 0) {
					f->enabled[i] = false;
					break;
				}
			}
			if (i == OP_NR) {
				fprintf(stderr, "lunfs_fsx: no op named %s\n", optarg);
				return -EINVAL;
			}
			break;
		}
		case 'W':
			f->save_path = optarg;
			break;
		case 'V':
			f->verify_path = optarg;
			break;
		default:
			usage();
			return -EINVAL;
		}
	}
	if (optind != argc - 1 || (f->direct && f->twofd) || f->log_len == 0 ||
	    f->maxoplen < FSX_PAGE || f->maxlen < 2 * f->maxoplen || f->dio_align == 0 ||
	    f->dio_align > FSX_PAGE || (f->dio_align & (f->dio_align - 1)) != 0) {
		usage();
		return -EINVAL;
	}
	f->path = argv[optind];
	/* Direct I/O ranges are page aligned and end inside maxlen. */
	f->maxlen &= ~(uint64_t)(FSX_PAGE - 1);
	f->maxoplen &= ~(uint64_t)(FSX_PAGE - 1);
	if (f->direct) {
		f->enabled[OP_MAPREAD] = false;
		f->enabled[OP_MAPWRITE] = false;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fsx fx = { .fd = -1, .dfd = -1 };
	struct fsx *f = &fx;
	size_t bufsz;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fsx_parse(f, argc, argv) < 0) {
		return 2;
	}
	f->rng = f->seed;
	bufsz = f->maxoplen + FSX_PAGE;
	if (posix_memalign((void **)&f->buf, FSX_PAGE, bufsz) != 0 ||
	    posix_memalign((void **)&f->cmpbuf, FSX_PAGE, bufsz) != 0 ||
	    posix_memalign((void **)&f->sweepbuf, FSX_PAGE, SWEEP_CHUNK) != 0 ||
	    (f->log = calloc(f->log_len, sizeof(*f->log))) == NULL || model_init(&f->m) < 0) {
		fprintf(stderr, "lunfs_fsx: out of memory\n");
		return 2;
	}
	if (f->verify_path != NULL) {
		struct stat st;

		ret = fsx_load(f);
		if (ret < 0) {
			fprintf(stderr, "lunfs_fsx: load %s: %s\n", f->verify_path, strerror(-ret));
			return 1;
		}
		/* fsx_open creates; a missing file must fail instead. */
		if (stat(f->path, &st) < 0) {
			fprintf(stderr, "lunfs_fsx: %s: %s\n", f->path, strerror(errno));
			return 1;
		}
		ret = fsx_open(f, false);
		if (ret < 0) {
			fprintf(stderr, "lunfs_fsx: open %s: %s\n", f->path, strerror(-ret));
			return 1;
		}
		fsx_sweep(f);
		fsx_close(f);
		printf("lunfs_fsx: %s matches %s: size 0x%" PRIx64 ", %zu model pages\n", f->path,
		       f->verify_path, f->m.size, f->m.npages);
		model_free(&f->m);
		free(f->log);
		free(f->sweepbuf);
		free(f->cmpbuf);
		free(f->buf);
		return 0;
	}
	printf("lunfs_fsx: seed %" PRIu64 " ops %" PRIu64 " maxlen 0x%" PRIx64
	       " maxoplen 0x%" PRIx64 " mode %s file %s\n",
	       f->seed, f->nops, f->maxlen, f->maxoplen,
	       f->direct ? "O_DIRECT" : (f->twofd ? "two-fd (buffered + O_DIRECT)" : "buffered"),
	       f->path);
	ret = fsx_open(f, true);
	if (ret < 0) {
		fprintf(stderr, "lunfs_fsx: open %s: %s\n", f->path, strerror(-ret));
		return 1;
	}
	fsx_probe(f);
	fsx_check_size(f, "probe");
	for (f->n = 1; f->n <= f->nops; f->n++) {
		fsx_step(f);
		if (f->check_every != 0 && f->n % f->check_every == 0) {
			fsx_sweep(f);
		}
	}
	f->n = f->nops;
	fsx_sweep(f);
	/* A sweep through a fresh descriptor too: nothing may depend on the fd. */
	ret = fsx_close(f);
	if (ret < 0) {
		fsx_errno_fail(f, "close", -ret);
	}
	ret = fsx_open(f, false);
	if (ret < 0) {
		fsx_errno_fail(f, "reopen", -ret);
	}
	fsx_sweep(f);
	ret = fsx_close(f);
	if (ret < 0) {
		fsx_errno_fail(f, "close", -ret);
	}
	if (f->save_path != NULL) {
		ret = fsx_save(f);
		if (ret < 0) {
			fprintf(stderr, "lunfs_fsx: save %s: %s\n", f->save_path, strerror(-ret));
			return 1;
		}
	}
	printf("lunfs_fsx: seed %" PRIu64 ": all %" PRIu64 " ops passed, %" PRIu64
	       " full checks, final size 0x%" PRIx64 ", %zu model pages; counts:",
	       f->seed, f->nops, f->sweeps, f->m.size, f->m.npages);
	for (int i = 0; i < OP_NR; i++) {
		if (f->enabled[i]) {
			printf(" %s=%" PRIu64, op_names[i], f->opcount[i]);
		}
	}
	printf(" skipped=%" PRIu64 "\n", f->skipped);
	model_free(&f->m);
	free(f->log);
	free(f->sweepbuf);
	free(f->cmpbuf);
	free(f->buf);
	return 0;
}
