/**
 * Cancellation of a queued request. Core needs only this much of an
 * `AbortSignal`, so an in-process caller passes its own `AbortSignal`, and
 * the frontends pass a {@link Canceller}: one small object per request
 * instead of an AbortController, its EventTarget and its event.
 */

/** What core reads of a cancellation signal; an `AbortSignal` is one. */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** A {@link CancelSignal} that a frontend fires when its client goes away. */
export class Canceller implements CancelSignal {
  aborted = false;
  private listeners: (() => void)[] | undefined;

  addEventListener(_type: "abort", listener: () => void): void {
    (this.listeners ??= []).push(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    const i = this.listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.listeners!.splice(i, 1);
  }

  /** Aborts once; every listener runs once (as `{ once: true }` listeners of an AbortSignal). */
  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners ?? [];
    this.listeners = undefined;
    for (const l of listeners) l();
  }
}
