/* Error objects: a fallible function returns 0 or -errno and, where the caller
 * needs to tell a person what went wrong, fills a struct chv_err whose message
 * names the field or option and the value. Log once, where the error is handled. */
#ifndef CHV_VM_ERR_H
#define CHV_VM_ERR_H

#include <stdarg.h>
#include <stdio.h>

#define chv_must_check __attribute__((warn_unused_result))

struct chv_err {
	int code; /* negative errno */
	char msg[512];
};

/* Sets err (when non-NULL) and returns code, so callers can write
 * `return chv_err_set(err, -EINVAL, "--memory: size=%s is not a size", v);` */
__attribute__((format(printf, 3, 4))) static inline int chv_err_set(struct chv_err *err, int code,
								    const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

#endif
