import type { FastifyRequest } from 'fastify';
import { AppError, badRequest, unsupportedMediaType } from '../errors.ts';

export const captionMaxLength = 2000;
export { idempotencyField } from '../views/layout.ts';

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
  try {
    await readParts(request, allowed, fields, (data) => {
      file = data;
    });
  } catch (err) {
    // A body cut off before its closing boundary, or otherwise malformed, is the client's fault.
    if (err instanceof AppError || (err as { statusCode?: number }).statusCode === 413) throw err;
    throw badRequest(`malformed multipart body: ${(err as Error).message}`, 'MALFORMED_MULTIPART');
  }
  const caption = fields.caption;
  if (caption !== undefined && caption.length > captionMaxLength) {
    throw badRequest(`caption: at most ${captionMaxLength} characters`, 'VALIDATION');
  }
  if (caption !== undefined && controlCharacters.test(caption)) {
    throw badRequest('caption: no control characters (line breaks and tabs are fine)', 'VALIDATION');
  }
  return { file, fields };
}

// NUL and the other C0 controls but tab, line feed and carriage return; PostgreSQL text cannot hold NUL.
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what it refuses
const controlCharacters = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

async function readParts(
  request: FastifyRequest,
  allowed: string[],
  fields: Record<string, string>,
  setFile: (data: Buffer) => void,
): Promise<void> {
  let file: Buffer | undefined;
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'file' || file) {
        await part.toBuffer().catch(() => undefined);
        throw badRequest(`unexpected file field: ${part.fieldname}`, 'VALIDATION');
      }
      file = await part.toBuffer();
      setFile(file);
    } else {
      if (!allowed.includes(part.fieldname)) throw badRequest(`unexpected field: ${part.fieldname}`, 'VALIDATION');
      if (typeof part.value !== 'string') throw badRequest(`field ${part.fieldname} must be text`, 'VALIDATION');
      fields[part.fieldname] = part.value;
    }
  }
}
