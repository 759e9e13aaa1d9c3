/**
 * Tells whether a request event's `source` (a ModelVersion) belongs to one
 * server. Several servers may share a process (tests, in-process users),
 * and `node:diagnostics_channel` is process-wide, so each server's observers
 * keep only their own events.
 *
 * A version is looked up among the server's loaded versions the first time
 * it is seen, then remembered (weakly, so unloaded versions can be freed).
 * A version first seen after it was unloaded counts as foreign.
 */
export class VersionOwnership {
  private readonly own = new WeakSet<object>();
  private readonly foreign = new WeakSet<object>();

  constructor(private readonly versions: () => readonly object[]) {}

  owns(source: object): boolean {
    if (this.own.has(source)) return true;
    if (this.foreign.has(source)) return false;
    const mine = this.versions().includes(source);
    (mine ? this.own : this.foreign).add(source);
    return mine;
  }
}
