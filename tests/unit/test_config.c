/* chv-vmm's option parser and vm_config_validate(). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "vm/config.h"
#include "vm/optparse.h"

#define MAX_ARGS 32

/* Parses the NULL-terminated args (argv[0] supplied) into a fresh config. */
static int parse(struct vm_config *c, struct chv_err *err, const char *const *args)
{
	char *argv[MAX_ARGS + 1] = {"chv-vmm"};
	int argc = 1;
	for (; args[argc - 1]; argc++) {
		assert_true(argc <= MAX_ARGS);
		argv[argc] = (char *)args[argc - 1];
	}
	argv[argc] = NULL;
	vm_config_init(c);
	memset(err, 0, sizeof(*err));
	return vm_config_parse_args(c, argc, argv, err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	assert_int_equal(parse(&c, &err, ARGS("--kernel", "k")), 0);
	assert_string_equal(c.payload.kernel, "k");
	assert_null(c.payload.initramfs);
	assert_null(c.payload.cmdline);
	assert_int_equal(c.cpus.boot, 1);
	assert_int_equal(c.cpus.max, 1);
	assert_false(c.cpus.topology_set);
	assert_int_equal(c.cpus.topology.threads_per_core, 1);
	assert_int_equal(c.cpus.topology.cores_per_die, 1);
	assert_int_equal(c.cpus.topology.dies_per_package, 1);
	assert_int_equal(c.cpus.topology.packages, 1);
	assert_int_equal(c.cpus.max_phys_bits, 46);
	assert_int_equal(c.memory.size, 512ULL << 20);
	assert_false(c.memory.shared);
	assert_false(c.memory.hugepages);
	assert_int_equal(c.serial.mode, CONSOLE_NULL);
	assert_null(c.serial.path);
	assert_int_equal(c.console.mode, CONSOLE_OFF);
	assert_null(c.rng.src); /* /dev/urandom */
	assert_int_equal(c.seccomp, SECCOMP_TRUE);
	assert_int_equal(c.verbosity, 0);
	assert_null(c.log_file);
	assert_false(c.no_reboot);
	assert_string_equal(c.hypervisor, "kvm");
	vm_config_free(&c);
}

static void test_no_args(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	char *argv[] = {"chv-vmm", NULL};
	vm_config_init(&c);
	assert_int_equal(vm_config_parse_args(&c, 1, argv, &err), 0);
	assert_null(c.payload.kernel);
	vm_config_free(&c);
}

static void test_full_space_form(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	int rc = parse(
	    &c, &err,
	    ARGS("--kernel", "/k", "--initramfs", "/i", "--cmdline", "console=ttyS0 quiet",
		 "--cpus", "boot=2,max=4,topology=2:2:1:1,max_phys_bits=40", "--memory",
		 "size=1G,shared=on,hugepages=true", "--serial", "tty", "--console", "off", "-v",
		 "--log-file", "/l", "--seccomp", "log", "--no-reboot", "--hypervisor", "kvm"));
	assert_int_equal(rc, 0);
	assert_string_equal(c.payload.kernel, "/k");
	assert_string_equal(c.payload.initramfs, "/i");
	assert_string_equal(c.payload.cmdline, "console=ttyS0 quiet");
	assert_int_equal(c.cpus.boot, 2);
	assert_int_equal(c.cpus.max, 4);
	assert_true(c.cpus.topology_set);
	assert_int_equal(c.cpus.topology.threads_per_core, 2);
	assert_int_equal(c.cpus.topology.cores_per_die, 2);
	assert_int_equal(c.cpus.topology.dies_per_package, 1);
	assert_int_equal(c.cpus.topology.packages, 1);
	assert_int_equal(c.cpus.max_phys_bits, 40);
	assert_int_equal(c.memory.size, 1ULL << 30);
	assert_true(c.memory.shared);
	assert_true(c.memory.hugepages);
	assert_int_equal(c.serial.mode, CONSOLE_TTY);
	assert_int_equal(c.console.mode, CONSOLE_OFF);
	assert_int_equal(c.verbosity, 1);
	assert_string_equal(c.log_file, "/l");
	assert_int_equal(c.seccomp, SECCOMP_LOG);
	assert_true(c.no_reboot);
	assert_string_equal(c.hypervisor, "kvm");
	vm_config_free(&c);
}

static void test_full_equals_form(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	int rc = parse(&c, &err,
		       ARGS("--kernel=/k", "--initramfs=/i", "--cmdline=a=b c", "--cpus=boot=3",
			    "--memory=size=4096K,shared=off", "--serial=file=/tmp/a,b=c",
			    "--console=null", "-vvv", "-v", "--log-file=/l", "--seccomp=false",
			    "--hypervisor=kvm"));
	assert_int_equal(rc, 0);
	assert_string_equal(c.payload.cmdline, "a=b c");
	assert_int_equal(c.cpus.boot, 3);
	assert_int_equal(c.cpus.max, 3);
	assert_false(c.cpus.topology_set);
	/* The derived topology: one package of max cores. */
	assert_int_equal(c.cpus.topology.threads_per_core, 1);
	assert_int_equal(c.cpus.topology.cores_per_die, 3);
	assert_int_equal(c.cpus.topology.packages, 1);
	assert_int_equal(c.memory.size, 4ULL << 20);
	assert_false(c.memory.shared);
	/* A file path is the rest of the value, commas included. */
	assert_int_equal(c.serial.mode, CONSOLE_FILE);
	assert_string_equal(c.serial.path, "/tmp/a,b=c");
	assert_int_equal(c.console.mode, CONSOLE_NULL);
	assert_int_equal(c.verbosity, 3); /* capped at trace */
	assert_int_equal(c.seccomp, SECCOMP_FALSE);
	vm_config_free(&c);
}

static void test_values_and_modes(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;

	assert_int_equal(parse(&c, &err, ARGS("--cmdline", "", "--seccomp", "true")), 0);
	assert_string_equal(c.payload.cmdline, "");
	assert_int_equal(c.seccomp, SECCOMP_TRUE);
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--cmdline=-x", "--serial", "socket=/run/s")), 0);
	assert_string_equal(c.payload.cmdline, "-x");
	assert_int_equal(c.serial.mode, CONSOLE_SOCKET);
	assert_string_equal(c.serial.path, "/run/s");
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--serial", "off", "--seccomp", "on")), 0);
	assert_int_equal(c.serial.mode, CONSOLE_OFF);
	assert_int_equal(c.seccomp, SECCOMP_TRUE);
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--cpus", "max=8")), 0);
	assert_int_equal(c.cpus.boot, 1);
	assert_int_equal(c.cpus.max, 8);
	assert_int_equal(c.cpus.topology.cores_per_die, 8);
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--cpus", "boot=255")), 0);
	assert_int_equal(c.cpus.max, 255);
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--cpus", "topology=1:4:1:2,max=8,boot=007")), 0);
	assert_int_equal(c.cpus.boot, 7);
	assert_int_equal(c.cpus.topology.cores_per_die, 4);
	assert_int_equal(c.cpus.topology.packages, 2);
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--memory", "hugepages=off,size=2M")), 0);
	assert_int_equal(c.memory.size, 2ULL << 20);
	assert_false(c.memory.hugepages);
	vm_config_free(&c);

	assert_int_equal(parse(&c, &err, ARGS("--verbose", "-v")), 0);
	assert_int_equal(c.verbosity, 2);
	vm_config_free(&c);
}

static void test_direct_parsers(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	vm_config_init(&c);
	/* A later --cpus replaces the whole value, defaults included. */
	assert_int_equal(vm_config_parse_cpus(&c, "boot=4,topology=2:2:1:1", &err), 0);
	assert_int_equal(vm_config_parse_cpus(&c, "boot=2", &err), 0);
	assert_int_equal(c.cpus.max, 2);
	assert_false(c.cpus.topology_set);
	assert_int_equal(c.cpus.topology.threads_per_core, 1);
	assert_int_equal(c.cpus.topology.cores_per_die, 2);
	/* A failing parse leaves the config as it was. */
	assert_int_equal(vm_config_parse_cpus(&c, "boot=3,max=x", &err), -EINVAL);
	assert_int_equal(c.cpus.boot, 2);
	assert_int_equal(vm_config_parse_memory(&c, "size=1G", &err), 0);
	assert_int_equal(vm_config_parse_memory(&c, "shared=on,size=x", &err), -EINVAL);
	assert_int_equal(c.memory.size, 1ULL << 30);
	assert_false(c.memory.shared);
	/* Switching from a path mode to a plain one drops the path. */
	assert_int_equal(vm_config_parse_console(&c.serial, "--serial", "file=/a", &err), 0);
	assert_int_equal(vm_config_parse_console(&c.serial, "--serial", "socket=/b", &err), 0);
	assert_string_equal(c.serial.path, "/b");
	assert_int_equal(vm_config_parse_console(&c.serial, "--serial", "tty", &err), 0);
	assert_null(c.serial.path);
	vm_config_free(&c);
}

static void test_sizes(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
	    {"0", 0},
	    {"4096", 4096},
	    {"1K", 1024},
	    {"1k", 1024},
	    {"512M", 512ULL << 20},
	    {"2G", 2ULL << 30},
	    {"2g", 2ULL << 30},
	    {"3T", 3ULL << 40},
	    {"18446744073709551615", UINT64_MAX},
	    {"16777215T", 16777215ULL << 40},
	};
	static const char *const bad[] = {
	    "",	   "K",	   "4x",	   "x4",	"-1",
	    "+1",  " 1",   "1 ",	   "1KB",	"1.5G",
	    "1GG", "0x10", "99999999999T", "16777216T", "18446744073709551616",
	    "1M1",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint64_t v = 1;
		assert_int_equal(vm_config_parse_size(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		if (vm_config_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("size \"%s\" was accepted", bad[i]);
		assert_int_equal(v, 7);
	}
}

static void test_optparse_numbers(void **state)
{
	(void)state;
	uint64_t v;
	uint32_t u;
	struct chv_err err;
	assert_int_equal(optparse_u64("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(optparse_u64("18446744073709551616", &v), -ERANGE);
	assert_int_equal(optparse_u64("", &v), -EINVAL);
	assert_int_equal(optparse_u64("12a", &v), -EINVAL);
	assert_int_equal(optparse_u32("--x", NULL, "5", 1, 9, &u, &err), 0);
	assert_int_equal(u, 5);
	assert_int_equal(optparse_u32("--x", NULL, "10", 1, 9, &u, &err), -EINVAL);
	assert_string_equal(err.msg, "--x: 10 is out of range (1..9)");
	assert_int_equal(optparse_u32("--x", "k", "-", 1, 9, &u, &err), -EINVAL);
	assert_string_equal(err.msg, "--x: k=- is not a number");
}

/* Every malformed input: the message must name the option, the key and the
 * value (needles; NULL where there is nothing more to name). */
struct bad_case {
	const char *args[4];
	const char *needle[3];
};

static const struct bad_case bad_cases[] = {
    /* options */
    {{"--kernl", "k"}, {"unknown option \"--kernl\""}},
    {{"--kernl=k"}, {"unknown option \"--kernl\""}},
    {{"-x"}, {"unknown option \"-x\""}},
    {{"-vq"}, {"unknown option \"-q\"", "\"-vq\""}},
    {{"kernel"}, {"unexpected argument \"kernel\""}},
    {{"-"}, {"unexpected argument \"-\""}},
    {{"--"}, {"unexpected argument \"--\""}},
    {{"--kernel"}, {"--kernel needs a value"}},
    {{"--kernel", "--cpus", "boot=1"}, {"--kernel needs a value"}},
    {{"--cpus", "-v"}, {"--cpus needs a value"}},
    {{"--kernel="}, {"--kernel", "empty path"}},
    {{"--initramfs="}, {"--initramfs", "empty path"}},
    {{"--log-file="}, {"--log-file", "empty path"}},
    {{"--kernel", "a", "--kernel", "b"}, {"--kernel given twice", "\"b\""}},
    {{"--cpus", "boot=1", "--cpus=boot=2"}, {"--cpus given twice", "boot=2"}},
    {{"--no-reboot=yes"}, {"--no-reboot takes no value", "yes"}},
    {{"--help=1"}, {"--help takes no value", "\"1\""}},
    {{"--seccomp", "errno"}, {"--seccomp", "\"errno\""}},
    {{"--seccomp="}, {"--seccomp", "\"\""}},
    {{"--hypervisor", "mshv"}, {"--hypervisor", "\"mshv\""}},
    /* --cpus */
    {{"--cpus="}, {"--cpus: empty value"}},
    {{"--cpus", "boot=0"}, {"--cpus: boot=0 is out of range (1..255)"}},
    {{"--cpus", "boot=256"}, {"--cpus:", "boot=256", "out of range"}},
    {{"--cpus", "boot=4294967296"}, {"--cpus:", "boot=4294967296", "out of range"}},
    {{"--cpus", "boot=99999999999999999999999"}, {"--cpus:", "boot=9999999", "out of range"}},
    {{"--cpus", "boot=-1"}, {"--cpus:", "boot=-1", "out of range"}},
    {{"--cpus", "boot=4x"}, {"--cpus:", "boot=4x", "not a number"}},
    {{"--cpus", "boot= 4"}, {"--cpus:", "boot= 4", "not a number"}},
    {{"--cpus", "boot=0x4"}, {"--cpus:", "boot=0x4", "not a number"}},
    {{"--cpus", "boot="}, {"--cpus:", "boot=", "needs a value"}},
    {{"--cpus", "max=0"}, {"--cpus:", "max=0", "out of range"}},
    {{"--cpus", "max=300"}, {"--cpus:", "max=300", "out of range"}},
    {{"--cpus", "boot"}, {"--cpus:", "\"boot\"", "not key=value"}},
    {{"--cpus", "4"}, {"--cpus:", "\"4\"", "not key=value"}},
    {{"--cpus", "boot=1,,max=2"}, {"--cpus:", "empty item", "\"boot=1,,max=2\""}},
    {{"--cpus", "boot=1,"}, {"--cpus:", "empty item", "\"boot=1,\""}},
    {{"--cpus", ",boot=1"}, {"--cpus:", "empty item", "\",boot=1\""}},
    {{"--cpus", "boot=1,boot=2"}, {"--cpus:", "\"boot\" given twice", "\"boot=1,boot=2\""}},
    {{"--cpus", "bot=2"}, {"--cpus: unknown key \"bot\" in \"bot=2\""}},
    {{"--cpus", "=2"}, {"--cpus: unknown key \"\" in \"=2\""}},
    {{"--cpus", "topology=1:2:1"}, {"--cpus:", "topology=1:2:1", "threads:cores:dies"}},
    {{"--cpus", "topology=1:2:1:1:1"}, {"--cpus:", "topology=1:2:1:1:1", "threads:cores"}},
    {{"--cpus", "topology=1::1:1"}, {"--cpus:", "topology=1::1:1", "threads:cores"}},
    {{"--cpus", "topology=1:2:1:"}, {"--cpus:", "topology=1:2:1:", "threads:cores"}},
    {{"--cpus", "topology=3:1:1:1"}, {"--cpus:", "topology=3:1:1:1", "threads per core 3"}},
    {{"--cpus", "topology=0:1:1:1"}, {"--cpus:", "topology=0:1:1:1", "out of range"}},
    {{"--cpus", "topology=1:0:1:1"}, {"--cpus:", "cores per die 0", "out of range"}},
    {{"--cpus", "topology=1:256:1:1"}, {"--cpus:", "cores per die 256", "out of range"}},
    {{"--cpus", "topology=1:1:1:0"}, {"--cpus:", "packages 0", "out of range"}},
    {{"--cpus", "topology=1:2:2:1"}, {"--cpus:", "topology=1:2:2:1", "dies per package must be 1"}},
    {{"--cpus", "topology=1:x:1:1"}, {"--cpus:", "topology=1:x:1:1", "\"x\" is not a number"}},
    {{"--cpus", "topology=1:-2:1:1"}, {"--cpus:", "topology=1:-2:1:1", "not a number"}},
    {{"--cpus", "topology=1:99999999999999999999999:1:1"},
     {"--cpus:", "topology=1:9999", "threads:cores"}},
    {{"--cpus", "max_phys_bits=53"}, {"--cpus:", "max_phys_bits=53", "out of range (36..52)"}},
    {{"--cpus", "max_phys_bits=35"}, {"--cpus:", "max_phys_bits=35", "out of range"}},
    {{"--cpus", "kvm_hyperv=on"}, {"--cpus:", "unknown key \"kvm_hyperv\"", "kvm_hyperv=on"}},
    /* --memory */
    {{"--memory", "sizee=1G"}, {"--memory: unknown key \"sizee\" in \"sizee=1G\""}},
    {{"--memory", "size=99999999999T"}, {"--memory:", "size=99999999999T", "too large"}},
    {{"--memory", "size=18446744073709551616"},
     {"--memory:", "size=1844674407370955161", "too large"}},
    {{"--memory", "size=4x"}, {"--memory:", "size=4x", "not a size"}},
    {{"--memory", "size=-1G"}, {"--memory:", "size=-1G", "not a size"}},
    {{"--memory", "size=G"}, {"--memory:", "size=G", "not a size"}},
    {{"--memory", "size="}, {"--memory:", "size=", "needs a value"}},
    {{"--memory", "1G"}, {"--memory:", "\"1G\"", "not key=value"}},
    {{"--memory", "shared=yes"}, {"--memory:", "shared=yes", "not a boolean"}},
    {{"--memory", "hugepages=1"}, {"--memory:", "hugepages=1", "not a boolean"}},
    {{"--memory", "hugepages=ON"}, {"--memory:", "hugepages=ON", "not a boolean"}},
    {{"--memory", "size=1G,size=2G"}, {"--memory:", "\"size\" given twice", "size=1G,size=2G"}},
    /* --serial / --console */
    {{"--serial", "pty"}, {"--serial:", "unknown mode", "\"pty\""}},
    {{"--serial", "file="}, {"--serial:", "file=", "needs a path"}},
    {{"--serial", "socket="}, {"--serial:", "socket=", "needs a path"}},
    {{"--serial", "file"}, {"--serial:", "unknown mode", "\"file\""}},
    {{"--serial", "path=/x"}, {"--serial:", "unknown mode", "\"path=/x\""}},
    {{"--serial="}, {"--serial:", "empty value"}},
    {{"--console", "TTY"}, {"--console:", "unknown mode", "\"TTY\""}},
    /* --rng */
    {{"--rng", "src="}, {"--rng:", "src=", "needs"}},
    {{"--rng", "/dev/random"}, {"--rng:", "\"/dev/random\"", "not key=value"}},
    {{"--rng", "source=/dev/random"}, {"--rng:", "unknown key \"source\""}},
    {{"--rng="}, {"--rng"}},
    {{"--rng", "src=/a,src=/b"}, {"--rng:", "\"src\" given twice"}},
    {{"--rng", "src=/a", "--rng"}, {"--rng"}},
    /* --disk */
    {{"--disk", "readonly=on"}, {"--disk:", "path= is required"}},
    {{"--disk", "/img"}, {"--disk:", "\"/img\"", "not key=value"}},
    {{"--disk", "path=/i,file=/j"}, {"--disk:", "unknown key \"file\""}},
    {{"--disk", "path=/i,path=/j"}, {"--disk:", "\"path\" given twice"}},
    {{"--disk", "path="}, {"--disk:", "path="}},
    {{"--disk", "path=/i,readonly=yes"}, {"--disk:", "readonly=yes", "not a boolean"}},
    {{"--disk", "path=/i,direct=1"}, {"--disk:", "direct=1", "not a boolean"}},
    {{"--disk", "path=/i,num_queues=0"}, {"--disk:", "num_queues=0", "out of range"}},
    {{"--disk", "path=/i,num_queues=256"}, {"--disk:", "num_queues=256", "out of range"}},
    {{"--disk", "path=/i,num_queues=x"}, {"--disk:", "num_queues=x"}},
    {{"--disk", "path=/i,queue_size=2"}, {"--disk:", "queue_size=2", "out of range"}},
    {{"--disk", "path=/i,queue_size=65536"}, {"--disk:", "queue_size=65536", "out of range"}},
    {{"--disk", "path=/i,queue_size=100"}, {"--disk:", "queue_size=100", "power of two"}},
    {{"--disk", "path=/i,queue_size=-128"}, {"--disk:", "queue_size=-128"}},
    {{"--disk", "path=/i,serial=123456789012345678901"},
     {"--disk:", "serial=123456789012345678901", "longer than 20"}},
    {{"--disk", "path=/i,serial="}, {"--disk:", "serial="}},
    {{"--disk="}, {"--disk"}},
    {{"--disk", "path=/i", "--disk"}, {"--disk"}},
    /* rate limits on --disk */
    {{"--disk", "path=/i,bw_size=x"}, {"--disk:", "bw_size=x", "not a number"}},
    {{"--disk", "path=/i,ops_size=-1"}, {"--disk:", "ops_size=-1", "not a number"}},
    {{"--disk", "path=/i,bw_refill_time=99999999999999999999"},
     {"--disk:", "bw_refill_time=99999999999999999999", "too large"}},
    {{"--disk", "path=/i,bw_size=1000"}, {"--disk:", "bw_refill_time"}},
    {{"--disk", "path=/i,ops_size=10,ops_refill_time=0"}, {"--disk:", "ops_refill_time"}},
    {{"--disk", "path=/i,bw_size=1,bw_refill_time=1,rate_limit_group=g"},
     {"--disk:", "rate_limit_group=g", "exclusive"}},
    {{"--disk", "path=/i,rate_limit_group="}, {"--disk:", "rate_limit_group=", "needs a value"}},
    {{"--disk", "path=/i,bw_burst=1"}, {"--disk:", "unknown key \"bw_burst\""}},
    /* --net */
    {{"--net="}, {"--net: empty value"}},
    {{"--net", "tap"}, {"--net:", "\"tap\"", "not key=value"}},
    {{"--net", "tap=t0,bridge=br0"}, {"--net:", "unknown key \"bridge\""}},
    {{"--net", "tap=t0,tap=t1"}, {"--net:", "\"tap\" given twice"}},
    {{"--net", "tap=averyveryverylongname"},
     {"--net:", "tap=averyveryverylongname", "not an interface name"}},
    {{"--net", "tap=a/b"}, {"--net:", "tap=a/b", "not an interface name"}},
    {{"--net", "tap=a b"}, {"--net:", "tap=a b", "not an interface name"}},
    {{"--net", "tap=t0,fd=3"}, {"--net:", "tap=t0 and fd=3", "exclusive"}},
    {{"--net", "fd=x"}, {"--net:", "fd=x", "not an fd"}},
    {{"--net", "fd=2"}, {"--net:", "fd=2", "standard input"}},
    {{"--net", "fd=3:"}, {"--net:", "fd=3:", "not a list of fds"}},
    {{"--net", "fd=3:3"}, {"--net:", "fd=3:3", "given twice"}},
    {{"--net", "fd=3:4,num_queues=2"}, {"--net:", "fd=3:4", "num_queues=2"}},
    {{"--net", "fd=3,num_queues=4"}, {"--net:", "fd=3", "num_queues=4"}},
    {{"--net", "mac=52:54:00:12:34"}, {"--net:", "mac=52:54:00:12:34", "not a MAC"}},
    {{"--net", "mac=52:54:00:12:34:5g"}, {"--net:", "mac=52:54:00:12:34:5g", "not a MAC"}},
    {{"--net", "mac=52-54-00-12-34-56"}, {"--net:", "mac=52-54-00-12-34-56", "not a MAC"}},
    {{"--net", "mac=01:00:5e:00:00:01"}, {"--net:", "mac=01:00:5e:00:00:01", "multicast"}},
    {{"--net", "mac=ff:ff:ff:ff:ff:ff"}, {"--net:", "mac=ff:ff:ff:ff:ff:ff", "multicast"}},
    {{"--net", "mac=00:00:00:00:00:00"}, {"--net:", "mac=00:00:00:00:00:00", "not a valid"}},
    {{"--net", "host_mac=33:33:00:00:00:01"},
     {"--net:", "host_mac=33:33:00:00:00:01", "multicast"}},
    {{"--net", "ip=10.0.0"}, {"--net:", "ip=10.0.0", "not an IPv4 address"}},
    {{"--net", "ip=fe80::1"}, {"--net:", "ip=fe80::1", "not an IPv4 address"}},
    {{"--net", "ip=10.0.0.1,mask=255.0.255.0"}, {"--net:", "mask=255.0.255.0", "netmask"}},
    {{"--net", "ip=10.0.0.1,mask=24"}, {"--net:", "mask=24", "netmask"}},
    {{"--net", "mask=255.255.255.0"}, {"--net:", "mask=255.255.255.0", "needs ip="}},
    {{"--net", "mtu=67"}, {"--net:", "mtu=67", "out of range (68..65518)"}},
    {{"--net", "mtu=65519"}, {"--net:", "mtu=65519", "out of range"}},
    {{"--net", "mtu=1500x"}, {"--net:", "mtu=1500x", "not a number"}},
    {{"--net", "num_queues=3"}, {"--net:", "num_queues=3", "odd"}},
    {{"--net", "num_queues=1"}, {"--net:", "num_queues=1", "out of range (2..32)"}},
    {{"--net", "num_queues=34"}, {"--net:", "num_queues=34", "out of range"}},
    {{"--net", "queue_size=100"}, {"--net:", "queue_size=100", "power of two"}},
    {{"--net", "queue_size=2"}, {"--net:", "queue_size=2", "out of range"}},
    {{"--net", "queue_size=65536"}, {"--net:", "queue_size=65536", "out of range"}},
    {{"--net", "offload_tso=maybe"}, {"--net:", "offload_tso=maybe", "not a boolean"}},
    {{"--net", "offload_csum=off,offload_tso=on"},
     {"--net:", "offload_tso=on", "needs offload_csum=on"}},
    {{"--net", "offload_csum=off,offload_ufo=true"},
     {"--net:", "offload_ufo=true", "needs offload_csum=on"}},
    {{"--net", "ops_size=100"}, {"--net:", "ops_refill_time"}},
    {{"--net", "ops_size=1,ops_refill_time=1,rate_limit_group=g"},
     {"--net:", "rate_limit_group=g", "exclusive"}},
    {{"--net", "tap=t0", "--net"}, {"--net"}},
    /* --rate-limit-group */
    {{"--rate-limit-group", "bw_size=1,bw_refill_time=1"},
     {"--rate-limit-group:", "id= is required"}},
    {{"--rate-limit-group", "id=g,rate_limit_group=h"},
     {"--rate-limit-group:", "unknown key \"rate_limit_group\""}},
    {{"--rate-limit-group", "id=g,bw_size=1"}, {"--rate-limit-group:", "bw_refill_time"}},
    {{"--rate-limit-group", "id=g,ops_size=z"},
     {"--rate-limit-group:", "ops_size=z", "not a number"}},
};

static void test_bad_inputs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];
		struct vm_config c;
		struct chv_err err;
		const char *args[5] = {0};
		memcpy(args, b->args, sizeof(b->args));
		int rc = parse(&c, &err, args);
		if (rc != -EINVAL)
			fail_msg("case %zu (%s %s): rc %d, not -EINVAL", i, b->args[0],
				 b->args[1] ? b->args[1] : "", rc);
		assert_int_equal(err.code, -EINVAL);
		for (int k = 0; k < 3 && b->needle[k]; k++)
			if (!strstr(err.msg, b->needle[k]))
				fail_msg("case %zu: \"%s\" lacks \"%s\"", i, err.msg, b->needle[k]);
		vm_config_free(&c);
	}
}

static void test_help_version(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	assert_int_equal(parse(&c, &err, ARGS("--help")), CONFIG_PARSED_HELP);
	vm_config_free(&c);
	assert_int_equal(parse(&c, &err, ARGS("-h")), CONFIG_PARSED_HELP);
	vm_config_free(&c);
	/* Help wins over what follows, even a bad option. */
	assert_int_equal(parse(&c, &err, ARGS("--kernel", "k", "-h", "--bogus")),
			 CONFIG_PARSED_HELP);
	vm_config_free(&c);
	assert_int_equal(parse(&c, &err, ARGS("--version")), CONFIG_PARSED_VERSION);
	vm_config_free(&c);
	assert_int_equal(parse(&c, &err, ARGS("-V")), CONFIG_PARSED_VERSION);
	vm_config_free(&c);
	assert_int_equal(parse(&c, &err, ARGS("-vV")), CONFIG_PARSED_VERSION);
	assert_int_equal(c.verbosity, 1);
	vm_config_free(&c);
	/* ...but not over an error before it. */
	assert_int_equal(parse(&c, &err, ARGS("--bogus", "--help")), -EINVAL);
	vm_config_free(&c);
}

static void test_usage(void **state)
{
	(void)state;
	const char *u = vm_config_usage();
	static const char *const needles[] = {
	    "--kernel",
	    "--initramfs",
	    "--cmdline",
	    "--cpus",
	    "boot=",
	    "max=",
	    "topology=",
	    "max_phys_bits=",
	    "--memory",
	    "size=",
	    "shared=",
	    "hugepages=",
	    "512M",
	    "--serial",
	    "--console",
	    "file=PATH",
	    "socket=PATH",
	    "-v",
	    "--log-file",
	    "--seccomp",
	    "true|false|log",
	    "--no-reboot",
	    "--hypervisor",
	    "--help",
	    "--version",
	    "default 1",
	    "default 46",
	    "default null",
	    "default off",
	    "--rng",
	    "src=PATH",
	    "/dev/urandom",
	    "--disk",
	    "queue_size=N",
	    "--net",
	    "tap=NAME",
	    "num_queues=N",
	    "offload_tso",
	    "bw_size=",
	    "ops_refill_time=",
	    "rate_limit_group=",
	    "--rate-limit-group",
	};
	assert_non_null(u);
	for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
		if (!strstr(u, needles[i]))
			fail_msg("usage lacks \"%s\"", needles[i]);
}

/* --- validation, with real files --- */

struct files {
	char dir[64];
	char kernel[96];
	char initrd[96];
};

static int files_setup(void **state)
{
	struct files *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/chv-test-config-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->kernel, sizeof(f->kernel), "%s/kernel", f->dir);
	snprintf(f->initrd, sizeof(f->initrd), "%s/initrd", f->dir);
	FILE *fp = fopen(f->kernel, "w");
	if (!fp)
		return -1;
	fputs("not really a kernel", fp);
	fclose(fp);
	fp = fopen(f->initrd, "w");
	if (!fp)
		return -1;
	fclose(fp);
	*state = f;
	return 0;
}

static int files_teardown(void **state)
{
	struct files *f = *state;
	unlink(f->kernel);
	unlink(f->initrd);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A valid config for the kernel in f, for a rule to break. */
static void valid_config(struct vm_config *c, const struct files *f)
{
	vm_config_init(c);
	c->payload.kernel = strdup(f->kernel);
	assert_non_null(c->payload.kernel);
}

static void expect_invalid(const struct vm_config *c, const char *n1, const char *n2)
{
	struct chv_err err = {0};
	int rc = vm_config_validate(c, &err);
	if (rc >= 0)
		fail_msg("validated; expected \"%s\"", n1);
	assert_int_equal(err.code, rc);
	if (!strstr(err.msg, n1) || (n2 && !strstr(err.msg, n2)))
		fail_msg("\"%s\" lacks \"%s\" / \"%s\"", err.msg, n1, n2 ? n2 : "");
}

static void test_validate_ok(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	struct chv_err err = {0};
	char cpus[] = "boot=2,max=4,topology=2:2:1:1";
	char *argv[] = {"chv-vmm", "--kernel", f->kernel,  "--initramfs", f->initrd,
			"--cpus",  cpus,       "--serial", "file=/tmp/x", NULL};
	vm_config_init(&c);
	assert_int_equal(vm_config_parse_args(&c, 9, argv, &err), 0);
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);

	/* Boundaries that are allowed. */
	valid_config(&c, f);
	c.memory.size = 2ULL << 20;
	c.memory.hugepages = true;
	c.cpus.boot = c.cpus.max = 255;
	c.cpus.topology = (struct cpu_topology){1, 255, 1, 1};
	assert_int_equal(vm_config_validate(&c, &err), 0);
	c.memory.size = 64ULL << 30;
	c.memory.hugepages = false;
	c.memory.size += 4096;
	c.cpus.max_phys_bits = 37;
	assert_int_equal(vm_config_validate(&c, &err), 0);
	/* 2:1:1:127 uses APIC ids up to 253. */
	c.cpus.boot = c.cpus.max = 254;
	c.cpus.topology = (struct cpu_topology){2, 1, 1, 127};
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);
}

