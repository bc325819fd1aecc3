// Overhead of `pocket gateway` in front of one `pocket serve` backend, measured
// from a keep-alive HTTP client on the same machine:
//   - added latency p50/p99: sequential requests to the backend alone vs through
//     the gateway (GET /v1/models, and POST /v1/completions with max_tokens 1,
//     which the gateway proxies with auth, limits, usage ledger and cost),
//   - max request rate: C concurrent connections for a few seconds.
//
//   node bench/gateway_overhead.mjs [--bin build/pocket] [--n 2000] [--gen-n 200]
//        [--clients 32] [--seconds 3] [--procs 1] [--json]
//
// --procs P spreads the rate test over P client processes (one Node process is
// often the bottleneck).
//
// Starts its own backend (golden tiny model), gateway (temp SQLite file, a key
// with no limits) on 127.0.0.1, and stops them at the end.
import { spawn, fork } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const args = { bin: 'build/pocket', n: 2000, genN: 200, clients: 32, seconds: 3, procs: 1, json: false, worker: null };
for (let i = 2; i < process.argv.length; i++) {
  const k = process.argv[i], v = () => process.argv[++i];
  if (k === '--bin') args.bin = v();
  else if (k === '--n') args.n = Number(v());
  else if (k === '--gen-n') args.genN = Number(v());
  else if (k === '--clients') args.clients = Number(v());
  else if (k === '--seconds') args.seconds = Number(v());
  else if (k === '--json') args.json = true;
  else if (k === '--procs') args.procs = Number(v());
  else if (k === '--worker') args.worker = JSON.parse(v());
  else throw new Error(`unknown option ${k}`);
}
const SHARED = process.env.POCKET_SHARED_DIR ?? new URL('../../shared', import.meta.url).pathname;
const MODEL = 'tiny-qwen35-dense-tied-f32';
const dir = mkdtempSync(`${tmpdir()}/pocket-gwbench-`);
const procs = [];

function start(argv, re) {
  const p = spawn(args.bin, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(p);
  let log = '';
  return new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => {
      log += d;
      const m = log.match(re);
      if (m) resolve(Number(m[1]));
    });
    p.on('exit', (c) => reject(new Error(`${argv[0]} exited ${c}: ${log}`)));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });
function request(port, method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      let data = '';
      res.on('data', (d) => (data += d));
      res.on('end', () => (res.statusCode < 300 ? resolve(data) : reject(new Error(`${res.statusCode} ${data}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function latencies(fn, n) {
  for (let i = 0; i < Math.min(50, n); i++) await fn();  // warm-up
  const xs = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    xs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { p50: pct(xs, 50), p99: pct(xs, 99) };
}

async function rate(fn) {
  let count = 0;
  const end = performance.now() + args.seconds * 1000;
  await Promise.all(Array.from({ length: args.clients }, async () => {
    while (performance.now() < end) {
      await fn();
      count++;
    }
  }));
  return count / args.seconds;
}

// Rate over P processes: each runs the loop on its own connections, sends its count.
async function rateProcs(port, path, headers) {
  if (args.procs <= 1) return rate(() => request(port, 'GET', path, headers));
  const url = new URL(import.meta.url).pathname;
  const counts = await Promise.all(Array.from({ length: args.procs }, () => new Promise((resolve, reject) => {
    const w = fork(url, ['--clients', String(args.clients), '--seconds', String(args.seconds), '--worker', JSON.stringify({ port, path, headers })]);
    w.on('message', resolve);
    w.on('error', reject);
  })));
  return counts.reduce((a, b) => a + b, 0);
}

if (args.worker) {
  const { port, path, headers } = args.worker;
  const r = await rate(() => request(port, 'GET', path, headers));
  process.send(r, () => process.exit(0));
} else try {
  const bport = await start(['serve', '-m', `${SHARED}/golden/${MODEL}.gguf`, '--port', '0', '--parallel', '8', '--threads', '1'],
    /listening on http:\/\/127\.0\.0\.1:(\d+).*\n(?:.|\n)* ready /);
  writeFileSync(`${dir}/gw.toml`, `listen = "127.0.0.1:0"\nadmin_key = "adm"\n[database]\npath = "${dir}/gw.db"\n` +
    `[[pools]]\nmodels = ["${MODEL}"]\n[[pools.backends]]\nurl = "http://127.0.0.1:${bport}"\n`);
  const gport = await start(['gateway', '--config', `${dir}/gw.toml`], /listening on http:\/\/127\.0\.0\.1:(\d+)/);
  const key = JSON.parse(await request(gport, 'POST', '/admin/keys', { authorization: 'Bearer adm' }, '{"name":"bench"}')).key;
  const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const gen = JSON.stringify({ model: MODEL, prompt: 'Hi', max_tokens: 1, temperature: 0 });

  const r = {};
  r.models_direct = await latencies(() => request(bport, 'GET', '/v1/models', {}), args.n);
  r.models_gateway = await latencies(() => request(gport, 'GET', '/v1/models', auth), args.n);
  r.gen1_direct = await latencies(() => request(bport, 'POST', '/v1/completions', { 'content-type': 'application/json' }, gen), args.genN);
  r.gen1_gateway = await latencies(() => request(gport, 'POST', '/v1/completions', auth, gen), args.genN);
  r.rate_models_direct = await rateProcs(bport, '/v1/models', {});
  r.rate_models_gateway = await rateProcs(gport, '/v1/models', auth);
  r.added_models_ms = { p50: r.models_gateway.p50 - r.models_direct.p50, p99: r.models_gateway.p99 - r.models_direct.p99 };
  r.added_gen1_ms = { p50: r.gen1_gateway.p50 - r.gen1_direct.p50, p99: r.gen1_gateway.p99 - r.gen1_direct.p99 };
  if (args.json) console.log(JSON.stringify(r, null, 2));
  else {
    const f = (x) => x.toFixed(3);
    console.log(`GET /v1/models        direct p50 ${f(r.models_direct.p50)} ms p99 ${f(r.models_direct.p99)} ms | gateway p50 ${f(r.models_gateway.p50)} ms p99 ${f(r.models_gateway.p99)} ms | added p50 ${f(r.added_models_ms.p50)} p99 ${f(r.added_models_ms.p99)} ms`);
    console.log(`completions max_tok 1 direct p50 ${f(r.gen1_direct.p50)} ms p99 ${f(r.gen1_direct.p99)} ms | gateway p50 ${f(r.gen1_gateway.p50)} ms p99 ${f(r.gen1_gateway.p99)} ms | added p50 ${f(r.added_gen1_ms.p50)} p99 ${f(r.added_gen1_ms.p99)} ms`);
    console.log(`max rate /v1/models (${args.procs} x ${args.clients} connections, ${args.seconds} s): direct ${r.rate_models_direct.toFixed(0)} req/s, gateway ${r.rate_models_gateway.toFixed(0)} req/s`);
  }
} finally {
  for (const p of procs) p.kill('SIGTERM');
  agent.destroy();
  setTimeout(() => rmSync(dir, { recursive: true, force: true }), 300);
}
