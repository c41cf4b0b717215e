// The baseline: a Fastify hello-world, measured in the same run as scaleout.
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 3100);
const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
