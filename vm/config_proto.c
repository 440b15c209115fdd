/* chv.v1.VmConfig <-> struct vm_config. Zero values take the API's defaults
 * (named in api/chv/v1/vm.proto); each error names the field path as the API
 * user wrote it ("config.cpus.boot_vcpus"), so chvd can return it as is. */
#include "vm/config_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "virtio/tap.h"
#include "vm/layout.h"

#define MIB		    (1024ULL * 1024)
#define MEMORY_DEFAULT_SIZE (512 * MIB)
#define MEMORY_MIN_SIZE	    (2 * MIB)
#define PAGE_4K		    4096ULL
#define HUGEPAGE_SIZE	    (2 * MIB)
#define PHYS_BITS_DEFAULT   46
#define PHYS_BITS_MIN	    36
#define PHYS_BITS_MAX	    52
#define TOPO_MAX_THREADS    2

static bool str_set(const char *s)
{
	return s && *s;
}

static int dup_str(char **dst, const char *field, const char *v, struct chv_err *err)
{
	char *s = strdup(v);
	if (!s)
		return chv_err_set(err, -ENOMEM, "%s: out of memory", field);
	free(*dst);
	*dst = s;
	return 0;
}

static int not_supported(const char *field, struct chv_err *err)
{
	return chv_err_set(err, -EINVAL, "%s: not supported yet", field);
}

static int payload_from(struct vm_config *c, const Chv__V1__PayloadConfig *p, struct chv_err *err)
{
	int r;
	if (!p || !str_set(p->kernel))
		return chv_err_set(err, -EINVAL, "config.payload.kernel is required");
	if (str_set(p->firmware))
		return not_supported("config.payload.firmware", err);
	if ((r = dup_str(&c->payload.kernel, "config.payload.kernel", p->kernel, err)))
		return r;
	if (str_set(p->initramfs) &&
	    (r = dup_str(&c->payload.initramfs, "config.payload.initramfs", p->initramfs, err)))
		return r;
	if (str_set(p->cmdline)) {
		size_t len = strlen(p->cmdline);
		if (len >= LAYOUT_CMDLINE_MAX)
			return chv_err_set(err, -EINVAL,
					   "config.payload.cmdline: %zu bytes is longer than the "
					   "maximum %llu",
					   len, LAYOUT_CMDLINE_MAX - 1);
		if ((r = dup_str(&c->payload.cmdline, "config.payload.cmdline", p->cmdline, err)))
			return r;
	}
	return 0;
}

static int range_u32(const char *field, uint32_t v, uint32_t lo, uint32_t hi, struct chv_err *err)
{
	if (v < lo || v > hi)
		return chv_err_set(err, -EINVAL,
				   "%s: %" PRIu32 " is out of range (%" PRIu32 "..%" PRIu32 ")",
				   field, v, lo, hi);
	return 0;
}

static int topology_from(struct vm_config *c, const Chv__V1__CpuTopology *t, struct chv_err *err)
{
	int r;
	/* An empty message is as good as none: protobuf-c cannot tell them apart
	 * for a caller who filled the struct by hand. */
	if (!t ||
	    (!t->threads_per_core && !t->cores_per_die && !t->dies_per_package && !t->packages)) {
		c->cpus.topology_set = false;
		c->cpus.topology = (struct cpu_topology){1, (uint8_t)c->cpus.max, 1, 1};
		return 0;
	}
	if ((r = range_u32("config.cpus.topology.threads_per_core", t->threads_per_core, 1,
			   TOPO_MAX_THREADS, err)) ||
	    (r = range_u32("config.cpus.topology.cores_per_die", t->cores_per_die, 1,
			   CONFIG_MAX_VCPUS, err)) ||
	    (r = range_u32("config.cpus.topology.dies_per_package", t->dies_per_package, 1, 1,
			   err)) ||
	    (r = range_u32("config.cpus.topology.packages", t->packages, 1, CONFIG_MAX_VCPUS, err)))
		return r;
	uint32_t product =
	    t->threads_per_core * t->cores_per_die * t->dies_per_package * t->packages;
	if (product != c->cpus.max)
		return chv_err_set(err, -EINVAL,
				   "config.cpus.topology: %" PRIu32 ":%" PRIu32 ":%" PRIu32
				   ":%" PRIu32 " gives %" PRIu32
				   " vCPUs, but config.cpus.max_vcpus is %" PRIu32,
				   t->threads_per_core, t->cores_per_die, t->dies_per_package,
				   t->packages, product, c->cpus.max);
	c->cpus.topology_set = true;
	c->cpus.topology =
	    (struct cpu_topology){(uint8_t)t->threads_per_core, (uint8_t)t->cores_per_die,
				  (uint8_t)t->dies_per_package, (uint8_t)t->packages};
	return 0;
}

