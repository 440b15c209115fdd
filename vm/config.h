/* The one validated VM configuration, filled from chv-vmm flags (and later
 * from protobuf). vm_config_validate() checks it completely before anything
 * is allocated; every error names the option or field and the value. */
#ifndef CHV_VM_CONFIG_H
#define CHV_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio/ratelimit.h"
#include "vm/err.h"

#define CONFIG_MAX_VCPUS 255 /* xAPIC ids; x2APIC topologies come later */

enum console_mode {
	CONSOLE_OFF = 0, /* no device */
	CONSOLE_NULL,	 /* device present, output dropped */
	CONSOLE_TTY,	 /* stdout / stdin */
	CONSOLE_FILE,	 /* output appended to path */
	CONSOLE_SOCKET,	 /* a unix socket at path: output to, input from, the client */
};

enum seccomp_mode { SECCOMP_TRUE = 0, SECCOMP_LOG, SECCOMP_FALSE };

struct cpu_topology {
	uint8_t threads_per_core;
	uint8_t cores_per_die;
	uint8_t dies_per_package;
	uint8_t packages;
};

struct console_config {
	enum console_mode mode;
	char *path; /* FILE and SOCKET */
};

/* virtio-rng, always present (as Cloud Hypervisor's). */
struct rng_config {
	char *src; /* NULL: VM_CONFIG_RNG_DEFAULT_SRC */
};
#define VM_CONFIG_RNG_DEFAULT_SRC "/dev/urandom"

/* A virtio-blk disk over a raw image (--disk, repeatable). */
#define CONFIG_MAX_DISKS	       8
#define CONFIG_DISK_SERIAL_MAX	       20 /* virtio-blk GET_ID bytes */
#define CONFIG_DISK_DEFAULT_QUEUES     1
#define CONFIG_DISK_DEFAULT_QUEUE_SIZE 128
#define CONFIG_DISK_MAX_QUEUE_SIZE     32768
struct disk_config {
	char *path;
	bool readonly;
	bool direct; /* O_DIRECT */
	uint16_t num_queues;
	uint32_t queue_size; /* a power of two, 4..32768 */
	char *serial;	     /* NULL: none */
	char *id;	     /* NULL: none */
	struct rl_config rl; /* the disk's own limits (bw_size=...), or none */
	char *rl_group;	     /* rate_limit_group=: a --rate-limit-group id, or NULL */
};

/* A virtio-net device over a tap (--net, repeatable), Cloud Hypervisor's
 * keys. num_queues counts queues, two per queue pair. */
#define CONFIG_MAX_NETS		      8
#define CONFIG_NET_MAX_PAIRS	      16 /* VIRTIO_NET_MAX_PAIRS */
#define CONFIG_NET_DEFAULT_QUEUES     2
#define CONFIG_NET_DEFAULT_QUEUE_SIZE 256
#define CONFIG_NET_MAX_QUEUE_SIZE     32768
#define CONFIG_NET_MIN_MTU	      68
/* A frame of this MTU with its Ethernet and VLAN headers fits the device's
 * 64 KiB frame buffer. */
#define CONFIG_NET_MAX_MTU    65518
#define CONFIG_NET_IFNAME_MAX 15 /* IFNAMSIZ - 1 */
struct net_config {
	char *tap;		       /* NULL: a new tap, named by the kernel */
	int fds[CONFIG_NET_MAX_PAIRS]; /* fd=: open tap queues, one per pair */
	uint16_t nfds;		       /* 0: none (exclusive with tap) */
	uint8_t mac[6];		       /* the guest's; random when not given */
	bool has_host_mac;	       /* host_mac= given */
	uint8_t host_mac[6];	       /* the tap's own address */
	char *ip;		       /* host side IPv4 address, or NULL */
	char *mask;		       /* its netmask, or NULL (needs ip) */
	uint16_t mtu;		       /* 0: not set (tap and device defaults) */
	uint16_t num_queues;	       /* even, 2..2 * CONFIG_NET_MAX_PAIRS */
	uint32_t queue_size;	       /* a power of two, 4..32768 */
	char *id;		       /* NULL: none */
	bool offload_tso, offload_ufo; /* default on; need offload_csum */
	bool offload_csum;	       /* default on */
	struct rl_config rl;	       /* own limits (both directions), or none */
	char *rl_group;		       /* rate_limit_group=, or NULL */
};

/* A rate limiter that devices share (--rate-limit-group, repeatable): every
 * device naming it draws from the same buckets. */
#define CONFIG_MAX_RL_GROUPS 8
struct rl_group_config {
	char *id;
	struct rl_config rl;
};

