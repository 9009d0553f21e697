/*
 * core/script_tool.c: a stand-alone driver for `evcsctl script ...`, so the
 * subcommand can be used and tested before evcsctl dispatches to it.
 * Usage: script-tool check|quote|slots ... (same as `evcsctl script`).
 */
#include "script.h"

int main(int argc, char **argv)
{
	argv[0] = "script";
	return evcs_script_cli_main(argc, argv);
}
