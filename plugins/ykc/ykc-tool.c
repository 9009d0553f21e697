/*
 * plugins/ykc/ykc-tool.c: noinst driver for `evcsctl ykc` during development and
 * tests. `ykc-tool ykc decode HEX` (the evcsctl argument shape) and the shorter
 * `ykc-tool decode HEX` both run evcs_ykc_cli_main with argv[0] in the "ykc" slot.
 */
#include "codec.h"

#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "ykc") == 0)
		return evcs_ykc_cli_main(argc - 1, argv + 1);
	return evcs_ykc_cli_main(argc, argv);
}
