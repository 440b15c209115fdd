/* vm_config_from_proto / vm_config_to_proto: defaults for zero values, round
 * trips, and every error naming the field path and the value. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vm/config_proto.h"

/* A VmConfig built on the stack, every sub-message present and zeroed. */
struct pcfg {
	Chv__V1__VmConfig vm;
	Chv__V1__PayloadConfig payload;
	Chv__V1__CpusConfig cpus;
	Chv__V1__CpuTopology topo;
	Chv__V1__MemoryConfig memory;
	Chv__V1__ConsoleConfig serial, console;
	Chv__V1__RngConfig rng;
	Chv__V1__VsockConfig vsock;
	Chv__V1__BalloonConfig balloon;
	Chv__V1__PlatformConfig platform;
};

static void pcfg_init(struct pcfg *p)
{
	chv__v1__vm_config__init(&p->vm);
	chv__v1__payload_config__init(&p->payload);
	chv__v1__cpus_config__init(&p->cpus);
	chv__v1__cpu_topology__init(&p->topo);
	chv__v1__memory_config__init(&p->memory);
	chv__v1__console_config__init(&p->serial);
	chv__v1__console_config__init(&p->console);
	chv__v1__rng_config__init(&p->rng);
	chv__v1__vsock_config__init(&p->vsock);
	chv__v1__balloon_config__init(&p->balloon);
	chv__v1__platform_config__init(&p->platform);
	p->vm.payload = &p->payload;
	p->vm.cpus = &p->cpus;
	p->vm.memory = &p->memory;
	p->vm.serial = &p->serial;
	p->vm.console = &p->console;
	p->payload.kernel = "/boot/vmlinux";
}

/* Converts and expects an error whose message is exactly want. */
static void expect_error(const Chv__V1__VmConfig *p, const char *want)
{
	struct vm_config c;
	struct chv_err err = {0};
	vm_config_init(&c);
	int r = vm_config_from_proto(&c, p, &err);
	vm_config_free(&c);
	assert_int_equal(r, -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	assert_string_equal(err.msg, want);
}

static void convert_ok(const Chv__V1__VmConfig *p, struct vm_config *c)
{
	struct chv_err err = {0};
	vm_config_init(c);
	int r = vm_config_from_proto(c, p, &err);
	if (r)
		fail_msg("unexpected error: %s", err.msg);
}

static void test_defaults_minimal(void **state)
{
	(void)state;
	/* Only the payload: every other sub-message absent. */
	Chv__V1__PayloadConfig pl = CHV__V1__PAYLOAD_CONFIG__INIT;
	pl.kernel = "/k";
	Chv__V1__VmConfig p = CHV__V1__VM_CONFIG__INIT;
	p.payload = &pl;
	struct vm_config c;
	convert_ok(&p, &c);
	assert_string_equal(c.payload.kernel, "/k");
	assert_null(c.payload.initramfs);
	assert_null(c.payload.cmdline);
	assert_int_equal(c.cpus.boot, 1);
	assert_int_equal(c.cpus.max, 1);
	assert_int_equal(c.cpus.max_phys_bits, 46);
	assert_false(c.cpus.topology_set);
	assert_int_equal(c.cpus.topology.threads_per_core, 1);
	assert_int_equal(c.cpus.topology.cores_per_die, 1);
	assert_int_equal(c.memory.size, 512ULL << 20);
	assert_false(c.memory.shared);
	assert_false(c.memory.hugepages);
	assert_int_equal(c.serial.mode, CONSOLE_NULL);
	assert_null(c.serial.path);
	assert_int_equal(c.console.mode, CONSOLE_OFF);
	assert_null(c.rng.src); /* /dev/urandom */
	assert_string_equal(c.hypervisor, "kvm");
	vm_config_free(&c);
}

static void test_defaults_zero_messages(void **state)
{
	(void)state;
	struct pcfg p;
	pcfg_init(&p);
	p.vm.rng = &p.rng; /* present and empty: fine */
	p.vm.vsock = &p.vsock;
	p.vm.balloon = &p.balloon;
	p.vm.platform = &p.platform;
	p.platform.num_pci_segments = 1;
	p.cpus.topology = &p.topo; /* all zero: as if unset */
	p.cpus.boot_vcpus = 3;
	struct vm_config c;
	convert_ok(&p.vm, &c);
	assert_int_equal(c.cpus.boot, 3);
	assert_int_equal(c.cpus.max, 3); /* max 0: boot */
	assert_false(c.cpus.topology_set);
	assert_int_equal(c.cpus.topology.cores_per_die, 3);
	assert_int_equal(c.cpus.topology.packages, 1);
	assert_int_equal(c.serial.mode, CONSOLE_NULL); /* UNSPECIFIED */
	assert_int_equal(c.console.mode, CONSOLE_OFF);
	assert_null(c.payload.cmdline); /* "" */
	assert_null(c.rng.src);		/* "": the default */
	vm_config_free(&c);
}

static void test_full_values(void **state)
{
	(void)state;
	struct pcfg p;
	pcfg_init(&p);
	p.payload.initramfs = "/i";
	p.payload.cmdline = "console=ttyS0";
	p.cpus.boot_vcpus = 2;
	p.cpus.max_vcpus = 4;
	p.cpus.topology = &p.topo;
	p.topo = (Chv__V1__CpuTopology)CHV__V1__CPU_TOPOLOGY__INIT;
	p.topo.threads_per_core = 2;
	p.topo.cores_per_die = 1;
	p.topo.dies_per_package = 1;
	p.topo.packages = 2;
	p.cpus.max_phys_bits = 40;
	p.memory.size = 64ULL << 20;
	p.memory.shared = 1;
	p.memory.hugepages = 1;
	p.serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE;
	p.serial.path = "/tmp/serial.log";
	p.console.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF;
	struct vm_config c;
	convert_ok(&p.vm, &c);
	assert_string_equal(c.payload.initramfs, "/i");
	assert_string_equal(c.payload.cmdline, "console=ttyS0");
	assert_int_equal(c.cpus.boot, 2);
	assert_int_equal(c.cpus.max, 4);
	assert_true(c.cpus.topology_set);
	assert_int_equal(c.cpus.topology.threads_per_core, 2);
	assert_int_equal(c.cpus.topology.packages, 2);
	assert_int_equal(c.cpus.max_phys_bits, 40);
	assert_int_equal(c.memory.size, 64ULL << 20);
	assert_true(c.memory.shared);
	assert_true(c.memory.hugepages);
	assert_int_equal(c.serial.mode, CONSOLE_FILE);
	assert_string_equal(c.serial.path, "/tmp/serial.log");
	vm_config_free(&c);
}

static void test_console_modes(void **state)
{
	(void)state;
	static const struct {
		Chv__V1__ConsoleMode m;
		const char *path;
		enum console_mode want;
	} cases[] = {
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_UNSPECIFIED, "", CONSOLE_NULL},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF, "", CONSOLE_OFF},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_NULL, "", CONSOLE_NULL},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY, "", CONSOLE_TTY},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE, "/f", CONSOLE_FILE},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET, "/s.sock", CONSOLE_SOCKET},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pcfg p;
		pcfg_init(&p);
		p.serial.mode = cases[i].m;
		p.serial.path = (char *)cases[i].path;
		struct vm_config c;
		convert_ok(&p.vm, &c);
		assert_int_equal(c.serial.mode, cases[i].want);
		if (*cases[i].path)
			assert_string_equal(c.serial.path, cases[i].path);
		else
			assert_null(c.serial.path);
		vm_config_free(&c);
	}
	/* The console: UNSPECIFIED and OFF are both off. */
	struct pcfg p;
	pcfg_init(&p);
	p.console.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_UNSPECIFIED;
	struct vm_config c;
	convert_ok(&p.vm, &c);
	assert_int_equal(c.console.mode, CONSOLE_OFF);
	vm_config_free(&c);

	/* Every mode but TTY reaches the console device. */
	static const struct {
		Chv__V1__ConsoleMode m;
		const char *path;
		enum console_mode want;
	} con[] = {
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF, "", CONSOLE_OFF},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_NULL, "", CONSOLE_NULL},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE, "/c.log", CONSOLE_FILE},
	    {CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET, "/c.sock", CONSOLE_SOCKET},
	};
	for (size_t i = 0; i < sizeof(con) / sizeof(con[0]); i++) {
		pcfg_init(&p);
		p.console.mode = con[i].m;
		p.console.path = (char *)con[i].path;
		convert_ok(&p.vm, &c);
		assert_int_equal(c.console.mode, con[i].want);
		if (*con[i].path)
			assert_string_equal(c.console.path, con[i].path);
		else
			assert_null(c.console.path);
		vm_config_free(&c);
	}
}

