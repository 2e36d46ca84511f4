/* fuzz_lists_rpz.c -- libFuzzer harness: any bytes as a rpz-format list. */
#define FUZZ_LISTS_FORMAT LISTS_RPZ
#include "fuzz_lists.h"
