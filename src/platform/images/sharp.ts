import sharp from 'sharp';
import type { ImageProcessor, ImageVariant } from '../../ports/images.ts';

const sizes: Record<ImageVariant['name'], number> = { thumb: 320, display: 1080 };

// One libvips thread per job: the web server shares these 2 cores.
sharp.concurrency(1);
sharp.cache(false);

/**
 * Image work with sharp (libvips). `limitInputPixels` bounds every decode, so a
 * decompression bomb fails before its pixels are allocated; only the first
 * frame of an animation is read.
 */
export function createSharpImageProcessor(maxPixels: number): ImageProcessor {
  const open = (data: Buffer) => sharp(data, { limitInputPixels: maxPixels, failOn: 'error', pages: 1 });
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
      const result: ImageVariant[] = [];
      for (const [name, size] of Object.entries(sizes) as [ImageVariant['name'], number][]) {
        // autoOrient applies the EXIF orientation; sharp writes no metadata unless asked to.
        const { data: out, info } = await open(data)
          .autoOrient()
          .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
          .webp({ quality: 80 })
          .toBuffer({ resolveWithObject: true });
        result.push({ name, data: out, contentType: 'image/webp', width: info.width, height: info.height });
      }
      return result;
    },
  };
}
