/** An error the client caused or may see: a stable code, an HTTP status and a safe message. */
export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.name = 'AppError';
  }
}

export const badRequest = (message: string, code = 'BAD_REQUEST') => new AppError(400, code, message);
export const unauthorized = (message = 'log in first') => new AppError(401, 'UNAUTHENTICATED', message);
export const forbidden = (message = 'not allowed') => new AppError(403, 'FORBIDDEN', message);
export const notFound = (what = 'resource') => new AppError(404, 'NOT_FOUND', `${what} not found`);
export const conflict = (message: string) => new AppError(409, 'CONFLICT', message);
export const payloadTooLarge = (message: string) => new AppError(413, 'PAYLOAD_TOO_LARGE', message);
export const unsupportedMediaType = (message: string) => new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', message);
export const unprocessable = (message: string) => new AppError(422, 'UNPROCESSABLE', message);
