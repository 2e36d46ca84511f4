/* fuzz_lists_hosts.c -- libFuzzer harness: any bytes as a hosts-format list. */
#define FUZZ_LISTS_FORMAT LISTS_HOSTS
#include "fuzz_lists.h"
