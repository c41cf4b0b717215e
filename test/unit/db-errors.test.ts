import { describe, expect, it } from 'vitest';
import { isUnavailable } from '../../src/platform/db/errors.ts';

describe('isUnavailable: errors after which a query may succeed elsewhere or a moment later', () => {
  it('connection losses, a server shutting down, a node in the middle of its promotion', () => {
    expect(isUnavailable({ code: 'ECONNREFUSED' })).toBe(true);
    expect(isUnavailable({ code: '57P01' })).toBe(true);
    expect(isUnavailable({ code: '25006', message: 'cannot execute INSERT in a read-only transaction' })).toBe(true);
    expect(isUnavailable({ code: '55000', message: 'recovery is in progress' })).toBe(true);
  });

  it('not the errors of the query itself', () => {
    expect(isUnavailable({ code: '23505', message: 'duplicate key value violates unique constraint' })).toBe(false);
    expect(isUnavailable({ code: '55000', message: 'object not in prerequisite state' })).toBe(false);
    expect(isUnavailable(undefined)).toBe(false);
  });
});
