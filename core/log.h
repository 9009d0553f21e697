#ifndef EVCS_LOG_H
#define EVCS_LOG_H
#endif
