/* chv-vmm: runs one VM from Cloud-Hypervisor-style flags. The exit status
 * tells what became of the VM (see enum vmm_exit in vm/config.h). */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "virtio/blk_io.h"
#include "vm/config.h"
#include "vm/log.h"
#include "vm/seccomp.h"
#include "vm/sink.h"
#include "vm/vm.h"
#include "vm/worker.h"

static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vm *current_vm;

static void set_current(struct vm *vm)
{
	pthread_mutex_lock(&current_lock);
	current_vm = vm;
	pthread_mutex_unlock(&current_lock);
}

/* Serial input arrives on the sink's thread; it goes to whichever VM
 * instance runs now (a reboot replaces it). */
static void serial_input(void *ctx, const uint8_t *buf, size_t n)
{
	(void)ctx;
	pthread_mutex_lock(&current_lock);
	if (current_vm)
		vm_serial_input(current_vm, buf, n);
	pthread_mutex_unlock(&current_lock);
}

static volatile sig_atomic_t stop_signal;

/* The signal thread's filter install, waited for by main. */
static sem_t signal_filtered;
static struct chv_err signal_err;

/* SIGTERM/SIGINT/SIGHUP are blocked in every thread and taken here. */
static void *signal_thread(void *arg)
{
	sigset_t *set = arg;
	int r = chv_seccomp_thread(SECCOMP_SIGNAL, &signal_err);
	sem_post(&signal_filtered);
	if (r < 0)
		return NULL;
	for (;;) {
		int sig;
		if (sigwait(set, &sig) != 0)
			continue;
		stop_signal = sig;
		char msg[64];
		snprintf(msg, sizeof(msg), "stopped by %s", strsignal(sig));
		log_warn("%s", msg);
		pthread_mutex_lock(&current_lock);
		if (current_vm)
			vm_stop(current_vm, VM_OUT_STOPPED, msg);
		pthread_mutex_unlock(&current_lock);
	}
	return NULL;
}

/* Errors in the user's input (a garbage kernel, an initramfs too large)
 * are configuration errors; the rest are VM failures. */
static int create_error_status(int code)
{
	switch (code) {
	case -EINVAL:
	case -ENOEXEC:
	case -ENOENT:
	case -E2BIG:
	case -EFBIG:
	case -ENOSPC:
	case -EBUSY: /* a --disk image in use by another VM */
		return VMM_EXIT_CONFIG;
	default:
		return VMM_EXIT_FAILED;
	}
}

static int run_vm(const struct vm_config *cfg, struct sink *serial)
{
	for (;;) {
		struct vm *vm = NULL;
		struct chv_err err = {0};
		int r = vm_create(&vm, cfg, serial, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			fprintf(stderr, "chv-vmm: %s\n", err.msg);
			return create_error_status(r);
		}
		set_current(vm);
		if (stop_signal)
			vm_stop(vm, VM_OUT_STOPPED, "stopped by a signal before boot");
		char reason[1536];
		enum vm_outcome out = vm_run(vm, reason, sizeof(reason));
		set_current(NULL);
		vm_destroy(vm);
		switch (out) {
		case VM_OUT_POWEROFF:
			log_info("guest powered off");
			return VMM_EXIT_POWEROFF;
		case VM_OUT_RESET:
			if (cfg->no_reboot) {
				log_info("guest reset; --no-reboot given, exiting");
				return VMM_EXIT_RESET;
			}
			log_info("guest reset; rebooting");
			continue;
		case VM_OUT_STOPPED:
			return VMM_EXIT_STOPPED;
		case VM_OUT_FAILED:
		case VM_OUT_NONE:
			fprintf(stderr, "chv-vmm: VM failed: %s\n", reason);
			return VMM_EXIT_FAILED;
		}
	}
}

/* chv-vmm --worker --control PATH: one VM driven by chvd. */
static int run_worker(int argc, char **argv)
{
	struct worker_opts o;
	struct chv_err err = {0};
	if (worker_parse_args(&o, argc, argv, &err) < 0) {
		fprintf(stderr, "chv-vmm: %s\n", err.msg);
		return VMM_EXIT_CONFIG;
	}
	return worker_main(&o);
}

int main(int argc, char **argv)
{
	struct vm_config cfg;
	struct chv_err err = {0};
	if (worker_requested(argc, argv))
		return run_worker(argc, argv);
	vm_config_init(&cfg);
	int r = vm_config_parse_args(&cfg, argc, argv, &err);
	if (r == CONFIG_PARSED_HELP) {
		fputs(vm_config_usage(), stdout);
		vm_config_free(&cfg);
		return 0;
	}
	if (r == CONFIG_PARSED_VERSION) {
		printf("chv-vmm %s\n", CHV_VERSION);
		vm_config_free(&cfg);
		return 0;
	}
	if (r < 0 || vm_config_validate(&cfg, &err) < 0) {
		fprintf(stderr, "chv-vmm: %s\nTry 'chv-vmm --help'.\n", err.msg);
		vm_config_free(&cfg);
		return VMM_EXIT_CONFIG;
	}
	umask(077);
	r = log_init(cfg.verbosity, cfg.log_file);
	if (r < 0) {
		fprintf(stderr, "chv-vmm: --log-file: cannot open %s: %s\n", cfg.log_file,
			strerror(-r));
		vm_config_free(&cfg);
		return VMM_EXIT_CONFIG;
	}

	static sigset_t stop_set;
	sigemptyset(&stop_set);
	sigaddset(&stop_set, SIGTERM);
	sigaddset(&stop_set, SIGINT);
	sigaddset(&stop_set, SIGHUP);
	sigset_t block = stop_set;
	sigaddset(&block, SIGRTMIN); /* only vCPU threads take the kick signal */
	signal(SIGPIPE, SIG_IGN);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	chv_seccomp_set_mode(cfg.seccomp);
	blk_io_set_thread_start(chv_seccomp_blk_hook, NULL);
	pthread_t sig_thread;
	sem_init(&signal_filtered, 0, 0);
	if (pthread_create(&sig_thread, NULL, signal_thread, &stop_set) == 0) {
		pthread_detach(sig_thread);
		while (sem_wait(&signal_filtered) < 0 && errno == EINTR)
			;
	}
	if (signal_err.code < 0) {
		fprintf(stderr, "chv-vmm: %s\n", signal_err.msg);
		log_close();
		vm_config_free(&cfg);
		return VMM_EXIT_FAILED;
	}

	struct sink *serial = NULL;
	if (cfg.serial.mode != CONSOLE_OFF) {
		serial = sink_open_opt(&cfg.serial, "--serial", &err);
		if (!serial) {
			fprintf(stderr, "chv-vmm: %s\n", err.msg);
			vm_config_free(&cfg);
			return VMM_EXIT_CONFIG;
		}
		sink_set_input(serial, serial_input, NULL);
	}
	/* The main thread builds and runs the VM from here on: its filter is
	 * the union of every thread kind's (vm/seccomp.c). */
	if (chv_seccomp_thread(SECCOMP_CONTROL, &err) < 0) {
		fprintf(stderr, "chv-vmm: VM failed: %s\n", err.msg);
		sink_close(serial);
		log_close();
		vm_config_free(&cfg);
		return VMM_EXIT_FAILED;
	}
	chv_seccomp_test_violation("chv-vmm");
	int status = run_vm(&cfg, serial);
	sink_close(serial);
	log_close();
	vm_config_free(&cfg);
	return status;
}