static int cpus_from(struct vm_config *c, const Chv__V1__CpusConfig *p, struct chv_err *err)
{
	int r;
	uint32_t boot = p && p->boot_vcpus ? p->boot_vcpus : 1;
	if ((r = range_u32("config.cpus.boot_vcpus", boot, 1, CONFIG_MAX_VCPUS, err)))
		return r;
	uint32_t max = p && p->max_vcpus ? p->max_vcpus : boot;
	if ((r = range_u32("config.cpus.max_vcpus", max, 1, CONFIG_MAX_VCPUS, err)))
		return r;
	if (boot > max)
		return chv_err_set(err, -EINVAL,
				   "config.cpus.boot_vcpus: %" PRIu32
				   " is more than config.cpus.max_vcpus %" PRIu32,
				   boot, max);
	uint32_t bits = p && p->max_phys_bits ? p->max_phys_bits : PHYS_BITS_DEFAULT;
	if ((r = range_u32("config.cpus.max_phys_bits", bits, PHYS_BITS_MIN, PHYS_BITS_MAX, err)))
		return r;
	c->cpus.boot = boot;
	c->cpus.max = max;
	c->cpus.max_phys_bits = bits;
	return topology_from(c, p ? p->topology : NULL, err);
}

static int memory_from(struct vm_config *c, const Chv__V1__MemoryConfig *p, struct chv_err *err)
{
	uint64_t size = p && p->size ? p->size : MEMORY_DEFAULT_SIZE;
	bool hugepages = p && p->hugepages;
	if (p && p->hotplug_size)
		return not_supported("config.memory.hotplug_size", err);
	if (size < MEMORY_MIN_SIZE)
		return chv_err_set(err, -EINVAL,
				   "config.memory.size: %" PRIu64
				   " is below the minimum 2 MiB (the kernel loads at 1 MiB)",
				   size);
	if (size % PAGE_4K)
		return chv_err_set(err, -EINVAL,
				   "config.memory.size: %" PRIu64 " is not a multiple of 4 KiB",
				   size);
	if (hugepages && size % HUGEPAGE_SIZE)
		return chv_err_set(err, -EINVAL,
				   "config.memory.size: %" PRIu64
				   " is not a multiple of 2 MiB, as config.memory.hugepages needs",
				   size);
	c->memory.size = size;
	c->memory.shared = p && p->shared;
	c->memory.hugepages = hugepages;
	return 0;
}

static const char *mode_name(Chv__V1__ConsoleMode m)
{
	switch (m) {
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_UNSPECIFIED:
		return "UNSPECIFIED";
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF:
		return "OFF";
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_NULL:
		return "NULL";
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY:
		return "TTY";
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE:
		return "FILE";
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET:
		return "SOCKET";
	default:
		return NULL;
	}
}

