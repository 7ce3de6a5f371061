/*
 * Extended attributes and symlink targets (docs/FORMAT.md sections 14 and
 * 15, include/lunfs/xattr.h).
 *
 * Xattrs: inode.xattr_blk heads a chain of 4 KiB xattr blocks (META
 * units). Each block holds packed entries (namespace, name without its
 * prefix, value); a value lives whole in one block, so it is at most
 * 4000 - name length bytes. A (namespace, name) pair appears once in the
 * chain. Set replaces in place when the new entry fits the block it is in,
 * else writes it into the first block with room (or a new block, linked at
 * the head of the chain) and then removes the old one. Removing the last
 * entry of a block unlinks and frees the block. Order inside a block and
 * along the chain carries no meaning.
 *
 * Errors follow Linux: a name without a known prefix is -EOPNOTSUPP, an
 * empty name -EINVAL, a name longer than 255 bytes -ERANGE; a value larger
 * than XATTR_SIZE_MAX (65536) -E2BIG, one that cannot fit in a block
 * -ENOSPC; XATTR_CREATE on an existing name -EEXIST, XATTR_REPLACE or get
 * or remove of a missing one -ENODATA; a buffer too small -ERANGE (len 0
 * asks for the size).
 *
 * Symlinks: a target of at most LUNFS_INODE_INLINE_SIZE (192) bytes lives
 * in the inode's inline area with flag INLINE; a longer one (up to 4095,
 * PATH_MAX - 1) in logical blocks 0 and 1 of the inode's META map, 4028
 * bytes per block, hdr.aux = bytes in the block. size = target length. A
 * target is set once, when the symlink is created.
 *
 * Hostile images: every block is checked (codec, owner ino, chain length
 * bounded), so corruption gives -EUCLEAN, never a loop or a crash.
 *
 * Locking: callers hold im->lock (read for get/list/symlink_get; write plus
 * vol.meta_lock and a handle for changes). Encoding goes through a local
 * image because decoded values point into the cached block itself.
 *
 * Inode write-back: xattr_set, xattr_remove, xattr_free and symlink_set
 * call inode_dirty(im) themselves whenever they changed im->di (the chain
 * head, the symlink target, size, flags, map); the caller may change more
 * (ctime) and call it again.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs_internal.h"
#include "lunfs/cluster.h"
#include "lunfs/inode.h"
#include "lunfs/xattr.h"

/* Linux's limits (linux/limits.h): value size, symlink target < PATH_MAX. */
#define XATTR_VALUE_MAX 65536u
#define XATTR_SUBNAME_MAX 255u
#define SYMLINK_TARGET_MAX 4095u
/* A chain longer than this is a cycle (a chain of 1-entry blocks with
 * the largest values and XATTR_LIST_MAX worth of names stays far below). */
#define XATTR_CHAIN_MAX 65536u
#define XATTR_ALLOC_CREDITS 4u

struct xattr_prefix {
	const char *prefix;
	size_t len;
	uint8_t ns;
};

static const struct xattr_prefix xattr_prefixes[] = {
	{ "user.", 5, LUNFS_XATTR_USER },
	{ "trusted.", 8, LUNFS_XATTR_TRUSTED },
	{ "security.", 9, LUNFS_XATTR_SECURITY },
	{ "system.", 7, LUNFS_XATTR_SYSTEM },
};

/* One xattr block, decoded; values point into e->buf. */
struct xattr_blkbuf {
	uint64_t addr;
	struct mc_entry *e;          /* referenced while loaded */
	uint32_t used;
	struct lunfs_xattr_blk blk;  /* blk.ents = ents */
	struct lunfs_xattr ents[LUNFS_XATTR_MAX_ENTRIES];
};

/* A parsed name: namespace and the part after the prefix. */
struct xattr_name {
	uint8_t ns;
	const char *sub;
	size_t sublen;
};

static int xattr_name_parse(const char *name, struct xattr_name *out)
{
	if (name == NULL) {
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(xattr_prefixes) / sizeof(xattr_prefixes[0]); i++) {
		const struct xattr_prefix *p = &xattr_prefixes[i];

		if (strncmp(name, p->prefix, p->len) != 0) {
			continue;
		}
		out->ns = p->ns;
		out->sub = name + p->len;
		out->sublen = strlen(out->sub);
		if (out->sublen == 0) {
			return -EINVAL;
		}
		if (out->sublen > XATTR_SUBNAME_MAX) {
			return -ERANGE;
		}
		return 0;
	}
	return -EOPNOTSUPP;
}

