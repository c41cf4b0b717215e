import { describe, expect, it } from 'vitest';
import { componentOf, components } from '../../src/cluster/components/registry.ts';
import { allProcesses, buildPreset, presets } from '../../src/cluster/topology/index.ts';

const key = (a: { host: string; port: number }) => `${a.host}:${a.port}`;

describe('every address of every component says what it asks of a client', () => {
  for (const preset of presets) {
    it(`${preset}: each bound address has a guard, and only the site is public`, () => {
      const t = buildPreset(preset, { name: `acc-${preset}`, octet: 77 });
      for (const p of allProcesses(t)) {
        const c = componentOf(p);
        const bound = c
          .addresses(p as never)
          .map(key)
          .sort();
        const guarded = c.access(p as never);
        expect(guarded.map((g) => key(g.at)).sort(), p.name).toEqual(bound);
        for (const g of guarded.filter((x) => x.guard === 'public')) {
          expect(['web', 'loadBalancer', 'varnish', 'dns'], `${p.name} is public`).toContain(p.kind);
          expect(g.at, `${p.name}: only its site port is public`).toEqual((p as { listen?: unknown }).listen);
        }
      }
    });
  }

  it('covers every kind in the registry', () => {
    for (const c of components()) expect(typeof c.access, c.kind).toBe('function');
  });
});
