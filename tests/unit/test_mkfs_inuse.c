/*
 * mkfs.lunfs must never format a volume that live hosts are using, even
 * with -f. A thread here plays a mounted host: it keeps a LIVE heartbeat
 * slot beating (100 ms interval, a beat every 50 ms) on an image in
 * /dev/shm while the real mkfs.lunfs binary runs against that image. Then
 * the thread stops, leaving its slot LIVE as a crashed host would, and
 * mkfs -f must go ahead.
 *
 * The binary is $LUNFS_BUILD/mkfs.lunfs, or mkfs.lunfs in the build
 * directory this test was built into (the parent of its own directory).
 */
#include <check.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lunfs/dev.h"
#include "lunfs/format.h"
#include "lunfs/heartbeat.h"
#include "lunfs/probe.h"
#include "lunfs/volume.h"

#define MiB (1024ull * 1024ull)
#define BUSY_SLOT 2u

/* Check's unchecked fixtures run in the runner process, so the test and
 * its teardown can only share file-scope state: the image's path. The
 * teardown removes the image whether or not the test passed. */
static char image_path[64];

static void image_setup(void)
{
	int fd;

	snprintf(image_path, sizeof(image_path), "/dev/shm/lunfs-unit-inuse.XXXXXX");
	fd = mkstemp(image_path);
	if (fd < 0 || ftruncate(fd, (off_t)(256 * MiB)) != 0) {
		perror("lunfs test image");
		exit(EXIT_FAILURE);
	}
	close(fd);
}

static void image_teardown(void)
{
	unlink(image_path);
}

static void mkfs_path(char *out, size_t len)
{
	const char *b = getenv("LUNFS_BUILD");
	char exe[PATH_MAX];
	ssize_t n;

	if (b != NULL && b[0] != '\0') {
		snprintf(out, len, "%s/mkfs.lunfs", b);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	/* <build>/tests/test_mkfs_inuse -> <build>/mkfs.lunfs */
	snprintf(out, len, "%s/../mkfs.lunfs", dirname(exe));
}

/* Run mkfs.lunfs with args; returns its exit status, stderr in err. */
static int run_mkfs(const char *const *args, char *err, size_t errlen)
{
	char prog[PATH_MAX + 32];
	const char *argv[8];
	int pfd[2], status;
	size_t got = 0, n = 0;
	pid_t pid;

	mkfs_path(prog, sizeof(prog));
	ck_assert_msg(access(prog, X_OK) == 0, "no mkfs.lunfs at %s (set LUNFS_BUILD)", prog);
	argv[n++] = prog;
	for (; args[n - 1] != NULL && n < 7; n++) {
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], STDERR_FILENO);
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execv(prog, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], err + got, errlen - 1 - got);

		if (r < 0 && errno == EINTR) {
			continue;
		}
		if (r <= 0) {
			break;
		}
		got += (size_t)r;
		if (got == errlen - 1) {
			char sink[256];

			while (read(pfd[0], sink, sizeof(sink)) > 0) {
			}
			break;
		}
	}
	err[got] = '\0';
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	if (getenv("LUNFS_TEST_VERBOSE") != NULL) {
		fprintf(stderr, "--- mkfs.lunfs output:\n%s", err);
	}
	ck_assert_msg(WIFEXITED(status), "mkfs.lunfs died: %s", err);
	return WEXITSTATUS(status);
}

/* The pretend host. */
struct beater {
	struct lunfs_dev *dev;
	const struct lunfs_super *sb;
	atomic_bool stop;
	atomic_int writes;
	int err;
};

static void beat_write(struct beater *b, uint64_t seq)
{
	struct lunfs_codec c;
	struct lunfs_hb_slot hb;
	uint64_t addr = layout_hb_addr(b->sb, BUSY_SLOT);
	uint8_t *rec = dev_buf_alloc(b->sb->sector_size);
	int err;

	if (rec == NULL) {
		b->err = -ENOMEM;
		return;
	}
	sb_codec(b->sb, &c);
	memset(&hb, 0, sizeof(hb));
	hb.slot = BUSY_SLOT;
	hb.state = LUNFS_HB_LIVE;
	hb.generation = 1;
	hb.seq = seq;
	strcpy(hb.host_name, "busy-host");
	hb.hb_interval_ms = 100;
	hb.io_deadline_ms = 100;
	hb.dead_timeout_ms = 600;
	hb.journal_offset = layout_journal_addr(b->sb, BUSY_SLOT);
	hb.journal_size = b->sb->journal_size;
	hb.pid = (uint32_t)getpid();
	hb_encode(&c, &hb, addr, rec);
	err = dev_write(b->dev, rec, b->sb->sector_size, addr);
	if (err < 0) {
		b->err = err;
	}
	dev_buf_free(rec);
}

