/**
 * Which offsets of each partition are finished, and so how far a consumer group may commit: up to
 * (not including) the oldest offset still in work. Slices of interleaved scans finish out of order;
 * committing past an unfinished one would lose it on a restart.
 */
export class OffsetTracker {
  private readonly partitions = new Map<number, { pending: bigint[]; next: bigint; committed: bigint }>();

  /**
   * An offset handed on for work. Offsets mostly come in increasing order, but a rebalance re-delivers
   * the uncommitted ones: an offset already pending is not added twice (returns false).
   */
  add(partition: number, offset: string): boolean {
    const o = BigInt(offset);
    let p = this.partitions.get(partition);
    if (!p) {
      // The first offset read is where the group's position already is: nothing to commit below it.
      p = { pending: [], next: o, committed: o };
      this.partitions.set(partition, p);
    }
    let i = p.pending.length;
    while (i > 0 && (p.pending[i - 1] as bigint) >= o) i--;
    if (p.pending[i] === o) return false;
    p.pending.splice(i, 0, o);
    if (o + 1n > p.next) p.next = o + 1n;
    return true;
  }

  /**
   * The offset is finished. Returns the offset to commit (the next one to read) when the committable
   * position moved forward, otherwise undefined.
   */
  done(partition: number, offset: string): string | undefined {
    const p = this.partitions.get(partition);
    if (!p) return undefined;
    const o = BigInt(offset);
    const i = p.pending.indexOf(o);
    if (i < 0) return undefined;
    p.pending.splice(i, 1);
    const position = p.pending[0] ?? p.next;
    if (position <= p.committed) return undefined;
    p.committed = position;
    return position.toString();
  }

  /** Offsets handed on and not finished, over all partitions. */
  get pendingCount(): number {
    let n = 0;
    for (const p of this.partitions.values()) n += p.pending.length;
    return n;
  }

  /** Drop a partition this consumer no longer owns (its new owner re-reads what was pending). */
  forget(partition: number): void {
    this.partitions.delete(partition);
  }

  /** Keep only these partitions (the assignment after a rebalance). */
  retain(partitions: ReadonlySet<number>): void {
    for (const partition of [...this.partitions.keys()])
      if (!partitions.has(partition)) this.forget(partition);
  }
}
