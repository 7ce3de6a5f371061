/*
 * posix_check DIR: POSIX conformance checks of a mounted lunfs volume,
 * run in DIR (an empty directory on the mount) as root. Each check prints
 * "ok - ..." or "FAIL - ..." (with what happened), and the last line is
 * "N passed, N failed"; the exit status is 1 if anything failed.
 *
 * What is checked: the error numbers POSIX and Linux prescribe (ENOENT,
 * EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL, ENAMETOOLONG, ELOOP, ENODATA,
 * ERANGE, ENXIO), rename edge cases (renameat2 NOREPLACE and EXCHANGE),
 * link counts, permissions as an unprivileged user (uid 65534: the kernel
 * checks them, default_permissions), chmod/chown/utimensat, xattrs,
 * fallocate modes with data checks, truncate, SEEK_DATA/SEEK_HOLE,
 * unlink while open, fsync, O_APPEND, O_DIRECT, mknod, and a directory of
 * 10,000 entries read back each exactly once (with telldir/seekdir).
 *
 * Built by tests/integration/test_mount_posix.sh with plain cc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define NOBODY 65534

/* Counters in shared memory: the unprivileged checks run in a child. */
struct counts {
	int passed, failed;
};
static struct counts *cnt;

static void report(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", ok ? "ok" : "FAIL");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (ok) {
		cnt->passed++;
	} else {
		cnt->failed++;
	}
}

#define CHECK(cond, ...) report((cond), __VA_ARGS__)

/* Expect a call to fail with err. */
#define EXPECT_ERR(call, err, what)                                                          \
	do {                                                                                  \
		errno = 0;                                                                    \
		long r_ = (long)(call);                                                       \
		int e_ = errno;                                                               \
		if (r_ == -1 && e_ == (err)) {                                                \
			report(1, "%s: %s", what, #err);                                      \
		} else {                                                                      \
			report(0, "%s: wanted %s, got %ld (%s)", what, #err, r_, strerror(e_)); \
		}                                                                             \
	} while (0)

#define EXPECT_OK(call, what)                                                                  \
	do {                                                                                    \
		errno = 0;                                                                      \
		long r_ = (long)(call);                                                         \
		if (r_ >= 0) {                                                                  \
			report(1, "%s", what);                                                  \
		} else {                                                                        \
			report(0, "%s: failed (%s)", what, strerror(errno));                   \
		}                                                                               \
	} while (0)

static int renameat2_(const char *a, const char *b, unsigned flags)
{
	return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static int put_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	if (fd < 0) {
		return -1;
	}
	n = write(fd, data, strlen(data));
	close(fd);
	return n == (ssize_t)strlen(data) ? 0 : -1;
}

static char *get_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	buf[0] = '\0';
	if (fd < 0) {
		return buf;
	}
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static nlink_t nlink_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_nlink : (nlink_t)-1;
}

static int all_bytes(const char *buf, size_t len, int c)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)buf[i] != (unsigned char)c) {
			return 0;
		}
	}
	return 1;
}

/* ---- error numbers ------------------------------------------------------ */

