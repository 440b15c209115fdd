/* The raw KVM floor: what it costs the kernel alone to create a VM, give it
 * one memory slot and one vCPU, and run that vCPU to its first exit. chv's
 * start-up is compared against this, measured in the same run.
 *   kvm_floor [iterations [memory-MiB]]  -> min / median / max in microseconds
 * The slot is as large as the VM being compared (KVM's slot set-up grows
 * with its size), and the vCPU's first instruction is an OUT. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* One VM from nothing to its first exit; returns microseconds or -1. */
static double one_run(int kvm, int run_size, size_t mem_size)
{
	double t0 = now_us();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return -1;
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	/* out 0x10, al; hlt  (real mode, at 0x1000) */
	memcpy(mem + 0x1000, "\xe6\x10\xf4", 3);
	struct kvm_userspace_memory_region r = {
	    .slot = 0, .memory_size = mem_size, .userspace_addr = (uintptr_t)mem};
	double result = -1;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		goto out;
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		goto out;
	struct kvm_run *run =
	    mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	struct kvm_sregs s;
	ioctl(vcpu, KVM_GET_SREGS, &s);
	s.cs.base = 0;
	s.cs.selector = 0;
	ioctl(vcpu, KVM_SET_SREGS, &s);
	struct kvm_regs g = {.rip = 0x1000, .rflags = 2};
	ioctl(vcpu, KVM_SET_REGS, &g);
	if (ioctl(vcpu, KVM_RUN, 0) == 0 && run->exit_reason == KVM_EXIT_IO && run->io.port == 0x10)
		result = now_us() - t0;
	munmap(run, (size_t)run_size);
	close(vcpu);
out:
	munmap(mem, mem_size);
	close(vm);
	return result;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 20;
	int mib = argc > 2 ? atoi(argv[2]) : 128;
	if (n < 1 || n > 10000) {
		fprintf(stderr, "kvm_floor: iterations must be 1..10000, got %s\n", argv[1]);
		return 2;
	}
	if (mib < 2 || mib > 65536) {
		fprintf(stderr, "kvm_floor: memory must be 2..65536 MiB, got %s\n", argv[2]);
		return 2;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("kvm_floor: /dev/kvm");
		return 1;
	}
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	double *t = calloc((size_t)n, sizeof(*t));
	for (int i = 0; i < n; i++) {
		t[i] = one_run(kvm, run_size, (size_t)mib << 20);
		if (t[i] < 0) {
			fprintf(stderr, "kvm_floor: run %d failed\n", i);
			return 1;
		}
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("kvm_floor_us min %.1f median %.1f max %.1f (n=%d, %d MiB slot)\n", t[0], t[n / 2],
	       t[n - 1], n, mib);
	free(t);
	close(kvm);
	return 0;
}
