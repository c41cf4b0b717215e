import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { machine } from './report.ts';

/**
 * One experiment: a zod schema for its options (which gives the CLI its
 * flags, defaults and help) and a run that returns what it measured. The
 * runner owns the rest: parsing the flags, the output directory, the JSON
 * with the machine and the date, summary.md and report.html.
 */
export interface Experiment<S extends z.ZodObject = z.ZodObject> {
  name: string;
  /** One line: what it measures, and beside which baseline. */
  title: string;
  options: S;
  run(options: z.output<S>, ctx: ExperimentContext): Promise<ExperimentResult>;
}

export interface ExperimentContext {
  /** The run's output directory (created): the experiment may write its own reports under it. */
  out: string;
  log(line: string): void;
}

export interface ExperimentResult {
  /** What it measured, saved as results.json beside the machine and the date. */
  data: Record<string, unknown>;
  /** The results as Markdown (tables), saved as summary.md and shown in report.html. */
  summary: string;
}

/** An experiment with its options' types inferred from its schema. */
export const defineExperiment = <S extends z.ZodObject>(e: Experiment<S>): Experiment<S> => e;

/** Option schemas shared by the experiments: a number from a flag, a comma-separated list. */
export const flag = {
  number: (def: number, what: string) => z.coerce.number().positive().default(def).describe(what),
  int: (def: number, what: string) => z.coerce.number().int().min(0).default(def).describe(what),
  list: <T extends string>(choices: readonly T[], def: string, what: string) =>
    z
      .string()
      .default(def)
      .describe(`${what} (comma-separated: ${choices.join(', ')})`)
      .transform((s, ctx) => {
        const items = s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean);
        const unknown = items.find((x) => !(choices as readonly string[]).includes(x));
        if (unknown) ctx.addIssue({ code: 'custom', message: `unknown: ${unknown} (one of ${choices.join(', ')})` });
        return items as T[];
      }),
  numbers: (def: string, what: string) =>
    z
      .string()
      .default(def)
      .describe(`${what} (comma-separated)`)
      .transform((s) => s.split(',').map(Number))
      .pipe(z.array(z.number().positive())),
  bool: (what: string) => z.boolean().default(false).describe(what),
};

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

interface FieldInfo {
  key: string;
  description: string;
  boolean: boolean;
  default: unknown;
}

/** Each option of a schema as a CLI flag: its name, help, whether it takes a value, and its default. */
export function fieldsOf(schema: z.ZodObject): FieldInfo[] {
  return Object.entries(schema.shape).map(([key, field]) => {
    const f = field as z.ZodType & { def: { type: string; defaultValue?: unknown; innerType?: z.ZodType } };
    let inner: z.ZodType = f;
    let def: unknown;
    let description = f.description;
    for (let i = 0; i < 5; i++) {
      description ??= inner.description;
      const d = (
        inner as unknown as { def: { type: string; defaultValue?: unknown; innerType?: z.ZodType; in?: z.ZodType } }
      ).def;
      if (d.type === 'default') def = d.defaultValue;
      const next = d.innerType ?? d.in;
      if (!next) break;
      inner = next;
    }
    const type = (inner as unknown as { def: { type: string } }).def.type;
    return { key, description: description ?? '', boolean: type === 'boolean', default: def };
  });
}

/** Adds `--<option>` for every option of a schema to a command (required where it has no default). */
export function addOptionFlags(cmd: Command, schema: z.ZodObject): Command {
  for (const f of fieldsOf(schema)) {
    const required = !f.boolean && f.default === undefined && !schema.shape[f.key]?.safeParse(undefined).success;
    if (f.boolean) cmd.option(`--${kebab(f.key)}`, f.description);
    else if (required) cmd.requiredOption(`--${kebab(f.key)} <value>`, f.description);
    else
      cmd.option(`--${kebab(f.key)} <value>`, f.description, f.default === undefined ? undefined : String(f.default));
  }
  return cmd;
}

/** Adds `--<option>` for every option of the experiment to a command. */
export const addFlags = (cmd: Command, e: Experiment): Command => addOptionFlags(cmd, e.options);

/** The default output directory of a run: bench-out/<experiment>-<time>. */
export const defaultOut = (name: string) =>
  path.join('bench-out', `${name}-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}`);

const escapeHtml = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);

/** A page of the run: its summary's tables as HTML (Markdown pipes), the options and the machine. */
export function experimentHtml(e: Experiment, options: unknown, summary: string, when: string): string {
  const blocks = summary.split(/\n{2,}/).map((block) => {
    const lines = block.split('\n');
    if (lines.length >= 2 && lines.every((l) => l.trim().startsWith('|'))) {
      const cells = (l: string) =>
        l
          .trim()
          .replace(/^\||\|$/g, '')
          .split('|')
          .map((c) => escapeHtml(c.trim()));
      const [head, , ...rows] = lines;
      return `<table><thead><tr>${cells(head ?? '')
        .map((c) => `<th>${c}</th>`)
        .join('')}</tr></thead><tbody>${rows
        .map(
          (r) =>
            `<tr>${cells(r)
              .map((c) => `<td>${c}</td>`)
              .join('')}</tr>`,
        )
        .join('')}</tbody></table>`;
    }
    return `<p>${escapeHtml(block).replace(/\n/g, '<br>')}</p>`;
  });
  return `<!doctype html><meta charset="utf-8"><title>${escapeHtml(e.name)}</title>
<style>body{font:14px system-ui;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}th{background:#f4f4f4}pre{background:#f8f8f8;padding:1em}</style>
<h1>${escapeHtml(e.name)}: ${escapeHtml(e.title)}</h1>
<p>${escapeHtml(machine())}<br>${escapeHtml(when)}</p>
${blocks.join('\n')}
<h2>Options</h2><pre>${escapeHtml(JSON.stringify(options, null, 2))}</pre>
`;
}

/**
 * Runs one experiment: options from the raw flags (strings, as the CLI gives
 * them) through its schema, then results.json, summary.md and report.html in
 * `out`, which is always a directory.
 */
export async function runExperiment(
  e: Experiment,
  raw: Record<string, unknown>,
  o: { out?: string; log?: (line: string) => void } = {},
): Promise<{ out: string; result: ExperimentResult; options: unknown }> {
  const parsed = e.options.safeParse(raw);
  if (!parsed.success) throw new Error(`${e.name}: ${z.prettifyError(parsed.error)}`);
  const out = path.resolve(o.out ?? defaultOut(e.name));
  await mkdir(out, { recursive: true });
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const started = new Date();
  const result = await e.run(parsed.data, { out, log });
  const when = `${started.toISOString()} – ${new Date().toISOString()}`;
  await writeFile(
    path.join(out, 'results.json'),
    JSON.stringify(
      { experiment: e.name, options: parsed.data, machine: machine(), date: started.toISOString(), ...result.data },
      null,
      2,
    ),
  );
  await writeFile(path.join(out, 'summary.md'), `# ${e.name}: ${e.title}\n\n${machine()}\n\n${result.summary}\n`);
  await writeFile(path.join(out, 'report.html'), experimentHtml(e, parsed.data, result.summary, when));
  return { out, result, options: parsed.data };
}
