// Overhead of `pocket gateway` in front of one `pocket serve` backend, measured
// from keep-alive HTTP clients on the same machine:
//   - added latency p50/p99: sequential requests to the backend alone vs through
//     the gateway, alternating (GET /v1/models, which the gateway answers after auth; GET
//     /v1/models/{model}, proxied: auth, limits, ledger row, metrics, the backend's answer;
//     and POST /v1/completions with max_tokens 1, the full path: auth, limits, usage ledger,
//     cost, proxy),
//   - max request rate of both, C connections per client process for a few seconds.
//
//   node bench/gateway_overhead.mjs [--bin build/pocket] [--n 2000] [--gen-n 200]
//        [--clients 32] [--seconds 3] [--procs 1] [--json] [--wrk]
//
// --wrk: the rates are measured with wrk (apt-get install wrk) as the client, procs threads
// x clients connections.
//
// The clients speak HTTP/1.1 over raw sockets (fixed request bytes, responses framed
// by Content-Length): Node's http module costs more CPU per request than the gateway
// does, and client and servers share the machine's cores.
//
// Starts its own backend (golden tiny model), gateway (temp SQLite file, a key
// with no limits) on 127.0.0.1, and stops them at the end.
import { spawn, fork, execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';

const args = { bin: 'build/pocket', n: 2000, genN: 200, clients: 32, seconds: 3, procs: 1, json: false, worker: null, wrk: false };
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
  else if (k === '--wrk') args.wrk = true;
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

// One keep-alive connection; send(bytes) resolves with the status once the whole
// response (Content-Length framed) has arrived. cpp-httplib closes a connection after
// a few requests (keep_alive_max_count): a closed connection is opened again and the
// request in flight, which got no answer, is sent again.
async function connect(port) {
  let sock = null, buf = Buffer.alloc(0), waiting = null;
  const open = () => new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
    s.on('data', (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      if (!waiting) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = head.match(/\r\ncontent-length: *(\d+)/i);
      if (!m) return waiting.reject(new Error(`no Content-Length: ${head}`));
      const total = end + 4 + Number(m[1]);
      if (buf.length < total) return;
      const status = Number(head.slice(9, 12));
      buf = buf.subarray(total);
      const w = waiting;
      waiting = null;
      if (/\r\nconnection: *close/i.test(head)) {  // the server's last answer on this connection
        sock = null;
        s.destroy();
      }
      status < 300 ? w.resolve(status) : w.reject(new Error(`HTTP ${status}: ${head}`));
    });
    s.on('error', (e) => (waiting ? waiting.reject(e) : reject(e)));
    s.on('end', () => {
      if (sock === s && !waiting) sock = null;  // closed between requests: open anew on the next
    });
    s.on('close', () => {
      if (sock !== s) return;
      sock = null;
      buf = Buffer.alloc(0);
      if (waiting) open().then(() => sock.write(waiting.bytes), waiting.reject);
    });
    s.on('connect', () => {
      sock = s;
      resolve();
    });
  });
  await open();
  return {
    send: async (bytes) => {
      if (!sock) await open();
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject, bytes };
        sock.write(bytes);
      });
    },
    close: () => {
      const s = sock;
      sock = null;
      s?.destroy();
    },
  };
}

