/**
 * glibc malloc settings the server runs with on Linux (main.ts explains
 * why): a fixed mmap threshold, so freed tensors of hundreds of KiB go back
 * to the system instead of raising the threshold, and two arenas instead of
 * one per thread, so what is freed in one thread is reused by the next.
 * Measured on the OCR example over 14 × 30 s of load: RSS 602 → 743 MB with
 * glibc's defaults, 434 → 517 MB with the threshold alone, 446 → 441 MB
 * with both.
 */
export const ALLOCATOR_ENV = { MALLOC_MMAP_THRESHOLD_: "131072", MALLOC_ARENA_MAX: "2" } as const;
