/*
 * tests/testproc.h: process and socket helpers shared by the test programs (tests/testproc.c;
 * libc only, so programs that do not link the core can use it too).
 *   test_free_port()  a TCP port on 127.0.0.1 that was free a moment ago (bound, read, closed);
 *                     -1 when no socket could be bound.
 *   test_wait_exit()  waits up to secs seconds for child pid: its exit status, 128 + the signal
 *                     that killed it, or -1 after killing it with SIGKILL when it did not stop.
 *   test_file_has()   polls the file at path (its first 128 KiB) up to tries times, 20 ms apart,
 *                     for the text s: 1 when it appeared, 0 when not.
 */
#ifndef EVCS_TESTPROC_H
#define EVCS_TESTPROC_H

#include <sys/types.h>

int test_free_port(void);
int test_wait_exit(pid_t pid, int secs);
int test_file_has(const char *path, const char *s, int tries);

#endif