static void test_validate_payload(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	char path[160];

	vm_config_init(&c);
	expect_invalid(&c, "--kernel is required", NULL);
	c.payload.kernel = strdup("");
	expect_invalid(&c, "--kernel is required", NULL);
	vm_config_free(&c);

	valid_config(&c, f);
	snprintf(path, sizeof(path), "%s/missing", f->dir);
	free(c.payload.kernel);
	c.payload.kernel = strdup(path);
	expect_invalid(&c, "--kernel: ", "missing: No such file or directory");
	free(c.payload.kernel);
	c.payload.kernel = strdup(f->dir);
	expect_invalid(&c, "--kernel: ", "is not a regular file");
	free(c.payload.kernel);
	snprintf(path, sizeof(path), "%s/x", f->kernel);
	c.payload.kernel = strdup(path);
	expect_invalid(&c, "--kernel: ", "Not a directory");
	vm_config_free(&c);

	valid_config(&c, f);
	c.payload.initramfs = strdup(f->dir);
	expect_invalid(&c, "--initramfs: ", "is not a regular file");
	free(c.payload.initramfs);
	snprintf(path, sizeof(path), "%s/nope", f->dir);
	c.payload.initramfs = strdup(path);
	expect_invalid(&c, "--initramfs: ", "nope: No such file");
	vm_config_free(&c);

	/* A command line that does not fit the boot page. */
	valid_config(&c, f);
	c.payload.cmdline = malloc(0x10000 + 1);
	assert_non_null(c.payload.cmdline);
	memset(c.payload.cmdline, 'a', 0x10000);
	c.payload.cmdline[0x10000] = '\0';
	expect_invalid(&c, "--cmdline: 65536 bytes", "65535");
	c.payload.cmdline[0xffff] = '\0';
	struct chv_err err;
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);

	if (geteuid() == 0) {
		print_message("skipped: an unreadable --kernel cannot be tested as root\n");
	} else {
		valid_config(&c, f);
		assert_int_equal(chmod(f->kernel, 0), 0);
		expect_invalid(&c, "--kernel: ", "Permission denied");
		assert_int_equal(chmod(f->kernel, 0644), 0);
		vm_config_free(&c);
	}
}

