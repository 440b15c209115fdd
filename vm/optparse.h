/* The lexer for Cloud Hypervisor's option values: "key=value,key=value"
 * against a fixed list of keys, plus the strict number and boolean parsers
 * the option parser shares. Every error names the option, the key and the
 * value as the person typed them. */
#ifndef CHV_VM_OPTPARSE_H
#define CHV_VM_OPTPARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "vm/err.h"

#define OPTPARSE_MAX_KEYS 24

struct optparse_kv {
	char *buf;			    /* heap copy of the value, split in place */
	const char *val[OPTPARSE_MAX_KEYS]; /* by index in keys; NULL when not given */
};

/* Splits v ("boot=2,max=4") by keys (NULL-terminated, at most
 * OPTPARSE_MAX_KEYS). Refuses an empty value, empty items, items without
 * '=', unknown keys, duplicate keys and empty values. kv is always safe to
 * pass to optparse_kv_free(), on failure too. */
chv_must_check int optparse_kv_split(struct optparse_kv *kv, const char *opt, const char *v,
				     const char *const *keys, struct chv_err *err);
void optparse_kv_free(struct optparse_kv *kv);

/* Strict unsigned decimal: digits only, no sign, no spaces, no suffix.
 * -EINVAL when not a number, -ERANGE when it does not fit. */
chv_must_check int optparse_u64(const char *s, uint64_t *out);

/* "opt: key=s ..." errors; key may be NULL for an option's whole value. */
chv_must_check int optparse_u32(const char *opt, const char *key, const char *s, uint32_t min,
				uint32_t max, uint32_t *out, struct chv_err *err);
/* on|off|true|false. */
chv_must_check int optparse_bool(const char *opt, const char *key, const char *s, bool *out,
				 struct chv_err *err);

#endif
