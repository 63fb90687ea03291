// The peer for bench/bayeux.sh: the npm faye 1.4.3 server (memory engine) at /faye,
// printing "listening on http://127.0.0.1:PORT" like hero does. faye comes from this
// directory's package.json (npm ci here), the same version tests/js pins.
import http from 'node:http';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const faye = require('faye');

const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
new faye.NodeAdapter({ mount: '/faye', timeout: 45 }).attach(server);
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