static void test_validate_cpus(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	valid_config(&c, f);

	c.cpus.boot = 4;
	c.cpus.max = 2;
	c.cpus.topology = (struct cpu_topology){1, 2, 1, 1};
	expect_invalid(&c, "--cpus: boot=4 is more than max=2", NULL);

	c.cpus.boot = 0;
	expect_invalid(&c, "--cpus: boot=0 is out of range", NULL);
	c.cpus.boot = 1;
	c.cpus.max = 256;
	expect_invalid(&c, "--cpus: max=256 is out of range", NULL);

	c.cpus.max = 4;
	c.cpus.topology_set = true;
	c.cpus.topology = (struct cpu_topology){1, 2, 1, 1};
	expect_invalid(&c, "--cpus: topology=1:2:1:1 gives 2 vCPUs", "max=4");
	c.cpus.topology = (struct cpu_topology){2, 1, 1, 4};
	expect_invalid(&c, "--cpus: topology=2:1:1:4 gives 8 vCPUs", "max=4");
	c.cpus.topology = (struct cpu_topology){4, 1, 1, 1};
	expect_invalid(&c, "--cpus: topology=4:1:1:1 is invalid", NULL);
	c.cpus.topology = (struct cpu_topology){1, 2, 2, 1};
	expect_invalid(&c, "--cpus: topology=1:2:2:1 is invalid", NULL);
	c.cpus.topology = (struct cpu_topology){1, 0, 1, 4};
	expect_invalid(&c, "--cpus: topology=1:0:1:4 is invalid", NULL);

	/* 3 cores take 2 bits: 85 packages need ids up to 84 << 2. */
	c.cpus.max = 255;
	c.cpus.topology = (struct cpu_topology){1, 3, 1, 85};
	expect_invalid(&c, "--cpus: topology=1:3:1:85 needs APIC ids up to 338", NULL);

	c.cpus.max = 4;
	c.cpus.topology = (struct cpu_topology){1, 4, 1, 1};
	c.cpus.max_phys_bits = 60;
	expect_invalid(&c, "--cpus: max_phys_bits=60 is out of range", NULL);
	vm_config_free(&c);
}

