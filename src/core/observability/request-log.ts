/**
 * Verbose request logging: at `--log-verbose` (or `log_verbose_level`) 1 and
 * above, one line per inference request that reached the scheduler, from the
 * `tritium:inference:request` event (STYLE point 4: observed, not edited
 * into the request path):
 *
 *   V0102 10:00:00.000123 4242 infer_request.ts] "inference request for 'simple' version 1 (id 'r1'): succeeded in 812 us (queue 21 us, compute input 9 us, infer 740 us, output 6 us)"
 *
 * It subscribes only while the verbose level is 1 or more; `refresh()` after
 * the level changes makes the change take effect at once.
 */
import diagnostics_channel from "node:diagnostics_channel";
import type { Logger } from "./logger.js";
import { REQUEST_CHANNEL, type InferenceRequestEvent } from "./events.js";

export class RequestLog {
  private subscribed = false;
  private readonly onRequest = (message: unknown) => this.log(message as InferenceRequestEvent);

  constructor(
    private readonly logger: Logger,
    /** Whether a request event's `source` belongs to this server. */
    private readonly owns: (source: object) => boolean,
  ) {
    this.refresh();
  }

  /** Follows the logger's verbose level: subscribes at 1 and above, unsubscribes below. */
  refresh(): void {
    const wanted = this.logger.options.verbose >= 1;
    if (wanted === this.subscribed) return;
    if (wanted) diagnostics_channel.subscribe(REQUEST_CHANNEL, this.onRequest);
    else diagnostics_channel.unsubscribe(REQUEST_CHANNEL, this.onRequest);
    this.subscribed = wanted;
  }

  close(): void {
    if (this.subscribed) diagnostics_channel.unsubscribe(REQUEST_CHANNEL, this.onRequest);
    this.subscribed = false;
  }

  private log(e: InferenceRequestEvent): void {
    try {
      if (this.logger.options.verbose < 1 || !this.owns(e.source)) return;
      const us = (ns: number) => Math.round(ns / 1000);
      const id = e.id ? ` (id '${e.id}')` : "";
      const outcome = e.success ? "succeeded" : `failed (${e.reason})`;
      this.logger.verbose(
        1,
        "infer_request.ts",
        `inference request for '${e.model}' version ${e.version}${id}: ${outcome} in ${us(e.totalNs)} us ` +
          `(queue ${us(e.queueNs)} us, compute input ${us(e.computeInputNs)} us, infer ${us(e.computeInferNs)} us, output ${us(e.computeOutputNs)} us)`,
      );
    } catch {
      // A log line must never fail a request.
    }
  }
}
