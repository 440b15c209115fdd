/* The VM configuration as the API carries it (chv.v1.VmConfig) and as the VM
 * core uses it (struct vm_config): one conversion each way, so chvd, the
 * worker and chvctl check a configuration with the same rules as chv-vmm. */
#ifndef CHV_VM_CONFIG_PROTO_H
#define CHV_VM_CONFIG_PROTO_H

#include "chv/v1/vm.pb-c.h"
#include "vm/config.h"

/* Fills c (already vm_config_init()ed) from p, applying the API's defaults
 * for zero values. Errors name the field path and the value, e.g.
 * "config.cpus.boot_vcpus: 0 is out of range (1..255)" or
 * "config.fs: not supported yet". Does not run vm_config_validate(). */
chv_must_check int vm_config_from_proto(struct vm_config *c, const Chv__V1__VmConfig *p,
					struct chv_err *err);

/* A heap-allocated chv.v1.VmConfig equal to c; free with vm_config_proto_free(). */
chv_must_check int vm_config_to_proto(const struct vm_config *c, Chv__V1__VmConfig **out);
void vm_config_proto_free(Chv__V1__VmConfig *p);

#endif