static void test_validate_memory(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	valid_config(&c, f);

	c.memory.size = 0;
	expect_invalid(&c, "--memory: size=0 is below the minimum", NULL);
	c.memory.size = (2ULL << 20) - 4096;
	expect_invalid(&c, "--memory: size=2093056 is below the minimum", NULL);
	c.memory.size = (4ULL << 20) + 512;
	expect_invalid(&c, "--memory: size=4194816 is not a multiple of 4K", NULL);
	c.memory.size = (4ULL << 20) + 4096;
	c.memory.hugepages = true;
	expect_invalid(&c, "--memory: size=4198400 is not a multiple of 2M", "hugepages");
	c.memory.hugepages = false;
	/* 36 bits = 64 GiB of address space: 3 GiB low + (64 - 4) GiB high. */
	c.cpus.max_phys_bits = 36;
	c.memory.size = 63ULL << 30;
	struct chv_err err;
	assert_int_equal(vm_config_validate(&c, &err), 0);
	c.memory.size += 4096;
	expect_invalid(&c, "--memory: size=67645739008 does not fit in 36", NULL);
	vm_config_free(&c);
}

static void test_validate_consoles(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	struct chv_err err;
	valid_config(&c, f);

	c.serial.mode = CONSOLE_FILE;
	expect_invalid(&c, "--serial: file= needs a path", NULL);
	c.serial.mode = CONSOLE_SOCKET;
	expect_invalid(&c, "--serial: socket= needs a path", NULL);
	c.serial.path = malloc(200);
	memset(c.serial.path, 's', 199);
	c.serial.path[199] = '\0';
	expect_invalid(&c, "--serial: socket=sss", "longer than 107 bytes");
	c.serial.path[108] = '\0';
	expect_invalid(&c, "--serial: socket=sss", "longer than 107 bytes");
	c.serial.path[107] = '\0';
	assert_int_equal(vm_config_validate(&c, &err), 0);
	c.serial.mode = CONSOLE_TTY;

	static const enum console_mode modes[] = {CONSOLE_NULL, CONSOLE_TTY, CONSOLE_FILE,
						  CONSOLE_SOCKET};
	c.console.path = strdup("/tmp/c");
	/* serial is tty here: every console mode but tty is accepted. */
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		c.console.mode = modes[i];
		if (modes[i] == CONSOLE_TTY)
			expect_invalid(&c, "--console: tty is already taken by --serial tty", NULL);
		else
			assert_int_equal(vm_config_validate(&c, &err), 0);
	}
	c.serial.mode = CONSOLE_NULL;
	c.console.mode = CONSOLE_TTY;
	assert_int_equal(vm_config_validate(&c, &err), 0);
	c.serial.mode = CONSOLE_TTY;
	c.console.mode = CONSOLE_FILE;
	free(c.console.path);
	c.console.path = NULL;
	expect_invalid(&c, "--console: file= needs a path", NULL);
	c.console.mode = CONSOLE_OFF;
	assert_int_equal(vm_config_validate(&c, &err), 0);

	free(c.hypervisor);
	c.hypervisor = strdup("xen");
	expect_invalid(&c, "--hypervisor: unknown hypervisor \"xen\"", NULL);
	free(c.hypervisor);
	c.hypervisor = NULL;
	expect_invalid(&c, "--hypervisor is not set", NULL);
	vm_config_free(&c);
}

