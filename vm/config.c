/* chv-vmm's flags, in Cloud Hypervisor's syntax, into struct vm_config; and
 * the cross-field checks run before anything is allocated. */
#include "vm/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "virtio/tap.h"
#include "vm/cpuid.h"
#include "vm/layout.h"
#include "vm/optparse.h"
#include "vm/seccomp.h"

#define MIB		    (1024ULL * 1024)
#define MEMORY_DEFAULT_SIZE (512 * MIB)
/* The kernel loads at 1 MiB, so less than 2 MiB cannot hold one. */
#define MEMORY_MIN_SIZE	  (2 * MIB)
#define PAGE_SIZE_4K	  4096ULL
#define HUGEPAGE_SIZE	  (2 * MIB)
#define PHYS_BITS_DEFAULT 46 /* Cloud Hypervisor's max_phys_bits default */
#define PHYS_BITS_MIN	  36 /* every x86-64 CPU has at least this many */
#define PHYS_BITS_MAX	  52 /* the architectural limit */
#define TOPO_MAX_THREADS  2
/* xAPIC ids are 8 bits and 0xff is the broadcast id. */
#define XAPIC_MAX_ID 254

void vm_config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cpus.boot = 1;
	c->cpus.max = 1;
	c->cpus.topology = (struct cpu_topology){1, 1, 1, 1};
	c->cpus.max_phys_bits = PHYS_BITS_DEFAULT;
	c->memory.size = MEMORY_DEFAULT_SIZE;
	c->serial.mode = CONSOLE_NULL;
	c->console.mode = CONSOLE_OFF;
	c->seccomp = SECCOMP_TRUE;
	/* NULL after an allocation failure; vm_config_validate() reports it. */
	c->hypervisor = strdup("kvm");
}

static void free_str(char **s)
{
	free(*s);
	*s = NULL;
}

void vm_config_net_free(struct net_config *n)
{
	free_str(&n->tap);
	free_str(&n->ip);
	free_str(&n->mask);
	free_str(&n->id);
	free_str(&n->rl_group);
}

void vm_config_free(struct vm_config *c)
{
	if (!c)
		return;
	free_str(&c->payload.kernel);
	free_str(&c->payload.initramfs);
	free_str(&c->payload.cmdline);
	free_str(&c->serial.path);
	free_str(&c->console.path);
	free_str(&c->rng.src);
	for (uint32_t i = 0; i < c->ndisks && i < CONFIG_MAX_DISKS; i++) {
		free_str(&c->disks[i].path);
		free_str(&c->disks[i].serial);
		free_str(&c->disks[i].id);
		free_str(&c->disks[i].rl_group);
	}
	c->ndisks = 0;
	for (uint32_t i = 0; i < c->nnets && i < CONFIG_MAX_NETS; i++)
		vm_config_net_free(&c->nets[i]);
	c->nnets = 0;
	for (uint32_t i = 0; i < c->nrl_groups && i < CONFIG_MAX_RL_GROUPS; i++)
		free_str(&c->rl_groups[i].id);
	c->nrl_groups = 0;
	free_str(&c->log_file);
	free_str(&c->hypervisor);
}

/* "T:C:D:P", each field 1..255; threads 1..2 and one die, as Cloud Hypervisor. */
static int parse_topology(struct cpu_topology *t, const char *v, struct chv_err *err)
{
	static const char *const what[4] = {"threads per core", "cores per die", "dies per package",
					    "packages"};
	uint32_t f[4];
	const char *p = v;
	for (int i = 0; i < 4; i++) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if ((i < 3) != (end != NULL) || len == 0 || len > 20)
			return chv_err_set(err, -EINVAL,
					   "--cpus: topology=%s is not threads:cores:dies:packages",
					   v);
		char num[21];
		memcpy(num, p, len);
		num[len] = '\0';
		uint64_t n;
		int rc = optparse_u64(num, &n);
		if (rc == -EINVAL)
			return chv_err_set(err, -EINVAL,
					   "--cpus: topology=%s: %s \"%s\" is not a number", v,
					   what[i], num);
		uint32_t hi = i == 0 ? TOPO_MAX_THREADS : CONFIG_MAX_VCPUS;
		if (rc == -ERANGE || n < 1 || n > hi)
			return chv_err_set(err, -EINVAL,
					   "--cpus: topology=%s: %s %s is out of range (1..%u)", v,
					   what[i], num, hi);
		f[i] = (uint32_t)n;
		p = end ? end + 1 : p + len;
	}
	if (f[2] != 1)
		return chv_err_set(err, -EINVAL, "--cpus: topology=%s: dies per package must be 1",
				   v);
	*t = (struct cpu_topology){(uint8_t)f[0], (uint8_t)f[1], (uint8_t)f[2], (uint8_t)f[3]};
	return 0;
}

enum { CPUS_BOOT, CPUS_MAX, CPUS_TOPOLOGY, CPUS_PHYS_BITS };
static const char *const cpus_keys[] = {"boot", "max", "topology", "max_phys_bits", NULL};

int vm_config_parse_cpus(struct vm_config *c, const char *v, struct chv_err *err)
{
	struct optparse_kv kv;
	int rc = optparse_kv_split(&kv, "--cpus", v, cpus_keys, err);
	uint32_t boot = 1, max = 0, bits = PHYS_BITS_DEFAULT;
	struct cpu_topology topo = {0};

	if (!rc && kv.val[CPUS_BOOT])
		rc = optparse_u32("--cpus", "boot", kv.val[CPUS_BOOT], 1, CONFIG_MAX_VCPUS, &boot,
				  err);
	if (!rc && kv.val[CPUS_MAX])
		rc =
		    optparse_u32("--cpus", "max", kv.val[CPUS_MAX], 1, CONFIG_MAX_VCPUS, &max, err);
	if (!rc && kv.val[CPUS_TOPOLOGY])
		rc = parse_topology(&topo, kv.val[CPUS_TOPOLOGY], err);
	if (!rc && kv.val[CPUS_PHYS_BITS])
		rc = optparse_u32("--cpus", "max_phys_bits", kv.val[CPUS_PHYS_BITS], PHYS_BITS_MIN,
				  PHYS_BITS_MAX, &bits, err);
	bool topology_set = kv.val[CPUS_TOPOLOGY] != NULL;
	optparse_kv_free(&kv);
	if (rc)
		return rc;

	c->cpus.boot = boot;
	c->cpus.max = max ? max : boot;
	c->cpus.max_phys_bits = bits;
	c->cpus.topology_set = topology_set;
	/* Without topology=, every vCPU is a core of one package (as Cloud
	 * Hypervisor); max <= CONFIG_MAX_VCPUS fits cores_per_die. */
	c->cpus.topology =
	    topology_set ? topo : (struct cpu_topology){1, (uint8_t)c->cpus.max, 1, 1};
	return 0;
}