static void t_errors(void)
{
	char name[300];

	mkdir("e", 0755);
	put_file("e/file", "x");
	mkdir("e/dir", 0755);
	mkdir("e/full", 0755);
	put_file("e/full/x", "x");

	EXPECT_ERR(open("e/nope", O_RDONLY), ENOENT, "open a missing file");
	EXPECT_ERR(unlink("e/nope"), ENOENT, "unlink a missing file");
	EXPECT_ERR(rmdir("e/nope"), ENOENT, "rmdir a missing dir");
	EXPECT_ERR(rename("e/nope", "e/nope2"), ENOENT, "rename a missing file");
	EXPECT_ERR(open("e/nope/x", O_RDONLY | O_CREAT, 0644), ENOENT, "create under a missing dir");
	EXPECT_ERR(link("e/nope", "e/nope2"), ENOENT, "link a missing file");

	EXPECT_ERR(mkdir("e/dir", 0755), EEXIST, "mkdir an existing name");
	EXPECT_ERR(open("e/file", O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST, "O_CREAT|O_EXCL an existing file");
	EXPECT_ERR(link("e/file", "e/dir"), EEXIST, "link onto an existing name");
	EXPECT_ERR(symlink("x", "e/file"), EEXIST, "symlink onto an existing name");
	EXPECT_ERR(mknod("e/file", S_IFIFO | 0644, 0), EEXIST, "mknod onto an existing name");

	EXPECT_ERR(mkdir("e/file/x", 0755), ENOTDIR, "mkdir under a file");
	EXPECT_ERR(rmdir("e/file"), ENOTDIR, "rmdir a file");
	EXPECT_ERR(open("e/file", O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on a file");
	EXPECT_ERR(rename("e/dir", "e/file"), ENOTDIR, "rename a dir over a file");

	EXPECT_ERR(open("e/dir", O_WRONLY), EISDIR, "open a dir for writing");
	EXPECT_ERR(unlink("e/dir"), EISDIR, "unlink a dir");
	EXPECT_ERR(rename("e/file", "e/dir"), EISDIR, "rename a file over a dir");

	EXPECT_ERR(rmdir("e/full"), ENOTEMPTY, "rmdir a non-empty dir");
	EXPECT_ERR(rename("e/dir", "e/full"), ENOTEMPTY, "rename a dir over a non-empty dir");

	mkdir("e/dir/sub", 0755);
	EXPECT_ERR(rename("e/dir", "e/dir/sub/into"), EINVAL, "rename a dir into its own subdir");
	EXPECT_ERR(rename("e/dir", "e/dir/into"), EINVAL, "rename a dir into itself");
	EXPECT_ERR(rmdir("e/dir/."), EINVAL, "rmdir of \".\"");

	memset(name, 'n', sizeof(name));
	memcpy(name, "e/", 2);
	name[258] = '\0';
	EXPECT_ERR(open(name, O_RDWR | O_CREAT, 0644), ENAMETOOLONG, "create a 256-byte name");
	EXPECT_ERR(mkdir(name, 0755), ENAMETOOLONG, "mkdir a 256-byte name");
	name[257] = '\0';
	{
		int fd = open(name, O_RDWR | O_CREAT, 0644);

		CHECK(fd >= 0, "a 255-byte name is fine (%s)", fd < 0 ? strerror(errno) : "created");
		if (fd >= 0) {
			close(fd);
		}
		EXPECT_OK(unlink(name), "unlink the 255-byte name");
	}

	symlink("loop2", "e/loop1");
	symlink("loop1", "e/loop2");
	EXPECT_ERR(open("e/loop1", O_RDONLY), ELOOP, "open a symlink loop");
	symlink("file", "e/sym");
	EXPECT_ERR(open("e/sym", O_RDONLY | O_NOFOLLOW), ELOOP, "O_NOFOLLOW on a symlink");
	EXPECT_ERR(readlink("e/file", name, sizeof(name)), EINVAL, "readlink of a file");
}

/* ---- rename --------------------------------------------------------------- */

static void t_rename(void)
{
	char buf[64];
	struct stat a, b;

	mkdir("r", 0755);
	put_file("r/a", "A");
	put_file("r/b", "B");
	link("r/a", "r/a2");
	EXPECT_OK(rename("r/a", "r/a2"), "rename onto a hard link of itself");
	CHECK(access("r/a", F_OK) == 0 && access("r/a2", F_OK) == 0,
	      "both names remain after renaming onto a link of itself");

	EXPECT_OK(rename("r/b", "r/a2"), "rename over an existing file");
	CHECK(strcmp(get_file("r/a2", buf, sizeof(buf)), "B") == 0, "the target has the new content");
	CHECK(nlink_of("r/a") == 1, "the replaced inode lost a link (nlink %ld)", (long)nlink_of("r/a"));

	put_file("r/c", "C");
	EXPECT_ERR(renameat2_("r/c", "r/a", RENAME_NOREPLACE), EEXIST, "RENAME_NOREPLACE onto an existing name");
	EXPECT_OK(renameat2_("r/c", "r/d", RENAME_NOREPLACE), "RENAME_NOREPLACE to a new name");
	CHECK(strcmp(get_file("r/d", buf, sizeof(buf)), "C") == 0, "NOREPLACE moved the file");

	stat("r/a", &a);
	stat("r/d", &b);
	EXPECT_OK(renameat2_("r/a", "r/d", RENAME_EXCHANGE), "RENAME_EXCHANGE of two files");
	CHECK(strcmp(get_file("r/a", buf, sizeof(buf)), "C") == 0 &&
	      strcmp(get_file("r/d", buf, sizeof(buf)), "A") == 0, "EXCHANGE swapped contents");
	{
		struct stat a2, d2;

		stat("r/a", &a2);
		stat("r/d", &d2);
		CHECK(a2.st_ino == b.st_ino && d2.st_ino == a.st_ino, "EXCHANGE swapped inodes");
	}
	mkdir("r/dir", 0755);
	mkdir("r/dir/x", 0755);
	EXPECT_OK(renameat2_("r/a", "r/dir", RENAME_EXCHANGE), "RENAME_EXCHANGE of a file and a dir");
	CHECK(S_ISDIR((stat("r/a", &a), a.st_mode)) && access("r/a/x", F_OK) == 0 &&
	      S_ISREG((stat("r/dir", &b), b.st_mode)), "EXCHANGE swapped file and dir");
	EXPECT_ERR(renameat2_("r/a", "r/none", RENAME_EXCHANGE), ENOENT, "RENAME_EXCHANGE with a missing target");
	EXPECT_ERR(renameat2_("r/a", "r/d", RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL,
		   "EXCHANGE|NOREPLACE together");

	/* Cross-directory moves keep ".." right. */
	mkdir("r/p1", 0755);
	mkdir("r/p2", 0755);
	mkdir("r/p1/child", 0755);
	EXPECT_OK(rename("r/p1/child", "r/p2/child"), "move a dir to another parent");
	CHECK(nlink_of("r/p1") == 2 && nlink_of("r/p2") == 3,
	      "parents' link counts follow (%ld, %ld)", (long)nlink_of("r/p1"), (long)nlink_of("r/p2"));
	{
		struct stat dd, p2;

		stat("r/p2/child/..", &dd);
		stat("r/p2", &p2);
		CHECK(dd.st_ino == p2.st_ino, "\"..\" of the moved dir is its new parent");
	}
	mkdir("r/empty", 0755);
	EXPECT_OK(rename("r/p2/child", "r/empty"), "rename a dir over an empty dir");
	CHECK(access("r/p2/child", F_OK) != 0 && nlink_of("r/p2") == 2, "source gone, link count back");
}

/* ---- link counts ---------------------------------------------------------- */

static void t_links(void)
{
	mkdir("l", 0755);
	put_file("l/f", "x");
	CHECK(nlink_of("l/f") == 1, "new file has nlink 1");
	link("l/f", "l/g");
	link("l/f", "l/h");
	CHECK(nlink_of("l/f") == 3, "two links make nlink 3 (%ld)", (long)nlink_of("l/f"));
	unlink("l/g");
	CHECK(nlink_of("l/h") == 2, "unlink one: nlink 2");
	CHECK(nlink_of("l") == 2, "new dir has nlink 2");
	mkdir("l/s1", 0755);
	mkdir("l/s2", 0755);
	CHECK(nlink_of("l") == 4, "two subdirs make nlink 4 (%ld)", (long)nlink_of("l"));
	rmdir("l/s1");
	CHECK(nlink_of("l") == 3, "rmdir: nlink 3");
	EXPECT_ERR(link("l/s2", "l/s3"), EPERM, "hard link to a dir");
}

/* ---- permissions, as root and as nobody ------------------------------------ */

static void t_attrs_root(void)
{
	struct stat st, st2;
	struct timespec ts[2] = { { .tv_sec = 1000000000, .tv_nsec = 123456789 },
				  { .tv_sec = 1200000000, .tv_nsec = 987654321 } };

	mkdir("p", 0755);
	put_file("p/f", "x");
	EXPECT_OK(chmod("p/f", 0640), "chmod 0640");
	stat("p/f", &st);
	CHECK((st.st_mode & 07777) == 0640, "mode is 0640 (%o)", st.st_mode & 07777);
	EXPECT_OK(chown("p/f", 1234, 5678), "chown 1234:5678");
	stat("p/f", &st);
	CHECK(st.st_uid == 1234 && st.st_gid == 5678, "owner is 1234:5678");
	EXPECT_OK(utimensat(AT_FDCWD, "p/f", ts, 0), "utimensat explicit times");
	stat("p/f", &st);
	CHECK(st.st_atim.tv_sec == ts[0].tv_sec && st.st_atim.tv_nsec == ts[0].tv_nsec &&
	      st.st_mtim.tv_sec == ts[1].tv_sec && st.st_mtim.tv_nsec == ts[1].tv_nsec,
	      "atime and mtime set to the nanosecond");
	EXPECT_OK(utimensat(AT_FDCWD, "p/f", NULL, 0), "utimensat now");
	stat("p/f", &st2);
	CHECK(st2.st_mtim.tv_sec > 1500000000, "mtime is now");
	{
		struct timespec omit[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 5, .tv_nsec = 0 } };

		utimensat(AT_FDCWD, "p/f", omit, 0);
		stat("p/f", &st);
		CHECK(st.st_atim.tv_sec == st2.st_atim.tv_sec && st.st_mtim.tv_sec == 5,
		      "UTIME_OMIT keeps atime");
	}
	stat("p/f", &st);
	sleep(1);
	chmod("p/f", 0644);
	stat("p/f", &st2);
	CHECK(st2.st_ctim.tv_sec > st.st_ctim.tv_sec ||
	      (st2.st_ctim.tv_sec == st.st_ctim.tv_sec && st2.st_ctim.tv_nsec > st.st_ctim.tv_nsec),
	      "chmod updates ctime");
	stat("p", &st);
	sleep(1);
	put_file("p/new", "y");
	stat("p", &st2);
	CHECK(st2.st_mtim.tv_sec > st.st_mtim.tv_sec, "create updates the parent's mtime");
	{
		mode_t old = umask(027);
		int fd = open("p/masked", O_CREAT | O_WRONLY, 0777);

		umask(old);
		fstat(fd, &st);
		close(fd);
		CHECK((st.st_mode & 0777) == 0750, "umask 027 applies to create (%o)", st.st_mode & 0777);
	}
	/* setgid directory: new entries inherit its group */
	mkdir("p/sgid", 0755);
	chown("p/sgid", 0, 4321);
	chmod("p/sgid", 02775);
	put_file("p/sgid/f", "z");
	mkdir("p/sgid/d", 0755);
	stat("p/sgid/f", &st);
	stat("p/sgid/d", &st2);
	CHECK(st.st_gid == 4321, "file in a setgid dir gets its group (%u)", st.st_gid);
	CHECK(st2.st_gid == 4321 && (st2.st_mode & 02000), "subdir of a setgid dir inherits group and bit");

	/* fixtures for the unprivileged child */
	mkdir("p/private", 0700);
	put_file("p/private/secret", "s");
	put_file("p/ro", "r");
	chmod("p/ro", 0400);
	mkdir("p/rootdir", 0755);
	mkdir("p/sticky", 0755);
	chmod("p/sticky", 01777);
	put_file("p/sticky/rootfile", "x");
	put_file("p/mine", "m");
	chown("p/mine", NOBODY, NOBODY);
	put_file("p/notmine", "n");
	chmod("p/notmine", 0644);
}

static void t_perms_nobody(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct timespec ts[2] = { { .tv_sec = 1 }, { .tv_sec = 2 } };

		if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
		    setresuid(NOBODY, NOBODY, NOBODY) != 0) {
			report(0, "cannot become uid %d: %s", NOBODY, strerror(errno));
			_exit(1);
		}
		EXPECT_ERR(opendir("p/private") == NULL ? -1 : 0, EACCES, "nobody: list a 0700 dir");
		EXPECT_ERR(open("p/private/secret", O_RDONLY), EACCES, "nobody: open inside a 0700 dir");
		EXPECT_ERR(open("p/ro", O_RDONLY), EACCES, "nobody: read a root 0400 file");
		EXPECT_ERR(open("p/notmine", O_WRONLY), EACCES, "nobody: write a root 0644 file");
		EXPECT_OK(open("p/notmine", O_RDONLY), "nobody: read a root 0644 file");
		EXPECT_ERR(open("p/rootdir/x", O_CREAT | O_WRONLY, 0644), EACCES, "nobody: create in a root 0755 dir");
		EXPECT_ERR(unlink("p/notmine"), EACCES, "nobody: unlink in a root 0755 dir");
		EXPECT_ERR(chmod("p/notmine", 0777), EPERM, "nobody: chmod a root file");
		EXPECT_ERR(chown("p/mine", 0, 0), EPERM, "nobody: chown its file to root");
		EXPECT_ERR(utimensat(AT_FDCWD, "p/notmine", ts, 0), EPERM, "nobody: set times of a root file");
		EXPECT_ERR(utimensat(AT_FDCWD, "p/notmine", NULL, 0), EACCES, "nobody: touch a root file");
		EXPECT_ERR(unlink("p/sticky/rootfile"), EPERM, "nobody: unlink root's file in a sticky dir");
		EXPECT_OK(put_file("p/sticky/nobodyfile", "n"), "nobody: create in a 1777 dir");
		EXPECT_OK(chmod("p/mine", 0600), "nobody: chmod its own file");
		EXPECT_ERR(setxattr("p/notmine", "user.x", "v", 1, 0), EACCES, "nobody: user xattr on a root file");
		EXPECT_ERR(setxattr("p/mine", "trusted.x", "v", 1, 0), EPERM, "nobody: trusted xattr");
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

/* ---- xattrs --------------------------------------------------------------------- */

static void t_xattr(void)
{
	char buf[8192], big[3000];
	ssize_t n;

	put_file("x", "x");
	EXPECT_OK(setxattr("x", "user.a", "alpha", 5, 0), "set user.a");
	EXPECT_ERR(setxattr("x", "user.a", "beta", 4, XATTR_CREATE), EEXIST, "XATTR_CREATE on an existing attr");
	EXPECT_ERR(setxattr("x", "user.b", "beta", 4, XATTR_REPLACE), ENODATA, "XATTR_REPLACE on a missing attr");
	EXPECT_OK(setxattr("x", "user.a", "ALPHA!", 6, XATTR_REPLACE), "XATTR_REPLACE an existing attr");
	n = getxattr("x", "user.a", NULL, 0);
	CHECK(n == 6, "size query returns the length (%zd)", n);
	n = getxattr("x", "user.a", buf, sizeof(buf));
	CHECK(n == 6 && memcmp(buf, "ALPHA!", 6) == 0, "get returns the value");
	EXPECT_ERR(getxattr("x", "user.a", buf, 3), ERANGE, "get into a small buffer");
	EXPECT_ERR(getxattr("x", "user.none", buf, sizeof(buf)), ENODATA, "get a missing attr");
	EXPECT_OK(setxattr("x", "user.empty", "", 0, 0), "set an empty value");
	CHECK(getxattr("x", "user.empty", buf, sizeof(buf)) == 0, "empty value reads as 0 bytes");
	memset(big, 'v', sizeof(big));
	EXPECT_OK(setxattr("x", "user.big", big, sizeof(big), 0), "set a 3000-byte value (a value lives in one 4 KiB block)");
	n = getxattr("x", "user.big", buf, sizeof(buf));
	CHECK(n == (ssize_t)sizeof(big) && memcmp(buf, big, sizeof(big)) == 0, "3000-byte value reads back");
	EXPECT_OK(setxattr("x", "trusted.t", "tt", 2, 0), "set trusted.t as root");
	n = listxattr("x", NULL, 0);
	CHECK(n > 0, "list size query (%zd)", n);
	n = listxattr("x", buf, sizeof(buf));
	{
		int found = 0;

		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
			found += strcmp(buf + i, "user.a") == 0 || strcmp(buf + i, "user.big") == 0 ||
				 strcmp(buf + i, "user.empty") == 0 || strcmp(buf + i, "trusted.t") == 0;
		}
		CHECK(found == 4, "list names all four (%d)", found);
	}
	EXPECT_ERR(listxattr("x", buf, 2), ERANGE, "list into a small buffer");
	EXPECT_OK(removexattr("x", "user.a"), "remove user.a");
	EXPECT_ERR(removexattr("x", "user.a"), ENODATA, "remove it again");
	EXPECT_ERR(getxattr("x", "user.a", buf, sizeof(buf)), ENODATA, "removed attr is gone");
	symlink("x", "xl");
	EXPECT_ERR(lsetxattr("xl", "user.a", "v", 1, 0), EPERM, "user xattr on a symlink");
}

/* ---- data: truncate, fallocate, seek ---------------------------------------------- */

static long blocks_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (long)st.st_blocks : -1;
}

static off_t size_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_size : -1;
}