/* Parsed through the flags: the console modes are accepted, a second tty is not. */
static void test_validate_console_flag(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	struct chv_err err;
	assert_int_equal(parse(&c, &err, ARGS("--kernel", f->kernel, "--console", "tty")), 0);
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);
	assert_int_equal(
	    parse(&c, &err, ARGS("--kernel", f->kernel, "--console", "socket=/tmp/x.sock")), 0);
	assert_int_equal(c.console.mode, CONSOLE_SOCKET);
	assert_string_equal(c.console.path, "/tmp/x.sock");
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);
	assert_int_equal(
	    parse(&c, &err, ARGS("--kernel", f->kernel, "--serial", "tty", "--console", "tty")), 0);
	expect_invalid(&c, "--console: tty is already taken by --serial tty", NULL);
	vm_config_free(&c);
}

/* --rng src=PATH: parsed as given, and validated as a readable character
 * device or regular file, naming --rng and the path. */
static void test_rng(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	struct chv_err err = {0};
	assert_int_equal(parse(&c, &err, ARGS("--kernel", f->kernel, "--rng", "src=/dev/random")),
			 0);
	assert_string_equal(c.rng.src, "/dev/random");
	assert_int_equal(vm_config_validate(&c, &err), 0);
	/* A regular file is a source too (replayable entropy for tests). */
	free(c.rng.src);
	c.rng.src = strdup(f->kernel);
	assert_int_equal(vm_config_validate(&c, &err), 0);
	free(c.rng.src);
	c.rng.src = strdup("/nonexistent/entropy");
	expect_invalid(&c, "--rng: src=/nonexistent/entropy", "No such file");
	free(c.rng.src);
	c.rng.src = strdup(f->dir);
	expect_invalid(&c, "--rng: src=", "is not a character device or a regular file");
	free(c.rng.src);
	c.rng.src = strdup("");
	expect_invalid(&c, "--rng: src= needs a path", NULL);
	free(c.rng.src);
	c.rng.src = NULL; /* the default, /dev/urandom */
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);

	/* The flag form of the same: a comma ends the path. */
	assert_int_equal(parse(&c, &err, ARGS("--kernel", f->kernel, "--rng=src=/nonexistent/x")),
			 0);
	expect_invalid(&c, "--rng: src=/nonexistent/x", NULL);
	vm_config_free(&c);
}

