/* MSI-X: the capability, the vector table and the pending bit array. The
 * table and PBA are guest-writable memory the guest may poke at any offset
 * and width, so every access is clipped to the arrays here. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pci/pci.h"
#include "pci/pci_internal.h"

struct pci_msix {
	pthread_mutex_t lock; /* recursive: callbacks may query the table */
	struct pci_dev *dev;
	const struct pci_msix_ops *ops;
	void *opaque;
	uint16_t nvec;
	uint8_t cap;
	uint8_t table_bar, pba_bar;
	uint32_t table_off, pba_off;
	bool enabled, maskall;
	uint8_t *table; /* nvec entries of 16 bytes, little-endian */
	uint64_t *pba;	/* one bit per vector */
};

struct vec_state {
	struct pci_msi_msg msg;
	bool masked;
};

#define ENTRY_DATA 8
#define ENTRY_CTRL 12

static uint32_t table_bytes(uint16_t nvec)
{
	return (uint32_t)nvec * PCI_MSIX_ENTRY_SIZE;
}

static uint32_t pba_bytes(uint16_t nvec)
{
	return ((uint32_t)nvec + 63) / 64 * 8;
}

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static struct vec_state vec_get(const struct pci_msix *m, uint16_t v)
{
	const uint8_t *e = m->table + (uint32_t)v * PCI_MSIX_ENTRY_SIZE;
	struct vec_state s = {
	    .msg.address = le32(e) | (uint64_t)le32(e + 4) << 32,
	    .msg.data = le32(e + ENTRY_DATA),
	    .masked = !m->enabled || m->maskall || (e[ENTRY_CTRL] & PCI_MSIX_VEC_MASKED),
	};
	return s;
}

static bool pending(const struct pci_msix *m, uint16_t v)
{
	return m->pba[v / 64] >> (v % 64) & 1;
}

static void set_pending(struct pci_msix *m, uint16_t v, bool on)
{
	if (on)
		m->pba[v / 64] |= 1ULL << (v % 64);
	else
		m->pba[v / 64] &= ~(1ULL << (v % 64));
}

/* After a change: tell the owner, then send what was held back. */
static void vec_update(struct pci_msix *m, uint16_t v, const struct vec_state *old)
{
	struct vec_state now = vec_get(m, v);
	if (now.masked != old->masked || now.msg.address != old->msg.address ||
	    now.msg.data != old->msg.data) {
		if (m->ops && m->ops->vector_changed)
			m->ops->vector_changed(m->opaque, v, &now.msg, now.masked);
	}
	if (!now.masked && pending(m, v)) {
		set_pending(m, v, false);
		if (m->ops && m->ops->deliver)
			m->ops->deliver(m->opaque, v, &now.msg);
	}
}

int pci_msix_init(struct pci_dev *dev, const struct pci_msix_cfg *cfg,
		  const struct pci_msix_ops *ops, void *opaque, struct pci_msix **out,
		  struct chv_err *err)
{
	if (dev->msix)
		return chv_err_set(err, -EEXIST, "msix: the device already has MSI-X");
	if (cfg->nvec == 0 || cfg->nvec > PCI_MSIX_MAX_VECTORS)
		return chv_err_set(err, -EINVAL, "msix: nvec=%u (1..%u)", cfg->nvec,
				   PCI_MSIX_MAX_VECTORS);
	const struct {
		const char *what;
		uint8_t bar;
		uint32_t off, size;
	} region[2] = {
	    {"table", cfg->table_bar, cfg->table_off, table_bytes(cfg->nvec)},
	    {"pba", cfg->pba_bar, cfg->pba_off, pba_bytes(cfg->nvec)},
	};
	for (int i = 0; i < 2; i++) {
		if (region[i].bar >= PCI_NUM_BARS ||
		    (dev->bar[region[i].bar].kind != PCI_BAR_MEM32 &&
		     dev->bar[region[i].bar].kind != PCI_BAR_MEM64))
			return chv_err_set(err, -EINVAL, "msix: %s_bar=%u is not a memory BAR",
					   region[i].what, region[i].bar);
		if (region[i].off & 7)
			return chv_err_set(err, -EINVAL, "msix: %s_off=0x%x is not 8-byte aligned",
					   region[i].what, region[i].off);
		if ((uint64_t)region[i].off + region[i].size > dev->bar[region[i].bar].size)
			return chv_err_set(
			    err, -EINVAL, "msix: %s_off=0x%x + 0x%x bytes is outside BAR %u",
			    region[i].what, region[i].off, region[i].size, region[i].bar);
	}
	if (cfg->table_bar == cfg->pba_bar &&
	    (uint64_t)cfg->table_off < (uint64_t)cfg->pba_off + region[1].size &&
	    (uint64_t)cfg->pba_off < (uint64_t)cfg->table_off + region[0].size)
		return chv_err_set(err, -EINVAL, "msix: pba_off=0x%x overlaps the table at 0x%x",
				   cfg->pba_off, cfg->table_off);

