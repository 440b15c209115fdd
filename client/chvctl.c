/* chvctl: the command-line client of chvd. */
#include <stdio.h>
#include <stdlib.h>

#include "client/chvctl.h"

int main(int argc, char **argv)
{
	/* gRPC's getaddrinfo resolver for tcp:// names: it follows the host's
	 * nsswitch setup, and c-ares leaks at exit (LeakSanitizer fails us). */
	setenv("GRPC_DNS_RESOLVER", "native", 0);
	return chvctl_main(argc, argv, stdout, stderr);
}
