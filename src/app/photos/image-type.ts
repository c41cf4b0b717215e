import type { ImageFormat } from '../../ports/images.ts';

export const mimeTypes: Record<ImageFormat, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  avif: 'image/avif',
  gif: 'image/gif',
};

const startsWith = (data: Buffer, bytes: number[], offset = 0) =>
  data.length >= offset + bytes.length && bytes.every((b, i) => data[offset + i] === b);
const ascii = (data: Buffer, text: string, offset = 0) =>
  data.length >= offset + text.length && data.toString('latin1', offset, offset + text.length) === text;

/** The image format from the file's first bytes (its magic number), never from its name. */
export function detectImageFormat(data: Buffer): ImageFormat | null {
  if (startsWith(data, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(data, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (ascii(data, 'GIF87a') || ascii(data, 'GIF89a')) return 'gif';
  if (ascii(data, 'RIFF') && ascii(data, 'WEBP', 8)) return 'webp';
  if (ascii(data, 'ftyp', 4)) {
    // ISO-BMFF: the major brand, then compatible brands, up to the box's size.
    const boxSize = Math.min(data.readUInt32BE(0), data.length, 64);
    for (let offset = 8; offset + 4 <= boxSize; offset += 4) {
      if (offset === 12) continue; // minor version, not a brand
      if (ascii(data, 'avif', offset) || ascii(data, 'avis', offset)) return 'avif';
    }
  }
  return null;
}