static void t_data(void)
{
	const size_t MB = 1 << 20;
	char *buf = malloc(4 * MB);
	char *rd = malloc(4 * MB);
	long b0, b1;
	off_t o;
	int fd;

	/* truncate down then up: the tail reads as zeros */
	fd = open("t", O_RDWR | O_CREAT | O_TRUNC, 0644);
	memset(buf, 0xaa, 3 * MB);
	CHECK(pwrite(fd, buf, 3 * MB, 0) == (ssize_t)(3 * MB), "write 3 MiB");
	EXPECT_OK(ftruncate(fd, MB + 100), "truncate down to 1 MiB + 100");
	EXPECT_OK(ftruncate(fd, 3 * MB), "truncate back up to 3 MiB");
	CHECK(pread(fd, rd, 3 * MB, 0) == (ssize_t)(3 * MB) && all_bytes(rd, MB + 100, 0xaa) &&
	      all_bytes(rd + MB + 100, 2 * MB - 100, 0), "old data up to the cut, zeros after");
	close(fd);

	/* fallocate default: size grows, reads zeros, space is allocated */
	fd = open("fa", O_RDWR | O_CREAT | O_TRUNC, 0644);
	EXPECT_OK(fallocate(fd, 0, 0, 2 * MB), "fallocate 2 MiB");
	CHECK(size_of(fd) == (off_t)(2 * MB), "size is 2 MiB");
	b0 = blocks_of(fd);
	CHECK(b0 >= (long)(2 * MB / 512), "blocks cover 2 MiB (%ld)", b0);
	CHECK(pread(fd, rd, 2 * MB, 0) == (ssize_t)(2 * MB) && all_bytes(rd, 2 * MB, 0),
	      "preallocated range reads as zeros");
	EXPECT_OK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 2 * MB, 2 * MB), "fallocate KEEP_SIZE beyond EOF");
	CHECK(size_of(fd) == (off_t)(2 * MB), "KEEP_SIZE keeps the size");
	b1 = blocks_of(fd);
	CHECK(b1 >= b0 + (long)(2 * MB / 512), "KEEP_SIZE allocated blocks (%ld -> %ld)", b0, b1);
	close(fd);

	/* punch a hole in data */
	fd = open("ph", O_RDWR | O_CREAT | O_TRUNC, 0644);
	memset(buf, 0x5c, 4 * MB);
	pwrite(fd, buf, 4 * MB, 0);
	fsync(fd);
	b0 = blocks_of(fd);
	EXPECT_OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, MB, 2 * MB),
		  "punch 2 MiB out of 4 MiB");
	CHECK(size_of(fd) == (off_t)(4 * MB), "punch keeps the size");
	CHECK(pread(fd, rd, 4 * MB, 0) == (ssize_t)(4 * MB) && all_bytes(rd, MB, 0x5c) &&
	      all_bytes(rd + MB, 2 * MB, 0) && all_bytes(rd + 3 * MB, MB, 0x5c),
	      "the hole reads as zeros, data around it intact");
	b1 = blocks_of(fd);
	CHECK(b1 < b0, "punch freed blocks (%ld -> %ld)", b0, b1);
	EXPECT_OK(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000),
		  "punch an unaligned range");
	CHECK(pread(fd, rd, MB, 0) == (ssize_t)MB && all_bytes(rd, 100, 0x5c) &&
	      all_bytes(rd + 100, 5000, 0) && all_bytes(rd + 5100, MB - 5100, 0x5c),
	      "unaligned punch zeros exactly its bytes");
	EXPECT_ERR(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP, "PUNCH_HOLE without KEEP_SIZE");

	/* zero range */
	EXPECT_OK(fallocate(fd, FALLOC_FL_ZERO_RANGE, 3 * MB + 10, 1000), "ZERO_RANGE inside data");
	CHECK(pread(fd, rd, MB, 3 * MB) == (ssize_t)MB && all_bytes(rd, 10, 0x5c) &&
	      all_bytes(rd + 10, 1000, 0) && all_bytes(rd + 1010, MB - 1010, 0x5c),
	      "ZERO_RANGE zeros exactly its bytes");
	EXPECT_OK(fallocate(fd, FALLOC_FL_ZERO_RANGE, 4 * MB, MB), "ZERO_RANGE past EOF");
	CHECK(size_of(fd) == (off_t)(5 * MB), "ZERO_RANGE past EOF extends the size");
	EXPECT_OK(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 5 * MB, MB),
		  "ZERO_RANGE|KEEP_SIZE past EOF");
	CHECK(size_of(fd) == (off_t)(5 * MB), "ZERO_RANGE|KEEP_SIZE keeps the size");
	close(fd);

	/* SEEK_DATA / SEEK_HOLE on a sparse file */
	fd = open("sp", O_RDWR | O_CREAT | O_TRUNC, 0644);
	pwrite(fd, buf, 4096, 0);
	pwrite(fd, buf, 4096, 64 * MB);
	o = lseek(fd, 0, SEEK_DATA);
	CHECK(o == 0, "SEEK_DATA at 0 finds 0 (%lld)", (long long)o);
	o = lseek(fd, 0, SEEK_HOLE);
	CHECK(o >= 4096 && o < (off_t)(64 * MB), "SEEK_HOLE finds the gap (%lld)", (long long)o);
	o = lseek(fd, 8 * MB, SEEK_DATA);
	CHECK(o > (off_t)(8 * MB) && o <= (off_t)(64 * MB), "SEEK_DATA skips the hole (%lld)", (long long)o);
	o = lseek(fd, 64 * MB, SEEK_HOLE);
	CHECK(o == (off_t)(64 * MB + 4096), "SEEK_HOLE at the last data is EOF (%lld)", (long long)o);
	EXPECT_ERR(lseek(fd, 64 * MB + 4096, SEEK_DATA), ENXIO, "SEEK_DATA at EOF");
	EXPECT_ERR(lseek(fd, 100 * MB, SEEK_HOLE), ENXIO, "SEEK_HOLE past EOF");
	CHECK(pread(fd, rd, MB, 32 * MB) == (ssize_t)MB && all_bytes(rd, MB, 0), "the hole reads as zeros");
	close(fd);
	free(buf);
	free(rd);
}

