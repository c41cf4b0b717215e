import fastJson from 'fast-json-stringify';
import { type ZodType, z } from 'zod';

/**
 * Serialises responses from their zod schemas through fast-json-stringify
 * (Fastify's own serializer): the schema becomes JSON Schema once, when the
 * route is compiled, and each response is written by code generated for it.
 * As with zod, only the schema's properties go out, so a field a route does
 * not declare never leaks, and a missing required one is an error. What it
 * does not do is check every value on the way out (zod's encode did, at a
 * fifth of a feed page's CPU); the tests and the generated OpenAPI client check shapes.
 */
export function responseSerializerCompiler({ schema }: { schema: unknown }) {
  const zodSchema = (schema instanceof z.ZodType ? schema : (schema as { properties: unknown }).properties) as ZodType;
  const jsonSchema = z.toJSONSchema(zodSchema, { io: 'output', unrepresentable: 'any', target: 'draft-7' });
  return fastJson(forWriting(jsonSchema) as Parameters<typeof fastJson>[0]);
}

type Json = { [key: string]: unknown };

/**
 * The schema as a writer needs it: no formats or patterns (they check values,
 * they do not shape the output), and "X or null" as X with `nullable`, which
 * fast-json-stringify writes directly instead of testing each branch with Ajv.
 */
function forWriting(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(forWriting);
  if (typeof node !== 'object' || node === null) return node;
  // A keyword's value is a string; a property of that name would hold a schema (an object).
  const rest = Object.fromEntries(
    Object.entries(node as Json).filter(([k, v]) => !((k === 'format' || k === 'pattern') && typeof v === 'string')),
  );
  const anyOf = rest.anyOf as Json[] | undefined;
  if (anyOf?.length === 2 && anyOf.some((b) => b.type === 'null')) {
    const other = anyOf.find((b) => b.type !== 'null') as Json;
    const { anyOf: _anyOf, ...outer } = rest;
    return { ...(forWriting(other) as Json), ...outer, nullable: true };
  }
  return Object.fromEntries(Object.entries(rest).map(([k, v]) => [k, forWriting(v)]));
}
