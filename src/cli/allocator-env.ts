/**
 * glibc malloc settings the server runs with on Linux (main.ts explains
 * why): a fixed mmap threshold, so freed tensors of hundreds of KiB go back
 * to the system instead of raising the threshold and fragmenting the
 * per-thread arenas.
 */
export const ALLOCATOR_ENV = { MALLOC_MMAP_THRESHOLD_: "131072" } as const;
