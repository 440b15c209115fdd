/* The one validated VM configuration, filled from chv-vmm flags (and later
 * from protobuf). vm_config_validate() checks it completely before anything
 * is allocated; every error names the option or field and the value. */
#ifndef CHV_VM_CONFIG_H
#define CHV_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

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
/* "512M", "1G", "4096", "2T": bytes, or -EINVAL. */
chv_must_check int vm_config_parse_size(const char *v, uint64_t *out);

/* Cross-field checks (payload present, boot <= max, topology product == max,
 * memory size bounds, paths given for file/socket modes, the rng source a
 * readable character device or regular file ...). */
chv_must_check int vm_config_validate(const struct vm_config *c, struct chv_err *err);

/* The usage text for --help. */
const char *vm_config_usage(void);

#endif
