/** Runs `close` once on SIGTERM or SIGINT, then exits: a long-running command's graceful stop. */
export function closeOnSignal(close: () => Promise<void>): void {
  const stop = () => void close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
