#include "vm/optparse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void optparse_kv_free(struct optparse_kv *kv)
{
	free(kv->buf);
	memset(kv, 0, sizeof(*kv));
}

static int key_index(const char *const *keys, const char *key)
{
	for (int i = 0; keys[i]; i++)
		if (strcmp(keys[i], key) == 0)
			return i;
	return -1;
}

int optparse_kv_split(struct optparse_kv *kv, const char *opt, const char *v,
		      const char *const *keys, struct chv_err *err)
{
	memset(kv, 0, sizeof(*kv));
	if (!v || !*v)
		return chv_err_set(err, -EINVAL, "%s: empty value", opt);
	kv->buf = strdup(v);
	if (!kv->buf)
		return chv_err_set(err, -ENOMEM, "%s: out of memory", opt);

	char *item = kv->buf;
	for (;;) {
		char *comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		if (!*item)
			return chv_err_set(err, -EINVAL, "%s: empty item in \"%s\"", opt, v);
		char *eq = strchr(item, '=');
		if (!eq)
			return chv_err_set(err, -EINVAL, "%s: \"%s\" is not key=value in \"%s\"",
					   opt, item, v);
		*eq = '\0';
		int i = key_index(keys, item);
		if (i < 0)
			return chv_err_set(err, -EINVAL, "%s: unknown key \"%s\" in \"%s\"", opt,
					   item, v);
		if (kv->val[i])
			return chv_err_set(err, -EINVAL, "%s: key \"%s\" given twice in \"%s\"",
					   opt, item, v);
		if (!eq[1])
			return chv_err_set(err, -EINVAL, "%s: %s= needs a value in \"%s\"", opt,
					   item, v);
		kv->val[i] = eq + 1;
		if (!comma)
			return 0;
		item = comma + 1;
	}
}

int optparse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s)
		return -EINVAL;
	uint64_t n = 0;
	bool overflow = false;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, *p - '0', &n))
			overflow = true;
	}
	if (overflow)
		return -ERANGE;
	*out = n;
	return 0;
}

/* "--cpus: boot=" or "--hypervisor: " as the start of a message. */
#define KEYFMT(key) (key) ? (key) : "", (key) ? "=" : ""

int optparse_u32(const char *opt, const char *key, const char *s, uint32_t min, uint32_t max,
		 uint32_t *out, struct chv_err *err)
{
	uint64_t n;
	/* A leading '-' is a number out of range, not garbage: say so. */
	int rc = optparse_u64(s[0] == '-' ? s + 1 : s, &n);
	if (rc == -EINVAL)
		return chv_err_set(err, -EINVAL, "%s: %s%s%s is not a number", opt, KEYFMT(key), s);
	if (rc == -ERANGE || s[0] == '-' || n < min || n > max)
		return chv_err_set(err, -EINVAL, "%s: %s%s%s is out of range (%u..%u)", opt,
				   KEYFMT(key), s, min, max);
	*out = (uint32_t)n;
	return 0;
}

int optparse_bool(const char *opt, const char *key, const char *s, bool *out, struct chv_err *err)
{
	if (strcmp(s, "on") == 0 || strcmp(s, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0) {
		*out = false;
		return 0;
	}
	return chv_err_set(err, -EINVAL, "%s: %s%s%s is not a boolean (on, off, true or false)",
			   opt, KEYFMT(key), s);
}
