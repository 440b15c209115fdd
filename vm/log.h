/* Logging for chv-vmm: one line per message, written with one write(2) so
 * lines from different threads never interleave; the time is seconds since
 * log_init() (the VMM's start), as boot-time measurements want. */
#ifndef CHV_VM_LOG_H
#define CHV_VM_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG, LOG_TRACE };

/* verbosity: 0 shows errors and warnings, each -v one level more. path NULL:
 * stderr. Returns 0 or -errno (the file could not be opened). */
int log_init(int verbosity, const char *path);
void log_close(void);
int log_enabled(enum log_level lvl);
__attribute__((format(printf, 2, 3))) void log_msg(enum log_level lvl, const char *fmt, ...);
/* Seconds since log_init(). */
double log_uptime(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