static const struct xattr_prefix *xattr_prefix_of(uint8_t ns)
{
	for (size_t i = 0; i < sizeof(xattr_prefixes) / sizeof(xattr_prefixes[0]); i++) {
		if (xattr_prefixes[i].ns == ns) {
			return &xattr_prefixes[i];
		}
	}
	return NULL;
}

static void xattr_blk_release(struct lunfs_vol *v, struct xattr_blkbuf *xb)
{
	if (xb->e != NULL) {
		mc_put(v->mc, xb->e);
		xb->e = NULL;
	}
}

static int xattr_blk_load(struct lunfs_vol *v, const struct inode_mem *im, uint64_t addr,
			  struct xattr_blkbuf *xb)
{
	int ret;

	xb->addr = addr;
	xb->e = NULL;
	if (addr == 0 || addr % LUNFS_META_BLOCK_SIZE != 0) {
		return -EUCLEAN;
	}
	ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, 0, &xb->e);
	if (ret != 0) {
		xb->e = NULL;
		return ret;
	}
	if (xb->e->valid != 0) {
		ret = xb->e->valid < 0 ? xb->e->valid : -EIO;
		goto out;
	}
	xb->blk.ents = xb->ents;
	ret = xattr_blk_decode(&v->codec, xb->e->buf, addr, &xb->blk);
	if (ret != 0 || xb->blk.ino != im->ino) {
		ret = -EUCLEAN;
		goto out;
	}
	xb->used = 0;
	for (unsigned i = 0; i < xb->blk.nentries; i++) {
		xb->used += xattr_rec_len(xb->ents[i].name_len, xb->ents[i].value_len);
	}
out:
	if (ret != 0) {
		xattr_blk_release(v, xb);
	}
	return ret;
}

/* Encode into a local image first: the decoded values point into e->buf. */
static int xattr_blk_write(struct lunfs_vol *v, struct jnl_handle *h, struct xattr_blkbuf *xb)
{
	uint8_t *img;
	int ret;

	img = malloc(LUNFS_META_BLOCK_SIZE);
	if (img == NULL) {
		return -ENOMEM;
	}
	ret = xattr_blk_encode(&v->codec, &xb->blk, xb->addr, img);
	if (ret == 0) {
		ret = jnl_dirty(h, xb->e);
	}
	if (ret == 0) {
		memcpy(xb->e->buf, img, LUNFS_META_BLOCK_SIZE);
	}
	free(img);
	return ret;
}

static bool xattr_blk_fits(const struct xattr_blkbuf *xb, uint32_t rec_len)
{
	return xb->blk.nentries < LUNFS_XATTR_MAX_ENTRIES && xb->used + rec_len <= LUNFS_XATTR_DATA;
}

static int xattr_blk_index(const struct xattr_blkbuf *xb, const struct xattr_name *n)
{
	for (unsigned i = 0; i < xb->blk.nentries; i++) {
		const struct lunfs_xattr *x = &xb->ents[i];

		if (x->ns == n->ns && x->name_len == n->sublen && memcmp(x->name, n->sub, n->sublen) == 0) {
			return (int)i;
		}
	}
	return -1;
}

/* Find a name. On success xb holds its block, *idx its index, *prev the
 * previous block's address (0 for the head). -ENODATA otherwise. */
static int xattr_find(struct lunfs_vol *v, const struct inode_mem *im, const struct xattr_name *n,
		      struct xattr_blkbuf *xb, unsigned *idx, uint64_t *prev)
{
	uint64_t addr = im->di.xattr_blk, p = 0;
	uint32_t steps = 0;
	int ret, i;

	while (addr != 0) {
		if (++steps > XATTR_CHAIN_MAX) {
			return -EUCLEAN;
		}
		ret = xattr_blk_load(v, im, addr, xb);
		if (ret != 0) {
			return ret;
		}
		i = xattr_blk_index(xb, n);
		if (i >= 0) {
			*idx = (unsigned)i;
			*prev = p;
			return 0;
		}
		p = addr;
		addr = xb->blk.next;
		xattr_blk_release(v, xb);
	}
	return -ENODATA;
}

/* Load the chain's block at addr into xb; *prev = its predecessor. */
static int xattr_blk_locate(struct lunfs_vol *v, const struct inode_mem *im, uint64_t addr,
			    struct xattr_blkbuf *xb, uint64_t *prev)
{
	uint64_t a = im->di.xattr_blk, p = 0;
	uint32_t steps = 0;
	int ret;