function requestBytes(method, path, headers, body = '') {
  let h = `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  if (body) h += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
  return Buffer.from(h + '\r\n' + body);
}

// Latencies of a and b, their requests alternating (a, b, a, b, ...) so that both see
// the same moments of a noisy machine.
async function latencies(a, b, n) {
  for (let i = 0; i < Math.min(50, n); i++) await a(), await b();  // warm-up
  const xs = [[], []];
  for (let i = 0; i < n; i++) {
    for (const [k, fn] of [a, b].entries()) {
      const t0 = process.hrtime.bigint();
      await fn();
      xs[k].push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  }
  return xs.map((x) => ({ p50: pct(x, 50), p99: pct(x, 99) }));
}

async function rate(port, bytes) {
  let count = 0;
  const conns = await Promise.all(Array.from({ length: args.clients }, () => connect(port)));
  const end = performance.now() + args.seconds * 1000;
  await Promise.all(conns.map(async (c) => {
    while (performance.now() < end) {
      await c.send(bytes);
      count++;
    }
  }));
  for (const c of conns) c.close();
  return count / args.seconds;
}

// CPU seconds (user + system) a process has used so far.
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;  // utime, stime in clock ticks (100 Hz)
}

// Rate, and the CPU time each server process spent per request meanwhile.
async function measured(pids, fn) {
  const before = pids.map(cpuSeconds);
  const perSecond = await fn();
  const total = perSecond * args.seconds;
  return { rate: perSecond, cpu_us_per_request: pids.map((p, i) => ((cpuSeconds(p) - before[i]) / total) * 1e6) };
}

// Rate from wrk (C, epoll: a few us of client CPU per request instead of Node's ~100+, which
// on 2 shared cores otherwise caps what the servers can show): procs threads x clients
// connections; any answer that is not 2xx fails the run.
function rateWrk(port, method, path, headers, body) {
  const lua = `${dir}/wrk.lua`;
  writeFileSync(lua, `wrk.method = ${JSON.stringify(method)}\nwrk.body = ${JSON.stringify(body)}\n` +
    Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}\n`).join(''));
  const out = execFileSync('wrk', ['-t', String(args.procs), '-c', String(args.procs * args.clients), '-d', `${args.seconds}s`,
    '-s', lua, `http://127.0.0.1:${port}${path}`]).toString();
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`wrk: failed requests:\n${out}`);
  const m = out.match(/(\d+) requests in ([\d.]+)s/);
  return Number(m[1]) / Number(m[2]);
}

// Rate over P processes: each runs the loop on its own connections, sends its count.
async function rateProcs(port, method, path, headers, body) {
  if (args.wrk) return rateWrk(port, method, path, headers, body);
  if (args.procs <= 1) return rate(port, requestBytes(method, path, headers, body));
  const url = new URL(import.meta.url).pathname;
  const counts = await Promise.all(Array.from({ length: args.procs }, () => new Promise((resolve, reject) => {
    const w = fork(url, ['--clients', String(args.clients), '--seconds', String(args.seconds), '--worker', JSON.stringify({ port, method, path, headers, body })]);
    w.on('message', resolve);
    w.on('error', reject);
  })));
  return counts.reduce((a, b) => a + b, 0);
}