/* --disk: repeatable, parsed with CH's defaults, validated against the
 * vCPUs and the file system. */
static void test_disk(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	struct chv_err err = {0};
	char d0[256], d1[256], d2[256];
	snprintf(d0, sizeof(d0), "path=%s", f->initrd);
	snprintf(
	    d1, sizeof(d1),
	    "path=%s,readonly=on,direct=on,num_queues=2,queue_size=4,serial=12345678901234567890,"
	    "id=disk1",
	    f->kernel);
	snprintf(d2, sizeof(d2), "path=%s,queue_size=32768,readonly=off,direct=off", f->initrd);
	assert_int_equal(parse(&c, &err,
			       ARGS("--kernel", f->kernel, "--cpus", "boot=2", "--disk", d0,
				    "--disk", d1, "--disk", d2)),
			 0);
	assert_int_equal(c.ndisks, 3);
	assert_string_equal(c.disks[0].path, f->initrd);
	assert_false(c.disks[0].readonly);
	assert_false(c.disks[0].direct);
	assert_int_equal(c.disks[0].num_queues, 1);
	assert_int_equal(c.disks[0].queue_size, 128);
	assert_null(c.disks[0].serial);
	assert_null(c.disks[0].id);
	assert_true(c.disks[1].readonly);
	assert_true(c.disks[1].direct);
	assert_int_equal(c.disks[1].num_queues, 2);
	assert_int_equal(c.disks[1].queue_size, 4);
	assert_string_equal(c.disks[1].serial, "12345678901234567890");
	assert_string_equal(c.disks[1].id, "disk1");
	assert_int_equal(c.disks[2].queue_size, 32768);
	assert_int_equal(vm_config_validate(&c, &err), 0);

	/* num_queues above the boot vCPUs */
	c.cpus.boot = 1;
	expect_invalid(&c, "--disk: num_queues=2", "boot vCPUs");
	c.cpus.boot = 2;
	/* rules the parser enforces, checked again for configs built otherwise */
	c.disks[2].queue_size = 96;
	expect_invalid(&c, "--disk: queue_size=96", "power of two");
	c.disks[2].queue_size = 2;
	expect_invalid(&c, "--disk: queue_size=2", NULL);
	c.disks[2].queue_size = 128;
	c.disks[2].num_queues = 0;
	expect_invalid(&c, "--disk: num_queues=0", NULL);
	c.disks[2].num_queues = 1;
	free(c.disks[2].serial);
	c.disks[2].serial = strdup("123456789012345678901");
	expect_invalid(&c, "--disk: serial=123456789012345678901", "longer than 20");
	free(c.disks[2].serial);
	c.disks[2].serial = NULL;
	c.disks[2].id = strdup("disk1");
	expect_invalid(&c, "--disk: id=disk1", "twice");
	free(c.disks[2].id);
	c.disks[2].id = NULL;
	/* the path must exist and be a file or block device */
	free(c.disks[2].path);
	c.disks[2].path = strdup("/nonexistent/disk.img");
	expect_invalid(&c, "--disk: path=/nonexistent/disk.img", "No such file");
	free(c.disks[2].path);
	c.disks[2].path = strdup(f->dir);
	expect_invalid(&c, "--disk: path=", "not a regular file or a block device");
	free(c.disks[2].path);
	c.disks[2].path = strdup("");
	expect_invalid(&c, "--disk: path= is required", NULL);
	free(c.disks[2].path);
	c.disks[2].path = strdup(f->initrd);
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);
	assert_int_equal(c.ndisks, 0);

	/* At most CONFIG_MAX_DISKS; the ninth names --disk and its value. */
	const char *args[2 + 2 * (CONFIG_MAX_DISKS + 1) + 1] = {"--kernel", f->kernel};
	int n = 2;
	for (int i = 0; i <= CONFIG_MAX_DISKS; i++) {
		args[n++] = "--disk";
		args[n++] = d0;
	}
	args[n] = NULL;
	assert_int_equal(parse(&c, &err, args), -EINVAL);
	assert_int_equal(c.ndisks, CONFIG_MAX_DISKS);
	assert_non_null(strstr(err.msg, "--disk: more than 8 disks"));
	assert_non_null(strstr(err.msg, d0));
	args[n - 2] = NULL;
	vm_config_free(&c);
	assert_int_equal(parse(&c, &err, args), 0);
	assert_int_equal(c.ndisks, CONFIG_MAX_DISKS);
	assert_int_equal(vm_config_validate(&c, &err), 0);
	vm_config_free(&c);

	/* A failing --disk leaves nothing behind (ASan checks the leak). */
	assert_int_equal(
	    parse(&c, &err,
		  ARGS("--kernel", f->kernel, "--disk", "path=/x,serial=s,id=i,direct=2")),
	    -EINVAL);
	assert_int_equal(c.ndisks, 0);
	vm_config_free(&c);
}