/* struct -> proto -> packed bytes -> unpacked -> struct: nothing lost. */
static void str_equal(const char *a, const char *b)
{
	if (b)
		assert_string_equal(a, b);
	else
		assert_null(a);
}

static void net_equal(const struct net_config *b, const struct net_config *a)
{
	str_equal(b->tap, a->tap);
	str_equal(b->ip, a->ip);
	str_equal(b->mask, a->mask);
	str_equal(b->id, a->id);
	str_equal(b->rl_group, a->rl_group);
	assert_memory_equal(b->mac, a->mac, 6);
	assert_int_equal(b->has_host_mac, a->has_host_mac);
	if (a->has_host_mac)
		assert_memory_equal(b->host_mac, a->host_mac, 6);
	assert_int_equal(b->mtu, a->mtu);
	assert_int_equal(b->num_queues, a->num_queues);
	assert_int_equal(b->queue_size, a->queue_size);
	assert_int_equal(b->offload_tso, a->offload_tso);
	assert_int_equal(b->offload_ufo, a->offload_ufo);
	assert_int_equal(b->offload_csum, a->offload_csum);
	assert_memory_equal(&b->rl, &a->rl, sizeof(a->rl));
}

static void roundtrip(const struct vm_config *in)
{
	Chv__V1__VmConfig *p = NULL;
	assert_int_equal(vm_config_to_proto(in, &p), 0);
	assert_non_null(p);
	size_t len = chv__v1__vm_config__get_packed_size(p);
	uint8_t *buf = malloc(len ? len : 1);
	assert_non_null(buf);
	assert_int_equal(chv__v1__vm_config__pack(p, buf), len);
	vm_config_proto_free(p);
	Chv__V1__VmConfig *q = chv__v1__vm_config__unpack(NULL, len, buf);
	free(buf);
	assert_non_null(q);
	struct vm_config out;
	convert_ok(q, &out);
	chv__v1__vm_config__free_unpacked(q, NULL);

	assert_string_equal(out.payload.kernel, in->payload.kernel);
	if (in->payload.initramfs)
		assert_string_equal(out.payload.initramfs, in->payload.initramfs);
	else
		assert_null(out.payload.initramfs);
	if (in->payload.cmdline && *in->payload.cmdline)
		assert_string_equal(out.payload.cmdline, in->payload.cmdline);
	else
		assert_null(out.payload.cmdline);
	assert_int_equal(out.cpus.boot, in->cpus.boot);
	assert_int_equal(out.cpus.max, in->cpus.max);
	assert_int_equal(out.cpus.max_phys_bits, in->cpus.max_phys_bits);
	assert_int_equal(out.cpus.topology_set, in->cpus.topology_set);
	assert_memory_equal(&out.cpus.topology, &in->cpus.topology, sizeof(in->cpus.topology));
	assert_int_equal(out.memory.size, in->memory.size);
	assert_int_equal(out.memory.shared, in->memory.shared);
	assert_int_equal(out.memory.hugepages, in->memory.hugepages);
	assert_int_equal(out.serial.mode, in->serial.mode);
	if (in->serial.path)
		assert_string_equal(out.serial.path, in->serial.path);
	else
		assert_null(out.serial.path);
	assert_int_equal(out.console.mode, in->console.mode);
	if (in->rng.src)
		assert_string_equal(out.rng.src, in->rng.src);
	else
		assert_null(out.rng.src);
	assert_int_equal(out.ndisks, in->ndisks);
	for (uint32_t i = 0; i < in->ndisks; i++) {
		const struct disk_config *a = &in->disks[i], *b = &out.disks[i];
		assert_string_equal(b->path, a->path);
		assert_int_equal(b->readonly, a->readonly);
		assert_int_equal(b->direct, a->direct);
		assert_int_equal(b->num_queues, a->num_queues);
		assert_int_equal(b->queue_size, a->queue_size);
		if (a->serial)
			assert_string_equal(b->serial, a->serial);
		else
			assert_null(b->serial);
		if (a->id)
			assert_string_equal(b->id, a->id);
		else
			assert_null(b->id);
		assert_memory_equal(&b->rl, &a->rl, sizeof(a->rl));
		if (a->rl_group)
			assert_string_equal(b->rl_group, a->rl_group);
		else
			assert_null(b->rl_group);
	}
	assert_int_equal(out.nnets, in->nnets);
	for (uint32_t i = 0; i < in->nnets; i++)
		net_equal(&out.nets[i], &in->nets[i]);
	assert_int_equal(out.nrl_groups, in->nrl_groups);
	for (uint32_t i = 0; i < in->nrl_groups; i++) {
		assert_string_equal(out.rl_groups[i].id, in->rl_groups[i].id);
		assert_memory_equal(&out.rl_groups[i].rl, &in->rl_groups[i].rl,
				    sizeof(in->rl_groups[i].rl));
	}
	vm_config_free(&out);
}

