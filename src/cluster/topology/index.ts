export * from './address.ts';
export * from './presets.ts';
export * from './schema.ts';
export * from './select.ts';