	struct pci_msix *m = calloc(1, sizeof(*m));
	if (m) {
		m->table = calloc(cfg->nvec, PCI_MSIX_ENTRY_SIZE);
		m->pba = calloc(pba_bytes(cfg->nvec) / 8, sizeof(uint64_t));
	}
	if (!m || !m->table || !m->pba) {
		if (m) {
			free(m->table);
			free(m->pba);
		}
		free(m);
		return chv_err_set(err, -ENOMEM, "msix: out of memory for %u vectors", cfg->nvec);
	}
	pthread_mutexattr_t a;
	int rc = pthread_mutexattr_init(&a);
	if (!rc) {
		rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
		if (!rc)
			rc = pthread_mutex_init(&m->lock, &a);
		pthread_mutexattr_destroy(&a);
	}
	if (rc) {
		free(m->table);
		free(m->pba);
		free(m);
		return chv_err_set(err, -rc, "msix: lock: %s", strerror(rc));
	}
	int cap = pci_add_cap(dev, PCI_CAP_ID_MSIX, PCI_MSIX_CAP_LEN);
	if (cap < 0) {
		pci_msix_free(m);
		return chv_err_set(err, cap, "msix: no room for the capability in config space");
	}
	for (uint16_t v = 0; v < cfg->nvec; v++)
		m->table[(uint32_t)v * PCI_MSIX_ENTRY_SIZE + ENTRY_CTRL] = PCI_MSIX_VEC_MASKED;
	m->dev = dev;
	m->ops = ops;
	m->opaque = opaque;
	m->nvec = cfg->nvec;
	m->cap = (uint8_t)cap;
	m->table_bar = cfg->table_bar;
	m->table_off = cfg->table_off;
	m->pba_bar = cfg->pba_bar;
	m->pba_off = cfg->pba_off;

	pci_dev_lock(dev);
	pci_cfg_set16(dev, cap + 2u, (uint16_t)(cfg->nvec - 1));
	pci_cfg_set_masks(dev, cap + 2u, 2, PCI_MSIX_CTRL_ENABLE | PCI_MSIX_CTRL_MASKALL, 0);
	pci_cfg_set32(dev, cap + 4u, cfg->table_off | cfg->table_bar);
	pci_cfg_set32(dev, cap + 8u, cfg->pba_off | cfg->pba_bar);
	dev->msix = m;
	pci_dev_unlock(dev);
	if (out)
		*out = m;
	return 0;
}

void pci_msix_free(struct pci_msix *m)
{
	if (!m)
		return;
	pthread_mutex_destroy(&m->lock);
	free(m->table);
	free(m->pba);
	free(m);
}

uint8_t pci_msix_cap_offset(const struct pci_msix *m)
{
	return m->cap;
}

void pci_msix_ctrl_written(struct pci_msix *m, uint16_t ctrl)
{
	pthread_mutex_lock(&m->lock);
	bool en = ctrl & PCI_MSIX_CTRL_ENABLE, all = ctrl & PCI_MSIX_CTRL_MASKALL;
	bool old_en = m->enabled, old_all = m->maskall;
	if (en != old_en || all != old_all) {
		for (uint16_t v = 0; v < m->nvec; v++) {
			m->enabled = old_en;
			m->maskall = old_all;
			struct vec_state old = vec_get(m, v);
			m->enabled = en;
			m->maskall = all;
			vec_update(m, v, &old);
		}
	}
	pthread_mutex_unlock(&m->lock);
}