static void test_roundtrip_defaults(void **state)
{
	(void)state;
	struct vm_config c;
	vm_config_init(&c);
	c.payload.kernel = strdup("/vmlinux");
	roundtrip(&c);
	vm_config_free(&c);
}

static void test_roundtrip_flags(void **state)
{
	(void)state;
	/* A configuration as chv-vmm's flags make it. */
	char *argv[] = {
	    "chv-vmm",
	    "--kernel",
	    "/k.elf",
	    "--initramfs",
	    "/init.cpio",
	    "--cmdline",
	    "chv.mem=64M chv.cpus=4",
	    "--cpus",
	    "boot=2,max=4,topology=2:2:1:1,max_phys_bits=39",
	    "--memory",
	    "size=64M,shared=on,hugepages=on",
	    "--serial",
	    "socket=/run/s.sock",
	    "--rng",
	    "src=/dev/random",
	    "--disk",
	    "path=/a.img",
	    "--disk",
	    "path=/b.img,readonly=on,direct=on,num_queues=2,queue_size=1024,serial=S1,id=d1,"
	    "rate_limit_group=g1",
	    "--disk",
	    "path=/c.img,ops_size=100,ops_refill_time=1000,ops_one_time_burst=7",
	    "--net",
	    "tap=chv0,mac=52:54:00:00:00:09,ip=10.9.0.1,mask=255.255.0.0,host_mac=02:00:00:"
	    "00:00:02,mtu=9000,num_queues=4,queue_size=512,id=n0,offload_tso=off,bw_size=125000,"
	    "bw_refill_time=100,bw_one_time_burst=4096",
	    "--net",
	    "offload_csum=off,rate_limit_group=g1",
	    "--rate-limit-group",
	    "id=g1,bw_size=1000000,bw_refill_time=1000,ops_size=50,ops_refill_time=20"};
	struct vm_config c;
	struct chv_err err = {0};
	vm_config_init(&c);
	assert_int_equal(
	    vm_config_parse_args(&c, (int)(sizeof(argv) / sizeof(argv[0])), argv, &err), 0);
	roundtrip(&c);
	vm_config_free(&c);

	vm_config_init(&c);
	char *argv2[] = {"chv-vmm", "--kernel", "/k", "--cpus", "boot=3", "--serial", "tty"};
	assert_int_equal(vm_config_parse_args(&c, 7, argv2, &err), 0);
	roundtrip(&c);
	vm_config_free(&c);

	vm_config_init(&c);
	char *argv3[] = {"chv-vmm", "--kernel", "/k", "--serial", "off"};
	assert_int_equal(vm_config_parse_args(&c, 5, argv3, &err), 0);
	roundtrip(&c);
	vm_config_free(&c);
}

static void test_to_proto_shape(void **state)
{
	(void)state;
	struct vm_config c;
	vm_config_init(&c);
	c.payload.kernel = strdup("/k");
	Chv__V1__VmConfig *p = NULL;
	assert_int_equal(vm_config_to_proto(&c, &p), 0);
	assert_string_equal(p->payload->kernel, "/k");
	assert_string_equal(p->payload->initramfs, "");
	assert_null(p->cpus->topology); /* not set: left out */
	assert_int_equal(p->serial->mode, CHV__V1__CONSOLE_MODE__CONSOLE_MODE_NULL);
	assert_int_equal(p->console->mode, CHV__V1__CONSOLE_MODE__CONSOLE_MODE_OFF);
	assert_non_null(p->rng);
	assert_string_equal(p->rng->src, ""); /* the default */
	assert_int_equal(p->n_disks, 0);
	assert_int_equal(p->n_nets, 0);
	assert_int_equal(p->n_rate_limit_groups, 0);
	vm_config_proto_free(p);
	vm_config_proto_free(NULL);
	vm_config_free(&c);
}

