import { describe, expect, it } from 'vitest';
import { detectImageFormat } from '../../src/app/photos/image-type.ts';

const ftyp = (brand: string, compatible: string[] = []) => {
  const brands = [brand, '\0\0\0\0', ...compatible].join('');
  const size = 8 + brands.length;
  const b = Buffer.alloc(size + 8);
  b.writeUInt32BE(size, 0);
  b.write(`ftyp${brands}`, 4, 'latin1');
  return b;
};

describe('detectImageFormat', () => {
  it.each([
    ['jpeg', Buffer.from([0xff, 0xd8, 0xff, 0xe1, 0, 0])],
    ['png', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0])],
    ['gif', Buffer.from('GIF89a....')],
    ['gif', Buffer.from('GIF87a....')],
    ['webp', Buffer.from('RIFF\x10\x00\x00\x00WEBPVP8 ', 'latin1')],
    ['avif', ftyp('avif')],
    ['avif', ftyp('mif1', ['avif'])],
  ])('recognises %s', (format, data) => {
    expect(detectImageFormat(data)).toBe(format);
  });

  it.each([
    ['text', Buffer.from('hello world, not an image')],
    ['empty', Buffer.alloc(0)],
    ['a WAV (RIFF but not WEBP)', Buffer.from('RIFF\x10\x00\x00\x00WAVEfmt ', 'latin1')],
    ['HEIC (ftyp without an AVIF brand)', ftyp('heic', ['mif1'])],
    ['a truncated PNG signature', Buffer.from([0x89, 0x50, 0x4e])],
  ])('rejects %s', (_what, data) => {
    expect(detectImageFormat(data)).toBeNull();
  });
});
