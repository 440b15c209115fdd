#include <string.h>

#include "vm/hv.h"

extern const struct hv_ops hv_kvm_ops;

static const struct hv_ops *const hv_backends[] = {
    &hv_kvm_ops,
};

const struct hv_ops *hv_backend(const char *name)
{
	for (size_t i = 0; i < sizeof(hv_backends) / sizeof(hv_backends[0]); i++)
		if (!strcmp(hv_backends[i]->name, name))
			return hv_backends[i];
	return NULL;
}
