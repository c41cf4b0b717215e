// The baseline: a Fastify hello-world, measured in the same run as scaleout.
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 3100);
const host = process.argv[3] ?? '127.0.0.1';
const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
// So that a load balancer can health-check it exactly like a scaleout web server.
app.get('/readyz', async () => ({ status: 'ready' }));
await app.listen({ host, port });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
