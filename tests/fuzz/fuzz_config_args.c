/* chv-vmm's option parser (vm/config.c, vm/optparse.c): the input is split
 * at NUL bytes into argv words ("--cpus\0boot=2,max=4\0--disk\0path=x"),
 * parsed, then validated with the paths made harmless (fz_common.h) and,
 * when valid, converted to the API's VmConfig and back, which must give the
 * same configuration. */
#include <stdlib.h>
#include <string.h>

#include "fz_common.h"
#include "vm/config_proto.h"

#define MAX_ARGS 64

static void round_trip(const struct vm_config *c)
{
	Chv__V1__VmConfig *p = NULL;
	struct vm_config back;
	struct chv_err err = {0};

	/* --net fd= is chv-vmm's alone: the API refuses file descriptors. */
	for (uint32_t i = 0; i < c->nnets; i++)
		if (c->nets[i].nfds)
			return;

	if (vm_config_to_proto(c, &p))
		fz_fail("vm_config_to_proto failed on a valid configuration");
	vm_config_init(&back);
	if (vm_config_from_proto(&back, p, &err))
		fz_fail("a valid configuration does not come back from the API form: %s", err.msg);
	if (back.cpus.boot != c->cpus.boot || back.cpus.max != c->cpus.max ||
	    back.memory.size != c->memory.size || back.ndisks != c->ndisks ||
	    back.nnets != c->nnets || back.serial.mode != c->serial.mode ||
	    back.console.mode != c->console.mode)
		fz_fail("the API form changed the configuration");
	vm_config_free(&back);
	vm_config_proto_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	struct vm_config c;
	struct chv_err err = {0};

	if (!buf)
		return 0;
	fz_quiet_log();
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "chv-vmm";
	for (size_t i = 0; i < size && argc < MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;

	vm_config_init(&c);
	int rc = vm_config_parse_args(&c, argc, argv, &err);
	if (rc < 0 && !err.msg[0])
		fz_fail("parse failed with %d and no message", rc);
	if (rc == 0) {
		fz_config_safe_paths(&c);
		rc = vm_config_validate(&c, &err);
		if (rc < 0 && !err.msg[0])
			fz_fail("validate failed with %d and no message", rc);
		if (rc == 0)
			round_trip(&c);
		else
			fz_debug("invalid: %s", err.msg);
	} else {
		fz_debug("parse: %d %s", rc, err.msg);
	}
	vm_config_free(&c);
	free(buf);
	return 0;
}
