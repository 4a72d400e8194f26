/** An error caused by the user's input (config, data file, CLI flag). The CLI prints its message as one line and exits 2. */
export class UserError extends Error {
  constructor(message: string, readonly exitCode = 2) {
    super(message);
    this.name = 'UserError';
  }
}
