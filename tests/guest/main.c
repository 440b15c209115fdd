/* C entry of the BSP: set up, read the boot data, run the checks, act. */
#include "guest.h"

void kmain(void);

static struct options opts;

static uint64_t early_user(void *arg)
{
	(void)arg;
	bootinfo_parse(&g_boot);
	options_parse(g_boot.have_cmdline ? g_boot.cmdline : "", &opts);
	return 0;
}

void kmain(void)
{
	console_init();
	progress(PROGRESS_ENTRY);
	cpu_init();
	/* Parsing walks strings byte by byte: cheaper at CPL3. */
	user_call(early_user, NULL);
	/* Needed by every final action, so done whatever the checks are. */
	acpi_discover(g_boot.rsdp_pa, &g_acpi);
	checks_run(&opts);
	progress(PROGRESS_DONE);
	do_action(opts.action);
}
