/*
 * docs/FORMAT.md is normative and include/lunfs/ mirrors it: this test
 * reads the document and checks tables against what the compiler says,
 * so that a change to one without the other fails here.
 *
 * Checked: every row of the superblock layout (6.1: offset, size, name)
 * against offsetof/sizeof of struct lunfs_super_disk, both ways (no field
 * missing from the table, no row without a field); the feature flags
 * (18.8: mask, bit, name) against the LUNFS_FEAT_* bits, both ways.
 *
 * The document is found at $LUNFS_SRC/docs/FORMAT.md, else docs/FORMAT.md
 * from the working directory (make runs tests from the repository root),
 * else two levels above the test binary (build/tests/).
 */
#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lunfs/format.h"
#include "lunfs/super.h"

#define DOC_LINE_MAX 1024

static FILE *doc_open(void)
{
	char path[PATH_MAX + 32];
	const char *src = getenv("LUNFS_SRC");
	FILE *f;
	ssize_t n;

	if (src != NULL && src[0] != '\0') {
		snprintf(path, sizeof(path), "%s/docs/FORMAT.md", src);
		return fopen(path, "r");
	}
	f = fopen("docs/FORMAT.md", "r");
	if (f != NULL) {
		return f;
	}
	n = readlink("/proc/self/exe", path, PATH_MAX);
	if (n <= 0) {
		return NULL;
	}
	path[n] = '\0';
	for (int up = 0; up < 3; up++) {
		char *slash = strrchr(path, '/');

		if (slash == NULL) {
			return NULL;
		}
		*slash = '\0';
	}
	strcat(path, "/docs/FORMAT.md");
	return fopen(path, "r");
}

/* Split a table row "| a | b | c |" into at most max trimmed cells, in
 * place. Returns the number of cells, 0 if the line is not a row. */
static int doc_row_split(char *line, char **cells, int max)
{
	int n = 0;
	char *p = line;

	if (*p != '|') {
		return 0;
	}
	p++;
	while (*p != '\0' && *p != '\n' && n < max) {
		char *end = strchr(p, '|');
		char *b = p, *e;

		if (end == NULL) {
			break;
		}
		*end = '\0';
		while (*b == ' ') {
			b++;
		}
		e = b + strlen(b);
		while (e > b && e[-1] == ' ') {
			*--e = '\0';
		}
		cells[n++] = b;
		p = end + 1;
	}
	return n;
}

/* Strip one pair of backticks. */
static const char *doc_unquote(char *s)
{
	size_t len = strlen(s);

	if (len >= 2 && s[0] == '`' && s[len - 1] == '`') {
		s[len - 1] = '\0';
		return s + 1;
	}
	return s;
}

/* The lines of one section: from the heading that starts with `section`
 * to the next heading, as one malloc'd string (the file is closed before
 * anything is checked, so a failed assertion leaves nothing open). NULL if
 * the section is missing. */
static char *doc_section_read(const char *section)
{
	FILE *f = doc_open();
	char line[DOC_LINE_MAX];
	char *text = NULL;
	size_t len = 0;
	bool in = false;

	if (f == NULL) {
		return NULL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);
		char *grown;

		if (line[0] == '#') {
			if (in) {
				break;
			}
			in = strncmp(line, section, strlen(section)) == 0;
			continue;
		}
		if (!in) {
			continue;
		}
		grown = realloc(text, len + n + 1);
		if (grown == NULL) {
			free(text);
			text = NULL;
			break;
		}
		text = grown;
		memcpy(text + len, line, n + 1);
		len += n;
	}
	fclose(f);
	if (in && text == NULL) {
		text = strdup("");
	}
	return text;
}

/* Calls row(cells, n, arg) for every row of the first table of the section
 * (the header and rule rows skipped). Returns the number of rows. */
static int doc_table_walk(const char *section, void (*row)(char **cells, int n, void *arg), void *arg)
{
	char *text = doc_section_read(section);
	char *save = NULL, *line;
	bool header = true;
	int rows = 0;

	ck_assert_msg(text != NULL, "no section '%s' in docs/FORMAT.md (or the file is not found: "
		      "set LUNFS_SRC)", section);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char *cells[8];
		int n = doc_row_split(line, cells, 8);

		if (n == 0) {
			if (!header) {
				break; /* the end of the first table */
			}
			continue;
		}
		if (header) {
			header = false; /* the column names */
			continue;
		}
		if (strncmp(cells[0], "---", 3) == 0) {
			continue;
		}
		row(cells, n, arg);
		rows++;
	}
	free(text);
	return rows;
}

/* ---- 6.1: the superblock ------------------------------------------------- */

struct sb_field {
	const char *name;
	size_t off, size;
	bool seen;
};

#define SB_FIELD(f) { #f, offsetof(struct lunfs_super_disk, f), sizeof(((struct lunfs_super_disk *)0)->f), false }

