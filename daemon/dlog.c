#include "daemon/dlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

static int dlog_max = DLOG_NOTICE;
static int dlog_journal;

/* JOURNAL_STREAM names the device:inode of the journal stream systemd gave
 * us as stderr; when stderr is still that stream, log to the journal. */
static int stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long dev, ino;
	struct stat st;
	if (!js || sscanf(js, "%lu:%lu", &dev, &ino) != 2 || fstat(2, &st) < 0)
		return 0;
	return st.st_dev == dev && st.st_ino == ino;
}

void dlog_init(int verbosity, int journal)
{
	dlog_max = DLOG_NOTICE + (verbosity > 2 ? 2 : verbosity);
	dlog_journal = journal < 0 ? stderr_is_journal() : journal;
}

void dlog(enum dlog_level lvl, const char *vm_id, const char *fmt, ...)
{
	if ((int)lvl > dlog_max)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (dlog_journal) {
		if (vm_id)
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", (int)lvl, "CHV_VM_ID=%s",
					vm_id, "SYSLOG_IDENTIFIER=chvd", NULL);
		else
			sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", (int)lvl,
					"SYSLOG_IDENTIFIER=chvd", NULL);
		return;
	}
	static const char *const names[8] = {"emerg",	"alert",  "crit", "error",
					     "warning", "notice", "info", "debug"};
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	struct tm tm;
	gmtime_r(&t.tv_sec, &tm);
	char line[2300];
	int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld chvd: %s: %s%s%s%s\n",
			 tm.tm_hour, tm.tm_min, tm.tm_sec, t.tv_nsec / 1000000, names[lvl],
			 vm_id ? "vm " : "", vm_id ? vm_id : "", vm_id ? ": " : "", msg);
	if (n > (int)sizeof(line))
		n = sizeof(line);
	ssize_t w = write(2, line, (size_t)n);
	(void)w;
}
