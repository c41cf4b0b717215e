import type { FastifyRequest } from 'fastify';
import { badRequest, unsupportedMediaType } from '../errors.ts';

export const captionMaxLength = 2000;

export interface UploadForm {
  file: Buffer | undefined;
  fields: Record<string, string>;
}

/**
 * Reads a multipart form with at most one file, named `file`, and the text
 * fields in `allowed`. Anything else is a 400. The multipart plugin's
 * size limit turns an oversized file into a 413.
 */
export async function readUploadForm(request: FastifyRequest, allowed: string[]): Promise<UploadForm> {
  if (!request.isMultipart()) throw unsupportedMediaType('send the photo as multipart/form-data');
  const fields: Record<string, string> = {};
  let file: Buffer | undefined;
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'file' || file) {
        await part.toBuffer().catch(() => undefined);
        throw badRequest(`unexpected file field: ${part.fieldname}`, 'VALIDATION');
      }
      file = await part.toBuffer();
    } else {
      if (!allowed.includes(part.fieldname)) throw badRequest(`unexpected field: ${part.fieldname}`, 'VALIDATION');
      if (typeof part.value !== 'string') throw badRequest(`field ${part.fieldname} must be text`, 'VALIDATION');
      fields[part.fieldname] = part.value;
    }
  }
  const caption = fields.caption;
  if (caption !== undefined && caption.length > captionMaxLength) {
    throw badRequest(`caption: at most ${captionMaxLength} characters`, 'VALIDATION');
  }
  return { file, fields };
}