static void sb_row(char **cells, int n, void *arg)
{
	struct sb_field *fields = arg;
	const char *name;
	unsigned long off, size;

	ck_assert_int_ge(n, 4);
	name = doc_unquote(cells[3]);
	off = strtoul(cells[0], NULL, 10);
	size = strtoul(cells[1], NULL, 10);
	for (struct sb_field *f = fields; f->name != NULL; f++) {
		if (strcmp(f->name, name) == 0) {
			ck_assert_msg(!f->seen, "FORMAT 6.1: %s listed twice", name);
			ck_assert_msg(f->off == off, "FORMAT 6.1: %s at %lu, the struct has %zu", name, off, f->off);
			ck_assert_msg(f->size == size, "FORMAT 6.1: %s is %lu bytes, the struct has %zu", name,
				      size, f->size);
			f->seen = true;
			return;
		}
	}
	ck_abort_msg("FORMAT 6.1: row %s has no field in struct lunfs_super_disk", name);
}

START_TEST(test_doc_superblock_layout)
{
	struct sb_field fields[] = {
		SB_FIELD(magic), SB_FIELD(major), SB_FIELD(minor), SB_FIELD(flags),
		SB_FIELD(feat_compat), SB_FIELD(feat_ro_compat), SB_FIELD(feat_incompat),
		SB_FIELD(reserved0), SB_FIELD(self), SB_FIELD(uuid), SB_FIELD(label),
		SB_FIELD(dir_hash_key), SB_FIELD(volume_size), SB_FIELD(create_time_ns),
		SB_FIELD(sector_size), SB_FIELD(meta_block_size), SB_FIELD(file_block_size),
		SB_FIELD(max_hosts), SB_FIELD(hb_interval_ms), SB_FIELD(dead_timeout_ms),
		SB_FIELD(io_deadline_ms), SB_FIELD(paxos_instances), SB_FIELD(cluster_size),
		SB_FIELD(cluster_count), SB_FIELD(journal_size), SB_FIELD(root_ino), SB_FIELD(regions),
		SB_FIELD(inode_slot_size), SB_FIELD(kdf_iterations), SB_FIELD(kdf_salt),
		SB_FIELD(hmac_check), SB_FIELD(enc_check), SB_FIELD(reserved), SB_FIELD(crc),
		{ NULL, 0, 0, false },
	};
	size_t total = 0;
	int rows = doc_table_walk("### 6.1 Layout", sb_row, fields);

	ck_assert_msg(rows > 0, "FORMAT.md has no section 6.1 table");
	for (struct sb_field *f = fields; f->name != NULL; f++) {
		ck_assert_msg(f->seen, "FORMAT 6.1 does not list the superblock field %s", f->name);
		total += f->size;
	}
	/* The list above names every byte: the struct has no field the
	 * document could be missing. */
	ck_assert_uint_eq(total, sizeof(struct lunfs_super_disk));
}
END_TEST

/* ---- 18.8: feature flags ----------------------------------------------- */

struct feat_bit {
	const char *mask, *name;
	uint32_t bit;
	bool seen;
};

static void feat_row(char **cells, int n, void *arg)
{
	struct feat_bit *bits = arg;
	const char *mask, *name;
	unsigned long bitno;
	char *end = NULL;

	ck_assert_int_ge(n, 3);
	mask = doc_unquote(cells[0]);
	name = cells[2];
	bitno = strtoul(cells[1], &end, 10);
	if (end == cells[1]) {
		ck_assert_str_eq(name, ""); /* "none defined": no bit, no name */
		return;
	}
	ck_assert_uint_lt(bitno, 32);
	for (struct feat_bit *b = bits; b->mask != NULL; b++) {
		if (strcmp(b->mask, mask) == 0 && strcmp(b->name, name) == 0) {
			ck_assert_msg(b->bit == (1u << bitno), "FORMAT 18.8: %s %s is bit %lu, the header has 0x%x",
				      mask, name, bitno, b->bit);
			ck_assert_msg(!b->seen, "FORMAT 18.8: %s listed twice", name);
			b->seen = true;
			return;
		}
	}
	ck_abort_msg("FORMAT 18.8: %s %s has no LUNFS_FEAT_ bit in include/lunfs/super.h", mask, name);
}

START_TEST(test_doc_feature_flags)
{
	struct feat_bit bits[] = {
		{ "feat_incompat", "HMAC", LUNFS_FEAT_INCOMPAT_HMAC, false },
		{ "feat_incompat", "ENCRYPT", LUNFS_FEAT_INCOMPAT_ENCRYPT, false },
		{ "feat_incompat", "PAXOS", LUNFS_FEAT_INCOMPAT_PAXOS, false },
		{ NULL, NULL, 0, false },
	};
	uint32_t known = 0;
	int rows = doc_table_walk("### 18.8 Feature flags", feat_row, bits);

	ck_assert_msg(rows > 0, "FORMAT.md has no section 18.8 table");
	for (struct feat_bit *b = bits; b->mask != NULL; b++) {
		ck_assert_msg(b->seen, "FORMAT 18.8 does not list %s %s", b->mask, b->name);
		known |= b->bit;
	}
	/* A bit this build supports is a bit the document defines. */
	ck_assert_uint_eq(LUNFS_FEAT_INCOMPAT_SUPPORTED & ~known, 0);
	ck_assert_uint_eq(LUNFS_FEAT_RO_COMPAT_SUPPORTED, 0);
	ck_assert_uint_eq(LUNFS_FEAT_COMPAT_SUPPORTED, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("format_doc");
	TCase *tc = tcase_create("tables");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_doc_superblock_layout);
	tcase_add_test(tc, test_doc_feature_flags);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
