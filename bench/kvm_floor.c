/* The raw KVM floor: what it costs the kernel alone to create a VM, give it
 * one memory slot and one vCPU, and run that vCPU to its first exit. chv's
 * start-up is compared against this, measured in the same run.
 *   kvm_floor [iterations [memory-MiB [guest-ELF]]]
 *     -> min / median / max in microseconds
 * The slot is as large as the VM being compared (KVM's slot set-up grows
 * with its size), and the vCPU's first instruction is an OUT.
 * With a guest ELF (the test guest), the same but the vCPU runs that guest
 * from its 32-bit entry until its first write of 0x40 to the debug port
 * 0x80, as chv's "first guest instruction" does: the floor of this guest's
 * start, with nothing of a VMM in it (no ACPI, no boot information, other
 * port exits answered with nothing). */
#include <elf.h>
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

/* A guest ELF image, read once: its PT_LOAD segments are copied into each
 * VM's memory (inside the timed part, as a VMM's loader would). */
struct image {
	uint8_t *file;
	size_t size;
	uint32_t entry;
};

static int image_load(const char *path, struct image *im)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return -1;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	im->file = n > (long)sizeof(Elf64_Ehdr) ? malloc((size_t)n) : NULL;
	int ok = im->file && fread(im->file, 1, (size_t)n, f) == (size_t)n;
	fclose(f);
	if (!ok)
		return -1;
	im->size = (size_t)n;
	const Elf64_Ehdr *eh = (const void *)im->file;
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > im->size)
		return -1;
	im->entry = (uint32_t)eh->e_entry;
	return 0;
}

static int image_copy(const struct image *im, uint8_t *mem, size_t mem_size)
{
	const Elf64_Ehdr *eh = (const void *)im->file;
	const Elf64_Phdr *ph = (const void *)(im->file + eh->e_phoff);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		if (ph[i].p_offset + ph[i].p_filesz > im->size || ph[i].p_filesz > ph[i].p_memsz ||
		    ph[i].p_paddr + ph[i].p_memsz > mem_size)
			return -1;
		memcpy(mem + ph[i].p_paddr, im->file + ph[i].p_offset, ph[i].p_filesz);
	}
	return 0;
}

/* 32-bit protected mode, flat, paging off: the PVH entry state. The CPUID
 * the host supports, or the guest's EFER.LME write faults. */
static int vcpu_pvh(int kvm, int vcpu, uint32_t entry)
{
	struct {
		struct kvm_cpuid2 c;
		struct kvm_cpuid_entry2 e[256];
	} cpuid = {.c.nent = 256};
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0 ||
	    ioctl(vcpu, KVM_SET_CPUID2, &cpuid) < 0)
		return -1;
	struct kvm_sregs s;
	if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
		return -1;
	struct kvm_segment code = {.base = 0,
				   .limit = 0xffffffff,
				   .selector = 0x8,
				   .type = 11,
				   .present = 1,
				   .s = 1,
				   .db = 1,
				   .g = 1};
	struct kvm_segment data = code;
	data.type = 3;
	data.selector = 0x10;
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 = 0x11; /* PE, ET */
	s.cr4 = 0;
	s.efer = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
		return -1;
	/* ebx at a zeroed page: not the PVH magic, so no boot information. */
	struct kvm_regs g = {.rip = entry, .rflags = 2, .rbx = 0x7000};
	return ioctl(vcpu, KVM_SET_REGS, &g);
}

/* Runs until the guest writes 0x40 to port 0x80; port reads get 0xff. */
static int run_to_entry(int vcpu, struct kvm_run *run)
{
	for (int exits = 0; exits < 10000; exits++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO)
			return -1;
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		if (run->io.direction == KVM_EXIT_IO_IN)
			memset(data, 0xff, (size_t)run->io.size * run->io.count);
		else if (run->io.port == 0x80 && data[0] == 0x40)
			return 0;
	}
	return -1;
}

/* One VM from nothing to its first exit (or, with a guest, to its first
 * debug-port write); returns microseconds or -1. */
static double one_run(int kvm, int run_size, size_t mem_size, const struct image *im)
{
	double t0 = now_us();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		return -1;
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	double result = -1;
	if (mem == MAP_FAILED) {
		close(vm);
		return -1;
	}
	if (im) {
		if (image_copy(im, mem, mem_size) < 0)
			goto out;
	} else {
		/* out 0x10, al; hlt  (real mode, at 0x1000) */
		memcpy(mem + 0x1000, "\xe6\x10\xf4", 3);
	}
	struct kvm_userspace_memory_region r = {
	    .slot = 0, .memory_size = mem_size, .userspace_addr = (uintptr_t)mem};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		goto out;
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		goto out;
	struct kvm_run *run =
	    mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		close(vcpu);
		goto out;
	}
	if (im) {
		if (vcpu_pvh(kvm, vcpu, im->entry) == 0 && run_to_entry(vcpu, run) == 0)
			result = now_us() - t0;
	} else {
		struct kvm_sregs s;
		ioctl(vcpu, KVM_GET_SREGS, &s);
		s.cs.base = 0;
		s.cs.selector = 0;
		ioctl(vcpu, KVM_SET_SREGS, &s);
		struct kvm_regs g = {.rip = 0x1000, .rflags = 2};
		ioctl(vcpu, KVM_SET_REGS, &g);
		if (ioctl(vcpu, KVM_RUN, 0) == 0 && run->exit_reason == KVM_EXIT_IO &&
		    run->io.port == 0x10)
			result = now_us() - t0;
	}
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
	struct image im = {0};
	const char *guest = argc > 3 ? argv[3] : NULL;
	if (guest && image_load(guest, &im) < 0) {
		fprintf(stderr, "kvm_floor: %s: cannot read it as a 64-bit ELF image\n", guest);
		return 1;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("kvm_floor: /dev/kvm");
		return 1;
	}
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	double *t = calloc((size_t)n, sizeof(*t));
	for (int i = 0; i < n; i++) {
		t[i] = one_run(kvm, run_size, (size_t)mib << 20, guest ? &im : NULL);
		if (t[i] < 0) {
			fprintf(stderr, "kvm_floor: run %d failed\n", i);
			return 1;
		}
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_double);
	printf("%s min %.1f median %.1f max %.1f (n=%d, %d MiB slot)\n",
	       guest ? "kvm_guest_floor_us" : "kvm_floor_us", t[0], t[n / 2], t[n - 1], n, mib);
	free(t);
	free(im.file);
	close(kvm);
	return 0;
}
