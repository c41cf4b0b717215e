import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { probeImageHeader } from '../../src/platform/images/header.ts';
import { createSharpImageProcessor } from '../../src/platform/images/sharp.ts';

const image = (width: number, height: number) => sharp({ create: { width, height, channels: 3, background: '#3a6' } });

describe('the header probe (web servers, no libvips) agrees with sharp (workers)', () => {
  const processor = createSharpImageProcessor(100e6);
  const cases: [string, () => Promise<Buffer>][] = [
    ['JPEG', () => image(640, 480).jpeg().toBuffer()],
    ['JPEG rotated by EXIF (orientation 6)', () => image(640, 480).jpeg().withMetadata({ orientation: 6 }).toBuffer()],
    ['JPEG mirrored (orientation 2)', () => image(300, 200).jpeg().withMetadata({ orientation: 2 }).toBuffer()],
    ['PNG', () => image(33, 77).png().toBuffer()],
    ['WebP', () => image(1200, 900).webp().toBuffer()],
    ['GIF', () => image(50, 20).gif().toBuffer()],
    ['AVIF', () => image(256, 128).avif().toBuffer()],
  ];
  for (const [name, make] of cases) {
    it(name, async () => {
      const data = await make();
      expect(await probeImageHeader(data)).toEqual(await processor.probe(data));
    });
  }

  it('refuses what is not an image', async () => {
    await expect(probeImageHeader(Buffer.from('not an image at all'))).rejects.toThrow();
  });
});