	while (a != 0) {
		if (++steps > XATTR_CHAIN_MAX) {
			return -EUCLEAN;
		}
		ret = xattr_blk_load(v, im, a, xb);
		if (ret != 0) {
			return ret;
		}
		if (a == addr) {
			*prev = p;
			return 0;
		}
		p = a;
		a = xb->blk.next;
		xattr_blk_release(v, xb);
	}
	return -EUCLEAN;
}

static void xattr_blk_delete(struct xattr_blkbuf *xb, unsigned i)
{
	xb->used -= xattr_rec_len(xb->ents[i].name_len, xb->ents[i].value_len);
	memmove(&xb->ents[i], &xb->ents[i + 1], (xb->blk.nentries - i - 1) * sizeof(xb->ents[0]));
	xb->blk.nentries--;
}

/* Remove entry idx of the block in xb (whose predecessor is prev); an
 * emptied block is unlinked and freed. xb is released. */
static int xattr_entry_remove(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
			      struct xattr_blkbuf *xb, unsigned idx, uint64_t prev, struct xattr_blkbuf *pb)
{
	uint64_t addr = xb->addr, next;
	int ret;

	xattr_blk_delete(xb, idx);
	if (xb->blk.nentries > 0) {
		ret = xattr_blk_write(v, h, xb);
		xattr_blk_release(v, xb);
		return ret;
	}
	next = xb->blk.next;
	xattr_blk_release(v, xb);
	if (prev == 0) {
		im->di.xattr_blk = next;
		ret = inode_dirty(h, im);
	} else {
		ret = xattr_blk_load(v, im, prev, pb);
		if (ret != 0) {
			return ret;
		}
		pb->blk.next = next;
		ret = xattr_blk_write(v, h, pb);
		xattr_blk_release(v, pb);
	}
	if (ret != 0) {
		return ret;
	}
	return alloc_free(v->alloc, h, LUNFS_CLUSTER_META, addr, 1);
}

/* Put a new entry in the first block of the chain with room, other than
 * `skip`, or in a new block at the head of the chain. */
static int xattr_entry_insert(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im,
			      const struct lunfs_xattr *x, uint64_t skip, struct xattr_blkbuf *xb)
{
	uint32_t rl = xattr_rec_len(x->name_len, x->value_len);
	uint64_t addr = im->di.xattr_blk, got;
	uint32_t steps = 0;
	int ret;

	while (addr != 0) {
		if (++steps > XATTR_CHAIN_MAX) {
			return -EUCLEAN;
		}
		ret = xattr_blk_load(v, im, addr, xb);
		if (ret != 0) {
			return ret;
		}
		if (addr != skip && xattr_blk_fits(xb, rl)) {
			xb->ents[xb->blk.nentries++] = *x;
			xb->used += rl;
			ret = xattr_blk_write(v, h, xb);
			xattr_blk_release(v, xb);
			return ret;
		}
		addr = xb->blk.next;
		xattr_blk_release(v, xb);
	}
	/* A new block, near the inode's record. */
	ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_META, 1, im->rec != NULL ? im->rec->addr : 0, &addr,
			  &got);
	if (ret != 0) {
		return ret;
	}
	ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, MC_NOREAD, &xb->e);
	if (ret != 0) {
		xb->e = NULL;
		goto out_free;
	}
	xb->addr = addr;
	memset(&xb->blk, 0, sizeof(xb->blk));
	xb->blk.ino = im->ino;
	xb->blk.next = im->di.xattr_blk;
	xb->blk.ents = xb->ents;
	xb->blk.nentries = 1;
	xb->ents[0] = *x;
	xb->used = rl;
	ret = xattr_blk_write(v, h, xb);
	if (ret == 0) {
		xb->e->valid = 0;
	}
	xattr_blk_release(v, xb);
	if (ret != 0) {
		goto out_free;
	}
	im->di.xattr_blk = addr;
	return inode_dirty(h, im);
out_free:
	(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_META, addr, 1);
	return ret;
}