struct vm_config {
	struct {
		char *kernel;
		char *initramfs;
		char *cmdline;
	} payload;
	struct {
		uint32_t boot;
		uint32_t max;
		bool topology_set;
		struct cpu_topology topology; /* threads*cores*dies*packages == max */
		uint32_t max_phys_bits;
	} cpus;
	struct {
		uint64_t size;
		bool shared;
		bool hugepages;
	} memory;
	struct console_config serial;
	struct console_config console;
	struct rng_config rng;
	struct disk_config disks[CONFIG_MAX_DISKS];
	uint32_t ndisks;
	struct net_config nets[CONFIG_MAX_NETS];
	uint32_t nnets;
	struct rl_group_config rl_groups[CONFIG_MAX_RL_GROUPS];
	uint32_t nrl_groups;
	enum seccomp_mode seccomp;
	int verbosity; /* 0 warn, 1 info, 2 debug, 3 trace */
	char *log_file;
	bool no_reboot;	  /* a guest reset ends chv-vmm (exit 3) instead of rebooting */
	char *hypervisor; /* "kvm" */
};

/* chv-vmm exit status: what became of the VM. */
enum vmm_exit {
	VMM_EXIT_POWEROFF = 0,
	VMM_EXIT_CONFIG = 2,  /* bad option or configuration */
	VMM_EXIT_RESET = 3,   /* guest reset with --no-reboot */
	VMM_EXIT_FAILED = 4,  /* the VM failed (internal error, failed entry, host error) */
	VMM_EXIT_STOPPED = 5, /* stopped by SIGTERM/SIGINT before the guest ended */
};

/* Results of vm_config_parse_args() other than 0 / -errno. */
#define CONFIG_PARSED_HELP    1
#define CONFIG_PARSED_VERSION 2

void vm_config_init(struct vm_config *c); /* Cloud Hypervisor's defaults */
void vm_config_free(struct vm_config *c);
/* Frees one net's strings (vm_config_free() does every net's). */
void vm_config_net_free(struct net_config *n);

/* Parses chv-vmm's flags (argv[0] is the program name). Returns 0,
 * CONFIG_PARSED_HELP / CONFIG_PARSED_VERSION, or -EINVAL with err naming the
 * option and the value. Does not validate cross-field rules. */
chv_must_check int vm_config_parse_args(struct vm_config *c, int argc, char **argv,
					struct chv_err *err);

/* Option values in Cloud Hypervisor's key=value,key=value syntax. */
chv_must_check int vm_config_parse_cpus(struct vm_config *c, const char *v, struct chv_err *err);
chv_must_check int vm_config_parse_memory(struct vm_config *c, const char *v, struct chv_err *err);
chv_must_check int vm_config_parse_console(struct console_config *cc, const char *opt,
					   const char *v, struct chv_err *err);
/* --rng src=PATH. */
chv_must_check int vm_config_parse_rng(struct vm_config *c, const char *v, struct chv_err *err);
/* --disk path=PATH,readonly=on|off,...: appends one disk (at most
 * CONFIG_MAX_DISKS). */
chv_must_check int vm_config_parse_disk(struct vm_config *c, const char *v, struct chv_err *err);
/* --net tap=NAME,mac=MAC,...: appends one device (at most CONFIG_MAX_NETS),
 * with a random locally administered MAC when mac= is absent. */
chv_must_check int vm_config_parse_net(struct vm_config *c, const char *v, struct chv_err *err);
/* --rate-limit-group id=ID,bw_size=N,...: appends one group. */
chv_must_check int vm_config_parse_rl_group(struct vm_config *c, const char *v,
					    struct chv_err *err);
/* rl_config_check() with its message led by opt ("--disk", or a field). */
chv_must_check int vm_config_check_rl(const char *opt, const struct rl_config *rl,
				      struct chv_err *err);
/* The group named id, or NULL. */
const struct rl_group_config *vm_config_find_rl_group(const struct vm_config *c, const char *id);
/* A random locally administered unicast MAC address. */
void vm_config_random_mac(uint8_t mac[6]);
/* "aa:bb:cc:dd:ee:ff" into out (18 bytes). */
void vm_config_format_mac(const uint8_t mac[6], char out[18]);
/* A unicast address other than zero; errors name opt and key ("--net:
 * mac=..."), or opt alone when key is NULL (a field path). */
chv_must_check int vm_config_check_mac(const char *opt, const char *key, const uint8_t mac[6],
				       struct chv_err *err);
/* Whether s can name a network interface (1..15 bytes, no '/', ':', space). */
bool vm_config_ifname_ok(const char *s);
/* A net with the defaults (2 queues of 256, offloads on, no MAC yet). */
void vm_config_net_defaults(struct net_config *n);
/* Whether s is "a.b.c.d" (mask: also a contiguous netmask). */
bool vm_config_ipv4_ok(const char *s, bool mask);
/* "512M", "1G", "4096", "2T": bytes, or -EINVAL. */
chv_must_check int vm_config_parse_size(const char *v, uint64_t *out);

/* Cross-field checks (payload present, boot <= max, topology product == max,
 * memory size bounds, paths given for file/socket modes, the rng source a
 * readable character device or regular file ...). */
chv_must_check int vm_config_validate(const struct vm_config *c, struct chv_err *err);

/* The usage text for --help. */
const char *vm_config_usage(void);

#endif
