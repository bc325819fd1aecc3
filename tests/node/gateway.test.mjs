// End-to-end tests of `pocket gateway`: two real `pocket serve` backends (golden
// tiny model), a real redis-server, SQLite files, the official OpenAI Node SDK as
// the client. Everything on 127.0.0.1, any free ports.
//
//   POCKET_BIN=build/pocket node --test tests/node/gateway.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import OpenAI from 'openai';

const BIN = process.env.POCKET_BIN ?? 'build/pocket';
const SHARED = process.env.POCKET_SHARED_DIR ?? new URL('../../../shared', import.meta.url).pathname;
const MODEL = 'tiny-qwen35-dense-tied-f32';
const MODEL_FILE = `${SHARED}/golden/${MODEL}.gguf`;
const ADMIN = 'admin-secret';
const dir = mkdtempSync(`${tmpdir()}/pocket-gw-`);
const procs = new Set();

function waitFor(proc, re, what) {
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${log}`)), 20000);
    const onData = (d) => {
      log += d;
      const m = log.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    proc.stderr?.on('data', onData);
    proc.stdout?.on('data', onData);
    proc.on('exit', (code) => reject(new Error(`${what} exited with ${code}:\n${log}`)));
  });
}

async function startBackend() {
  const proc = spawn(BIN, ['serve', '-m', MODEL_FILE, '--port', '0', '--parallel', '4', '--kv-type', 'f32', '--ctx', '1024', '--threads', '1'],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.add(proc);
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`backend did not start:\n${log}`)), 20000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && log.includes(' ready ')) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`backend exited with ${code}:\n${log}`)));
  });
  return { proc, url: `http://127.0.0.1:${port}` };
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function writeConfig(name, { db, redis, backends, limits = '' }) {
  const path = `${dir}/${name}.toml`;
  let text = `listen = "127.0.0.1:0"\nadmin_key = "${ADMIN}"\naccess_log = "${dir}/${name}.log"\n` +
    `[database]\npath = "${db}"\n[health]\ninterval_ms = 200\nmax_failures = 1\neject_ms = 2000\n` +
    `[prices]\nelectricity_per_kwh = 0.30\npue = 1.2\nbusy_watts = 100\ncloud_input_per_1m = 1.0\ncloud_output_per_1m = 2.0\nrapl = false\n`;
  if (redis) text += `[redis]\nurl = "${redis}"\n`;
  if (limits) text += `[limits]\n${limits}\n`;
  text += `[[pools]]\nname = "tiny"\nmodels = ["${MODEL}"]\n`;
  for (const b of backends) text += `[[pools.backends]]\nurl = "${b}"\nweight = 1\n`;
  writeFileSync(path, text);
  return path;
}

async function startGateway(config) {
  const proc = spawn(BIN, ['gateway', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.add(proc);
  const m = await waitFor(proc, /listening on http:\/\/127\.0\.0\.1:(\d+)/, 'gateway');
  return { proc, base: `http://127.0.0.1:${m[1]}` };
}

async function stop(proc) {
  if (proc.exitCode !== null) return;
  const done = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  await done;
  procs.delete(proc);
}

const client = (base, key) => new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 30000 });

async function admin(base, method, path, body) {
  const r = await fetch(base + path, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, json: await r.json() };
}

async function newKey(base, spec) {
  const r = await admin(base, 'POST', '/admin/keys', spec);
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r.json;
}

// A request that returns the HTTP status instead of throwing.
async function chat(base, key, extra = {}) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, ...extra }),
  });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

let b1, b2, redis, redisUrl, gw;
before(async () => {
  [b1, b2] = await Promise.all([startBackend(), startBackend()]);
  const port = await freePort();
  redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(redis);
  await waitFor(redis, /Ready to accept connections/, 'redis-server');
  redisUrl = `redis://127.0.0.1:${port}`;
  gw = await startGateway(writeConfig('main', { db: `${dir}/main.db`, backends: [b1.url, b2.url] }));
});

