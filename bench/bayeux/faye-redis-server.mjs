// A node of the faye-redis cluster for bench/cluster.sh: the npm faye 1.4.3 server with the
// faye-redis 0.2.0 engine (package.json in this directory) at /faye, printing
// "listening on http://127.0.0.1:PORT" like hero does.
//
//   REDIS_PORT=6379 NAMESPACE=bench PORT=0 node bench/bayeux/faye-redis-server.mjs
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const faye = require('faye');
const fayeRedis = require('faye-redis');

const engine = {
  type: fayeRedis,
  host: '127.0.0.1',
  port: Number(process.env.REDIS_PORT || 6379),
  namespace: process.env.NAMESPACE || '',
};
const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const bayeux = new faye.NodeAdapter({ mount: '/faye', timeout: 45, engine });
bayeux.attach(server);
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