static void *beater_main(void *arg)
{
	struct beater *b = arg;
	const struct timespec period = { .tv_sec = 0, .tv_nsec = 50 * 1000 * 1000 };
	uint64_t seq = 1;

	while (!atomic_load(&b->stop)) {
		beat_write(b, seq++);
		atomic_fetch_add(&b->writes, 1);
		nanosleep(&period, NULL);
	}
	return NULL;
}

START_TEST(test_mkfs_refuses_live_volume)
{
	struct lunfs_dev_file_opts fo = { .caw = LUNFS_CAW_LOCAL };
	struct lunfs_vol_create_opts o;
	struct lunfs_super sb, rd;
	struct beater b;
	pthread_t th;
	char out[8192];
	const char *force[] = { "-f", image_path, NULL };
	int rc;

	ck_assert_int_eq(dev_file_open(image_path, &fo, &b.dev), 0);
	memset(&o, 0, sizeof(o));
	o.label = "inuse";
	o.layout.max_hosts = 8;
	ck_assert_int_eq(vol_create(b.dev, &o, &sb, NULL, NULL), 0);

	b.sb = &sb;
	b.err = 0;
	atomic_init(&b.stop, false);
	atomic_init(&b.writes, 0);
	beat_write(&b, 0); /* LIVE before mkfs first looks */
	ck_assert_int_eq(pthread_create(&th, NULL, beater_main, &b), 0);

	rc = run_mkfs(force, out, sizeof(out));
	ck_assert_msg(rc == 1, "mkfs -f on a live volume exited %d: %s", rc, out);
	ck_assert_msg(strstr(out, "in use by live hosts") != NULL, "message: %s", out);
	ck_assert_msg(strstr(out, "busy-host") != NULL, "message names no host: %s", out);
	ck_assert_int_eq(sb_read(b.dev, &rd, NULL, NULL), 0);
	ck_assert_mem_eq(rd.uuid, sb.uuid, LUNFS_UUID_SIZE);

	/* The host "crashes": its slot stays LIVE but stops moving. */
	atomic_store(&b.stop, true);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(b.err, 0);
	ck_assert_int_gt(atomic_load(&b.writes), 0);

	rc = run_mkfs(force, out, sizeof(out));
	ck_assert_msg(rc == 0, "mkfs -f over a crashed host exited %d: %s", rc, out);
	ck_assert_msg(strstr(out, "not moving") != NULL, "no warning about the dead slot: %s", out);
	ck_assert_int_eq(sb_read(b.dev, &rd, NULL, NULL), 0);
	ck_assert_mem_ne(rd.uuid, sb.uuid, LUNFS_UUID_SIZE);
	dev_close(b.dev);
}
END_TEST

/* Without -f, an existing volume is refused at once, named by its label. */
START_TEST(test_mkfs_refuses_without_force)
{
	struct lunfs_dev_file_opts fo = { .caw = LUNFS_CAW_LOCAL };
	struct lunfs_vol_create_opts o;
	struct lunfs_super sb, rd;
	struct lunfs_dev *dev;
	char out[8192];
	const char *plain[] = { image_path, NULL };
	int rc;

	ck_assert_int_eq(dev_file_open(image_path, &fo, &dev), 0);
	memset(&o, 0, sizeof(o));
	o.label = "keepme";
	ck_assert_int_eq(vol_create(dev, &o, &sb, NULL, NULL), 0);
	rc = run_mkfs(plain, out, sizeof(out));
	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "lunfs volume 'keepme'") != NULL, "message: %s", out);
	ck_assert_msg(strstr(out, "use -f") != NULL, "message: %s", out);
	ck_assert_int_eq(sb_read(dev, &rd, NULL, NULL), 0);
	ck_assert_mem_eq(rd.uuid, sb.uuid, LUNFS_UUID_SIZE);
	dev_close(dev);
}
END_TEST

static Suite *mkfs_inuse_suite(void)
{
	Suite *s = suite_create("mkfs_inuse");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	/* Unchecked: runs in the runner, so teardown happens even when a
	 * test's process dies on a failed assertion. One image per test. */
	tcase_add_unchecked_fixture(tc, image_setup, image_teardown);
	tcase_add_test(tc, test_mkfs_refuses_live_volume);
	suite_add_tcase(s, tc);

	tc = tcase_create("force");
	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, image_setup, image_teardown);
	tcase_add_test(tc, test_mkfs_refuses_without_force);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mkfs_inuse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
