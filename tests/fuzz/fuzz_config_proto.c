/* The API's VmConfig (vm/config_proto.c): bytes are unpacked with
 * protobuf-c as chv.v1.VmConfig, converted to the VM core's configuration,
 * validated with the paths made harmless (fz_common.h), and a valid one is
 * converted back, packed and unpacked again: that must work and convert to
 * the same configuration. Everything is freed (LeakSanitizer is on). */
#include <stdlib.h>

#include "fz_common.h"
#include "vm/config_proto.h"

static void round_trip(const struct vm_config *c)
{
	Chv__V1__VmConfig *p = NULL;
	struct chv_err err = {0};

	if (vm_config_to_proto(c, &p))
		fz_fail("vm_config_to_proto failed on a valid configuration");
	size_t n = chv__v1__vm_config__get_packed_size(p);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		fz_fail("out of memory");
	if (chv__v1__vm_config__pack(p, buf) != n)
		fz_fail("packed size changed");
	Chv__V1__VmConfig *q = chv__v1__vm_config__unpack(NULL, n, buf);
	if (!q)
		fz_fail("our own packed VmConfig does not unpack");
	struct vm_config back;
	vm_config_init(&back);
	if (vm_config_from_proto(&back, q, &err))
		fz_fail("a valid configuration does not come back: %s", err.msg);
	if (back.cpus.boot != c->cpus.boot || back.cpus.max != c->cpus.max ||
	    back.memory.size != c->memory.size || back.ndisks != c->ndisks ||
	    back.serial.mode != c->serial.mode || back.console.mode != c->console.mode)
		fz_fail("the round trip changed the configuration");
	vm_config_free(&back);
	chv__v1__vm_config__free_unpacked(q, NULL);
	free(buf);
	vm_config_proto_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chv_err err = {0};
	struct vm_config c;

	fz_quiet_log();
	Chv__V1__VmConfig *p = chv__v1__vm_config__unpack(NULL, size, data);
	if (!p)
		return 0;
	vm_config_init(&c);
	int rc = vm_config_from_proto(&c, p, &err);
	if (rc < 0 && !err.msg[0])
		fz_fail("vm_config_from_proto failed with %d and no message", rc);
	if (rc == 0) {
		fz_config_safe_paths(&c);
		rc = vm_config_validate(&c, &err);
		if (rc < 0 && !err.msg[0])
			fz_fail("vm_config_validate failed with %d and no message", rc);
		if (rc == 0)
			round_trip(&c);
		else
			fz_debug("invalid: %s", err.msg);
	} else {
		fz_debug("from_proto: %s", err.msg);
	}
	vm_config_free(&c);
	chv__v1__vm_config__free_unpacked(p, NULL);
	return 0;
}