if (args.worker) {
  const { port, method, path, headers, body } = args.worker;
  const r = await rate(port, requestBytes(method, path, headers, body));
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
  const direct = await connect(bport), via = await connect(gport);
  const models = (h) => requestBytes('GET', '/v1/models', h);
  const json = { 'Content-Type': 'application/json' };
  const gauth = { authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
  [r.models_direct, r.models_gateway] = await latencies(() => direct.send(models({})), () => via.send(models(gauth)), args.n);
  const retrieve = (h) => requestBytes('GET', `/v1/models/${MODEL}`, h);
  const retrieveDirect = retrieve({}), retrieveVia = retrieve(gauth);
  [r.retrieve_direct, r.retrieve_gateway] = await latencies(() => direct.send(retrieveDirect), () => via.send(retrieveVia), args.n);
  const genDirect = requestBytes('POST', '/v1/completions', json, gen), genVia = requestBytes('POST', '/v1/completions', gauth, gen);
  [r.gen1_direct, r.gen1_gateway] = await latencies(() => direct.send(genDirect), () => via.send(genVia), args.genN);
  direct.close();
  via.close();
  const [bpid, gpid] = [procs[0].pid, procs[1].pid];
  r.rate_models_direct = await measured([bpid], () => rateProcs(bport, 'GET', '/v1/models', {}, ''));
  r.rate_models_gateway = await measured([gpid], () => rateProcs(gport, 'GET', '/v1/models', gauth, ''));
  r.rate_retrieve_direct = await measured([bpid], () => rateProcs(bport, 'GET', `/v1/models/${MODEL}`, {}, ''));
  r.rate_retrieve_gateway = await measured([gpid, bpid], () => rateProcs(gport, 'GET', `/v1/models/${MODEL}`, gauth, ''));
  r.rate_gen1_direct = await measured([bpid], () => rateProcs(bport, 'POST', '/v1/completions', json, gen));
  r.rate_gen1_gateway = await measured([gpid, bpid], () => rateProcs(gport, 'POST', '/v1/completions', gauth, gen));
  r.added_models_ms = { p50: r.models_gateway.p50 - r.models_direct.p50, p99: r.models_gateway.p99 - r.models_direct.p99 };
  r.added_retrieve_ms = { p50: r.retrieve_gateway.p50 - r.retrieve_direct.p50, p99: r.retrieve_gateway.p99 - r.retrieve_direct.p99 };
  r.added_gen1_ms = { p50: r.gen1_gateway.p50 - r.gen1_direct.p50, p99: r.gen1_gateway.p99 - r.gen1_direct.p99 };
  if (args.json) console.log(JSON.stringify(r, null, 2));
  else {
    const f = (x) => x.toFixed(3);
    console.log(`GET /v1/models        direct p50 ${f(r.models_direct.p50)} ms p99 ${f(r.models_direct.p99)} ms | gateway p50 ${f(r.models_gateway.p50)} ms p99 ${f(r.models_gateway.p99)} ms | added p50 ${f(r.added_models_ms.p50)} p99 ${f(r.added_models_ms.p99)} ms`);
    console.log(`GET /v1/models/{m}    direct p50 ${f(r.retrieve_direct.p50)} ms p99 ${f(r.retrieve_direct.p99)} ms | gateway p50 ${f(r.retrieve_gateway.p50)} ms p99 ${f(r.retrieve_gateway.p99)} ms | added p50 ${f(r.added_retrieve_ms.p50)} p99 ${f(r.added_retrieve_ms.p99)} ms (proxied)`);
    console.log(`completions max_tok 1 direct p50 ${f(r.gen1_direct.p50)} ms p99 ${f(r.gen1_direct.p99)} ms | gateway p50 ${f(r.gen1_gateway.p50)} ms p99 ${f(r.gen1_gateway.p99)} ms | added p50 ${f(r.added_gen1_ms.p50)} p99 ${f(r.added_gen1_ms.p99)} ms`);
    const us = (x) => x.toFixed(0);
    console.log(`max rate (${args.wrk ? 'wrk' : 'node'}: ${args.procs} x ${args.clients} connections, ${args.seconds} s), and server CPU per request:`);
    console.log(`  GET /v1/models: direct ${r.rate_models_direct.rate.toFixed(0)} req/s (backend ${us(r.rate_models_direct.cpu_us_per_request[0])} us) | gateway ${r.rate_models_gateway.rate.toFixed(0)} req/s (gateway ${us(r.rate_models_gateway.cpu_us_per_request[0])} us)`);
    console.log(`  GET /v1/models/{m} (proxied): direct ${r.rate_retrieve_direct.rate.toFixed(0)} req/s (backend ${us(r.rate_retrieve_direct.cpu_us_per_request[0])} us) | gateway ${r.rate_retrieve_gateway.rate.toFixed(0)} req/s (gateway ${us(r.rate_retrieve_gateway.cpu_us_per_request[0])} us, backend ${us(r.rate_retrieve_gateway.cpu_us_per_request[1])} us)`);
    console.log(`  completions max_tokens 1: direct ${r.rate_gen1_direct.rate.toFixed(0)} req/s (backend ${us(r.rate_gen1_direct.cpu_us_per_request[0])} us) | gateway ${r.rate_gen1_gateway.rate.toFixed(0)} req/s (gateway ${us(r.rate_gen1_gateway.cpu_us_per_request[0])} us, backend ${us(r.rate_gen1_gateway.cpu_us_per_request[1])} us)`);
  }
} finally {
  for (const p of procs) p.kill('SIGTERM');
  agent.destroy();
  setTimeout(() => rmSync(dir, { recursive: true, force: true }), 300);
}
