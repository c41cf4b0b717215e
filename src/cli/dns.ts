import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { parseHostPort } from '../cluster/topology/address.ts';
import { processesOf } from '../cluster/topology/select.ts';
import { pickState } from './cluster.ts';

/**
 * `scaleout dns [name]`: the site's records as the topology's name server
 * holds them, or, given a name, that server's answer, as `dig` would print
 * it, asked with a client subnet (EDNS Client Subnet) when one is given.
 */
export function dnsCommands(program: Command, root: string): void {
  program
    .command('dns [query]')
    .description(
      "The site's DNS records (the topology's name server), or the answer to a query: scaleout dns www.scaleout.test --subnet 10.1.0.0/16",
    )
    .option('--subnet <cidr>', 'the client subnet to send (EDNS Client Subnet), as a resolver in that network would')
    .option('--type <type>', 'A, TXT, SOA or NS', 'A')
    .option('--server <host:port>', 'ask this server (default: the topology’s)')
    .option('--name <name>', 'the topology')
    .option('--json', 'machine-readable output')
    .action(
      async (
        query: string | undefined,
        o: { subnet?: string; type: string; server?: string; name?: string; json?: boolean },
      ) => {
        if (!['A', 'TXT', 'SOA', 'NS'].includes(o.type)) throw new Error('--type: A, TXT, SOA or NS');
        let server = o.server ? parseHostPort(o.server) : undefined;
        let zoneFile: string | undefined;
        if (!server) {
          const state = pickState(root, o.name);
          const [dns] = processesOf(state.topology, 'dns');
          if (!dns) throw new Error(`${state.topology.name} has no DNS server (preset multi-dc has one)`);
          server = dns.listen;
          zoneFile = path.join(state.runDir, dns.name, `${dns.zone}.zone`);
        }
        if (!query) {
          if (!zoneFile) throw new Error('give a name to query, or a topology whose records to print');
          process.stdout.write(readFileSync(zoneFile, 'utf8'));
          return;
        }
        const { queryDns } = await import('../cluster/components/dns/query.ts');
        const reply = await queryDns(server, query, { type: o.type as 'A', subnet: o.subnet });
        if (o.json) {
          process.stdout.write(`${JSON.stringify(reply, null, 2)}\n`);
          return;
        }
        process.stdout.write(
          `;; ${reply.rcode} from ${server.host}:${server.port} in ${reply.ms.toFixed(1)} ms${o.subnet ? `, client subnet ${o.subnet} (scope /${reply.scopePrefixLength ?? '?'})` : ''}\n`,
        );
        for (const a of reply.answers) process.stdout.write(`${a.name}.\t${a.ttl}\tIN\t${a.type}\t${a.data}\n`);
      },
    );
}