static void test_net_parse(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;
	assert_int_equal(
	    parse(&c, &err,
		  ARGS("--net",
		       "tap=chv0,mac=52:54:00:AB:cd:ef,ip=192.168.4.1,mask=255.255.255.0,"
		       "mtu=9000,num_queues=4,queue_size=1024,id=eth0,host_mac=02:00:00:00:00:"
		       "01,offload_tso=off,bw_size=1000000,bw_refill_time=100",
		       "--net", "fd=3:4:5", "--net=offload_csum=off", "--net",
		       "tap=chv1,rate_limit_group=g0,offload_ufo=off", "--rate-limit-group",
		       "id=g0,ops_size=100,ops_refill_time=10,ops_one_time_burst=5")),
	    0);
	assert_int_equal(c.nnets, 4);
	const struct net_config *n = &c.nets[0];
	assert_string_equal(n->tap, "chv0");
	assert_memory_equal(n->mac, ((uint8_t[]){0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}), 6);
	assert_true(n->has_host_mac);
	assert_memory_equal(n->host_mac, ((uint8_t[]){2, 0, 0, 0, 0, 1}), 6);
	assert_string_equal(n->ip, "192.168.4.1");
	assert_string_equal(n->mask, "255.255.255.0");
	assert_int_equal(n->mtu, 9000);
	assert_int_equal(n->num_queues, 4);
	assert_int_equal(n->queue_size, 1024);
	assert_string_equal(n->id, "eth0");
	assert_false(n->offload_tso);
	assert_true(n->offload_ufo);
	assert_true(n->offload_csum);
	assert_int_equal(n->rl.bw.size, 1000000);
	assert_int_equal(n->rl.bw.refill_ms, 100);
	assert_int_equal(n->rl.ops.size, 0);
	assert_null(n->rl_group);
	assert_int_equal(n->nfds, 0);

	/* fd= alone: one pair per fd, no tap name. */
	n = &c.nets[1];
	assert_null(n->tap);
	assert_int_equal(n->nfds, 3);
	assert_int_equal(n->fds[0], 3);
	assert_int_equal(n->fds[2], 5);
	assert_int_equal(n->num_queues, 6);
	/* The defaults; offload_csum=off takes the others with it. */
	n = &c.nets[2];
	assert_null(n->tap);
	assert_null(n->ip);
	assert_null(n->id);
	assert_false(n->has_host_mac);
	assert_int_equal(n->mtu, 0);
	assert_int_equal(n->num_queues, 2);
	assert_int_equal(n->queue_size, 256);
	assert_false(n->offload_csum);
	assert_false(n->offload_tso);
	assert_false(n->offload_ufo);
	assert_false(rl_config_active(&n->rl));
	/* A random MAC: unicast, locally administered, different each time. */
	assert_int_equal(n->mac[0] & 3, 2);
	assert_memory_not_equal(n->mac, c.nets[1].mac, 6);
	n = &c.nets[3];
	assert_true(n->offload_csum);
	assert_true(n->offload_tso);
	assert_false(n->offload_ufo);
	assert_string_equal(n->rl_group, "g0");
	assert_int_equal(c.nrl_groups, 1);
	assert_string_equal(c.rl_groups[0].id, "g0");
	assert_int_equal(c.rl_groups[0].rl.ops.size, 100);
	assert_int_equal(c.rl_groups[0].rl.ops.refill_ms, 10);
	assert_int_equal(c.rl_groups[0].rl.ops.one_time_burst, 5);
	assert_int_equal(c.rl_groups[0].rl.bw.size, 0);
	vm_config_free(&c);
	assert_int_equal(c.nnets, 0);
	assert_int_equal(c.nrl_groups, 0);

	/* At most CONFIG_MAX_NETS; the ninth names --net and its value. */
	const char *args[2 * (CONFIG_MAX_NETS + 1) + 1];
	int k = 0;
	for (int i = 0; i <= CONFIG_MAX_NETS; i++) {
		args[k++] = "--net";
		args[k++] = "id=x,ip=10.1.1.1";
	}
	args[k] = NULL;
	assert_int_equal(parse(&c, &err, args), -EINVAL);
	assert_int_equal(c.nnets, CONFIG_MAX_NETS);
	assert_non_null(strstr(err.msg, "--net: more than 8 devices"));
	assert_non_null(strstr(err.msg, "id=x,ip=10.1.1.1"));
	vm_config_free(&c);

	/* A --net failing late leaves nothing behind (ASan checks the leak). */
	assert_int_equal(parse(&c, &err,
			       ARGS("--net", "tap=t,ip=10.0.0.1,mask=255.0.0.0,id=i,"
					     "rate_limit_group=g,mtu=1")),
			 -EINVAL);
	assert_int_equal(c.nnets, 0);
	vm_config_free(&c);
	assert_int_equal(
	    parse(&c, &err, ARGS("--rate-limit-group", "id=g,bw_size=1,bw_refill_time=x")),
	    -EINVAL);
	assert_int_equal(c.nrl_groups, 0);
	vm_config_free(&c);
}