/* name: "serial" or "console"; dflt: the mode UNSPECIFIED stands for. */
static int console_from(struct console_config *cc, const char *name, enum console_mode dflt,
			const Chv__V1__ConsoleConfig *p, struct chv_err *err)
{
	Chv__V1__ConsoleMode m = p ? p->mode : CHV__V1__CONSOLE_MODE__CONSOLE_MODE_UNSPECIFIED;
	const char *path = p && str_set(p->path) ? p->path : NULL;
	const char *mname = mode_name(m);
	if (!mname)
		return chv_err_set(err, -EINVAL, "config.%s.mode: %d is not a console mode", name,
				   (int)m);
	enum console_mode mode;
	switch (m) {
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF:
		mode = CONSOLE_OFF;
		break;
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_NULL:
		mode = CONSOLE_NULL;
		break;
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY:
		mode = CONSOLE_TTY;
		break;
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE:
		mode = CONSOLE_FILE;
		break;
	case CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET:
		mode = CONSOLE_SOCKET;
		break;
	default:
		mode = dflt;
		break;
	}
	bool wants_path = mode == CONSOLE_FILE || mode == CONSOLE_SOCKET;
	if (wants_path && !path)
		return chv_err_set(err, -EINVAL, "config.%s.mode: %s needs config.%s.path", name,
				   mname, name);
	if (!wants_path && path)
		return chv_err_set(err, -EINVAL,
				   "config.%s.path: %s is only used with mode FILE or SOCKET, "
				   "not %s",
				   name, path, mname);
	if (mode == CONSOLE_SOCKET && strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return chv_err_set(err, -EINVAL, "config.%s.path: %s is longer than %zu bytes",
				   name, path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	if (path) {
		char field[32];
		snprintf(field, sizeof(field), "config.%s.path", name);
		int r = dup_str(&cc->path, field, path, err);
		if (r)
			return r;
	} else {
		free(cc->path);
		cc->path = NULL;
	}
	cc->mode = mode;
	return 0;
}

/* The device is always there; src "" (or no message) is /dev/urandom.
 * Whether the path is usable is vm_config_validate()'s to say. */
static int rng_from(struct vm_config *c, const Chv__V1__RngConfig *p, struct chv_err *err)
{
	if (p && str_set(p->src))
		return dup_str(&c->rng.src, "config.rng.src", p->src, err);
	free(c->rng.src);
	c->rng.src = NULL;
	return 0;
}

static void rl_from(struct rl_config *rl, const Chv__V1__RateLimiterConfig *p)
{
	memset(rl, 0, sizeof(*rl));
	if (!p)
		return;
	rl->bw = (struct rl_bucket_config){p->bw_size, p->bw_one_time_burst, p->bw_refill_time_ms};
	rl->ops =
	    (struct rl_bucket_config){p->ops_size, p->ops_one_time_burst, p->ops_refill_time_ms};
}

/* A device's rate_limiter or rate_limit_group (field: "config.disks[0]"). */
static int device_rl_from(const struct vm_config *c, const char *field,
			  const Chv__V1__RateLimiterConfig *p, const char *group,
			  struct rl_config *rl, char **group_out, struct chv_err *err)
{
	char f[64];
	rl_from(rl, p);
	snprintf(f, sizeof(f), "%s.rate_limiter", field);
	int r = vm_config_check_rl(f, rl, err);
	if (r || !str_set(group))
		return r;
	snprintf(f, sizeof(f), "%s.rate_limit_group", field);
	if (rl_config_active(rl))
		return chv_err_set(err, -EINVAL,
				   "%s: \"%s\" and %s.rate_limiter are exclusive (a device has "
				   "its own limits or a group's)",
				   f, group, field);
	if (!vm_config_find_rl_group(c, group))
		return chv_err_set(err, -EINVAL, "%s: \"%s\" is not in config.rate_limit_groups", f,
				   group);
	return dup_str(group_out, f, group, err);
}

static int groups_from(struct vm_config *c, const Chv__V1__VmConfig *p, struct chv_err *err)
{
	char f[64];
	int r;
	if (p->n_rate_limit_groups > CONFIG_MAX_RL_GROUPS)
		return chv_err_set(err, -EINVAL,
				   "config.rate_limit_groups: %zu groups, more than %u",
				   p->n_rate_limit_groups, CONFIG_MAX_RL_GROUPS);
	for (uint32_t i = 0; i < c->nrl_groups && i < CONFIG_MAX_RL_GROUPS; i++)
		free(c->rl_groups[i].id);
	c->nrl_groups = 0;
	for (size_t i = 0; i < p->n_rate_limit_groups; i++) {
		const Chv__V1__RateLimitGroupConfig *g = p->rate_limit_groups[i];
		if (!g || !str_set(g->id))
			return chv_err_set(err, -EINVAL,
					   "config.rate_limit_groups[%zu].id is required", i);
		if (vm_config_find_rl_group(c, g->id))
			return chv_err_set(err, -EINVAL,
					   "config.rate_limit_groups[%zu].id: \"%s\" is used twice",
					   i, g->id);
		struct rl_group_config *dst = &c->rl_groups[c->nrl_groups];
		*dst = (struct rl_group_config){0};
		rl_from(&dst->rl, g->config);
		snprintf(f, sizeof(f), "config.rate_limit_groups[%zu].config", i);
		if ((r = vm_config_check_rl(f, &dst->rl, err)))
			return r;
		if (!rl_config_active(&dst->rl))
			return chv_err_set(err, -EINVAL, "%s: sets no limit (bw_size or ops_size)",
					   f);
		snprintf(f, sizeof(f), "config.rate_limit_groups[%zu].id", i);
		if ((r = dup_str(&dst->id, f, g->id, err)))
			return r;
		c->nrl_groups++;
	}
	return 0;
}

/* Ranges are checked here with the field's name; the rules that need other
 * fields (num_queues against the vCPUs) and the path's existence are
 * vm_config_validate()'s. */
static int disk_from(const struct vm_config *c, struct disk_config *d, size_t i,
		     const Chv__V1__DiskConfig *p, struct chv_err *err)
{
	char f[48];
	int r;
	if (!p || !str_set(p->path))
		return chv_err_set(err, -EINVAL, "config.disks[%zu].path is required", i);
	snprintf(f, sizeof(f), "config.disks[%zu]", i);
	if ((r = device_rl_from(c, f, p->rate_limiter, p->rate_limit_group, &d->rl, &d->rl_group,
				err)))
		return r;
	uint32_t nq = p->num_queues ? p->num_queues : CONFIG_DISK_DEFAULT_QUEUES;
	if (nq > CONFIG_MAX_VCPUS)
		return chv_err_set(err, -EINVAL,
				   "config.disks[%zu].num_queues: %" PRIu32 " is out of range "
				   "(1..%u)",
				   i, p->num_queues, CONFIG_MAX_VCPUS);
	uint32_t qs = p->queue_size ? p->queue_size : CONFIG_DISK_DEFAULT_QUEUE_SIZE;
	if (qs < 4 || qs > CONFIG_DISK_MAX_QUEUE_SIZE || (qs & (qs - 1)))
		return chv_err_set(err, -EINVAL,
				   "config.disks[%zu].queue_size: %" PRIu32 " is not a power of "
				   "two in 4..%u",
				   i, p->queue_size, CONFIG_DISK_MAX_QUEUE_SIZE);
	if (str_set(p->serial) && strlen(p->serial) > CONFIG_DISK_SERIAL_MAX)
		return chv_err_set(err, -EINVAL,
				   "config.disks[%zu].serial: \"%s\" is longer than %u bytes", i,
				   p->serial, CONFIG_DISK_SERIAL_MAX);
	d->readonly = p->readonly;
	d->direct = p->direct;
	d->num_queues = (uint16_t)nq;
	d->queue_size = qs;
	snprintf(f, sizeof(f), "config.disks[%zu].path", i);
	if ((r = dup_str(&d->path, f, p->path, err)))
		return r;
	snprintf(f, sizeof(f), "config.disks[%zu].serial", i);
	if (str_set(p->serial) && (r = dup_str(&d->serial, f, p->serial, err)))
		return r;
	snprintf(f, sizeof(f), "config.disks[%zu].id", i);
	if (str_set(p->id) && (r = dup_str(&d->id, f, p->id, err)))
		return r;
	return 0;
}

static int disks_from(struct vm_config *c, const Chv__V1__VmConfig *p, struct chv_err *err)
{
	if (p->n_disks > CONFIG_MAX_DISKS)
		return chv_err_set(err, -EINVAL, "config.disks: %zu disks, more than %u",
				   p->n_disks, CONFIG_MAX_DISKS);
	for (uint32_t i = 0; i < c->ndisks && i < CONFIG_MAX_DISKS; i++) {
		free(c->disks[i].path);
		free(c->disks[i].serial);
		free(c->disks[i].id);
		free(c->disks[i].rl_group);
	}
	c->ndisks = 0;
	for (size_t i = 0; i < p->n_disks; i++) {
		/* Counted first, so vm_config_free() releases a partial one. */
		c->disks[c->ndisks++] = (struct disk_config){0};
		int r = disk_from(c, &c->disks[i], i, p->disks[i], err);
		if (r)
			return r;
	}
	return 0;
}

static int mac_from(const char *field, const char *s, uint8_t mac[6], struct chv_err *err)
{
	if (tap_parse_mac(s, mac))
		return chv_err_set(err, -EINVAL,
				   "%s: \"%s\" is not a MAC address (aa:bb:cc:dd:ee:ff)", field, s);
	return vm_config_check_mac(field, NULL, mac, err);
}

static int net_addrs_from(struct net_config *n, size_t i, const Chv__V1__NetConfig *p,
			  struct chv_err *err)
{
	char f[48];
	int r;
	snprintf(f, sizeof(f), "config.nets[%zu].mac", i);
	if (!str_set(p->mac))
		vm_config_random_mac(n->mac);
	else if ((r = mac_from(f, p->mac, n->mac, err)))
		return r;
	snprintf(f, sizeof(f), "config.nets[%zu].host_mac", i);
	if (str_set(p->host_mac)) {
		if ((r = mac_from(f, p->host_mac, n->host_mac, err)))
			return r;
		n->has_host_mac = true;
	}
	if (str_set(p->ip)) {
		snprintf(f, sizeof(f), "config.nets[%zu].ip", i);
		if (!vm_config_ipv4_ok(p->ip, false))
			return chv_err_set(err, -EINVAL, "%s: \"%s\" is not an IPv4 address", f,
					   p->ip);
		if ((r = dup_str(&n->ip, f, p->ip, err)))
			return r;
	}
	if (str_set(p->mask)) {
		snprintf(f, sizeof(f), "config.nets[%zu].mask", i);
		if (!vm_config_ipv4_ok(p->mask, true))
			return chv_err_set(err, -EINVAL, "%s: \"%s\" is not an IPv4 netmask", f,
					   p->mask);
		if (!str_set(p->ip))
			return chv_err_set(err, -EINVAL, "%s: %s needs config.nets[%zu].ip", f,
					   p->mask, i);
		if ((r = dup_str(&n->mask, f, p->mask, err)))
			return r;
	}
	if (p->mtu && (p->mtu < CONFIG_NET_MIN_MTU || p->mtu > CONFIG_NET_MAX_MTU))
		return chv_err_set(err, -EINVAL,
				   "config.nets[%zu].mtu: %" PRIu32 " is out of range (%u..%u)", i,
				   p->mtu, CONFIG_NET_MIN_MTU, CONFIG_NET_MAX_MTU);
	n->mtu = (uint16_t)p->mtu;
	return 0;
}

/* Like disk_from(); queue pairs against the vCPUs, unique ids and the
 * tap's existence are left to vm_config_validate() and the worker. */
static int net_from(const struct vm_config *c, struct net_config *n, size_t i,
		    const Chv__V1__NetConfig *p, struct chv_err *err)
{
	char f[48];
	int r;
	vm_config_net_defaults(n);
	if (!p)
		return chv_err_set(err, -EINVAL, "config.nets[%zu] is empty", i);
	if (p->n_fds)
		return chv_err_set(err, -EINVAL,
				   "config.nets[%zu].fds: file descriptors cannot be passed over "
				   "the API (the VM runs in another process); name a tap instead",
				   i);
	if (str_set(p->tap)) {
		snprintf(f, sizeof(f), "config.nets[%zu].tap", i);
		if (!vm_config_ifname_ok(p->tap))
			return chv_err_set(err, -EINVAL,
					   "%s: \"%s\" is not an interface name (1..%u characters, "
					   "no '/', ':' or spaces)",
					   f, p->tap, CONFIG_NET_IFNAME_MAX);
		if ((r = dup_str(&n->tap, f, p->tap, err)))
			return r;
	}
	if ((r = net_addrs_from(n, i, p, err)))
		return r;
	uint32_t nq = p->num_queues ? p->num_queues : CONFIG_NET_DEFAULT_QUEUES;
	if (nq < 2 || nq > 2 * CONFIG_NET_MAX_PAIRS || nq % 2)
		return chv_err_set(err, -EINVAL,
				   "config.nets[%zu].num_queues: %" PRIu32 " is not an even number "
				   "in 2..%u (2 per queue pair)",
				   i, p->num_queues, 2 * CONFIG_NET_MAX_PAIRS);
	uint32_t qs = p->queue_size ? p->queue_size : CONFIG_NET_DEFAULT_QUEUE_SIZE;
	if (qs < 4 || qs > CONFIG_NET_MAX_QUEUE_SIZE || (qs & (qs - 1)))
		return chv_err_set(err, -EINVAL,
				   "config.nets[%zu].queue_size: %" PRIu32 " is not a power of "
				   "two in 4..%u",
				   i, p->queue_size, CONFIG_NET_MAX_QUEUE_SIZE);
	n->num_queues = (uint16_t)nq;
	n->queue_size = qs;
	n->offload_csum = p->offload_csum;
	n->offload_tso = p->offload_tso;
	n->offload_ufo = p->offload_ufo;
	if (!p->offload_csum && (p->offload_tso || p->offload_ufo))
		return chv_err_set(err, -EINVAL,
				   "config.nets[%zu].%s: true needs config.nets[%zu].offload_csum",
				   i, p->offload_tso ? "offload_tso" : "offload_ufo", i);
	snprintf(f, sizeof(f), "config.nets[%zu].id", i);
	if (str_set(p->id) && (r = dup_str(&n->id, f, p->id, err)))
		return r;
	snprintf(f, sizeof(f), "config.nets[%zu]", i);
	return device_rl_from(c, f, p->rate_limiter, p->rate_limit_group, &n->rl, &n->rl_group,
			      err);
}

static int nets_from(struct vm_config *c, const Chv__V1__VmConfig *p, struct chv_err *err)
{
	if (p->n_nets > CONFIG_MAX_NETS)
		return chv_err_set(err, -EINVAL, "config.nets: %zu devices, more than %u",
				   p->n_nets, CONFIG_MAX_NETS);
	for (uint32_t i = 0; i < c->nnets && i < CONFIG_MAX_NETS; i++)
		vm_config_net_free(&c->nets[i]);
	c->nnets = 0;
	for (size_t i = 0; i < p->n_nets; i++) {
		/* Counted first, so vm_config_free() releases a partial one. */
		c->nnets++;
		int r = net_from(c, &c->nets[i], i, p->nets[i], err);
		if (r)
			return r;
	}
	return 0;
}

/* Devices that the VM core cannot build yet: refuse rather than ignore. */
static int unsupported_from(const Chv__V1__VmConfig *p, struct chv_err *err)
{
	if (p->n_fs)
		return not_supported("config.fs", err);
	if (p->n_pmem)
		return not_supported("config.pmem", err);
	if (p->n_devices)
		return not_supported("config.devices", err);
	if (p->vsock && (p->vsock->cid || str_set(p->vsock->socket) || str_set(p->vsock->id)))
		return not_supported("config.vsock", err);
	if (p->balloon &&
	    (p->balloon->size || p->balloon->deflate_on_oom || p->balloon->free_page_reporting))
		return not_supported("config.balloon", err);
	if (p->platform) {
		const Chv__V1__PlatformConfig *pl = p->platform;
		if (pl->num_pci_segments > 1)
			return chv_err_set(err, -EINVAL,
					   "config.platform.num_pci_segments: %" PRIu32
					   " is not supported yet (1)",
					   pl->num_pci_segments);
		if (str_set(pl->serial_number))
			return not_supported("config.platform.serial_number", err);
		if (str_set(pl->uuid))
			return not_supported("config.platform.uuid", err);
		if (pl->n_oem_strings)
			return not_supported("config.platform.oem_strings", err);
	}
	return 0;
}

int vm_config_from_proto(struct vm_config *c, const Chv__V1__VmConfig *p, struct chv_err *err)
{
	int r;
	if (!p)
		return chv_err_set(err, -EINVAL, "config is required");
	if ((r = payload_from(c, p->payload, err)) || (r = cpus_from(c, p->cpus, err)) ||
	    (r = memory_from(c, p->memory, err)) ||
	    (r = console_from(&c->serial, "serial", CONSOLE_NULL, p->serial, err)) ||
	    (r = console_from(&c->console, "console", CONSOLE_OFF, p->console, err)))
		return r;
	/* A worker's stdin and stdout are not the user's terminal. */
	if (c->console.mode == CONSOLE_TTY)
		return chv_err_set(err, -EINVAL,
				   "config.console.mode: TTY is not supported under chvd "
				   "(virtio-console; use NULL, FILE or SOCKET)");
	if ((r = rng_from(c, p->rng, err)) || (r = groups_from(c, p, err)) ||
	    (r = disks_from(c, p, err)) || (r = nets_from(c, p, err)))
		return r;
	return unsupported_from(p, err);
}

/* The other way. Every string is our own copy (empty ones too), so
 * protobuf-c's free_unpacked can release the whole tree. */

static char *own_str(const char *s, bool *oom)
{
	char *d = strdup(s ? s : "");
	if (!d)
		*oom = true;
	return d;
}

static Chv__V1__ConsoleMode mode_to_proto(enum console_mode m)
{
	switch (m) {
	case CONSOLE_OFF:
		return CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF;
	case CONSOLE_NULL:
		return CHV__V1__CONSOLE_MODE__CONSOLE_MODE_NULL;
	case CONSOLE_TTY:
		return CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	case CONSOLE_FILE:
		return CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE;
	case CONSOLE_SOCKET:
		return CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET;
	}
	return CHV__V1__CONSOLE_MODE__CONSOLE_MODE_UNSPECIFIED;
}

/* NULL (none) for a config that limits nothing. */
static Chv__V1__RateLimiterConfig *rl_to(const struct rl_config *rl, bool *oom)
{
	if (!rl_config_active(rl))
		return NULL;
	Chv__V1__RateLimiterConfig *p = malloc(sizeof(*p));
	if (!p) {
		*oom = true;
		return NULL;
	}
	chv__v1__rate_limiter_config__init(p);
	p->bw_size = rl->bw.size;
	p->bw_one_time_burst = rl->bw.one_time_burst;
	p->bw_refill_time_ms = rl->bw.refill_ms;
	p->ops_size = rl->ops.size;
	p->ops_one_time_burst = rl->ops.one_time_burst;
	p->ops_refill_time_ms = rl->ops.refill_ms;
	return p;
}

static char *mac_str(const uint8_t mac[6], bool *oom)
{
	char txt[18];
	vm_config_format_mac(mac, txt);
	return own_str(txt, oom);
}

static Chv__V1__NetConfig *net_to(const struct net_config *n, bool *oom)
{
	Chv__V1__NetConfig *q = malloc(sizeof(*q));
	if (!q) {
		*oom = true;
		return NULL;
	}
	chv__v1__net_config__init(q);
	q->tap = own_str(n->tap, oom);
	q->ip = own_str(n->ip, oom);
	q->mask = own_str(n->mask, oom);
	q->mac = mac_str(n->mac, oom);
	q->host_mac = n->has_host_mac ? mac_str(n->host_mac, oom) : own_str(NULL, oom);
	q->mtu = n->mtu;
	q->num_queues = n->num_queues;
	q->queue_size = n->queue_size;
	q->id = own_str(n->id, oom);
	q->rate_limiter = rl_to(&n->rl, oom);
	q->rate_limit_group = own_str(n->rl_group, oom);
	q->offload_tso = n->offload_tso;
	q->offload_ufo = n->offload_ufo;
	q->offload_csum = n->offload_csum;
	/* A conversion, not a judgement: the API refuses fds on the way in. */
	if (n->nfds && n->nfds <= CONFIG_NET_MAX_PAIRS) {
		q->fds = malloc(n->nfds * sizeof(*q->fds));
		if (!q->fds) {
			*oom = true;
		} else {
			for (uint16_t k = 0; k < n->nfds; k++)
				q->fds[k] = n->fds[k];
			q->n_fds = n->nfds;
		}
	}
	return q;
}

static Chv__V1__ConsoleConfig *console_to(const struct console_config *cc, bool *oom)
{
	Chv__V1__ConsoleConfig *p = malloc(sizeof(*p));
	if (!p) {
		*oom = true;
		return NULL;
	}
	chv__v1__console_config__init(p);
	p->mode = mode_to_proto(cc->mode);
	p->path = own_str(cc->path, oom);
	return p;
}

int vm_config_to_proto(const struct vm_config *c, Chv__V1__VmConfig **out)
{
	bool oom = false;
	*out = NULL;
	Chv__V1__VmConfig *p = malloc(sizeof(*p));
	if (!p)
		return -ENOMEM;
	chv__v1__vm_config__init(p);

	/* Each part is attached as soon as it exists, so one free releases all. */
	if ((p->payload = malloc(sizeof(*p->payload)))) {
		chv__v1__payload_config__init(p->payload);
		p->payload->kernel = own_str(c->payload.kernel, &oom);
		p->payload->initramfs = own_str(c->payload.initramfs, &oom);
		p->payload->cmdline = own_str(c->payload.cmdline, &oom);
		p->payload->firmware = own_str(NULL, &oom);
	} else {
		oom = true;
	}
	if ((p->cpus = malloc(sizeof(*p->cpus)))) {
		chv__v1__cpus_config__init(p->cpus);
		p->cpus->boot_vcpus = c->cpus.boot;
		p->cpus->max_vcpus = c->cpus.max;
		p->cpus->max_phys_bits = c->cpus.max_phys_bits;
		if (c->cpus.topology_set) {
			if ((p->cpus->topology = malloc(sizeof(*p->cpus->topology)))) {
				const struct cpu_topology *t = &c->cpus.topology;
				chv__v1__cpu_topology__init(p->cpus->topology);
				p->cpus->topology->threads_per_core = t->threads_per_core;
				p->cpus->topology->cores_per_die = t->cores_per_die;
				p->cpus->topology->dies_per_package = t->dies_per_package;
				p->cpus->topology->packages = t->packages;
			} else {
				oom = true;
			}
		}
	} else {
		oom = true;
	}
	if ((p->memory = malloc(sizeof(*p->memory)))) {
		chv__v1__memory_config__init(p->memory);
		p->memory->size = c->memory.size;
		p->memory->shared = c->memory.shared;
		p->memory->hugepages = c->memory.hugepages;
	} else {
		oom = true;
	}
	p->serial = console_to(&c->serial, &oom);
	p->console = console_to(&c->console, &oom);
	if ((p->rng = malloc(sizeof(*p->rng)))) {
		chv__v1__rng_config__init(p->rng);
		p->rng->src = own_str(c->rng.src, &oom);
	} else {
		oom = true;
	}
	if (c->ndisks && c->ndisks <= CONFIG_MAX_DISKS) {
		p->disks = calloc(c->ndisks, sizeof(*p->disks));
		if (!p->disks)
			oom = true;
		for (uint32_t i = 0; p->disks && i < c->ndisks; i++) {
			const struct disk_config *d = &c->disks[i];
			Chv__V1__DiskConfig *q = malloc(sizeof(*q));
			if (!q) {
				oom = true;
				break;
			}
			chv__v1__disk_config__init(q);
			p->disks[p->n_disks++] = q;
			q->path = own_str(d->path, &oom);
			q->readonly = d->readonly;
			q->direct = d->direct;
			q->num_queues = d->num_queues;
			q->queue_size = d->queue_size;
			q->serial = own_str(d->serial, &oom);
			q->id = own_str(d->id, &oom);
			q->rate_limiter = rl_to(&d->rl, &oom);
			q->rate_limit_group = own_str(d->rl_group, &oom);
		}
	}
	if (c->nnets && c->nnets <= CONFIG_MAX_NETS) {
		p->nets = calloc(c->nnets, sizeof(*p->nets));
		if (!p->nets)
			oom = true;
		for (uint32_t i = 0; p->nets && i < c->nnets; i++) {
			Chv__V1__NetConfig *q = net_to(&c->nets[i], &oom);
			if (!q)
				break;
			p->nets[p->n_nets++] = q;
		}
	}
	if (c->nrl_groups && c->nrl_groups <= CONFIG_MAX_RL_GROUPS) {
		p->rate_limit_groups = calloc(c->nrl_groups, sizeof(*p->rate_limit_groups));
		if (!p->rate_limit_groups)
			oom = true;
		for (uint32_t i = 0; p->rate_limit_groups && i < c->nrl_groups; i++) {
			Chv__V1__RateLimitGroupConfig *g = malloc(sizeof(*g));
			if (!g) {
				oom = true;
				break;
			}
			chv__v1__rate_limit_group_config__init(g);
			p->rate_limit_groups[p->n_rate_limit_groups++] = g;
			g->id = own_str(c->rl_groups[i].id, &oom);
			g->config = rl_to(&c->rl_groups[i].rl, &oom);
		}
	}
	if (oom) {
		vm_config_proto_free(p);
		return -ENOMEM;
	}
	*out = p;
	return 0;
}

void vm_config_proto_free(Chv__V1__VmConfig *p)
{
	if (p)
		chv__v1__vm_config__free_unpacked(p, NULL);
}