static int size_parse(const char *v, uint64_t *out)
{
	size_t len = strlen(v);
	unsigned shift = 0;
	if (len == 0)
		return -EINVAL;
	switch (v[len - 1]) {
	case 'K':
	case 'k':
		shift = 10;
		break;
	case 'M':
	case 'm':
		shift = 20;
		break;
	case 'G':
	case 'g':
		shift = 30;
		break;
	case 'T':
	case 't':
		shift = 40;
		break;
	}
	if (shift)
		len--;
	if (len == 0 || len > 20)
		return len ? -ERANGE : -EINVAL;
	char num[21];
	memcpy(num, v, len);
	num[len] = '\0';
	uint64_t n;
	int rc = optparse_u64(num, &n);
	if (rc)
		return rc;
	if (shift && n > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = n << shift;
	return 0;
}

int vm_config_parse_size(const char *v, uint64_t *out)
{
	return size_parse(v, out) ? -EINVAL : 0;
}

enum { MEM_SIZE, MEM_SHARED, MEM_HUGEPAGES };
static const char *const memory_keys[] = {"size", "shared", "hugepages", NULL};

int vm_config_parse_memory(struct vm_config *c, const char *v, struct chv_err *err)
{
	struct optparse_kv kv;
	int rc = optparse_kv_split(&kv, "--memory", v, memory_keys, err);
	uint64_t size = MEMORY_DEFAULT_SIZE;
	bool shared = false, hugepages = false;

	if (!rc && kv.val[MEM_SIZE]) {
		const char *s = kv.val[MEM_SIZE];
		rc = size_parse(s, &size);
		if (rc == -ERANGE)
			rc = chv_err_set(err, -EINVAL, "--memory: size=%s is too large", s);
		else if (rc)
			rc = chv_err_set(err, -EINVAL,
					 "--memory: size=%s is not a size (bytes, or a number with "
					 "K, M, G or T)",
					 s);
	}
	if (!rc && kv.val[MEM_SHARED])
		rc = optparse_bool("--memory", "shared", kv.val[MEM_SHARED], &shared, err);
	if (!rc && kv.val[MEM_HUGEPAGES])
		rc = optparse_bool("--memory", "hugepages", kv.val[MEM_HUGEPAGES], &hugepages, err);
	optparse_kv_free(&kv);
	if (rc)
		return rc;
	c->memory.size = size;
	c->memory.shared = shared;
	c->memory.hugepages = hugepages;
	return 0;
}

static int set_str(char **dst, const char *opt, const char *v, struct chv_err *err)
{
	char *s = strdup(v);
	if (!s)
		return chv_err_set(err, -ENOMEM, "%s: out of memory", opt);
	free(*dst);
	*dst = s;
	return 0;
}

int vm_config_parse_console(struct console_config *cc, const char *opt, const char *v,
			    struct chv_err *err)
{
	static const struct {
		const char *name;
		enum console_mode mode;
	} plain[] = {{"off", CONSOLE_OFF}, {"null", CONSOLE_NULL}, {"tty", CONSOLE_TTY}};
	static const struct {
		const char *prefix;
		enum console_mode mode;
	} with_path[] = {{"file=", CONSOLE_FILE}, {"socket=", CONSOLE_SOCKET}};

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		if (strcmp(v, plain[i].name) == 0) {
			free_str(&cc->path);
			cc->mode = plain[i].mode;
			return 0;
		}
	}
	/* The path is the whole rest of the value, so it may contain commas. */
	for (size_t i = 0; i < sizeof(with_path) / sizeof(with_path[0]); i++) {
		size_t n = strlen(with_path[i].prefix);
		if (strncmp(v, with_path[i].prefix, n) != 0)
			continue;
		if (!v[n])
			return chv_err_set(err, -EINVAL, "%s: %s needs a path", opt, v);
		int rc = set_str(&cc->path, opt, v + n, err);
		if (rc)
			return rc;
		cc->mode = with_path[i].mode;
		return 0;
	}
	if (!*v)
		return chv_err_set(err, -EINVAL, "%s: empty value", opt);
	return chv_err_set(err, -EINVAL,
			   "%s: unknown mode \"%s\" (off, null, tty, file=PATH or socket=PATH)",
			   opt, v);
}

static const char *const rng_keys[] = {"src", NULL};

int vm_config_parse_rng(struct vm_config *c, const char *v, struct chv_err *err)
{
	struct optparse_kv kv;
	int rc = optparse_kv_split(&kv, "--rng", v, rng_keys, err);
	const char *src = kv.val[0];
	if (!rc && (!src || !*src))
		rc = chv_err_set(err, -EINVAL, "--rng: src= needs a path (default %s)",
				 VM_CONFIG_RNG_DEFAULT_SRC);
	if (!rc)
		rc = set_str(&c->rng.src, "--rng", src, err);
	optparse_kv_free(&kv);
	return rc;
}

/* Rate limits, the same keys on --disk and --net (Cloud Hypervisor's; refill
 * times in milliseconds), then --rate-limit-group's id or a device's group. */
enum {
	RL_BW_SIZE,
	RL_BW_BURST,
	RL_BW_REFILL,
	RL_OPS_SIZE,
	RL_OPS_BURST,
	RL_OPS_REFILL,
	RL__LIMITS,
	RL_GROUP = RL__LIMITS, /* rate_limit_group= on a device, id= on a group */
	RL__COUNT
};
#define RL_KEYS                                                                                    \
	"bw_size", "bw_one_time_burst", "bw_refill_time", "ops_size", "ops_one_time_burst",        \
	    "ops_refill_time"

static int parse_u64_key(const char *opt, const char *key, const char *s, uint64_t *out,
			 struct chv_err *err)
{
	int rc = optparse_u64(s, out);
	if (rc == -EINVAL)
		return chv_err_set(err, -EINVAL, "%s: %s=%s is not a number", opt, key, s);
	if (rc)
		return chv_err_set(err, -EINVAL, "%s: %s=%s is too large", opt, key, s);
	return 0;
}

/* val: RL__LIMITS values by RL_* index (NULL: not given). */
static int parse_rl(const char *opt, const char *const *val, struct rl_config *rl,
		    struct chv_err *err)
{
	static const char *const names[RL__LIMITS] = {RL_KEYS};
	uint64_t *dst[RL__LIMITS] = {&rl->bw.size,  &rl->bw.one_time_burst,  &rl->bw.refill_ms,
				     &rl->ops.size, &rl->ops.one_time_burst, &rl->ops.refill_ms};
	memset(rl, 0, sizeof(*rl));
	for (int i = 0; i < RL__LIMITS; i++) {
		if (!val[i])
			continue;
		int rc = parse_u64_key(opt, names[i], val[i], dst[i], err);
		if (rc)
			return rc;
	}
	return vm_config_check_rl(opt, rl, err);
}

int vm_config_check_rl(const char *opt, const struct rl_config *rl, struct chv_err *err)
{
	struct chv_err e = {0};
	int rc = rl_config_check(rl, &e);
	if (rc)
		return chv_err_set(err, rc, "%s: %s", opt, e.msg);
	return 0;
}

enum {
	DISK_PATH,
	DISK_RO,
	DISK_DIRECT,
	DISK_NQ,
	DISK_QS,
	DISK_SERIAL,
	DISK_ID,
	DISK_RL /* RL__COUNT keys from here */
};
static const char *const disk_keys[] = {
    "path",   "readonly", "direct", "num_queues",	"queue_size",
    "serial", "id",	  RL_KEYS,  "rate_limit_group", NULL};

/* A device draws from its own limits or from a group's, not both. */
static int check_rl_exclusive(const char *opt, const struct rl_config *rl, const char *group,
			      struct chv_err *err)
{
	if (!rl_config_active(rl))
		return 0;
	return chv_err_set(err, -EINVAL,
			   "%s: rate_limit_group=%s and the device's own limits (bw_*, ops_*) "
			   "are exclusive",
			   opt, group);
}

/* A device's rate_limit_group= and its own limits. */
static int parse_device_rl(const char *opt, const char *const *val, struct rl_config *rl,
			   char **group, struct chv_err *err)
{
	int rc = parse_rl(opt, val, rl, err);
	if (rc)
		return rc;
	if (!val[RL_GROUP])
		return 0;
	if ((rc = check_rl_exclusive(opt, rl, val[RL_GROUP], err)))
		return rc;
	return set_str(group, opt, val[RL_GROUP], err);
}

