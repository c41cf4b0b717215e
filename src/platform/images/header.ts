import { imageSize } from 'image-size';

/**
 * An image's dimensions from its header alone, in plain JavaScript: what a
 * web server needs to accept or refuse an upload (the pixel limit) without
 * loading libvips. EXIF orientations 5–8 (a quarter turn) swap width and
 * height, as the variants will be oriented.
 */
export async function probeImageHeader(data: Buffer): Promise<{ width: number; height: number }> {
  const size = imageSize(data);
  if (!size.width || !size.height) throw new Error('image has no dimensions');
  const rotated = (size.orientation ?? 1) >= 5;
  return rotated ? { width: size.height, height: size.width } : { width: size.width, height: size.height };
}
