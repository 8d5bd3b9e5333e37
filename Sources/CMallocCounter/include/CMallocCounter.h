#ifndef CMALLOC_COUNTER_H
#define CMALLOC_COUNTER_H
#include <stdint.h>

/// Tests only: this target replaces malloc, calloc, realloc, posix_memalign, aligned_alloc and memalign for
/// the whole process with versions that count calls (then forward to glibc) while counting is on.
void malloc_counter_start(void);
/// Stops counting and returns the number of allocation calls since the start, from every thread.
uint64_t malloc_counter_stop(void);

#endif
