export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'avif' | 'gif';

export interface ImageVariant {
  name: 'thumb' | 'display';
  data: Buffer;
  contentType: string;
  width: number;
  height: number;
}

/** Reads and transforms images; decoding is always bounded. */
export interface ImageProcessor {
  /** Dimensions from the header, without decoding pixels; orientation applied. */
  probe(data: Buffer): Promise<{ width: number; height: number }>;
  /** The thumb and display variants, oriented and stripped of metadata. */
  variants(data: Buffer): Promise<ImageVariant[]>;
}

/** The image costs more to decode than the time limit allows; retrying will not help. */
export class ImageTooCostlyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ImageTooCostlyError';
  }
}