/* rng.src is taken as given ("" and an absent message: the default); a
 * source that is not there is refused by validation, naming it. */
static void test_rng(void **state)
{
	(void)state;
	struct pcfg p;
	struct vm_config c;
	pcfg_init(&p);
	p.vm.rng = &p.rng;
	p.rng.src = "/dev/hwrng";
	convert_ok(&p.vm, &c);
	assert_string_equal(c.rng.src, "/dev/hwrng");
	/* A second conversion into the same struct replaces, then clears it. */
	p.rng.src = "/dev/random";
	struct chv_err err = {0};
	assert_int_equal(vm_config_from_proto(&c, &p.vm, &err), 0);
	assert_string_equal(c.rng.src, "/dev/random");
	p.vm.rng = NULL;
	assert_int_equal(vm_config_from_proto(&c, &p.vm, &err), 0);
	assert_null(c.rng.src);
	vm_config_free(&c);

	pcfg_init(&p);
	p.vm.rng = &p.rng;
	p.rng.src = "/nonexistent/chv-rng";
	convert_ok(&p.vm, &c);
	free(c.payload.kernel);
	c.payload.kernel = strdup("/proc/self/exe"); /* a regular file that exists */
	err = (struct chv_err){0};
	assert_int_equal(vm_config_validate(&c, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "--rng: src=/nonexistent/chv-rng"));
	vm_config_free(&c);
}

static void test_error_payload(void **state)
{
	(void)state;
	expect_error(NULL, "config is required");
	Chv__V1__VmConfig empty = CHV__V1__VM_CONFIG__INIT;
	expect_error(&empty, "config.payload.kernel is required");
	struct pcfg p;
	pcfg_init(&p);
	p.payload.kernel = "";
	expect_error(&p.vm, "config.payload.kernel is required");
	pcfg_init(&p);
	p.payload.firmware = "/fw.bin";
	expect_error(&p.vm, "config.payload.firmware: not supported yet");
	pcfg_init(&p);
	char *longline = malloc(0x10000 + 1);
	assert_non_null(longline);
	memset(longline, 'x', 0x10000);
	longline[0x10000] = 0;
	p.payload.cmdline = longline;
	expect_error(&p.vm, "config.payload.cmdline: 65536 bytes is longer than the maximum 65535");
	longline[0xffff] = 0; /* 65535 bytes fit */
	struct vm_config c;
	convert_ok(&p.vm, &c);
	vm_config_free(&c);
	free(longline);
}

static void test_error_cpus(void **state)
{
	(void)state;
	struct pcfg p;
	pcfg_init(&p);
	p.cpus.boot_vcpus = 300;
	expect_error(&p.vm, "config.cpus.boot_vcpus: 300 is out of range (1..255)");
	pcfg_init(&p);
	p.cpus.max_vcpus = 256;
	expect_error(&p.vm, "config.cpus.max_vcpus: 256 is out of range (1..255)");
	pcfg_init(&p);
	p.cpus.boot_vcpus = 4;
	p.cpus.max_vcpus = 2;
	expect_error(&p.vm, "config.cpus.boot_vcpus: 4 is more than config.cpus.max_vcpus 2");
	pcfg_init(&p);
	p.cpus.max_phys_bits = 35;
	expect_error(&p.vm, "config.cpus.max_phys_bits: 35 is out of range (36..52)");
	pcfg_init(&p);
	p.cpus.max_phys_bits = 53;
	expect_error(&p.vm, "config.cpus.max_phys_bits: 53 is out of range (36..52)");
}