static void test_net_validate(void **state)
{
	struct files *f = *state;
	struct vm_config c;
	struct chv_err err = {0};
	char disk[160];
	snprintf(disk, sizeof(disk), "path=%s,id=d0,rate_limit_group=g1", f->initrd);
	assert_int_equal(
	    parse(&c, &err,
		  ARGS("--kernel", f->kernel, "--cpus", "boot=2", "--disk", disk, "--net",
		       "tap=t0,num_queues=4,id=n0", "--net", "tap=t1,rate_limit_group=g1",
		       "--rate-limit-group", "id=g1,bw_size=1000,bw_refill_time=10")),
	    0);
	assert_int_equal(vm_config_validate(&c, &err), 0);

	/* queue pairs against the boot vCPUs */
	c.cpus.boot = c.cpus.max = 1;
	c.cpus.topology.cores_per_die = 1;
	expect_invalid(&c, "--net: num_queues=4", "2 queue pairs, more than the 1 boot vCPUs");
	c.cpus.boot = c.cpus.max = c.cpus.topology.cores_per_die = 2;
	/* ids are unique across devices */
	free(c.nets[0].id);
	c.nets[0].id = strdup("d0");
	expect_invalid(&c, "--net: id=d0", "used twice");
	free(c.nets[1].id);
	c.nets[1].id = strdup("d1");
	free(c.nets[0].id);
	c.nets[0].id = strdup("d1");
	expect_invalid(&c, "--net: id=d1", "used twice");
	free(c.nets[1].id);
	c.nets[1].id = NULL;
	assert_int_equal(vm_config_validate(&c, &err), 0);
	/* one tap, one device */
	free(c.nets[1].tap);
	c.nets[1].tap = strdup("t0");
	expect_invalid(&c, "--net: tap=t0", "two devices");
	free(c.nets[1].tap);
	c.nets[1].tap = NULL; /* two new taps */
	assert_int_equal(vm_config_validate(&c, &err), 0);
	/* groups: defined, not with own limits */
	free(c.nets[1].rl_group);
	c.nets[1].rl_group = strdup("g2");
	expect_invalid(&c, "--net: rate_limit_group=g2", "not defined");
	free(c.disks[0].rl_group);
	c.disks[0].rl_group = strdup("nope");
	expect_invalid(&c, "--disk: rate_limit_group=nope", "not defined");
	free(c.disks[0].rl_group);
	c.disks[0].rl_group = strdup("g1");
	free(c.nets[1].rl_group);
	c.nets[1].rl_group = strdup("g1");
	c.nets[1].rl.ops = (struct rl_bucket_config){10, 0, 10};
	expect_invalid(&c, "--net: rate_limit_group=g1", "exclusive");
	c.nets[1].rl.ops.refill_ms = 0;
	expect_invalid(&c, "--net:", "ops_refill_time");
	c.nets[1].rl.ops = (struct rl_bucket_config){0};
	c.rl_groups[0].rl.bw = (struct rl_bucket_config){0};
	expect_invalid(&c, "--rate-limit-group: id=g1", "sets no limit");
	c.rl_groups[0].rl.bw = (struct rl_bucket_config){1000, 0, 10};
	assert_int_equal(vm_config_parse_rl_group(&c, "id=g1,ops_size=1,ops_refill_time=1", &err),
			 0);
	expect_invalid(&c, "--rate-limit-group: id=g1", "used twice");
	free(c.rl_groups[1].id);
	c.rl_groups[1].id = strdup("g3");
	assert_int_equal(vm_config_validate(&c, &err), 0);
	/* The parser's rules again, for configs built by other means. */
	struct net_config *n = &c.nets[1];
	n->num_queues = 3;
	expect_invalid(&c, "--net: num_queues=3", "even");
	n->num_queues = 2;
	n->queue_size = 48;
	expect_invalid(&c, "--net: queue_size=48", "power of two");
	n->queue_size = 256;
	n->mac[0] = 0x01;
	expect_invalid(&c, "--net: mac=01:", "multicast");
	memset(n->mac, 0, 6);
	expect_invalid(&c, "--net: mac=00:00:00:00:00:00", "not a valid");
	n->mac[0] = 0x02;
	n->mtu = 20;
	expect_invalid(&c, "--net: mtu=20", "out of range");
	n->mtu = 0;
	n->offload_csum = false;
	expect_invalid(&c, "--net: offload_tso=on", "offload_csum=on");
	n->offload_tso = n->offload_ufo = false;
	n->mask = strdup("255.255.0.0");
	expect_invalid(&c, "--net: mask=255.255.0.0", "needs ip=");
	n->ip = strdup("10.0.0.300");
	expect_invalid(&c, "--net: ip=10.0.0.300", "IPv4");
	free(n->ip);
	n->ip = strdup("10.0.0.1");
	n->fds[0] = 7;
	n->nfds = 1;
	assert_int_equal(vm_config_validate(&c, &err), 0);
	n->nfds = 2;
	n->fds[1] = 8;
	expect_invalid(&c, "--net: 2 fds for num_queues=2", NULL);
	n->nfds = 1;
	n->fds[0] = 1;
	expect_invalid(&c, "--net: fd=1", "standard");
	n->fds[0] = 7;
	n->tap = strdup("t9");
	expect_invalid(&c, "--net: tap=t9 and fd= are exclusive", NULL);
	vm_config_free(&c);
}

/* The MAC and group helpers that the API conversion shares. */
static void test_net_helpers(void **state)
{
	(void)state;
	struct chv_err err = {0};
	const uint8_t ok[6] = {0x52, 0x54, 0, 0, 0, 1}, multi[6] = {0x33, 0x33, 0, 0, 0, 1};
	const uint8_t zero[6] = {0};
	assert_int_equal(vm_config_check_mac("--net", "mac", ok, &err), 0);
	assert_int_equal(vm_config_check_mac("--net", "host_mac", multi, &err), -EINVAL);
	assert_string_equal(err.msg, "--net: host_mac=33:33:00:00:00:01 is a multicast address");
	assert_int_equal(vm_config_check_mac("config.nets[0].mac", NULL, zero, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "config.nets[0].mac: 00:00:00:00:00:00 is not a valid address");

	struct vm_config c;
	vm_config_init(&c);
	assert_null(vm_config_find_rl_group(&c, "g"));
	assert_int_equal(vm_config_parse_rl_group(&c, "id=g,bw_size=1,bw_refill_time=1", &err), 0);
	assert_int_equal(vm_config_parse_rl_group(&c, "id=h,ops_size=1,ops_refill_time=1", &err),
			 0);
	assert_ptr_equal(vm_config_find_rl_group(&c, "h"), &c.rl_groups[1]);
	assert_ptr_equal(vm_config_find_rl_group(&c, "g"), &c.rl_groups[0]);
	assert_null(vm_config_find_rl_group(&c, "gh"));
	vm_config_free(&c);
}

static void test_free_partial(void **state)
{
	(void)state;
	struct vm_config c;
	struct chv_err err;

	/* A parse that fails half-way leaves strings to free (ASan checks). */
	assert_int_equal(parse(&c, &err,
			       ARGS("--kernel", "k", "--initramfs", "i", "--cmdline", "c",
				    "--serial", "file=/s", "--log-file", "l", "--cpus", "x")),
			 -EINVAL);
	assert_non_null(c.payload.kernel);
	vm_config_free(&c);
	assert_null(c.payload.kernel);
	assert_null(c.payload.initramfs);
	assert_null(c.payload.cmdline);
	assert_null(c.serial.path);
	assert_null(c.log_file);
	assert_null(c.hypervisor);
	vm_config_free(&c); /* idempotent */

	memset(&c, 0, sizeof(c)); /* never initialised beyond zero */
	vm_config_free(&c);
	vm_config_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_no_args),
	    cmocka_unit_test(test_full_space_form),
	    cmocka_unit_test(test_full_equals_form),
	    cmocka_unit_test(test_values_and_modes),
	    cmocka_unit_test(test_direct_parsers),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_optparse_numbers),
	    cmocka_unit_test(test_bad_inputs),
	    cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_usage),
	    cmocka_unit_test_setup_teardown(test_validate_ok, files_setup, files_teardown),
	    cmocka_unit_test_setup_teardown(test_validate_payload, files_setup, files_teardown),
	    cmocka_unit_test_setup_teardown(test_validate_cpus, files_setup, files_teardown),
	    cmocka_unit_test_setup_teardown(test_validate_memory, files_setup, files_teardown),
	    cmocka_unit_test_setup_teardown(test_validate_consoles, files_setup, files_teardown),
	    cmocka_unit_test_setup_teardown(test_validate_console_flag, files_setup,
					    files_teardown),
	    cmocka_unit_test_setup_teardown(test_rng, files_setup, files_teardown),
	    cmocka_unit_test_setup_teardown(test_disk, files_setup, files_teardown),
	    cmocka_unit_test(test_net_parse),
	    cmocka_unit_test_setup_teardown(test_net_validate, files_setup, files_teardown),
	    cmocka_unit_test(test_net_helpers),
	    cmocka_unit_test(test_free_partial),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
