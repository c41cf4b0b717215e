/** The business events the app reports; adapters turn them into metrics. */
export interface BusinessMetrics {
  signup(): void;
  upload(): void;
  like(): void;
  jobDone(name: string, seconds: number, outcome: 'ok' | 'retry' | 'failed'): void;
}