after(() => {
  for (const p of procs) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

test('keys: admin API lifecycle, CLI keys, auth errors', async () => {
  assert.equal((await fetch(`${gw.base}/admin/keys`)).status, 401);
  const k = await newKey(gw.base, { name: 'alice', models: [MODEL] });
  assert.match(k.key, /^pk-[0-9a-f]{48}$/);
  const list = await admin(gw.base, 'GET', '/admin/keys');
  assert.ok(list.json.data.some((x) => x.id === k.id && x.name === 'alice' && !('key' in x) && !('hash' in x)));

  const models = await client(gw.base, k.key).models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  await assert.rejects(client(gw.base, 'pk-wrong').models.list(), (e) => e.status === 401);
  assert.equal((await fetch(`${gw.base}/v1/models`)).status, 401);

  assert.equal((await admin(gw.base, 'PATCH', `/admin/keys/${k.id}`, { enabled: false })).status, 200);
  assert.equal((await chat(gw.base, k.key)).status, 403);
  await admin(gw.base, 'PATCH', `/admin/keys/${k.id}`, { enabled: true });
  assert.equal((await chat(gw.base, k.key)).status, 200);
  const other = await chat(gw.base, k.key, { model: 'nope' });
  assert.equal(other.status, 403);
  assert.equal(other.json.error.code, 'model_not_allowed');
  assert.equal((await admin(gw.base, 'DELETE', `/admin/keys/${k.id}`)).status, 200);
  const revoked = await chat(gw.base, k.key);
  assert.equal(revoked.status, 401);
  assert.equal(revoked.json.error.code, 'key_revoked');

  // `pocket keys` works on the same database; the gateway sees the new key at once.
  const out = JSON.parse(execFileSync(BIN, ['keys', 'create', '--db', `${dir}/main.db`, '--name', 'cli', '--rpm', '100'], { stdio: ['ignore', 'pipe', 'ignore'] }).toString());
  assert.equal((await chat(gw.base, out.key)).status, 200);
  const listed = execFileSync(BIN, ['keys', 'list', '--db', `${dir}/main.db`]).toString();
  assert.match(listed, /cli/);
  execFileSync(BIN, ['keys', 'revoke', '--db', `${dir}/main.db`, '--id', String(out.id)]);
});

test('proxy: answers equal the backend, streaming identical to direct, usage.cost added', async () => {
  const k = await newKey(gw.base, { name: 'proxy' });
  const direct = client(b1.url, 'x');
  const via = client(gw.base, k.key);
  const body = { model: MODEL, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12, temperature: 0 };
  const d = await direct.chat.completions.create(body);
  const g = await via.chat.completions.create(body);
  assert.equal(g.choices[0].message.content, d.choices[0].message.content);
  assert.equal(g.usage.prompt_tokens, d.usage.prompt_tokens);
  assert.equal(g.usage.completion_tokens, d.usage.completion_tokens);
  assert.ok(g.usage.cost.local_usd > 0 && g.usage.cost.cloud_usd > 0 && g.usage.cost.energy_j > 0);
  assert.equal(g.usage.cost.cloud_usd, (g.usage.prompt_tokens * 1.0 + g.usage.completion_tokens * 2.0) / 1e6);

  const collect = async (c, opts) => {
    const chunks = [];
    for await (const ch of await c.chat.completions.create({ ...body, stream: true, ...opts })) chunks.push(ch);
    return chunks;
  };
  const strip = (chunks) => chunks.map((c) => JSON.stringify({ ...c, id: undefined, created: undefined, usage: c.usage ? { ...c.usage, cost: undefined } : undefined }));
  // Without include_usage the client gets no usage chunk (the gateway asked for one upstream).
  const ds = await collect(direct, {});
  const gs = await collect(via, {});
  assert.deepEqual(strip(gs), strip(ds));
  assert.ok(gs.every((c) => !c.usage));
  const du = await collect(direct, { stream_options: { include_usage: true } });
  const gu = await collect(via, { stream_options: { include_usage: true } });
  assert.deepEqual(strip(gu), strip(du));
  assert.ok(gu.at(-1).usage.cost.cloud_usd > 0);

  // /v1/models lists the union; usage is recorded to the token.
  await new Promise((r) => setTimeout(r, 50));
  const u = await (await fetch(`${gw.base}/v1/usage`, { headers: { authorization: `Bearer ${k.key}` } })).json();
  assert.equal(u.total.requests, 3);
  assert.equal(u.total.prompt_tokens, 3 * d.usage.prompt_tokens);
  assert.equal(u.total.completion_tokens, 3 * d.usage.completion_tokens);
  const rep = await admin(gw.base, 'GET', `/admin/usage?by=model&key=${k.id}`);
  assert.equal(rep.json.data[0].model, MODEL);
  assert.equal(rep.json.data[0].completion_tokens, 3 * d.usage.completion_tokens);
  const cli = JSON.parse(execFileSync(BIN, ['usage', '--db', `${dir}/main.db`, '--by', 'key', '--key', String(k.id), '--json']).toString());
  assert.equal(cli[0].prompt_tokens, 3 * d.usage.prompt_tokens);
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(metrics, /pocket_gateway_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} \d+/);
  // JSON-lines access log: one line per proxied request with its tokens.
  const lines = readFileSync(`${dir}/main.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const mine = lines.filter((l) => l.key_id === k.id && l.path === '/v1/chat/completions');
  assert.equal(mine.length, 3);
  assert.ok(mine.every((l) => l.status === 200 && l.prompt_tokens === d.usage.prompt_tokens && l.backend.startsWith('http://127.0.0.1:')));
});

test('limits: requests/min, tokens/min, concurrent, budget trip with 429 + Retry-After and recover', async () => {
  const rpm = await newKey(gw.base, { name: 'rpm', limits: { requests_per_minute: 2 } });
  assert.equal((await chat(gw.base, rpm.key)).status, 200);
  assert.equal((await chat(gw.base, rpm.key)).status, 200);
  const hit = await chat(gw.base, rpm.key);
  assert.equal(hit.status, 429);
  assert.equal(hit.json.error.code, 'requests_per_minute');
  assert.ok(Number(hit.headers.get('retry-after')) >= 1);
  await assert.rejects(client(gw.base, rpm.key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
    (e) => e.status === 429);
  await admin(gw.base, 'PATCH', `/admin/keys/${rpm.id}`, { limits: { requests_per_minute: 100 } });
  assert.equal((await chat(gw.base, rpm.key)).status, 200);

  const tpm = await newKey(gw.base, { name: 'tpm', limits: { tokens_per_minute: 10 } });
  const first = await chat(gw.base, tpm.key);  // prompt alone is > 10 tokens
  assert.equal(first.status, 200);
  const t = await chat(gw.base, tpm.key, { stream: true });
  assert.equal(t.status, 429);
  assert.equal(t.json.error.code, 'tokens_per_minute');
  await admin(gw.base, 'PATCH', `/admin/keys/${tpm.id}`, { limits: { tokens_per_minute: 100000 } });
  assert.equal((await chat(gw.base, tpm.key)).status, 200);

  const budget = await newKey(gw.base, { name: 'budget', limits: { tokens_per_day: 5 } });
  assert.equal((await chat(gw.base, budget.key)).status, 200);
  const b = await chat(gw.base, budget.key);
  assert.equal(b.status, 429);
  assert.equal(b.json.error.code, 'tokens_per_day');
  assert.equal(b.json.error.type, 'insufficient_quota');

  const conc = await newKey(gw.base, { name: 'conc', limits: { concurrent: 1 } });
  const slow = chat(gw.base, conc.key, { max_tokens: 200 });
  await new Promise((r) => setTimeout(r, 30));
  const c = await chat(gw.base, conc.key);
  assert.equal(c.status, 429);
  assert.equal(c.json.error.code, 'concurrent');
  assert.equal((await slow).status, 200);
  assert.equal((await chat(gw.base, conc.key)).status, 200);  // the slot is free again
});

test('two gateway processes share limits through redis', async () => {
  const cfg = writeConfig('shared', { db: `${dir}/shared.db`, redis: redisUrl, backends: [b1.url, b2.url] });
  const [g1, g2] = await Promise.all([startGateway(cfg), startGateway(cfg)]);
  const k = await newKey(g1.base, { name: 'shared', limits: { requests_per_minute: 3 } });
  assert.equal((await chat(g1.base, k.key)).status, 200);
  assert.equal((await chat(g2.base, k.key)).status, 200);
  assert.equal((await chat(g1.base, k.key)).status, 200);
  const hit = await chat(g2.base, k.key);
  assert.equal(hit.status, 429);
  assert.equal(hit.json.error.code, 'requests_per_minute');
  // A restarted gateway still sees the count (kept in redis).
  await stop(g1.proc);
  const g3 = await startGateway(cfg);
  assert.equal((await chat(g3.base, k.key)).status, 429);
  await Promise.all([stop(g2.proc), stop(g3.proc)]);
});

test('restart keeps usage and limits (SQLite, no redis)', async () => {
  const cfg = writeConfig('restart', { db: `${dir}/restart.db`, backends: [b1.url] });
  let g = await startGateway(cfg);
  const k = await newKey(g.base, { name: 'r', limits: { tokens_per_day: 30, requests_per_minute: 50 } });
  const r1 = await chat(g.base, k.key);
  assert.equal(r1.status, 200);
  const r2 = await chat(g.base, k.key);
  assert.equal(r2.status, 200);
  assert.equal((await chat(g.base, k.key)).status, 429);
  const before = await (await fetch(`${g.base}/v1/usage`, { headers: { authorization: `Bearer ${k.key}` } })).json();
  await stop(g.proc);
  g = await startGateway(cfg);
  const after = await (await fetch(`${g.base}/v1/usage`, { headers: { authorization: `Bearer ${k.key}` } })).json();
  assert.deepEqual(after.total, before.total);
  assert.equal(after.total.prompt_tokens, r1.json.usage.prompt_tokens + r2.json.usage.prompt_tokens);
  const again = await chat(g.base, k.key);
  assert.equal(again.status, 429);
  assert.equal(again.json.error.code, 'tokens_per_day');
  await stop(g.proc);
});

async function metricSum(urls, name) {
  let sum = 0;
  for (const u of urls) {
    const m = (await (await fetch(`${u}/metrics`)).text()).match(new RegExp(`^${name} (\\S+)$`, 'm'));
    sum += m ? Number(m[1]) : 0;
  }
  return sum;
}

test('a client that disconnects mid-stream cancels the upstream generation', async () => {
  const k = await newKey(gw.base, { name: 'abort' });
  const before = await metricSum([b1.url, b2.url], 'pocket_cancelled_requests_total');
  const ac = new AbortController();
  const r = await fetch(`${gw.base}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 900, ignore_eos: true, stream: true }),
  });
  const reader = r.body.getReader();
  await reader.read();
  ac.abort();
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await new Promise((res) => setTimeout(res, 100));
    after = await metricSum([b1.url, b2.url], 'pocket_cancelled_requests_total');
  }
  assert.equal(after, before + 1);
  const rep = await admin(gw.base, 'GET', `/admin/usage?by=key&key=${k.id}`);
  assert.equal(rep.json.data[0].requests, 1);
  assert.equal(rep.json.data[0].ok_requests, 0);  // recorded with status 499
});

test('a backend killed mid-test: no failed request that had not started streaming', async () => {
  const k = await newKey(gw.base, { name: 'failover' });
  const c = client(gw.base, k.key);
  const one = (i) => c.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: `n${i}` }], max_tokens: 16, temperature: 0 });
  const all = [];
  for (let i = 0; i < 8; i++) all.push(one(i));
  await new Promise((r) => setTimeout(r, 20));
  b2.proc.kill('SIGKILL');
  for (let i = 8; i < 24; i++) all.push(one(i));
  const results = await Promise.allSettled(all);
  const failed = results.filter((r) => r.status === 'rejected');
  assert.equal(failed.length, 0, failed.map((f) => String(f.reason)).join('\n'));
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(metrics, new RegExp(`pocket_gateway_backend_available\\{backend="${b2.url}"\\} 0`));
});