int xattr_get(struct lunfs_vol *v, struct inode_mem *im, const char *name, void *buf, size_t len)
{
	struct xattr_blkbuf *xb;
	struct xattr_name n;
	uint64_t prev;
	unsigned idx;
	int ret;

	ret = xattr_name_parse(name, &n);
	if (ret != 0) {
		return ret;
	}
	xb = malloc(sizeof(*xb));
	if (xb == NULL) {
		return -ENOMEM;
	}
	xb->e = NULL;
	ret = xattr_find(v, im, &n, xb, &idx, &prev);
	if (ret != 0) {
		goto out;
	}
	ret = xb->ents[idx].value_len;
	if (len != 0) {
		if (len < xb->ents[idx].value_len) {
			ret = -ERANGE;
		} else if (xb->ents[idx].value_len != 0) {
			memcpy(buf, xb->ents[idx].value, xb->ents[idx].value_len);
		}
	}
	xattr_blk_release(v, xb);
out:
	free(xb);
	return ret;
}

int xattr_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, const char *name,
	      const void *value, size_t len, int flags)
{
	struct xattr_blkbuf *xb = NULL, *ob = NULL;
	struct lunfs_xattr x;
	struct xattr_name n;
	uint64_t prev;
	unsigned idx;
	uint32_t rl;
	int ret;

	ret = xattr_name_parse(name, &n);
	if (ret != 0) {
		return ret;
	}
	if ((flags & ~(XATTR_CREATE | XATTR_REPLACE)) != 0 ||
	    (flags & (XATTR_CREATE | XATTR_REPLACE)) == (XATTR_CREATE | XATTR_REPLACE)) {
		return -EINVAL;
	}
	if (len > XATTR_VALUE_MAX) {
		return -E2BIG;
	}
	if (len != 0 && value == NULL) {
		return -EINVAL;
	}
	rl = xattr_rec_len((uint32_t)n.sublen, (uint32_t)len);
	if (rl > LUNFS_XATTR_DATA) {
		return -ENOSPC; /* a value lives whole in one block */
	}
	memset(&x, 0, sizeof(x));
	x.ns = n.ns;
	x.name_len = (uint8_t)n.sublen;
	x.value_len = (uint16_t)len;
	memcpy(x.name, n.sub, n.sublen);
	x.value = value;

	xb = malloc(sizeof(*xb));
	ob = malloc(sizeof(*ob));
	if (xb == NULL || ob == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	xb->e = NULL;
	ob->e = NULL;
	ret = xattr_find(v, im, &n, xb, &idx, &prev);
	if (ret == -ENODATA) {
		if ((flags & XATTR_REPLACE) != 0) {
			goto out;
		}
		ret = xattr_entry_insert(v, h, im, &x, 0, ob);
		goto out;
	}
	if (ret != 0) {
		goto out;
	}
	if ((flags & XATTR_CREATE) != 0) {
		xattr_blk_release(v, xb);
		ret = -EEXIST;
		goto out;
	}
	if (xb->used - xattr_rec_len(xb->ents[idx].name_len, xb->ents[idx].value_len) + rl <= LUNFS_XATTR_DATA) {
		xb->used = xb->used - xattr_rec_len(xb->ents[idx].name_len, xb->ents[idx].value_len) + rl;
		xb->ents[idx] = x;
		ret = xattr_blk_write(v, h, xb);
		xattr_blk_release(v, xb);
		goto out;
	}
	/* It does not fit where it is: write the new value elsewhere first,
	 * then drop the old one (the handle makes the pair atomic). */
	{
		uint64_t addr = xb->addr;

		xattr_blk_release(v, xb);
		ret = xattr_entry_insert(v, h, im, &x, addr, ob);
		if (ret != 0) {
			goto out;
		}
		/* The new copy is in another block: find the old block
		 * (and its predecessor, which a new head block may have
		 * changed) by address. */
		ret = xattr_blk_locate(v, im, addr, xb, &prev);
		if (ret != 0) {
			goto out;
		}
		ret = xattr_blk_index(xb, &n);
		if (ret < 0) {
			xattr_blk_release(v, xb);
			ret = -EUCLEAN;
			goto out;
		}
		idx = (unsigned)ret;
		ret = xattr_entry_remove(v, h, im, xb, idx, prev, ob);
	}
out:
	free(ob);
	free(xb);
	return ret;
}

int xattr_list(struct lunfs_vol *v, struct inode_mem *im, char *buf, size_t len)
{
	struct xattr_blkbuf *xb;
	uint64_t addr = im->di.xattr_blk;
	uint32_t steps = 0;
	size_t total = 0;
	int ret = 0;

	xb = malloc(sizeof(*xb));
	if (xb == NULL) {
		return -ENOMEM;
	}
	xb->e = NULL;
	while (addr != 0) {
		if (++steps > XATTR_CHAIN_MAX) {
			ret = -EUCLEAN;
			goto out;
		}
		ret = xattr_blk_load(v, im, addr, xb);
		if (ret != 0) {
			goto out;
		}
		for (unsigned i = 0; i < xb->blk.nentries; i++) {
			const struct lunfs_xattr *x = &xb->ents[i];
			const struct xattr_prefix *p = xattr_prefix_of(x->ns);
			size_t need = p->len + x->name_len + 1;

			if (len != 0) {
				if (total + need > len) {
					xattr_blk_release(v, xb);
					ret = -ERANGE;
					goto out;
				}
				memcpy(buf + total, p->prefix, p->len);
				memcpy(buf + total + p->len, x->name, x->name_len);
				buf[total + p->len + x->name_len] = '\0';
			}
			total += need;
		}
		addr = xb->blk.next;
		xattr_blk_release(v, xb);
	}
	ret = total > INT32_MAX ? -E2BIG : (int)total;
out:
	free(xb);
	return ret;
}

int xattr_remove(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, const char *name)
{
	struct xattr_blkbuf *xb = NULL, *pb = NULL;
	struct xattr_name n;
	uint64_t prev;
	unsigned idx;
	int ret;

	ret = xattr_name_parse(name, &n);
	if (ret != 0) {
		return ret;
	}
	xb = malloc(sizeof(*xb));
	pb = malloc(sizeof(*pb));
	if (xb == NULL || pb == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	xb->e = NULL;
	pb->e = NULL;
	ret = xattr_find(v, im, &n, xb, &idx, &prev);
	if (ret != 0) {
		goto out;
	}
	ret = xattr_entry_remove(v, h, im, xb, idx, prev, pb);
out:
	free(pb);
	free(xb);
	return ret;
}

int xattr_free(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im)
{
	struct xattr_blkbuf *xb;
	uint64_t addr = im->di.xattr_blk;
	uint32_t steps = 0;
	int ret = 0, ret2;

	if (addr == 0) {
		return 0;
	}
	xb = malloc(sizeof(*xb));
	if (xb == NULL) {
		return -ENOMEM;
	}
	xb->e = NULL;
	while (addr != 0) {
		uint64_t next = 0;

		if (++steps > XATTR_CHAIN_MAX) {
			ret = -EUCLEAN;
			break;
		}
		/* A corrupt block is freed too, but its `next` cannot be
		 * trusted: the rest of the chain is leaked, and reported. */
		ret = xattr_blk_load(v, im, addr, xb);
		if (ret == 0) {
			next = xb->blk.next;
			xattr_blk_release(v, xb);
		}
		ret2 = alloc_free(v->alloc, h, LUNFS_CLUSTER_META, addr, 1);
		if (ret == 0) {
			ret = ret2;
		}
		if (ret != 0) {
			break;
		}
		addr = next;
	}
	free(xb);
	im->di.xattr_blk = 0;
	ret2 = inode_dirty(h, im);
	return ret != 0 ? ret : ret2;
}

/* Credits one xattr_set, xattr_remove or symlink_set may need: two xattr
 * blocks and a predecessor (or two symlink blocks), a new block with its
 * allocation and map path, a freed block, the inode. */
unsigned xattr_change_credits(const struct inode_mem *im)
{
	return 4u + 2u * (bmap_set_credits(im) + XATTR_ALLOC_CREDITS) + XATTR_ALLOC_CREDITS + 1u;
}

/* ---- symlinks ------------------------------------------------------------- */

int symlink_set(struct lunfs_vol *v, struct jnl_handle *h, struct inode_mem *im, const char *target,
		size_t len)
{
	struct lunfs_symlink_blk *sb = NULL;
	int ret = 0, ret2;
	bool changed = false;

	if (len == 0) {
		return -ENOENT; /* symlink(2): an empty target */
	}
	if (len > SYMLINK_TARGET_MAX) {
		return -ENAMETOOLONG;
	}
	if (target == NULL || memchr(target, '\0', len) != NULL) {
		return -EINVAL;
	}
	if (im->di.size != 0 || im->di.map_height != 0 || (im->di.flags & LUNFS_INODE_INLINE) != 0) {
		return -EEXIST; /* a target is set once, at creation */
	}
	if (len <= LUNFS_INODE_INLINE_SIZE) {
		memset(im->di.inline_data, 0, sizeof(im->di.inline_data));
		memcpy(im->di.inline_data, target, len);
		im->di.flags |= LUNFS_INODE_INLINE;
		im->di.size = len;
		return inode_dirty(h, im);
	}
	sb = malloc(sizeof(*sb));
	if (sb == NULL) {
		return -ENOMEM;
	}
	im->di.map_unit = LUNFS_MAP_META;
	for (uint64_t b = 0; b * LUNFS_BLOCK_PAYLOAD < len; b++) {
		size_t off = b * LUNFS_BLOCK_PAYLOAD;
		size_t n = len - off < LUNFS_BLOCK_PAYLOAD ? len - off : LUNFS_BLOCK_PAYLOAD;
		struct lunfs_map_entry me;
		struct mc_entry *e = NULL;
		uint64_t addr, got;

		ret = alloc_units(v->alloc, h, LUNFS_CLUSTER_META, 1, im->rec != NULL ? im->rec->addr : 0,
				  &addr, &got);
		if (ret != 0) {
			break;
		}
		ret = mc_get(v->mc, addr, LUNFS_META_BLOCK_SIZE, MC_NOREAD, &e);
		if (ret == 0) {
			ret = jnl_dirty(h, e);
			if (ret == 0) {
				memset(sb, 0, sizeof(*sb));
				sb->ino = im->ino;
				sb->len = (uint32_t)n;
				memcpy(sb->data, target + off, n);
				symlink_blk_encode(&v->codec, sb, addr, e->buf);
				e->valid = 0;
			}
			mc_put(v->mc, e);
		}
		if (ret == 0) {
			me.addr = addr;
			me.flags = 0;
			me.written = UINT64_MAX;
			ret = bmap_set(v, h, im, b, &me);
		}
		if (ret != 0) {
			(void)alloc_free(v->alloc, h, LUNFS_CLUSTER_META, addr, 1);
			break;
		}
		/* The map now points to it: reclaim frees it even if the
		 * second block fails. */
		changed = true;
		im->di.alloc_bytes += LUNFS_META_BLOCK_SIZE;
	}
	if (ret == 0) {
		im->di.flags &= ~LUNFS_INODE_INLINE;
		im->di.size = len;
		changed = true;
	}
	if (changed) {
		ret2 = inode_dirty(h, im);
		if (ret == 0) {
			ret = ret2;
		}
	}
	free(sb);
	return ret;
}

ssize_t symlink_get(struct lunfs_vol *v, struct inode_mem *im, char *buf, size_t len)
{
	struct lunfs_symlink_blk *sb = NULL;
	uint64_t size = im->di.size;
	ssize_t ret;

	/* The format allows two full blocks; we only ever write < PATH_MAX. */
	if (size == 0 || size > 2u * LUNFS_BLOCK_PAYLOAD) {
		return -EUCLEAN;
	}
	if ((im->di.flags & LUNFS_INODE_INLINE) != 0) {
		if (size > LUNFS_INODE_INLINE_SIZE || memchr(im->di.inline_data, '\0', size) != NULL) {
			return -EUCLEAN;
		}
		memcpy(buf, im->di.inline_data, len < size ? len : size);
		return (ssize_t)size;
	}
	sb = malloc(sizeof(*sb));
	if (sb == NULL) {
		return -ENOMEM;
	}
	ret = (ssize_t)size;
	for (uint64_t b = 0; b * LUNFS_BLOCK_PAYLOAD < size; b++) {
		uint64_t off = b * LUNFS_BLOCK_PAYLOAD;
		uint64_t n = size - off < LUNFS_BLOCK_PAYLOAD ? size - off : LUNFS_BLOCK_PAYLOAD;
		struct lunfs_map_entry me;
		struct mc_entry *e = NULL;
		uint64_t run;
		int r;

		if (off >= len) {
			break; /* the caller's buffer is full: no need to read on */
		}
		r = bmap_lookup(v, im, b, &me, &run);
		if (r == 0 && me.addr == 0) {
			r = -EUCLEAN;
		}
		if (r == 0) {
			r = mc_get(v->mc, me.addr, LUNFS_META_BLOCK_SIZE, 0, &e);
		}
		if (r == 0) {
			if (e->valid != 0) {
				r = e->valid < 0 ? e->valid : -EIO;
			} else if (symlink_blk_decode(&v->codec, e->buf, me.addr, sb) != 0 || sb->ino != im->ino ||
				   sb->len != n) {
				r = -EUCLEAN;
			}
			mc_put(v->mc, e);
		}
		if (r != 0) {
			ret = r;
			break;
		}
		memcpy(buf + off, sb->data, len - off < n ? len - off : n);
	}
	free(sb);
	return ret;
}
