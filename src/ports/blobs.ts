/** Binary objects: photo originals and variants. */
export interface BlobStore {
  put(key: string, data: Buffer, contentType: string): Promise<void>;
  /** null when the key does not exist. */
  get(key: string): Promise<{ data: Buffer; contentType: string } | null>;
  /** Removes keys; missing keys are not an error. */
  delete(...keys: string[]): Promise<void>;
  ping(): Promise<void>;
}
