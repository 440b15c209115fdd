#include "daemon/sandbox.h"

#include <errno.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vm/seccomp.h"

/* Calls chvd has no use for. ptrace and process_vm_* stay allowed in
 * sanitized builds: LeakSanitizer stops the world with them at exit. */
static const char *const denied[] = {
#if !defined(__SANITIZE_ADDRESS__)
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
#endif
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "acct",
    "quotactl",
    "syslog",
    "ioperm",
    "iopl",
    "open_by_handle_at",
    "name_to_handle_at",
    "sethostname",
    "setdomainname",
    "fanotify_init",
    "kcmp",
    "lookup_dcookie",
    "vhangup",
    "uselib",
    "migrate_pages",
    "move_pages",
    /* Not io_uring_setup: the workers inherit this filter and their disks
     * use io_uring. */
};

int chvd_sandbox(enum seccomp_mode mode, struct chv_err *err)
{
	if (mode == SECCOMP_FALSE)
		return 0;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return chv_err_set(err, -ENOMEM, "--seccomp: out of memory");
	uint32_t action = mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_ERRNO(EPERM);
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; r == 0 && i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture or libseccomp */
		r = seccomp_rule_add(ctx, action, nr, 0);
		if (r < 0)
			chv_err_set(err, r, "--seccomp: cannot deny %s: %s", denied[i],
				    strerror(-r));
	}
	if (r == 0 && (r = seccomp_load(ctx)) < 0)
		chv_err_set(err, r, "--seccomp: cannot install chvd's filter: %s", strerror(-r));
	seccomp_release(ctx);
	return r;
}

int chvd_sandbox_probe(void)
{
	const char *v = getenv(CHV_SECCOMP_TEST_ENV);
	if (!v || strcmp(v, "chvd") != 0)
		return -ENOSYS;
	return acct(NULL) < 0 ? -errno : 0;
}
