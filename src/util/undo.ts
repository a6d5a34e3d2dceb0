import type { Logger } from './logger.js';

/**
 * A stack of compensating actions. A verb pushes the undo of each side effect
 * as it makes it; on failure, `unwind` runs them newest first, so a failed
 * command leaves nothing half-created. Undo errors are logged, not thrown.
 */
export class UndoStack {
  private steps: Array<{ what: string; fn: () => Promise<void> }> = [];
  constructor(private readonly logger: Logger) {}
  push(what: string, fn: () => Promise<void>): void {
    this.steps.push({ what, fn });
  }
  async unwind(): Promise<void> {
    for (const s of this.steps.reverse()) {
      try {
        await s.fn();
      } catch (e) {
        this.logger.warn(`cleanup "${s.what}" failed: ${(e as Error).message}`);
      }
    }
    this.steps = [];
  }
  /** Forget the steps: the command succeeded. */
  commit(): void {
    this.steps = [];
  }
}
