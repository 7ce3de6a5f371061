/*
 * fs_testvol: a mounted volume on a memory device for unit tests (see
 * fs_testvol.h). The host name is fixed so that a remount after a crash
 * gets the same heartbeat slot back and replays its journal; there is no
 * heartbeat thread, so a fault device sees a deterministic I/O sequence.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs_testvol.h"
#include "lunfs/cluster.h"
#include "lunfs/volume.h"

#define TESTVOL_FILL_CHUNK (4u << 20)

static int testvol_fill(struct lunfs_dev *dev, uint8_t byte)
{
	uint8_t *buf = dev_buf_alloc(TESTVOL_FILL_CHUNK);
	int ret = 0;

	if (buf == NULL) {
		return -ENOMEM;
	}
	memset(buf, byte, TESTVOL_FILL_CHUNK);
	for (uint64_t off = 0; off < dev->size && ret == 0; off += TESTVOL_FILL_CHUNK) {
		uint64_t n = dev->size - off < TESTVOL_FILL_CHUNK ? dev->size - off : TESTVOL_FILL_CHUNK;

		ret = dev_write(dev, buf, n, off);
	}
	dev_buf_free(buf);
	return ret;
}

int fs_testvol_create(const struct fs_testvol_opts *o, struct fs_testvol *t)
{
	struct lunfs_vol_create_opts co;
	struct lunfs_dev *mem = NULL;
	int ret;

	memset(t, 0, sizeof(*t));
	ret = dev_mem_open(o->size, o->sector_size != 0 ? o->sector_size : 512, &mem);
	if (ret != 0) {
		return ret;
	}
	mem->mem_align = o->mem_align;
	if (o->prefill) {
		ret = testvol_fill(mem, o->prefill_byte);
		if (ret != 0) {
			dev_close(mem);
			return ret;
		}
	}
	memset(&co, 0, sizeof(co));
	co.layout.file_block_size = o->file_block_size;
	co.layout.cluster_size = o->cluster_size;
	co.layout.max_hosts = o->max_hosts != 0 ? o->max_hosts : 4;
	co.layout.journal_size = o->journal_size != 0 ? o->journal_size : (4u << 20);
	co.label = "testvol";
	co.caw = o->caw; /* chosen explicitly: see fs_testvol_opts */
	ret = vol_create(mem, &co, &t->sb, NULL, NULL);
	if (ret != 0) {
		dev_close(mem);
		return ret;
	}
	if (o->fault) {
		/* The fault layer owns mem from here on, even on failure. */
		ret = dev_fault_open(mem, &t->dev, &t->fault);
		if (ret != 0) {
			return ret;
		}
	} else {
		t->dev = mem;
	}
	t->discard = o->discard;
	ret = fs_testvol_mount(t);
	if (ret != 0) {
		dev_close(t->dev);
		t->dev = NULL;
	}
	return ret;
}

static uint64_t testvol_now_ns(void *arg)
{
	struct fs_testvol *t = arg;

	return __atomic_load_n(&t->clock_ns, __ATOMIC_SEQ_CST);
}

static void testvol_sleep_ns(void *arg, uint64_t ns)
{
	struct fs_testvol *t = arg;

	__atomic_add_fetch(&t->clock_ns, ns, __ATOMIC_SEQ_CST);
}

int fs_testvol_mount(struct fs_testvol *t)
{
	struct lunfs_mount_opts mo;

	if (t->clock.now_ns == NULL) {
		t->clock_ns = 1000000000ull;
		t->clock.now_ns = testvol_now_ns;
		t->clock.sleep_ns = testvol_sleep_ns;
		t->clock.arg = t;
	}

	memset(&mo, 0, sizeof(mo));
	mo.host_name = "testvol";
	mo.commit_interval_ms = 600000; /* commits come from syncs and full handles only */
	mo.no_hb_thread = true;
	mo.clock = &t->clock;
	mo.discard = t->discard;
	return vol_mount(t->dev, &mo, &t->v);
}

int fs_testvol_unmount(struct fs_testvol *t)
{
	int ret = vol_unmount(t->v);

	t->v = NULL;
	return ret;
}

void fs_testvol_abandon(struct fs_testvol *t)
{
	(void)vol_unmount(t->v);
	t->v = NULL;
}

void fs_testvol_destroy(struct fs_testvol *t)
{
	if (t->v != NULL) {
		fs_testvol_abandon(t);
	}
	if (t->dev != NULL) {
		dev_close(t->dev);
		t->dev = NULL;
	}
	t->fault = NULL;
}

int fs_testvol_inode_new(struct fs_testvol *t, uint32_t mode, struct inode_mem **out)
{
	struct lunfs_vol *v = t->v;
	struct jnl_handle *h;
	int ret, r;

	pthread_mutex_lock(&v->meta_lock);
	ret = jnl_start(v->jnl, 16, &h);
	if (ret == 0) {
		ret = inode_alloc(v, h, mode, 0, 0, v->sb.root_ino, out);
		r = jnl_stop(h, false);
		ret = ret != 0 ? ret : r;
	}
	pthread_mutex_unlock(&v->meta_lock);
	return ret;
}

int fs_testvol_units_used(struct fs_testvol *t, uint8_t type, uint64_t *used)
{
	struct lunfs_vol *v = t->v;

	*used = 0;
	for (uint64_t c = 0; c < v->sb.cluster_count; c++) {
		struct lunfs_cluster_hdr ch;
		struct mc_entry *e;
		uint64_t addr = layout_cluster_addr(&v->sb, c);
		int ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, &e);

		if (ret != 0) {
			return ret;
		}
		if (cluster_hdr_decode(&v->codec, e->buf, addr, &ch) == 0 && ch.type == type) {
			*used += ch.units_total - ch.units_free - ch.header_units;
		}
		mc_put(v->mc, e);
	}
	return 0;
}
