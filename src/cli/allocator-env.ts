/**
 * glibc malloc settings the server runs with on Linux (main.ts explains
 * why): two arenas instead of up to eight per core, so memory freed in one
 * thread is reused by the next instead of stranded in the arena of the
 * thread that freed it. Measured on the OCR example, 4 clients, rounds of
 * 30 s (docs/reliability.md): RSS 602 → 717 MB over 10 rounds and still
 * rising with glibc's defaults; 542 → 586 MB, flat from the 4th round, with
 * this; CPU per request unchanged (120 ms). A fixed MALLOC_MMAP_THRESHOLD_
 * of 128 KiB also kept RSS flat but cost 80% more CPU per request in page
 * faults, so it is not set.
 */
export const ALLOCATOR_ENV = { MALLOC_ARENA_MAX: "2" } as const;