int pci_msix_notify(struct pci_msix *m, uint16_t vector)
{
	if (vector >= m->nvec)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	int r;
	struct vec_state s = vec_get(m, vector);
	if (!m->enabled) {
		r = PCI_MSIX_DISABLED;
	} else if (s.masked) {
		set_pending(m, vector, true);
		r = PCI_MSIX_PENDING;
	} else {
		if (m->ops && m->ops->deliver)
			m->ops->deliver(m->opaque, vector, &s.msg);
		r = PCI_MSIX_SENT;
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

bool pci_msix_enabled(struct pci_msix *m)
{
	pthread_mutex_lock(&m->lock);
	bool en = m->enabled;
	pthread_mutex_unlock(&m->lock);
	return en;
}

int pci_msix_get(struct pci_msix *m, uint16_t vector, struct pci_msi_msg *msg, bool *masked)
{
	if (vector >= m->nvec)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	struct vec_state s = vec_get(m, vector);
	pthread_mutex_unlock(&m->lock);
	if (msg)
		*msg = s.msg;
	if (masked)
		*masked = s.masked;
	return 0;
}

bool pci_msix_pending(struct pci_msix *m, uint16_t vector)
{
	if (vector >= m->nvec)
		return false;
	pthread_mutex_lock(&m->lock);
	bool p = pending(m, vector);
	pthread_mutex_unlock(&m->lock);
	return p;
}

uint16_t pci_msix_nvec(struct pci_msix *m)
{
	return m->nvec;
}

uint32_t pci_msix_table_size(struct pci_msix *m)
{
	return table_bytes(m->nvec);
}

uint32_t pci_msix_pba_size(struct pci_msix *m)
{
	return pba_bytes(m->nvec);
}

/* The table is read as bytes; reserved vector control bits read 0 because
 * writes never set them. */
static void table_write(struct pci_msix *m, uint64_t offset, const uint8_t *data, uint32_t len)
{
	uint32_t size = table_bytes(m->nvec);
	if (offset >= size || len == 0)
		return;
	uint32_t end = offset + len > size ? size : (uint32_t)offset + len;
	/* len <= 8 spans at most two entries. */
	uint16_t first = (uint16_t)(offset / PCI_MSIX_ENTRY_SIZE);
	uint16_t last = (uint16_t)((end - 1) / PCI_MSIX_ENTRY_SIZE);
	struct vec_state old[2] = {vec_get(m, first), vec_get(m, last)};
	for (uint32_t o = (uint32_t)offset; o < end; o++) {
		uint32_t field = o % PCI_MSIX_ENTRY_SIZE;
		uint8_t b = data[o - offset];
		if (field == ENTRY_CTRL)
			m->table[o] = b & PCI_MSIX_VEC_MASKED;
		else if (field < ENTRY_CTRL)
			m->table[o] = b;
	}
	vec_update(m, first, &old[0]);
	if (last != first)
		vec_update(m, last, &old[1]);
}

void pci_msix_table_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_msix *m = opaque;
	if (len > 8) {
		if (!is_write)
			memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	if (is_write) {
		table_write(m, offset, data, len);
	} else {
		uint32_t size = table_bytes(m->nvec);
		for (uint32_t i = 0; i < len; i++)
			data[i] = offset < size && i < size - offset ? m->table[offset + i] : 0;
	}
	pthread_mutex_unlock(&m->lock);
}

void pci_msix_pba_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct pci_msix *m = opaque;
	if (is_write)
		return;
	if (len > 8) {
		memset(data, 0, len);
		return;
	}
	pthread_mutex_lock(&m->lock);
	uint32_t size = pba_bytes(m->nvec);
	for (uint32_t i = 0; i < len; i++) {
		uint8_t b = 0;
		if (offset < size && i < size - offset) {
			uint64_t o = offset + i;
			b = (uint8_t)(m->pba[o / 8] >> (8 * (o % 8)));
		}
		data[i] = b;
	}
	pthread_mutex_unlock(&m->lock);
}

bool pci_msix_bar_io(struct pci_msix *m, unsigned bar, uint64_t offset, uint8_t *data, uint32_t len,
		     bool is_write)
{
	if (bar == m->table_bar && offset >= m->table_off &&
	    offset - m->table_off < table_bytes(m->nvec)) {
		pci_msix_table_io(m, offset - m->table_off, data, len, is_write);
		return true;
	}
	if (bar == m->pba_bar && offset >= m->pba_off && offset - m->pba_off < pba_bytes(m->nvec)) {
		pci_msix_pba_io(m, offset - m->pba_off, data, len, is_write);
		return true;
	}
	return false;
}
