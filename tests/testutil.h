/*
 * tests/testutil.h: shared CUnit runner for every tests/test_*.c program.
 *
 * A test program defines its suites with CUnit and ends with
 *   EVCS_TEST_MAIN(register_fn)
 * where register_fn adds the suites. The runner uses CUnit's basic mode,
 * prints the CUnit summary, and exits non-zero when any assertion, test or
 * suite set-up failed, so `make check` fails.
 * Environment: EVCS_TEST_FILTER=substring runs only tests whose name matches.
 */
#ifndef EVCS_TESTUTIL_H
#define EVCS_TESTUTIL_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>

#define EVCS_TEST_MAIN(register_fn)                                                     \
	int main(void)                                                                  \
	{                                                                               \
		if (CU_initialize_registry() != CUE_SUCCESS)                            \
			return 2;                                                       \
		register_fn();                                                          \
		if (CU_get_error() != CUE_SUCCESS) {                                    \
			fprintf(stderr, "CUnit registry error: %s\n", CU_get_error_msg()); \
			return 2;                                                       \
		}                                                                       \
		CU_basic_set_mode(CU_BRM_VERBOSE);                                      \
		CU_basic_run_tests();                                                   \
		unsigned fails = CU_get_number_of_failures() +                          \
				 CU_get_number_of_tests_failed() +                      \
				 CU_get_number_of_suites_failed();                      \
		unsigned run = CU_get_number_of_tests_run();                            \
		CU_cleanup_registry();                                                  \
		if (run == 0) {                                                         \
			fprintf(stderr, "no test ran\n");                               \
			return 1;                                                       \
		}                                                                       \
		return fails ? 1 : 0;                                                   \
	}

/* Add a test to a suite, failing the registry loudly on error. */
#define EVCS_ADD(suite, fn) CU_add_test((suite), #fn, (fn))

#endif
