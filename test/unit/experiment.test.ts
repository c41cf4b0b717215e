import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { addFlags, defineExperiment, fieldsOf, flag, runExperiment } from '../../src/bench/experiment.ts';
import { experiments } from '../../src/bench/experiments/index.ts';
import { tempDir } from '../support/temp.ts';

const toy = defineExperiment({
  name: 'toy',
  title: 'doubles a number',
  options: z.object({
    n: flag.number(2, 'the number'),
    kinds: flag.list(['a', 'b'] as const, 'a', 'kinds'),
    loud: flag.bool('shout'),
  }),
  async run(o) {
    return {
      data: { doubled: o.n * 2, kinds: o.kinds, loud: o.loud },
      summary: `| n | 2n |\n|---|---|\n| ${o.n} | ${o.n * 2} |`,
    };
  },
});

describe('the experiment runner', () => {
  it('gives the CLI its flags, defaults and help from the schema', () => {
    expect(fieldsOf(toy.options)).toEqual([
      { key: 'n', description: 'the number', boolean: false, default: 2 },
      { key: 'kinds', description: 'kinds (comma-separated: a, b)', boolean: false, default: 'a' },
      { key: 'loud', description: 'shout', boolean: true, default: false },
    ]);
    const cmd = addFlags(new Command('toy'), toy);
    expect(cmd.options.map((o) => o.flags)).toEqual(['--n <value>', '--kinds <value>', '--loud']);
  });

  it('parses string flags through the schema and writes results.json, summary.md and report.html to the directory', async () => {
    const dir = await tempDir();
    try {
      const out = path.join(dir.dir, 'run');
      const { result } = await runExperiment(toy, { n: '21', kinds: 'a,b', loud: true }, { out, log: () => {} });
      expect(result.data).toEqual({ doubled: 42, kinds: ['a', 'b'], loud: true });
      const saved = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
      expect(saved).toMatchObject({ experiment: 'toy', options: { n: 21 }, doubled: 42 });
      expect(saved.machine).toMatch(/×/);
      expect(Date.parse(saved.date)).toBeGreaterThan(0);
      expect(readFileSync(path.join(out, 'summary.md'), 'utf8')).toContain('| 21 | 42 |');
      expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toContain('<td>42</td>');
    } finally {
      await dir.remove();
    }
  });

  it('refuses bad options with the option named, before anything runs', async () => {
    await expect(runExperiment(toy, { kinds: 'a,c' }, { out: '/nonexistent/x' })).rejects.toThrow(/unknown: c/);
    await expect(runExperiment(toy, { n: 'many' }, { out: '/nonexistent/x' })).rejects.toThrow(/n/);
    expect(existsSync('/nonexistent/x')).toBe(false);
  });

  it('every registered experiment has a unique name and defaults that parse', () => {
    const names = experiments.map((e) => e.name);
    expect(new Set(names).size).toBe(names.length);
    for (const e of experiments) expect(e.options.safeParse({}).success).toBe(true);
  });
});
