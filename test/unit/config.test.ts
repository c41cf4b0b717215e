import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('config', () => {
  it('has working defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ host: '127.0.0.1', port: 3000, cachePolicy: 'lru', sessionStore: 'database' });
    expect(c.uploadMaxBytes).toBe(15 * 1024 * 1024);
    expect(c.uploadMaxMegapixels).toBe(50);
    expect(c.dataDir.startsWith('/')).toBe(true);
  });

  it('reads env vars, and flags win over them', () => {
    const c = loadConfig(
      { SCALEOUT_PORT: '4000', SCALEOUT_CACHE_POLICY: 'lfu', SCALEOUT_TRUST_PROXY: 'true' },
      { port: '5000' },
    );
    expect(c.port).toBe(5000);
    expect(c.cachePolicy).toBe('lfu');
    expect(c.trustProxy).toBe(true);
  });

  it('lists every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({
        SCALEOUT_PORT: 'eighty',
        SCALEOUT_CACHE_POLICY: 'random',
        SCALEOUT_UPLOAD_MAX_MEGAPIXELS: '-1',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/port \(SCALEOUT_PORT or --port\)/);
    expect(problems.join('\n')).toMatch(/cachePolicy \(SCALEOUT_CACHE_POLICY or --cache-policy\)/);
    expect(problems.join('\n')).toMatch(/uploadMaxMegapixels/);
  });

  it('rejects unknown overrides', () => {
    expect(() => loadConfig({}, { nonsense: 1 } as never)).toThrow(ConfigError);
  });
});
