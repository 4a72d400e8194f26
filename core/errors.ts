/** An error caused by the user's input (config, data file, CLI flag). The CLI prints its message as one line and exits 2. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UserError';
  }
}

/**
 * The disk (or a quota) is full while writing `path`. A sweep stops at once: nothing is marked
 * failed, every file written so far is whole (atomic writes), and a rerun resumes.
 */
export class DiskFull extends UserError {
  constructor(readonly path: string) {
    super(`${path}: no space left on device; free some space and run the same command again (runs resume from their last checkpoint)`, 1);
    this.name = 'DiskFull';
  }
}

/** `e` as a DiskFull naming `file` (or the path the error names) when it is ENOSPC or EDQUOT, else null. */
export function asDiskFull(e: unknown, file?: string): DiskFull | null {
  if (e instanceof DiskFull) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.code !== 'ENOSPC' && err?.code !== 'EDQUOT') return null;
  return new DiskFull(file ?? err.path ?? 'the output folder');
}
