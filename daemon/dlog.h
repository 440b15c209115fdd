/* chvd's log: to the journal with structured fields (CHV_VM_ID, PRIORITY)
 * when journald is there, else one line per message on stderr. */
#ifndef CHV_DAEMON_DLOG_H
#define CHV_DAEMON_DLOG_H

enum dlog_level { DLOG_ERR = 3, DLOG_WARNING = 4, DLOG_NOTICE = 5, DLOG_INFO = 6, DLOG_DEBUG = 7 };

/* verbosity: 0 = notice and above, 1 = info, 2 = debug. journal: -1 auto
 * (when stderr is connected to the journal), 0 never, 1 always. */
void dlog_init(int verbosity, int journal);
/* vm_id may be NULL. */
__attribute__((format(printf, 3, 4))) void dlog(enum dlog_level lvl, const char *vm_id,
						const char *fmt, ...);

#endif
