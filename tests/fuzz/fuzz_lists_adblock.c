/* fuzz_lists_adblock.c -- libFuzzer harness: any bytes as a adblock-format list. */
#define FUZZ_LISTS_FORMAT LISTS_ADBLOCK
#include "fuzz_lists.h"