static void test_error_topology(void **state)
{
	(void)state;
	static const struct {
		uint32_t t, c, d, p;
		const char *want;
	} cases[] = {
	    {3, 1, 1, 1, "config.cpus.topology.threads_per_core: 3 is out of range (1..2)"},
	    {0, 1, 1, 1, "config.cpus.topology.threads_per_core: 0 is out of range (1..2)"},
	    {1, 0, 1, 1, "config.cpus.topology.cores_per_die: 0 is out of range (1..255)"},
	    {1, 256, 1, 1, "config.cpus.topology.cores_per_die: 256 is out of range (1..255)"},
	    {1, 1, 2, 1, "config.cpus.topology.dies_per_package: 2 is out of range (1..1)"},
	    {1, 1, 1, 0, "config.cpus.topology.packages: 0 is out of range (1..255)"},
	    {1, 2, 1, 1,
	     "config.cpus.topology: 1:2:1:1 gives 2 vCPUs, but config.cpus.max_vcpus is 1"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pcfg p;
		pcfg_init(&p);
		p.cpus.topology = &p.topo;
		p.topo.threads_per_core = cases[i].t;
		p.topo.cores_per_die = cases[i].c;
		p.topo.dies_per_package = cases[i].d;
		p.topo.packages = cases[i].p;
		expect_error(&p.vm, cases[i].want);
	}
}

static void test_error_memory(void **state)
{
	(void)state;
	struct pcfg p;
	pcfg_init(&p);
	p.memory.size = 1 << 20;
	expect_error(&p.vm, "config.memory.size: 1048576 is below the minimum 2 MiB (the kernel "
			    "loads at 1 MiB)");
	pcfg_init(&p);
	p.memory.size = (64 << 20) + 100;
	expect_error(&p.vm, "config.memory.size: 67108964 is not a multiple of 4 KiB");
	pcfg_init(&p);
	p.memory.size = (64 << 20) + 4096;
	p.memory.hugepages = 1;
	expect_error(&p.vm, "config.memory.size: 67112960 is not a multiple of 2 MiB, as "
			    "config.memory.hugepages needs");
	pcfg_init(&p);
	p.memory.hotplug_size = 1 << 30;
	expect_error(&p.vm, "config.memory.hotplug_size: not supported yet");
}

static void test_error_consoles(void **state)
{
	(void)state;
	struct pcfg p;
	pcfg_init(&p);
	p.serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE;
	expect_error(&p.vm, "config.serial.mode: FILE needs config.serial.path");
	pcfg_init(&p);
	p.serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET;
	expect_error(&p.vm, "config.serial.mode: SOCKET needs config.serial.path");
	pcfg_init(&p);
	p.serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	p.serial.path = "/x";
	expect_error(&p.vm,
		     "config.serial.path: /x is only used with mode FILE or SOCKET, not TTY");
	pcfg_init(&p);
	p.serial.mode = (Chv__V1__ConsoleMode)17;
	expect_error(&p.vm, "config.serial.mode: 17 is not a console mode");
	pcfg_init(&p);
	p.serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET;
	char longpath[200];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	p.serial.path = longpath;
	char want[400];
	snprintf(want, sizeof(want), "config.serial.path: %s is longer than 107 bytes", longpath);
	expect_error(&p.vm, want);

	pcfg_init(&p);
	p.console.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	expect_error(&p.vm, "config.console.mode: TTY is not supported under chvd "
			    "(virtio-console; use NULL, FILE or SOCKET)");
	pcfg_init(&p);
	p.console.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_SOCKET;
	expect_error(&p.vm, "config.console.mode: SOCKET needs config.console.path");
	pcfg_init(&p);
	p.console.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_FILE;
	expect_error(&p.vm, "config.console.mode: FILE needs config.console.path");
}

static void test_error_unsupported(void **state)
{
	(void)state;
	Chv__V1__FsConfig fs = CHV__V1__FS_CONFIG__INIT;
	Chv__V1__FsConfig *fss[] = {&fs};
	Chv__V1__PmemConfig pm = CHV__V1__PMEM_CONFIG__INIT;
	Chv__V1__PmemConfig *pms[] = {&pm};
	Chv__V1__DeviceConfig dev = CHV__V1__DEVICE_CONFIG__INIT;
	Chv__V1__DeviceConfig *devs[] = {&dev};
	char *oem[] = {"x"};
	struct pcfg p;

	pcfg_init(&p);
	p.vm.n_fs = 1;
	p.vm.fs = fss;
	expect_error(&p.vm, "config.fs: not supported yet");
	pcfg_init(&p);
	p.vm.n_pmem = 1;
	p.vm.pmem = pms;
	expect_error(&p.vm, "config.pmem: not supported yet");
	pcfg_init(&p);
	p.vm.n_devices = 1;
	p.vm.devices = devs;
	expect_error(&p.vm, "config.devices: not supported yet");
	pcfg_init(&p);
	p.vm.vsock = &p.vsock;
	p.vsock.cid = 3;
	expect_error(&p.vm, "config.vsock: not supported yet");
	pcfg_init(&p);
	p.vm.balloon = &p.balloon;
	p.balloon.size = 1 << 20;
	expect_error(&p.vm, "config.balloon: not supported yet");
	pcfg_init(&p);
	p.vm.platform = &p.platform;
	p.platform.num_pci_segments = 2;
	expect_error(&p.vm, "config.platform.num_pci_segments: 2 is not supported yet (1)");
	pcfg_init(&p);
	p.vm.platform = &p.platform;
	p.platform.uuid = "1234";
	expect_error(&p.vm, "config.platform.uuid: not supported yet");
	pcfg_init(&p);
	p.vm.platform = &p.platform;
	p.platform.serial_number = "abc";
	expect_error(&p.vm, "config.platform.serial_number: not supported yet");
	pcfg_init(&p);
	p.vm.platform = &p.platform;
	p.platform.n_oem_strings = 1;
	p.platform.oem_strings = oem;
	expect_error(&p.vm, "config.platform.oem_strings: not supported yet");
}

/* A packet off the wire that is not a VmConfig never reaches the converter:
 * protobuf-c refuses it; one that is, but with garbage values, is refused by
 * the converter with a field name. */
static void test_from_wire(void **state)
{
	(void)state;
	static const uint8_t garbage[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01};
	assert_null(chv__v1__vm_config__unpack(NULL, sizeof(garbage), garbage));

	struct pcfg p;
	pcfg_init(&p);
	p.cpus.boot_vcpus = 1000;
	size_t len = chv__v1__vm_config__get_packed_size(&p.vm);
	uint8_t buf[256];
	assert_true(len <= sizeof(buf));
	chv__v1__vm_config__pack(&p.vm, buf);
	Chv__V1__VmConfig *q = chv__v1__vm_config__unpack(NULL, len, buf);
	assert_non_null(q);
	expect_error(q, "config.cpus.boot_vcpus: 1000 is out of range (1..255)");
	chv__v1__vm_config__free_unpacked(q, NULL);
}

/* A converted configuration passes the same cross-field checks as flags. */
static void test_validates(void **state)
{
	(void)state;
	struct pcfg p;
	pcfg_init(&p);
	p.payload.kernel = "/proc/self/exe"; /* a regular file that exists */
	p.memory.size = 64 << 20;
	p.serial.mode = CHV__V1__CONSOLE_MODE__CONSOLE_MODE_TTY;
	struct vm_config c;
	convert_ok(&p.vm, &c);
	struct chv_err err = {0};
	int r = vm_config_validate(&c, &err);
	if (r)
		fail_msg("validate: %s", err.msg);
	vm_config_free(&c);
}

/* config.disks: defaults for zeros, values as given, errors naming
 * config.disks[i] and the value. */
static void test_disks(void **state)
{
	(void)state;
	struct pcfg p;
	Chv__V1__DiskConfig d0 = CHV__V1__DISK_CONFIG__INIT, d1 = CHV__V1__DISK_CONFIG__INIT;
	Chv__V1__DiskConfig *disks[CONFIG_MAX_DISKS + 1];
	struct vm_config c;

	pcfg_init(&p);
	d0.path = "/img0";
	d1.path = "/img1";
	d1.readonly = true;
	d1.direct = true;
	d1.num_queues = 4;
	d1.queue_size = 32768;
	d1.serial = "12345678901234567890";
	d1.id = "disk1";
	disks[0] = &d0;
	disks[1] = &d1;
	p.vm.disks = disks;
	p.vm.n_disks = 2;
	convert_ok(&p.vm, &c);
	assert_int_equal(c.ndisks, 2);
	assert_string_equal(c.disks[0].path, "/img0");
	assert_false(c.disks[0].readonly);
	assert_int_equal(c.disks[0].num_queues, 1);
	assert_int_equal(c.disks[0].queue_size, 128);
	assert_null(c.disks[0].serial);
	assert_null(c.disks[0].id);
	assert_true(c.disks[1].readonly);
	assert_true(c.disks[1].direct);
	assert_int_equal(c.disks[1].num_queues, 4);
	assert_int_equal(c.disks[1].queue_size, 32768);
	assert_string_equal(c.disks[1].serial, "12345678901234567890");
	assert_string_equal(c.disks[1].id, "disk1");
	/* A second conversion into the same struct replaces the disks. */
	p.vm.n_disks = 1;
	struct chv_err err = {0};
	assert_int_equal(vm_config_from_proto(&c, &p.vm, &err), 0);
	assert_int_equal(c.ndisks, 1);
	vm_config_free(&c);

	p.vm.n_disks = 2;
	d1.path = "";
	expect_error(&p.vm, "config.disks[1].path is required");
	disks[1] = NULL;
	expect_error(&p.vm, "config.disks[1].path is required");
	disks[1] = &d1;
	d1.path = "/img1";
	d1.queue_size = 100;
	expect_error(&p.vm, "config.disks[1].queue_size: 100 is not a power of two in 4..32768");
	d1.queue_size = 2;
	expect_error(&p.vm, "config.disks[1].queue_size: 2 is not a power of two in 4..32768");
	d1.queue_size = 65536;
	expect_error(&p.vm, "config.disks[1].queue_size: 65536 is not a power of two in 4..32768");
	d1.queue_size = 0;
	d1.num_queues = 256;
	expect_error(&p.vm, "config.disks[1].num_queues: 256 is out of range (1..255)");
	d1.num_queues = 0;
	d1.serial = "123456789012345678901";
	expect_error(&p.vm,
		     "config.disks[1].serial: \"123456789012345678901\" is longer than 20 bytes");
	d1.serial = "";
	/* Rate limits: the disk's own, or a group's (not both). */
	Chv__V1__RateLimiterConfig rl = CHV__V1__RATE_LIMITER_CONFIG__INIT;
	d1.rate_limiter = &rl; /* all zero: none */
	convert_ok(&p.vm, &c);
	assert_false(rl_config_active(&c.disks[1].rl));
	vm_config_free(&c);
	rl.bw_size = 4096;
	expect_error(&p.vm, "config.disks[1].rate_limiter: bw_refill_time=0: a bucket with "
			    "bw_size=4096 needs a refill time > 0 ms");
	rl.bw_refill_time_ms = 10;
	convert_ok(&p.vm, &c);
	assert_int_equal(c.disks[1].rl.bw.size, 4096);
	assert_int_equal(c.disks[1].rl.bw.refill_ms, 10);
	roundtrip(&c);
	vm_config_free(&c);
	d1.rate_limit_group = "g";
	expect_error(&p.vm, "config.disks[1].rate_limit_group: \"g\" and "
			    "config.disks[1].rate_limiter are exclusive (a device has its own "
			    "limits or a group's)");
	d1.rate_limiter = NULL;
	expect_error(&p.vm, "config.disks[1].rate_limit_group: \"g\" is not in "
			    "config.rate_limit_groups");
	d1.rate_limit_group = "";
	for (int i = 0; i <= CONFIG_MAX_DISKS; i++)
		disks[i] = &d0;
	p.vm.n_disks = CONFIG_MAX_DISKS + 1;
	expect_error(&p.vm, "config.disks: 9 disks, more than 8");
	p.vm.n_disks = CONFIG_MAX_DISKS;
	convert_ok(&p.vm, &c);
	assert_int_equal(c.ndisks, CONFIG_MAX_DISKS);
	roundtrip(&c);
	vm_config_free(&c);

	/* num_queues against the vCPUs is the validator's, naming --disk. */
	p.vm.n_disks = 1;
	d0.num_queues = 2;
	d0.path = "/nonexistent/img";
	convert_ok(&p.vm, &c);
	assert_int_not_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);
}