/* Ranges that need other options (num_queues against the vCPUs) and the
 * path's existence are vm_config_validate()'s. */
static int parse_disk_kv(struct disk_config *d, const struct optparse_kv *kv, struct chv_err *err)
{
	int rc = 0;
	uint32_t n;
	if (!kv->val[DISK_PATH])
		return chv_err_set(err, -EINVAL, "--disk: path= is required");
	if ((rc = set_str(&d->path, "--disk", kv->val[DISK_PATH], err)))
		return rc;
	if (kv->val[DISK_RO] &&
	    (rc = optparse_bool("--disk", "readonly", kv->val[DISK_RO], &d->readonly, err)))
		return rc;
	if (kv->val[DISK_DIRECT] &&
	    (rc = optparse_bool("--disk", "direct", kv->val[DISK_DIRECT], &d->direct, err)))
		return rc;
	if (kv->val[DISK_NQ]) {
		if ((rc = optparse_u32("--disk", "num_queues", kv->val[DISK_NQ], 1,
				       CONFIG_MAX_VCPUS, &n, err)))
			return rc;
		d->num_queues = (uint16_t)n;
	}
	if (kv->val[DISK_QS]) {
		if ((rc = optparse_u32("--disk", "queue_size", kv->val[DISK_QS], 4,
				       CONFIG_DISK_MAX_QUEUE_SIZE, &n, err)))
			return rc;
		if (n & (n - 1))
			return chv_err_set(err, -EINVAL,
					   "--disk: queue_size=%s is not a power of two",
					   kv->val[DISK_QS]);
		d->queue_size = n;
	}
	if (kv->val[DISK_SERIAL]) {
		if (strlen(kv->val[DISK_SERIAL]) > CONFIG_DISK_SERIAL_MAX)
			return chv_err_set(err, -EINVAL,
					   "--disk: serial=%s is longer than %u bytes",
					   kv->val[DISK_SERIAL], CONFIG_DISK_SERIAL_MAX);
		if ((rc = set_str(&d->serial, "--disk", kv->val[DISK_SERIAL], err)))
			return rc;
	}
	if (kv->val[DISK_ID] && (rc = set_str(&d->id, "--disk", kv->val[DISK_ID], err)))
		return rc;
	return parse_device_rl("--disk", &kv->val[DISK_RL], &d->rl, &d->rl_group, err);
}

int vm_config_parse_disk(struct vm_config *c, const char *v, struct chv_err *err)
{
	if (c->ndisks >= CONFIG_MAX_DISKS)
		return chv_err_set(err, -EINVAL, "--disk: more than %u disks (again as \"%s\")",
				   CONFIG_MAX_DISKS, v);
	struct optparse_kv kv;
	int rc = optparse_kv_split(&kv, "--disk", v, disk_keys, err);
	struct disk_config d = {
	    .num_queues = CONFIG_DISK_DEFAULT_QUEUES,
	    .queue_size = CONFIG_DISK_DEFAULT_QUEUE_SIZE,
	};
	if (!rc)
		rc = parse_disk_kv(&d, &kv, err);
	optparse_kv_free(&kv);
	if (rc) {
		free_str(&d.path);
		free_str(&d.serial);
		free_str(&d.id);
		free_str(&d.rl_group);
		return rc;
	}
	c->disks[c->ndisks++] = d;
	return 0;
}

void vm_config_random_mac(uint8_t mac[6])
{
	if (getrandom(mac, 6, 0) != 6) {
		/* Never in practice; still a different address per process. */
		uint64_t x = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL) ^ (uintptr_t)mac;
		for (int i = 0; i < 6; i++, x >>= 8)
			mac[i] = (uint8_t)x;
	}
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
}

