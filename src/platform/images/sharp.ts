import sharp from 'sharp';
import { type ImageProcessor, ImageTooCostlyError, type ImageVariant } from '../../ports/images.ts';

const sizes: Record<ImageVariant['name'], number> = { thumb: 320, display: 1080 };

// One libvips thread per job: the web server shares these 2 cores.
sharp.concurrency(1);
sharp.cache(false);

/**
 * Image work with sharp (libvips). `limitInputPixels` bounds every decode, so a
 * decompression bomb fails before its pixels are allocated; only the first
 * frame of an animation is read. Each original is decoded once, shrunk on load
 * where the format allows it (JPEG, WebP), to the display size; the thumb is
 * made from that. Every decode has a time limit: a photo that costs more fails
 * cleanly instead of holding the worker.
 */
export function createSharpImageProcessor(maxPixels: number, decodeTimeoutSeconds = 10): ImageProcessor {
  return {
    async probe(data) {
      // Reading the header decodes no pixels, so no limit is needed here; the
      // caller compares the size with its own limit before any decode.
      const meta = await sharp(data, { limitInputPixels: false, pages: 1 }).metadata();
      if (!meta.width || !meta.height) throw new Error('image has no dimensions');
      const rotated = (meta.orientation ?? 1) >= 5;
      return rotated ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
    },
    async variants(data) {
      try {
        return await makeVariants(data);
      } catch (err) {
        if (/timeout/i.test((err as Error).message)) {
          throw new ImageTooCostlyError(`decoding took longer than ${decodeTimeoutSeconds} s`, { cause: err });
        }
        throw err;
      }
    },
  };

  async function makeVariants(data: Buffer): Promise<ImageVariant[]> {
    // One decode of the original: oriented and resized to the display size
    // (thumbnail-style shrink-on-load), kept as raw pixels for both outputs.
    const display = await sharp(data, { limitInputPixels: maxPixels, failOn: 'error', pages: 1 })
      .timeout({ seconds: decodeTimeoutSeconds })
      .autoOrient()
      .resize({ width: sizes.display, height: sizes.display, fit: 'inside', withoutEnlargement: true })
      .raw()
      .toBuffer({ resolveWithObject: true });
    const { width, height, channels } = display.info;
    const fromDisplay = () => sharp(display.data, { raw: { width, height, channels } });
    const result: ImageVariant[] = [];
    for (const [name, size] of Object.entries(sizes) as [ImageVariant['name'], number][]) {
      // sharp writes no metadata unless asked to.
      const { data: out, info } = await fromDisplay()
        .timeout({ seconds: decodeTimeoutSeconds })
        .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
        .webp({ quality: 80 })
        .toBuffer({ resolveWithObject: true });
      result.push({ name, data: out, contentType: 'image/webp', width: info.width, height: info.height });
    }
    return result;
  }
}