/* config.nets: defaults for zeros, a random MAC that the stored config
 * keeps, values as given, and errors naming config.nets[i] and the value. */
static void test_nets(void **state)
{
	(void)state;
	struct pcfg p;
	struct vm_config c;
	struct chv_err err = {0};
	pcfg_init(&p);
	Chv__V1__NetConfig n0 = CHV__V1__NET_CONFIG__INIT, n1 = CHV__V1__NET_CONFIG__INIT;
	Chv__V1__NetConfig *nets[CONFIG_MAX_NETS + 1] = {&n0, &n1};
	Chv__V1__RateLimiterConfig rl = CHV__V1__RATE_LIMITER_CONFIG__INIT;
	Chv__V1__RateLimitGroupConfig g = CHV__V1__RATE_LIMIT_GROUP_CONFIG__INIT;
	Chv__V1__RateLimiterConfig grl = CHV__V1__RATE_LIMITER_CONFIG__INIT;
	Chv__V1__RateLimitGroupConfig *groups[CONFIG_MAX_RL_GROUPS + 1] = {&g};
	n1.tap = "tap7";
	n1.mac = "52:54:00:AA:bb:01";
	n1.host_mac = "02:00:00:00:00:01";
	n1.ip = "172.16.0.1";
	n1.mask = "255.240.0.0";
	n1.mtu = 1400;
	n1.num_queues = 8;
	n1.queue_size = 64;
	n1.id = "eth1";
	n1.offload_csum = n1.offload_tso = true;
	n1.rate_limit_group = "grp";
	g.id = "grp";
	g.config = &grl;
	grl.ops_size = 1000;
	grl.ops_refill_time_ms = 100;
	p.vm.nets = nets;
	p.vm.n_nets = 2;
	p.vm.rate_limit_groups = groups;
	p.vm.n_rate_limit_groups = 1;
	convert_ok(&p.vm, &c);
	assert_int_equal(c.nnets, 2);
	const struct net_config *a = &c.nets[0], *b = &c.nets[1];
	assert_null(a->tap);
	assert_int_equal(a->num_queues, 2);
	assert_int_equal(a->queue_size, 256);
	assert_int_equal(a->mtu, 0);
	assert_int_equal(a->mac[0] & 3, 2); /* random, local, unicast */
	assert_false(a->has_host_mac);
	assert_false(a->offload_csum); /* proto3 false: off */
	assert_false(a->offload_tso);
	assert_null(a->rl_group);
	assert_string_equal(b->tap, "tap7");
	assert_memory_equal(b->mac, ((uint8_t[]){0x52, 0x54, 0, 0xaa, 0xbb, 1}), 6);
	assert_true(b->has_host_mac);
	assert_string_equal(b->ip, "172.16.0.1");
	assert_string_equal(b->mask, "255.240.0.0");
	assert_int_equal(b->mtu, 1400);
	assert_int_equal(b->num_queues, 8);
	assert_int_equal(b->queue_size, 64);
	assert_string_equal(b->id, "eth1");
	assert_true(b->offload_csum);
	assert_true(b->offload_tso);
	assert_false(b->offload_ufo);
	assert_string_equal(b->rl_group, "grp");
	assert_int_equal(c.nrl_groups, 1);
	assert_int_equal(c.rl_groups[0].rl.ops.size, 1000);
	/* The stored form keeps the random MAC: a rebuilt VM has the same. */
	Chv__V1__VmConfig *out = NULL;
	assert_int_equal(vm_config_to_proto(&c, &out), 0);
	assert_int_equal(out->n_nets, 2);
	char mac[18];
	vm_config_format_mac(a->mac, mac);
	assert_string_equal(out->nets[0]->mac, mac);
	assert_string_equal(out->nets[1]->mac, "52:54:00:aa:bb:01");
	assert_string_equal(out->nets[1]->host_mac, "02:00:00:00:00:01");
	assert_string_equal(out->nets[0]->host_mac, "");
	assert_null(out->nets[0]->rate_limiter);
	assert_int_equal(out->n_rate_limit_groups, 1);
	assert_string_equal(out->rate_limit_groups[0]->id, "grp");
	assert_int_equal(out->rate_limit_groups[0]->config->ops_refill_time_ms, 100);
	vm_config_proto_free(out);
	roundtrip(&c);
	/* The validator's rules: pairs against the vCPUs, named by --net. */
	assert_int_not_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);

	/* Errors, one field at a time. */
	static const struct {
		const char *field;
		const char *value;
		const char *want;
	} bad[] = {
	    {"mac", "52:54:00:aa:bb",
	     "config.nets[1].mac: \"52:54:00:aa:bb\" is not a MAC address "
	     "(aa:bb:cc:dd:ee:ff)"},
	    {"mac", "52:54:00:aa:bb:0x",
	     "config.nets[1].mac: \"52:54:00:aa:bb:0x\" is not a MAC "
	     "address (aa:bb:cc:dd:ee:ff)"},
	    {"mac", " 2:54:00:aa:bb:01",
	     "config.nets[1].mac: \" 2:54:00:aa:bb:01\" is not a MAC "
	     "address (aa:bb:cc:dd:ee:ff)"},
	    {"mac", "03:00:00:00:00:01",
	     "config.nets[1].mac: 03:00:00:00:00:01 is a multicast "
	     "address"},
	    {"mac", "00:00:00:00:00:00",
	     "config.nets[1].mac: 00:00:00:00:00:00 is not a valid "
	     "address"},
	    {"host_mac", "ff:ff:ff:ff:ff:ff",
	     "config.nets[1].host_mac: ff:ff:ff:ff:ff:ff is a "
	     "multicast address"},
	    {"ip", "172.16.0", "config.nets[1].ip: \"172.16.0\" is not an IPv4 address"},
	    {"mask", "255.0.0.255", "config.nets[1].mask: \"255.0.0.255\" is not an IPv4 netmask"},
	    {"tap", "a/b",
	     "config.nets[1].tap: \"a/b\" is not an interface name (1..15 "
	     "characters, no '/', ':' or spaces)"},
	    {"tap", "sixteen-chars-xx",
	     "config.nets[1].tap: \"sixteen-chars-xx\" is not an "
	     "interface name (1..15 characters, no '/', ':' or spaces)"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Chv__V1__NetConfig m = n1;
		nets[1] = &m;
		if (!strcmp(bad[i].field, "mac"))
			m.mac = (char *)bad[i].value;
		else if (!strcmp(bad[i].field, "host_mac"))
			m.host_mac = (char *)bad[i].value;
		else if (!strcmp(bad[i].field, "ip"))
			m.ip = (char *)bad[i].value;
		else if (!strcmp(bad[i].field, "mask"))
			m.mask = (char *)bad[i].value;
		else
			m.tap = (char *)bad[i].value;
		expect_error(&p.vm, bad[i].want);
	}
	nets[1] = &n1;
	n1.ip = "";
	expect_error(&p.vm, "config.nets[1].mask: 255.240.0.0 needs config.nets[1].ip");
	n1.ip = "172.16.0.1";
	n1.mtu = 67;
	expect_error(&p.vm, "config.nets[1].mtu: 67 is out of range (68..65518)");
	n1.mtu = 65519;
	expect_error(&p.vm, "config.nets[1].mtu: 65519 is out of range (68..65518)");
	n1.mtu = 0;
	n1.num_queues = 3;
	expect_error(
	    &p.vm,
	    "config.nets[1].num_queues: 3 is not an even number in 2..32 (2 per queue pair)");
	n1.num_queues = 34;
	expect_error(&p.vm,
		     "config.nets[1].num_queues: 34 is not an even number in 2..32 (2 per queue "
		     "pair)");
	n1.num_queues = 0;
	n1.queue_size = 48;
	expect_error(&p.vm, "config.nets[1].queue_size: 48 is not a power of two in 4..32768");
	n1.queue_size = 0;
	n1.offload_csum = false;
	expect_error(&p.vm, "config.nets[1].offload_tso: true needs config.nets[1].offload_csum");
	n1.offload_tso = false;
	n1.offload_ufo = true;
	expect_error(&p.vm, "config.nets[1].offload_ufo: true needs config.nets[1].offload_csum");
	n1.offload_ufo = false;
	int32_t fds[] = {5};
	n1.fds = fds;
	n1.n_fds = 1;
	expect_error(&p.vm, "config.nets[1].fds: file descriptors cannot be passed over the API "
			    "(the VM runs in another process); name a tap instead");
	n1.n_fds = 0;
	n1.rate_limiter = &rl;
	rl.ops_size = 5;
	rl.ops_refill_time_ms = 5;
	expect_error(&p.vm, "config.nets[1].rate_limit_group: \"grp\" and "
			    "config.nets[1].rate_limiter are exclusive (a device has its own "
			    "limits or a group's)");
	n1.rate_limit_group = "other";
	n1.rate_limiter = NULL;
	expect_error(&p.vm, "config.nets[1].rate_limit_group: \"other\" is not in "
			    "config.rate_limit_groups");
	n1.rate_limit_group = "";
	n1.rate_limiter = &rl;
	rl.ops_refill_time_ms = 0;
	expect_error(&p.vm, "config.nets[1].rate_limiter: ops_refill_time=0: a bucket with "
			    "ops_size=5 needs a refill time > 0 ms");
	rl.ops_refill_time_ms = 5;
	nets[1] = NULL;
	expect_error(&p.vm, "config.nets[1] is empty");
	nets[1] = &n1;
	for (int i = 0; i <= CONFIG_MAX_NETS; i++)
		nets[i] = &n0;
	p.vm.n_nets = CONFIG_MAX_NETS + 1;
	expect_error(&p.vm, "config.nets: 9 devices, more than 8");
	p.vm.n_nets = 2;
	nets[1] = &n1;

	/* Groups. */
	g.id = "";
	expect_error(&p.vm, "config.rate_limit_groups[0].id is required");
	g.id = "grp";
	grl.ops_size = grl.ops_refill_time_ms = 0;
	expect_error(&p.vm, "config.rate_limit_groups[0].config: sets no limit (bw_size or "
			    "ops_size)");
	grl.bw_size = 10;
	expect_error(&p.vm, "config.rate_limit_groups[0].config: bw_refill_time=0: a bucket "
			    "with bw_size=10 needs a refill time > 0 ms");
	grl.bw_refill_time_ms = 1;
	groups[1] = &g;
	p.vm.n_rate_limit_groups = 2;
	expect_error(&p.vm, "config.rate_limit_groups[1].id: \"grp\" is used twice");
	for (int i = 0; i <= CONFIG_MAX_RL_GROUPS; i++)
		groups[i] = &g;
	p.vm.n_rate_limit_groups = CONFIG_MAX_RL_GROUPS + 1;
	expect_error(&p.vm, "config.rate_limit_groups: 9 groups, more than 8");
	p.vm.n_rate_limit_groups = 1;
	convert_ok(&p.vm, &c);
	vm_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_minimal),
	    cmocka_unit_test(test_defaults_zero_messages),
	    cmocka_unit_test(test_full_values),
	    cmocka_unit_test(test_console_modes),
	    cmocka_unit_test(test_roundtrip_defaults),
	    cmocka_unit_test(test_roundtrip_flags),
	    cmocka_unit_test(test_to_proto_shape),
	    cmocka_unit_test(test_error_payload),
	    cmocka_unit_test(test_error_cpus),
	    cmocka_unit_test(test_error_topology),
	    cmocka_unit_test(test_error_memory),
	    cmocka_unit_test(test_error_consoles),
	    cmocka_unit_test(test_error_unsupported),
	    cmocka_unit_test(test_from_wire),
	    cmocka_unit_test(test_rng),
	    cmocka_unit_test(test_disks),
	    cmocka_unit_test(test_nets),
	    cmocka_unit_test(test_validates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
