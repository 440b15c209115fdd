/* chvctl: the command-line client of chvd. */
#include <stdio.h>

#include "client/chvctl.h"

int main(int argc, char **argv)
{
	return chvctl_main(argc, argv, stdout, stderr);
}
