/* fuzz_config.c -- libFuzzer harness for the YAML configuration loader */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* config_load reads a path, so each input goes into one memory-backed file
 * (reopened through /proc/self/fd), which spares the disk a write per run. */
static int fuzz_fd = -1;
static char fuzz_path[64];
static FILE *fuzz_null;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_fd < 0) {
		fuzz_fd = memfd_create("fuzz_config", 0);
		fuzz_null = fopen("/dev/null", "w");
		if (fuzz_fd < 0 || fuzz_null == NULL)
			abort();
		snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d", fuzz_fd);
	}
	if (ftruncate(fuzz_fd, 0) != 0 || pwrite(fuzz_fd, data, size, 0) != (ssize_t)size)
		abort();

	struct config *cfg = NULL;
	int n = config_load(fuzz_path, &cfg, fuzz_null);
	/* The contract: either a config and 0, or no config and a count. */
	if ((n == 0) != (cfg != NULL) || n < 0)
		abort();
	config_free(cfg);
	return 0;
}
