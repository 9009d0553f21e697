#include "log.h"
int evcs_log_placeholder;