void vm_config_format_mac(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

/* "aa:bb:cc:dd:ee:ff", a unicast address other than all zeros. */
static int parse_mac(const char *opt, const char *key, const char *s, uint8_t mac[6],
		     struct chv_err *err)
{
	if (tap_parse_mac(s, mac))
		return chv_err_set(err, -EINVAL,
				   "%s: %s=%s is not a MAC address (aa:bb:cc:dd:ee:ff)", opt, key,
				   s);
	return vm_config_check_mac(opt, key, mac, err);
}

int vm_config_check_mac(const char *opt, const char *key, const uint8_t mac[6], struct chv_err *err)
{
	char txt[18];
	const char *eq = key ? "=" : "";
	vm_config_format_mac(mac, txt);
	key = key ? key : "";
	if (mac[0] & 1)
		return chv_err_set(err, -EINVAL, "%s: %s%s%s is a multicast address", opt, key, eq,
				   txt);
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return chv_err_set(err, -EINVAL, "%s: %s%s%s is not a valid address", opt, key, eq,
				   txt);
	return 0;
}

bool vm_config_ipv4_ok(const char *s, bool mask)
{
	struct in_addr a;
	if (!s || inet_pton(AF_INET, s, &a) != 1)
		return false;
	uint32_t m = ntohl(a.s_addr);
	return !mask || !(m & (~m >> 1));
}

bool vm_config_ifname_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > CONFIG_NET_IFNAME_MAX || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '/' || *p == ':' || *p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* fd=3 or fd=3:4:5, one open tap queue per pair; 0..2 are stdio. */
static int parse_fds(struct net_config *n, const char *s, struct chv_err *err)
{
	const char *p = s;
	n->nfds = 0;
	for (;;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char num[16];
		uint64_t v;
		if (n->nfds == CONFIG_NET_MAX_PAIRS)
			return chv_err_set(err, -EINVAL, "--net: fd=%s: more than %u fds", s,
					   CONFIG_NET_MAX_PAIRS);
		if (len == 0 || len >= sizeof(num))
			return chv_err_set(err, -EINVAL,
					   "--net: fd=%s is not a list of fds (fd=N or fd=N:N:...)",
					   s);
		memcpy(num, p, len);
		num[len] = '\0';
		if (optparse_u64(num, &v) || v > INT32_MAX)
			return chv_err_set(err, -EINVAL, "--net: fd=%s: \"%s\" is not an fd", s,
					   num);
		if (v <= 2)
			return chv_err_set(err, -EINVAL,
					   "--net: fd=%s: %s is standard input, output or error", s,
					   num);
		for (uint16_t k = 0; k < n->nfds; k++)
			if (n->fds[k] == (int)v)
				return chv_err_set(err, -EINVAL, "--net: fd=%s: %s is given twice",
						   s, num);
		n->fds[n->nfds++] = (int)v;
		if (!end)
			return 0;
		p = end + 1;
	}
}

enum {
	NET_TAP,
	NET_IP,
	NET_MASK,
	NET_MAC,
	NET_HOST_MAC,
	NET_MTU,
	NET_NQ,
	NET_QS,
	NET_ID,
	NET_FD,
	NET_TSO,
	NET_UFO,
	NET_CSUM,
	NET_RL /* RL__COUNT keys from here */
};
static const char *const net_keys[] = {
    "tap",	   "ip",	  "mask",	  "mac",   "host_mac",
    "mtu",	   "num_queues",  "queue_size",	  "id",	   "fd",
    "offload_tso", "offload_ufo", "offload_csum", RL_KEYS, "rate_limit_group",
    NULL};

static int parse_net_queues(struct net_config *n, const struct optparse_kv *kv, struct chv_err *err)
{
	uint32_t v;
	int rc;
	if (kv->val[NET_NQ]) {
		if ((rc = optparse_u32("--net", "num_queues", kv->val[NET_NQ], 2,
				       2 * CONFIG_NET_MAX_PAIRS, &v, err)))
			return rc;
		if (v % 2)
			return chv_err_set(err, -EINVAL,
					   "--net: num_queues=%s is odd (queues come in RX/TX "
					   "pairs)",
					   kv->val[NET_NQ]);
		n->num_queues = (uint16_t)v;
	} else if (n->nfds) {
		n->num_queues = (uint16_t)(2 * n->nfds); /* one pair per fd */
	}
	if (n->nfds && n->num_queues != 2 * n->nfds)
		return chv_err_set(err, -EINVAL,
				   "--net: fd=%s gives %u fds for num_queues=%u (one fd per "
				   "queue pair)",
				   kv->val[NET_FD], n->nfds, n->num_queues);
	if (kv->val[NET_QS]) {
		if ((rc = optparse_u32("--net", "queue_size", kv->val[NET_QS], 4,
				       CONFIG_NET_MAX_QUEUE_SIZE, &v, err)))
			return rc;
		if (v & (v - 1))
			return chv_err_set(err, -EINVAL,
					   "--net: queue_size=%s is not a power of two",
					   kv->val[NET_QS]);
		n->queue_size = v;
	}
	return 0;
}

/* offload_csum=off turns the others off unless they are asked for, which
 * is an error: segmentation offloads need checksum offload. */
static int parse_net_offloads(struct net_config *n, const struct optparse_kv *kv,
			      struct chv_err *err)
{
	int rc;
	if (kv->val[NET_CSUM] &&
	    (rc = optparse_bool("--net", "offload_csum", kv->val[NET_CSUM], &n->offload_csum, err)))
		return rc;
	n->offload_tso = n->offload_ufo = n->offload_csum;
	if (kv->val[NET_TSO] &&
	    (rc = optparse_bool("--net", "offload_tso", kv->val[NET_TSO], &n->offload_tso, err)))
		return rc;
	if (kv->val[NET_UFO] &&
	    (rc = optparse_bool("--net", "offload_ufo", kv->val[NET_UFO], &n->offload_ufo, err)))
		return rc;
	if (!n->offload_csum && (n->offload_tso || n->offload_ufo))
		return chv_err_set(err, -EINVAL, "--net: %s=%s needs offload_csum=on",
				   n->offload_tso ? "offload_tso" : "offload_ufo",
				   n->offload_tso ? kv->val[NET_TSO] : kv->val[NET_UFO]);
	return 0;
}

static int parse_net_kv(struct net_config *n, const struct optparse_kv *kv, struct chv_err *err)
{
	int rc;
	uint32_t v;
	const char *tap = kv->val[NET_TAP];
	if (tap) {
		if (!vm_config_ifname_ok(tap))
			return chv_err_set(err, -EINVAL,
					   "--net: tap=%s is not an interface name (1..%u "
					   "characters, no '/', ':' or spaces)",
					   tap, CONFIG_NET_IFNAME_MAX);
		if (kv->val[NET_FD])
			return chv_err_set(err, -EINVAL, "--net: tap=%s and fd=%s are exclusive",
					   tap, kv->val[NET_FD]);
		if ((rc = set_str(&n->tap, "--net", tap, err)))
			return rc;
	}
	if (kv->val[NET_FD] && (rc = parse_fds(n, kv->val[NET_FD], err)))
		return rc;
	if (kv->val[NET_IP]) {
		if (!vm_config_ipv4_ok(kv->val[NET_IP], false))
			return chv_err_set(err, -EINVAL, "--net: ip=%s is not an IPv4 address",
					   kv->val[NET_IP]);
		if ((rc = set_str(&n->ip, "--net", kv->val[NET_IP], err)))
			return rc;
	}
	if (kv->val[NET_MASK]) {
		if (!vm_config_ipv4_ok(kv->val[NET_MASK], true))
			return chv_err_set(err, -EINVAL,
					   "--net: mask=%s is not an IPv4 netmask (e.g. "
					   "255.255.255.0)",
					   kv->val[NET_MASK]);
		if (!kv->val[NET_IP])
			return chv_err_set(err, -EINVAL,
					   "--net: mask=%s needs ip=", kv->val[NET_MASK]);
		if ((rc = set_str(&n->mask, "--net", kv->val[NET_MASK], err)))
			return rc;
	}
	if (kv->val[NET_MAC]) {
		if ((rc = parse_mac("--net", "mac", kv->val[NET_MAC], n->mac, err)))
			return rc;
	} else {
		vm_config_random_mac(n->mac);
	}
	if (kv->val[NET_HOST_MAC]) {
		if ((rc = parse_mac("--net", "host_mac", kv->val[NET_HOST_MAC], n->host_mac, err)))
			return rc;
		n->has_host_mac = true;
	}
	if (kv->val[NET_MTU]) {
		if ((rc = optparse_u32("--net", "mtu", kv->val[NET_MTU], CONFIG_NET_MIN_MTU,
				       CONFIG_NET_MAX_MTU, &v, err)))
			return rc;
		n->mtu = (uint16_t)v;
	}
	if ((rc = parse_net_queues(n, kv, err)) || (rc = parse_net_offloads(n, kv, err)))
		return rc;
	if (kv->val[NET_ID] && (rc = set_str(&n->id, "--net", kv->val[NET_ID], err)))
		return rc;
	return parse_device_rl("--net", &kv->val[NET_RL], &n->rl, &n->rl_group, err);
}

void vm_config_net_defaults(struct net_config *n)
{
	memset(n, 0, sizeof(*n));
	n->num_queues = CONFIG_NET_DEFAULT_QUEUES;
	n->queue_size = CONFIG_NET_DEFAULT_QUEUE_SIZE;
	n->offload_tso = n->offload_ufo = n->offload_csum = true;
}

int vm_config_parse_net(struct vm_config *c, const char *v, struct chv_err *err)
{
	if (c->nnets >= CONFIG_MAX_NETS)
		return chv_err_set(err, -EINVAL, "--net: more than %u devices (again as \"%s\")",
				   CONFIG_MAX_NETS, v);
	struct optparse_kv kv;
	struct net_config n;
	vm_config_net_defaults(&n);
	int rc = optparse_kv_split(&kv, "--net", v, net_keys, err);
	if (!rc)
		rc = parse_net_kv(&n, &kv, err);
	optparse_kv_free(&kv);
	if (rc) {
		vm_config_net_free(&n);
		return rc;
	}
	c->nets[c->nnets++] = n;
	return 0;
}

static const char *const group_keys[] = {RL_KEYS, "id", NULL};

int vm_config_parse_rl_group(struct vm_config *c, const char *v, struct chv_err *err)
{
	const char *opt = "--rate-limit-group";
	if (c->nrl_groups >= CONFIG_MAX_RL_GROUPS)
		return chv_err_set(err, -EINVAL, "%s: more than %u groups (again as \"%s\")", opt,
				   CONFIG_MAX_RL_GROUPS, v);
	struct optparse_kv kv;
	struct rl_group_config g = {0};
	int rc = optparse_kv_split(&kv, opt, v, group_keys, err);
	if (!rc && !kv.val[RL_GROUP])
		rc = chv_err_set(err, -EINVAL, "%s: id= is required in \"%s\"", opt, v);
	if (!rc)
		rc = parse_rl(opt, kv.val, &g.rl, err);
	if (!rc)
		rc = set_str(&g.id, opt, kv.val[RL_GROUP], err);
	optparse_kv_free(&kv);
	if (rc) {
		free_str(&g.id);
		return rc;
	}
	c->rl_groups[c->nrl_groups++] = g;
	return 0;
}

static int parse_seccomp(struct vm_config *c, const char *v, struct chv_err *err)
{
	if (chv_seccomp_mode_parse(v, &c->seccomp))
		return chv_err_set(err, -EINVAL,
				   "--seccomp: unknown value \"%s\" (true, false or log)", v);
	return 0;
}

static int parse_hypervisor(struct vm_config *c, const char *v, struct chv_err *err)
{
	if (strcmp(v, "kvm") != 0)
		return chv_err_set(err, -EINVAL, "--hypervisor: unknown hypervisor \"%s\" (kvm)",
				   v);
	return set_str(&c->hypervisor, "--hypervisor", v, err);
}

static int parse_path(char **dst, const char *opt, const char *v, struct chv_err *err)
{
	if (!*v)
		return chv_err_set(err, -EINVAL, "%s: empty path", opt);
	return set_str(dst, opt, v, err);
}

enum opt_id {
	OPT_KERNEL,
	OPT_INITRAMFS,
	OPT_CMDLINE,
	OPT_CPUS,
	OPT_MEMORY,
	OPT_SERIAL,
	OPT_CONSOLE,
	OPT_RNG,
	OPT_DISK,
	OPT_NET,
	OPT_RL_GROUP,
	OPT_VERBOSE,
	OPT_LOG_FILE,
	OPT_SECCOMP,
	OPT_NO_REBOOT,
	OPT_HYPERVISOR,
	OPT_HELP,
	OPT_VERSION,
	OPT__COUNT
};

struct opt_desc {
	const char *name; /* without the leading "--" */
	char short_name;
	bool has_value;
};

static const struct opt_desc opts[OPT__COUNT] = {
    [OPT_KERNEL] = {"kernel", 0, true},
    [OPT_INITRAMFS] = {"initramfs", 0, true},
    [OPT_CMDLINE] = {"cmdline", 0, true},
    [OPT_CPUS] = {"cpus", 0, true},
    [OPT_MEMORY] = {"memory", 0, true},
    [OPT_SERIAL] = {"serial", 0, true},
    [OPT_CONSOLE] = {"console", 0, true},
    [OPT_VERBOSE] = {"verbose", 'v', false},
    [OPT_LOG_FILE] = {"log-file", 0, true},
    [OPT_SECCOMP] = {"seccomp", 0, true},
    [OPT_NO_REBOOT] = {"no-reboot", 0, false},
    [OPT_HYPERVISOR] = {"hypervisor", 0, true},
    [OPT_HELP] = {"help", 'h', false},
    [OPT_VERSION] = {"version", 'V', false},
    [OPT_RNG] = {"rng", 0, true},
    [OPT_DISK] = {"disk", 0, true},
    [OPT_NET] = {"net", 0, true},
    [OPT_RL_GROUP] = {"rate-limit-group", 0, true},
};

static int apply(struct vm_config *c, enum opt_id id, const char *v, struct chv_err *err)
{
	switch (id) {
	case OPT_KERNEL:
		return parse_path(&c->payload.kernel, "--kernel", v, err);
	case OPT_INITRAMFS:
		return parse_path(&c->payload.initramfs, "--initramfs", v, err);
	case OPT_CMDLINE:
		/* An empty command line is a legitimate choice. */
		return set_str(&c->payload.cmdline, "--cmdline", v, err);
	case OPT_CPUS:
		return vm_config_parse_cpus(c, v, err);
	case OPT_MEMORY:
		return vm_config_parse_memory(c, v, err);
	case OPT_SERIAL:
		return vm_config_parse_console(&c->serial, "--serial", v, err);
	case OPT_CONSOLE:
		return vm_config_parse_console(&c->console, "--console", v, err);
	case OPT_RNG:
		return vm_config_parse_rng(c, v, err);
	case OPT_DISK:
		return vm_config_parse_disk(c, v, err);
	case OPT_NET:
		return vm_config_parse_net(c, v, err);
	case OPT_RL_GROUP:
		return vm_config_parse_rl_group(c, v, err);
	case OPT_LOG_FILE:
		return parse_path(&c->log_file, "--log-file", v, err);
	case OPT_SECCOMP:
		return parse_seccomp(c, v, err);
	case OPT_HYPERVISOR:
		return parse_hypervisor(c, v, err);
	case OPT_VERBOSE:
		if (c->verbosity < 3)
			c->verbosity++;
		return 0;
	case OPT_NO_REBOOT:
		c->no_reboot = true;
		return 0;
	case OPT_HELP:
		return CONFIG_PARSED_HELP;
	case OPT_VERSION:
		return CONFIG_PARSED_VERSION;
	case OPT__COUNT:
		break;
	}
	return -EINVAL;
}

static int find_long(const char *name, size_t len)
{
	for (int i = 0; i < OPT__COUNT; i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
			return i;
	return -1;
}

static int find_short(char ch)
{
	for (int i = 0; i < OPT__COUNT; i++)
		if (opts[i].short_name && opts[i].short_name == ch)
			return i;
	return -1;
}

/* "-v", "-vvv", "-h", "-V": short options never take a value. */
static int parse_short(struct vm_config *c, const char *arg, struct chv_err *err)
{
	for (const char *p = arg + 1; *p; p++) {
		int id = find_short(*p);
		if (id < 0)
			return chv_err_set(err, -EINVAL, "unknown option \"-%c\" in \"%s\"", *p,
					   arg);
		int rc = apply(c, (enum opt_id)id, NULL, err);
		if (rc)
			return rc;
	}
	return 0;
}

int vm_config_parse_args(struct vm_config *c, int argc, char **argv, struct chv_err *err)
{
	unsigned seen = 0;

	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] == '-' && arg[1] && arg[1] != '-') {
			int rc = parse_short(c, arg, err);
			if (rc)
				return rc;
			continue;
		}
		if (strncmp(arg, "--", 2) != 0 || !arg[2])
			return chv_err_set(err, -EINVAL, "unexpected argument \"%s\"", arg);

		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		int id = find_long(name, len);
		if (id < 0)
			return chv_err_set(err, -EINVAL, "unknown option \"--%.*s\"", (int)len,
					   name);
		const struct opt_desc *d = &opts[id];

		const char *v = NULL;
		if (d->has_value) {
			if (eq) {
				v = eq + 1;
			} else if (i + 1 < argc && !(argv[i + 1][0] == '-' && argv[i + 1][1])) {
				/* "--kernel --cpus ..." is a forgotten value, not a
				 * kernel named "--cpus"; "--opt=-x" still works. */
				v = argv[++i];
			} else {
				return chv_err_set(err, -EINVAL, "--%s needs a value", d->name);
			}
			/* --disk, --net and --rate-limit-group are repeatable,
			 * one device or group each time. */
			bool repeatable = id == OPT_DISK || id == OPT_NET || id == OPT_RL_GROUP;
			if (!repeatable && (seen & (1u << id)))
				return chv_err_set(
				    err, -EINVAL, "--%s given twice (again as \"%s\")", d->name, v);
			seen |= 1u << id;
		} else if (eq) {
			return chv_err_set(err, -EINVAL, "--%s takes no value (got \"%s\")",
					   d->name, eq + 1);
		}
		int rc = apply(c, (enum opt_id)id, v, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int check_console(const struct console_config *cc, const char *opt, struct chv_err *err)
{
	if (cc->mode != CONSOLE_FILE && cc->mode != CONSOLE_SOCKET)
		return 0;
	const char *key = cc->mode == CONSOLE_FILE ? "file" : "socket";
	if (!cc->path || !*cc->path)
		return chv_err_set(err, -EINVAL, "%s: %s= needs a path", opt, key);
	if (cc->mode == CONSOLE_SOCKET &&
	    strlen(cc->path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return chv_err_set(err, -EINVAL, "%s: socket=%s is longer than %zu bytes", opt,
				   cc->path, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
	return 0;
}

/* The payload must be a regular file we can open for reading now, so a typo
 * fails here rather than after the VM is built. */
static int check_file(const char *opt, const char *path, struct chv_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return chv_err_set(err, -errno, "%s: %s: %s", opt, path, strerror(errno));
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	close(fd);
	if (rc)
		return chv_err_set(err, rc, "%s: %s: %s", opt, path, strerror(-rc));
	if (!S_ISREG(st.st_mode))
		return chv_err_set(err, -EINVAL, "%s: %s is not a regular file", opt, path);
	return 0;
}

/* The entropy source must be there and readable now, and something that
 * streams bytes: a character device (/dev/urandom, /dev/hwrng) or a file. */
static int check_rng(const struct vm_config *c, struct chv_err *err)
{
	const char *src = c->rng.src ? c->rng.src : VM_CONFIG_RNG_DEFAULT_SRC;
	if (!*src)
		return chv_err_set(err, -EINVAL, "--rng: src= needs a path");
	int fd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return chv_err_set(err, -errno, "--rng: src=%s: %s", src, strerror(errno));
	struct stat st;
	int rc = fstat(fd, &st) ? -errno : 0;
	close(fd);
	if (rc)
		return chv_err_set(err, rc, "--rng: src=%s: %s", src, strerror(-rc));
	if (!S_ISCHR(st.st_mode) && !S_ISREG(st.st_mode))
		return chv_err_set(
		    err, -EINVAL, "--rng: src=%s is not a character device or a regular file", src);
	return 0;
}

const struct rl_group_config *vm_config_find_rl_group(const struct vm_config *c, const char *id)
{
	for (uint32_t i = 0; i < c->nrl_groups && i < CONFIG_MAX_RL_GROUPS; i++)
		if (c->rl_groups[i].id && strcmp(c->rl_groups[i].id, id) == 0)
			return &c->rl_groups[i];
	return NULL;
}

/* A device's own limits, or a group that exists: not both. */
static int check_device_rl(const struct vm_config *c, const char *opt, const struct rl_config *rl,
			   const char *group, struct chv_err *err)
{
	int rc = vm_config_check_rl(opt, rl, err);
	if (rc || !group)
		return rc;
	if (!*group)
		return chv_err_set(err, -EINVAL, "%s: rate_limit_group= needs a group id", opt);
	if ((rc = check_rl_exclusive(opt, rl, group, err)))
		return rc;
	if (!vm_config_find_rl_group(c, group))
		return chv_err_set(err, -EINVAL,
				   "%s: rate_limit_group=%s is not defined (--rate-limit-group "
				   "id=%s,...)",
				   opt, group, group);
	return 0;
}

static int check_groups(const struct vm_config *c, struct chv_err *err)
{
	const char *opt = "--rate-limit-group";
	if (c->nrl_groups > CONFIG_MAX_RL_GROUPS)
		return chv_err_set(err, -EINVAL, "%s: %u groups, more than %u", opt, c->nrl_groups,
				   CONFIG_MAX_RL_GROUPS);
	for (uint32_t i = 0; i < c->nrl_groups; i++) {
		const struct rl_group_config *g = &c->rl_groups[i];
		if (!g->id || !*g->id)
			return chv_err_set(err, -EINVAL, "%s: id= is required (group %u)", opt, i);
		int rc = vm_config_check_rl(opt, &g->rl, err);
		if (rc)
			return rc;
		if (!rl_config_active(&g->rl))
			return chv_err_set(err, -EINVAL,
					   "%s: id=%s sets no limit (bw_size= or ops_size=)", opt,
					   g->id);
		if (vm_config_find_rl_group(c, g->id) != g)
			return chv_err_set(err, -EINVAL, "%s: id=%s is used twice", opt, g->id);
	}
	return 0;
}

/* Whether id names a disk, or a net before net number `before`. */
static bool device_id_taken(const struct vm_config *c, const char *id, uint32_t before)
{
	for (uint32_t i = 0; i < c->ndisks && i < CONFIG_MAX_DISKS; i++)
		if (c->disks[i].id && strcmp(c->disks[i].id, id) == 0)
			return true;
	for (uint32_t i = 0; i < before; i++)
		if (c->nets[i].id && strcmp(c->nets[i].id, id) == 0)
			return true;
	return false;
}

static int check_net_addrs(const struct net_config *n, struct chv_err *err)
{
	int rc;
	if ((rc = vm_config_check_mac("--net", "mac", n->mac, err)))
		return rc;
	if (n->has_host_mac && (rc = vm_config_check_mac("--net", "host_mac", n->host_mac, err)))
		return rc;
	if (n->ip && !vm_config_ipv4_ok(n->ip, false))
		return chv_err_set(err, -EINVAL, "--net: ip=%s is not an IPv4 address", n->ip);
	if (n->mask && !vm_config_ipv4_ok(n->mask, true))
		return chv_err_set(err, -EINVAL, "--net: mask=%s is not an IPv4 netmask", n->mask);
	if (n->mask && !n->ip)
		return chv_err_set(err, -EINVAL, "--net: mask=%s needs ip=", n->mask);
	if (n->mtu && (n->mtu < CONFIG_NET_MIN_MTU || n->mtu > CONFIG_NET_MAX_MTU))
		return chv_err_set(err, -EINVAL, "--net: mtu=%u is out of range (%u..%u)", n->mtu,
				   CONFIG_NET_MIN_MTU, CONFIG_NET_MAX_MTU);
	return 0;
}

/* The parser's rules again (a config may come from the API), plus those
 * that need other options: queue pairs against the vCPUs, unique ids,
 * groups that exist. The tap itself is opened when the VM is built. */
static int check_net(const struct vm_config *c, uint32_t i, struct chv_err *err)
{
	const struct net_config *n = &c->nets[i];
	uint32_t nq = n->num_queues, qs = n->queue_size;
	int rc;
	if (n->tap && !vm_config_ifname_ok(n->tap))
		return chv_err_set(err, -EINVAL, "--net: tap=%s is not an interface name", n->tap);
	if (n->tap && n->nfds)
		return chv_err_set(err, -EINVAL, "--net: tap=%s and fd= are exclusive", n->tap);
	if (n->nfds > CONFIG_NET_MAX_PAIRS)
		return chv_err_set(err, -EINVAL, "--net: %u fds, more than %u", n->nfds,
				   CONFIG_NET_MAX_PAIRS);
	if (nq < 2 || nq > 2 * CONFIG_NET_MAX_PAIRS || nq % 2)
		return chv_err_set(err, -EINVAL,
				   "--net: num_queues=%u is not an even number in 2..%u (net %u)",
				   nq, 2 * CONFIG_NET_MAX_PAIRS, i);
	if (nq / 2 > c->cpus.boot)
		return chv_err_set(err, -EINVAL,
				   "--net: num_queues=%u is %u queue pairs, more than the %u boot "
				   "vCPUs (net %u)",
				   nq, nq / 2, c->cpus.boot, i);
	if (n->nfds && n->nfds * 2u != nq)
		return chv_err_set(err, -EINVAL,
				   "--net: %u fds for num_queues=%u (one fd per queue pair)",
				   n->nfds, nq);
	for (uint16_t k = 0; k < n->nfds; k++)
		if (n->fds[k] <= 2)
			return chv_err_set(err, -EINVAL,
					   "--net: fd=%d is standard input, output or error",
					   n->fds[k]);
	if (qs < 4 || qs > CONFIG_NET_MAX_QUEUE_SIZE || (qs & (qs - 1)))
		return chv_err_set(err, -EINVAL,
				   "--net: queue_size=%u is not a power of two in 4..%u (net %u)",
				   qs, CONFIG_NET_MAX_QUEUE_SIZE, i);
	if ((rc = check_net_addrs(n, err)))
		return rc;
	if (!n->offload_csum && (n->offload_tso || n->offload_ufo))
		return chv_err_set(err, -EINVAL, "--net: %s=on needs offload_csum=on",
				   n->offload_tso ? "offload_tso" : "offload_ufo");
	if (n->id && device_id_taken(c, n->id, i))
		return chv_err_set(err, -EINVAL, "--net: id=%s is used twice", n->id);
	return check_device_rl(c, "--net", &n->rl, n->rl_group, err);
}

static int check_nets(const struct vm_config *c, struct chv_err *err)
{
	if (c->nnets > CONFIG_MAX_NETS)
		return chv_err_set(err, -EINVAL, "--net: %u devices, more than %u", c->nnets,
				   CONFIG_MAX_NETS);
	for (uint32_t i = 0; i < c->nnets; i++) {
		int rc = check_net(c, i, err);
		if (rc)
			return rc;
	}
	for (uint32_t i = 0; i < c->nnets; i++)
		for (uint32_t j = 0; j < i; j++)
			if (c->nets[i].tap && c->nets[j].tap &&
			    strcmp(c->nets[i].tap, c->nets[j].tap) == 0)
				return chv_err_set(err, -EINVAL,
						   "--net: tap=%s is given to two devices",
						   c->nets[i].tap);
	return 0;
}

/* Cloud Hypervisor's rules, plus what virtio-blk needs; the image itself
 * is opened (and locked) when the VM is built. */
static int check_disk(const struct vm_config *c, uint32_t i, struct chv_err *err)
{
	const struct disk_config *d = &c->disks[i];
	if (!d->path || !*d->path)
		return chv_err_set(err, -EINVAL, "--disk: path= is required (disk %u)", i);
	if (d->num_queues < 1 || d->num_queues > c->cpus.boot)
		return chv_err_set(err, -EINVAL,
				   "--disk: num_queues=%u is not in 1..%u (the boot vCPUs), "
				   "path=%s",
				   d->num_queues, c->cpus.boot, d->path);
	uint32_t qs = d->queue_size;
	if (qs < 4 || qs > CONFIG_DISK_MAX_QUEUE_SIZE || (qs & (qs - 1)))
		return chv_err_set(err, -EINVAL,
				   "--disk: queue_size=%u is not a power of two in 4..%u, path=%s",
				   qs, CONFIG_DISK_MAX_QUEUE_SIZE, d->path);
	if (d->serial && strlen(d->serial) > CONFIG_DISK_SERIAL_MAX)
		return chv_err_set(err, -EINVAL, "--disk: serial=%s is longer than %u bytes",
				   d->serial, CONFIG_DISK_SERIAL_MAX);
	struct stat st;
	if (stat(d->path, &st) < 0)
		return chv_err_set(err, -errno, "--disk: path=%s: %s", d->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return chv_err_set(err, -EINVAL,
				   "--disk: path=%s is not a regular file or a block device",
				   d->path);
	for (uint32_t j = 0; j < i; j++) {
		if (d->id && c->disks[j].id && strcmp(d->id, c->disks[j].id) == 0)
			return chv_err_set(err, -EINVAL, "--disk: id=%s is used twice", d->id);
	}
	return check_device_rl(c, "--disk", &d->rl, d->rl_group, err);
}

static int check_disks(const struct vm_config *c, struct chv_err *err)
{
	if (c->ndisks > CONFIG_MAX_DISKS)
		return chv_err_set(err, -EINVAL, "--disk: %u disks, more than %u", c->ndisks,
				   CONFIG_MAX_DISKS);
	for (uint32_t i = 0; i < c->ndisks; i++) {
		int rc = check_disk(c, i, err);
		if (rc)
			return rc;
	}
	return 0;
}

static int check_cpus(const struct vm_config *c, struct chv_err *err)
{
	const struct cpu_topology *t = &c->cpus.topology;

	if (c->cpus.boot < 1 || c->cpus.boot > CONFIG_MAX_VCPUS)
		return chv_err_set(err, -EINVAL, "--cpus: boot=%u is out of range (1..%u)",
				   c->cpus.boot, CONFIG_MAX_VCPUS);
	if (c->cpus.max < 1 || c->cpus.max > CONFIG_MAX_VCPUS)
		return chv_err_set(err, -EINVAL, "--cpus: max=%u is out of range (1..%u)",
				   c->cpus.max, CONFIG_MAX_VCPUS);
	if (c->cpus.boot > c->cpus.max)
		return chv_err_set(err, -EINVAL, "--cpus: boot=%u is more than max=%u",
				   c->cpus.boot, c->cpus.max);
	if (c->cpus.max_phys_bits < PHYS_BITS_MIN || c->cpus.max_phys_bits > PHYS_BITS_MAX)
		return chv_err_set(err, -EINVAL,
				   "--cpus: max_phys_bits=%u is out of range (%u..%u)",
				   c->cpus.max_phys_bits, PHYS_BITS_MIN, PHYS_BITS_MAX);

	uint32_t product =
	    (uint32_t)t->threads_per_core * t->cores_per_die * t->dies_per_package * t->packages;
	char ts[32];
	snprintf(ts, sizeof(ts), "%u:%u:%u:%u", t->threads_per_core, t->cores_per_die,
		 t->dies_per_package, t->packages);
	if (t->threads_per_core < 1 || t->threads_per_core > TOPO_MAX_THREADS ||
	    t->cores_per_die < 1 || t->dies_per_package != 1 || t->packages < 1)
		return chv_err_set(err, -EINVAL,
				   "--cpus: topology=%s is invalid (threads 1..2, cores >= 1, "
				   "dies 1, packages >= 1)",
				   ts);
	if (product != c->cpus.max)
		return chv_err_set(err, -EINVAL, "--cpus: topology=%s gives %u vCPUs, but max=%u",
				   ts, product, c->cpus.max);
	uint32_t top_id = cpuid_apic_id(t, c->cpus.max - 1);
	if (top_id > XAPIC_MAX_ID)
		return chv_err_set(err, -EINVAL,
				   "--cpus: topology=%s needs APIC ids up to %u, above xAPIC's %u",
				   ts, top_id, XAPIC_MAX_ID);
	return 0;
}

static int check_memory(const struct vm_config *c, struct chv_err *err)
{
	uint64_t size = c->memory.size;

	if (size < MEMORY_MIN_SIZE)
		return chv_err_set(err, -EINVAL,
				   "--memory: size=%" PRIu64 " is below the minimum 2M (the kernel "
				   "loads at 1 MiB)",
				   size);
	if (size % PAGE_SIZE_4K)
		return chv_err_set(err, -EINVAL,
				   "--memory: size=%" PRIu64 " is not a multiple of 4K", size);
	if (c->memory.hugepages && size % HUGEPAGE_SIZE)
		return chv_err_set(err, -EINVAL,
				   "--memory: size=%" PRIu64 " is not a multiple of 2M, as "
				   "hugepages=on needs",
				   size);
	/* RAM above the 32-bit hole ends at 4 GiB + the rest: it must be
	 * addressable with the guest's physical address bits. */
	struct mem_layout l;
	layout_compute(size, &l);
	uint32_t bits = c->cpus.max_phys_bits;
	if (bits >= PHYS_BITS_MIN && bits <= PHYS_BITS_MAX &&
	    l.high_size > (1ULL << bits) - LAYOUT_RAM64_START)
		return chv_err_set(err, -EINVAL,
				   "--memory: size=%" PRIu64 " does not fit in %u physical address "
				   "bits (max_phys_bits)",
				   size, bits);
	return 0;
}

int vm_config_validate(const struct vm_config *c, struct chv_err *err)
{
	int rc;

	if (!c->payload.kernel || !*c->payload.kernel)
		return chv_err_set(err, -EINVAL, "--kernel is required");
	if (c->payload.cmdline && strlen(c->payload.cmdline) >= LAYOUT_CMDLINE_MAX)
		return chv_err_set(err, -EINVAL,
				   "--cmdline: %zu bytes is longer than the maximum %llu",
				   strlen(c->payload.cmdline), LAYOUT_CMDLINE_MAX - 1);
	if ((rc = check_cpus(c, err)) || (rc = check_memory(c, err)))
		return rc;
	if ((rc = check_console(&c->serial, "--serial", err)) ||
	    (rc = check_console(&c->console, "--console", err)))
		return rc;
	/* One stdin cannot feed two devices. */
	if (c->console.mode == CONSOLE_TTY && c->serial.mode == CONSOLE_TTY)
		return chv_err_set(err, -EINVAL,
				   "--console: tty is already taken by --serial tty; use another "
				   "mode for one of them");
	if (!c->hypervisor)
		return chv_err_set(err, -EINVAL, "--hypervisor is not set");
	if (strcmp(c->hypervisor, "kvm") != 0)
		return chv_err_set(err, -EINVAL, "--hypervisor: unknown hypervisor \"%s\" (kvm)",
				   c->hypervisor);
	if (c->verbosity < 0 || c->verbosity > 3)
		return chv_err_set(err, -EINVAL, "-v: verbosity %d is out of range (0..3)",
				   c->verbosity);
	if ((unsigned)c->seccomp > SECCOMP_FALSE)
		return chv_err_set(err, -EINVAL, "--seccomp: unknown mode %d", (int)c->seccomp);
	if (c->log_file && !*c->log_file)
		return chv_err_set(err, -EINVAL, "--log-file: empty path");
	if ((rc = check_file("--kernel", c->payload.kernel, err)))
		return rc;
	if (c->payload.initramfs && (rc = check_file("--initramfs", c->payload.initramfs, err)))
		return rc;
	if ((rc = check_rng(c, err)) || (rc = check_groups(c, err)) || (rc = check_disks(c, err)))
		return rc;
	return check_nets(c, err);
}

const char *vm_config_usage(void)
{
	return "Usage: chv-vmm --kernel PATH [OPTIONS]\n"
	       "\n"
	       "Runs one virtual machine.\n"
	       "\n"
	       "Payload:\n"
	       "  --kernel PATH        the kernel: PVH ELF or bzImage (required)\n"
	       "  --initramfs PATH     an initramfs (none by default)\n"
	       "  --cmdline STRING     the kernel command line (empty by default)\n"
	       "\n"
	       "Machine:\n"
	       "  --cpus boot=N,max=M,topology=T:C:D:P,max_phys_bits=B\n"
	       "                       boot: vCPUs at boot (default 1, at most 255)\n"
	       "                       max: vCPUs possible (default boot)\n"
	       "                       topology: threads per core (1..2), cores per die, dies\n"
	       "                         per package (1), packages; the product must be max\n"
	       "                         (default 1:max:1:1)\n"
	       "                       max_phys_bits: guest physical address bits, 36..52\n"
	       "                         (default 46, never more than the host's)\n"
	       "  --memory size=SIZE,shared=on|off,hugepages=on|off\n"
	       "                       size: guest RAM, bytes or with K/M/G/T (default 512M,\n"
	       "                         at least 2M, a multiple of 4K; of 2M with hugepages)\n"
	       "                       shared: MAP_SHARED guest RAM (default off)\n"
	       "                       hugepages: back RAM with huge pages (default off)\n"
	       "\n"
	       "Devices:\n"
	       "  --serial off|null|tty|file=PATH|socket=PATH\n"
	       "                       the 16550 serial port on COM1 (default null: present,\n"
	       "                         output dropped)\n"
	       "  --console off|null|tty|file=PATH|socket=PATH\n"
	       "                       virtio-console (default off: no device)\n"
	       "  --rng src=PATH       virtio-rng, always present: where its entropy comes\n"
	       "                         from, a character device or file (default\n"
	       "                         /dev/urandom)\n"
	       "  --disk path=PATH,readonly=on|off,direct=on|off,num_queues=N,\n"
	       "         queue_size=N,serial=STR,id=STR\n"
	       "                       a virtio-blk disk over a raw image; repeat for more\n"
	       "                         (at most 8). readonly, direct (O_DIRECT): default\n"
	       "                         off; num_queues: 1..boot vCPUs (default 1);\n"
	       "                         queue_size: a power of two, 4..32768 (default\n"
	       "                         128); serial: get-id, at most 20 bytes;\n"
	       "                         rate limits as below\n"
	       "  --net tap=NAME,fd=N[:N...],mac=MAC,host_mac=MAC,ip=IP,mask=MASK,mtu=N,\n"
	       "        num_queues=N,queue_size=N,id=STR,offload_tso=on|off,\n"
	       "        offload_ufo=on|off,offload_csum=on|off\n"
	       "                       a virtio-net device over a tap; repeat for more (at\n"
	       "                         most 8). tap: an existing tap or the name for a new\n"
	       "                         one (default: a new tap named by the kernel); fd:\n"
	       "                         open tap queues instead, one per queue pair; mac:\n"
	       "                         the guest's (default random, locally administered);\n"
	       "                         host_mac, ip, mask, mtu (68..65518): the tap's side;\n"
	       "                         num_queues: even, 2 per queue pair, at most 2 per\n"
	       "                         boot vCPU (default 2); queue_size: a power of two,\n"
	       "                         4..32768 (default 256); offloads default on\n"
	       "  rate limits on --disk and --net:\n"
	       "         bw_size=BYTES,bw_one_time_burst=BYTES,bw_refill_time=MS,\n"
	       "         ops_size=N,ops_one_time_burst=N,ops_refill_time=MS,\n"
	       "         rate_limit_group=ID\n"
	       "                       token buckets: size tokens refilled every refill_time\n"
	       "                         ms, plus a one-time burst (bandwidth in bytes, ops\n"
	       "                         in requests or frames); or a shared group instead\n"
	       "  --rate-limit-group id=ID,bw_size=...,ops_size=...\n"
	       "                       a rate limiter shared by the devices that name it;\n"
	       "                         repeat for more (at most 8)\n"
	       "\n"
	       "Process:\n"
	       "  -v, --verbose        more log output: -v info, -vv debug, -vvv trace\n"
	       "                         (default: warnings)\n"
	       "  --log-file PATH      log to PATH instead of standard error\n"
	       "  --seccomp true|false|log\n"
	       "                       system call filtering (default true)\n"
	       "  --no-reboot          end with exit status 3 when the guest resets,\n"
	       "                         instead of rebooting it\n"
	       "  --hypervisor kvm     the hypervisor backend (default kvm)\n"
	       "  -h, --help           print this text\n"
	       "  -V, --version        print the version\n"
	       "\n"
	       "Options take their value as \"--opt value\" or \"--opt=value\"; booleans are\n"
	       "on, off, true or false.\n"
	       "\n"
	       "Exit status: 0 guest powered off, 2 bad option or configuration,\n"
	       "3 guest reset with --no-reboot, 4 the VM failed.\n";
}
