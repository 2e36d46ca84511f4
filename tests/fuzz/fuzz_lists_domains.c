/* fuzz_lists_domains.c -- libFuzzer harness: any bytes as a domains-format list. */
#define FUZZ_LISTS_FORMAT LISTS_DOMAINS
#include "fuzz_lists.h"