/* ---- open files ----------------------------------------------------------------- */

static void t_open_files(void)
{
	const size_t MB = 1 << 20;
	char buf[64];
	struct statvfs s0, s1, s2;
	struct stat st;
	char *big = malloc(8 * MB);
	int fd, fd2;

	/* unlink while open */
	memset(big, 0x77, 8 * MB);
	statvfs(".", &s0);
	fd = open("uo", O_RDWR | O_CREAT | O_TRUNC, 0644);
	pwrite(fd, big, 8 * MB, 0);
	fsync(fd);
	statvfs(".", &s1);
	EXPECT_OK(unlink("uo"), "unlink an open file");
	CHECK(access("uo", F_OK) != 0, "its name is gone");
	fstat(fd, &st);
	CHECK(st.st_nlink == 0, "fstat shows nlink 0");
	memset(big, 0, MB);
	CHECK(pread(fd, big, MB, 7 * MB) == (ssize_t)MB && all_bytes(big, MB, 0x77), "still readable");
	CHECK(pwrite(fd, "zz", 2, 0) == 2, "still writable");
	close(fd);
	sync();
	statvfs(".", &s2);
	CHECK(s2.f_bfree * s2.f_frsize >= s1.f_bfree * s1.f_frsize + 7 * MB,
	      "space returns after the last close (%llu -> %llu free bytes)",
	      (unsigned long long)(s1.f_bfree * s1.f_frsize), (unsigned long long)(s2.f_bfree * s2.f_frsize));
	(void)s0;

	/* fsync, fdatasync */
	fd = open("fs", O_RDWR | O_CREAT | O_TRUNC, 0644);
	write(fd, "data", 4);
	EXPECT_OK(fsync(fd), "fsync");
	EXPECT_OK(fdatasync(fd), "fdatasync");
	{
		int dfd = open(".", O_RDONLY | O_DIRECTORY);

		EXPECT_OK(fsync(dfd), "fsync of a directory");
		close(dfd);
	}
	EXPECT_OK(syncfs(fd), "syncfs");
	close(fd);

	/* O_APPEND */
	put_file("ap", "12345");
	fd = open("ap", O_WRONLY | O_APPEND);
	fd2 = open("ap", O_WRONLY);
	pwrite(fd2, "abcdefgh", 8, 0);
	write(fd, "XY", 2);
	close(fd);
	close(fd2);
	CHECK(strcmp(get_file("ap", buf, sizeof(buf)), "abcdefghXY") == 0, "O_APPEND writes at the current end (%s)", buf);

	/* O_TRUNC */
	fd = open("ap", O_WRONLY | O_TRUNC);
	fstat(fd, &st);
	close(fd);
	CHECK(st.st_size == 0, "O_TRUNC empties the file");

	/* O_DIRECT aligned I/O */
	{
		void *wb = NULL, *rb = NULL;

		posix_memalign(&wb, 4096, MB);
		posix_memalign(&rb, 4096, MB);
		for (size_t i = 0; i < MB; i++) {
			((unsigned char *)wb)[i] = (unsigned char)(i * 7 + 3);
		}
		fd = open("od", O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
		CHECK(fd >= 0, "open O_DIRECT (%s)", fd < 0 ? strerror(errno) : "ok");
		CHECK(pwrite(fd, wb, MB, 3 * 4096) == (ssize_t)MB, "O_DIRECT write 1 MiB at 12 KiB");
		CHECK(pread(fd, rb, MB, 3 * 4096) == (ssize_t)MB && memcmp(wb, rb, MB) == 0,
		      "O_DIRECT read returns it");
		CHECK(pread(fd, rb, 4096, 0) == 4096 && all_bytes(rb, 4096, 0), "O_DIRECT read of the gap is zeros");
		close(fd);
		fd = open("od", O_RDONLY);
		CHECK(pread(fd, rb, MB, 3 * 4096) == (ssize_t)MB && memcmp(wb, rb, MB) == 0,
		      "buffered read sees the O_DIRECT data");
		close(fd);
		free(wb);
		free(rb);
	}

	/* special files */
	EXPECT_OK(mknod("fifo", S_IFIFO | 0644, 0), "mknod a fifo");
	CHECK(stat("fifo", &st) == 0 && S_ISFIFO(st.st_mode), "it is a fifo");
	EXPECT_OK(mknod("chr", S_IFCHR | 0600, makedev(1, 3)), "mknod a char device");
	CHECK(stat("chr", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
	      "char device keeps its rdev");
	EXPECT_OK(mknod("sock", S_IFSOCK | 0644, 0), "mknod a socket");
	CHECK(stat("sock", &st) == 0 && S_ISSOCK(st.st_mode), "it is a socket");
	free(big);
}

/* ---- a big directory ------------------------------------------------------------------ */

static void t_bigdir(void)
{
	enum { N = 10000 };
	unsigned char *seen = calloc(N, 1);
	char name[64];
	struct dirent *de;
	long pos;
	char after[256] = "";
	int dups = 0, others = 0, dots = 0, created = 0;
	DIR *d;

	mkdir("big", 0755);
	for (int i = 0; i < N; i++) {
		int fd;

		snprintf(name, sizeof(name), "big/entry-%05d", i);
		fd = open(name, O_CREAT | O_WRONLY, 0644);
		if (fd >= 0) {
			created++;
			close(fd);
		}
	}
	CHECK(created == N, "created %d of %d entries", created, N);
	d = opendir("big");
	while ((de = readdir(d)) != NULL) {
		int i;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			dots++;
			continue;
		}
		if (sscanf(de->d_name, "entry-%05d", &i) != 1 || i < 0 || i >= N) {
			others++;
			continue;
		}
		if (seen[i]++) {
			dups++;
		}
	}
	{
		int missing = 0;

		for (int i = 0; i < N; i++) {
			missing += seen[i] == 0;
		}
		CHECK(missing == 0 && dups == 0 && others == 0 && dots == 2,
		      "readdir of %d entries: each exactly once (missing %d, dups %d, others %d, dots %d)", N,
		      missing, dups, others, dots);
	}
	/* telldir/seekdir: come back to a position and read the same entry */
	rewinddir(d);
	for (int i = 0; i < N / 2; i++) {
		readdir(d);
	}
	pos = telldir(d);
	de = readdir(d);
	if (de != NULL) {
		snprintf(after, sizeof(after), "%s", de->d_name);
	}
	for (int i = 0; i < 1000; i++) {
		readdir(d);
	}
	seekdir(d, pos);
	de = readdir(d);
	CHECK(de != NULL && strcmp(de->d_name, after) == 0, "seekdir(telldir) returns to the same entry");
	closedir(d);

	/* entries removed while listing are not listed twice, the rest once */
	memset(seen, 0, N);
	d = opendir("big");
	dups = 0;
	{
		int count = 0;

		while ((de = readdir(d)) != NULL) {
			int i;

			if (sscanf(de->d_name, "entry-%05d", &i) == 1 && i >= 0 && i < N) {
				if (seen[i]++) {
					dups++;
				}
				if (count++ == 100) {
					for (int k = 0; k < N; k += 2) {
						snprintf(name, sizeof(name), "big/entry-%05d", k);
						unlink(name);
					}
				}
			}
		}
		CHECK(dups == 0, "unlinking half during readdir lists nothing twice");
	}
	closedir(d);
	free(seen);
}

int main(int argc, char **argv)
{
	if (argc != 2 || chdir(argv[1]) != 0) {
		fprintf(stderr, "usage: posix_check DIR (an empty directory on the mount)\n");
		return 2;
	}
	cnt = mmap(NULL, sizeof(*cnt), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (cnt == MAP_FAILED) {
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	chmod(".", 0755);
	t_errors();
	t_rename();
	t_links();
	t_attrs_root();
	t_perms_nobody();
	t_xattr();
	t_data();
	t_open_files();
	t_bigdir();
	printf("%d passed, %d failed\n", cnt->passed, cnt->failed);
	return cnt->failed > 0 ? 1 : 0;
}
