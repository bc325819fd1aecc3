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
import { startPocketServe } from './pocket_serve.mjs';

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
  const { proc, port } = await startPocketServe(BIN, ['-m', MODEL_FILE, '--parallel', '4', '--kv-type', 'f32', '--ctx', '1024', '--threads', '1'], 'backend');
  procs.add(proc);
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

function writeConfig(name, { db, redis, backends, limits = '', leaseMs = 0 }) {
  const path = `${dir}/${name}.toml`;
  let text = `listen = "127.0.0.1:0"\nadmin_key = "${ADMIN}"\naccess_log = "${dir}/${name}.log"\n` +
    `[database]\npath = "${db}"\n[health]\ninterval_ms = 200\nmax_failures = 1\neject_ms = 2000\n` +
    `[prices]\nelectricity_per_kwh = 0.30\npue = 1.2\nbusy_watts = 100\ncloud_input_per_1m = 1.0\ncloud_output_per_1m = 2.0\nhardware_per_hour = 0.5\n`;
  if (redis) text += `[redis]\nurl = "${redis}"\n` + (leaseMs ? `slot_lease_ms = ${leaseMs}\n` : '');
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A request that returns the HTTP status instead of throwing.
async function chat(base, key, extra = {}) {
  const r = await fetch(`${base}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3, temperature: 0, ...extra }),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { stream: text };  // a streamed answer
  }
  return { status: r.status, headers: r.headers, json };
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
  assert.doesNotMatch(listed, new RegExp(out.key));

  // Expiry: a key past its time is refused; one that expires soon works until then.
  const now = Math.floor(Date.now() / 1000);
  const old = await newKey(gw.base, { name: 'old', expires_at: now - 1 });
  const expired = await chat(gw.base, old.key);
  assert.equal(expired.status, 401);
  assert.equal(expired.json.error.code, 'key_expired');
  const soon = await newKey(gw.base, { name: 'soon', expires_at: now + 2 });
  assert.equal((await chat(gw.base, soon.key)).status, 200);

  // `pocket keys update` / `revoke` on the database reach the running gateway (reload every 2 s).
  execFileSync(BIN, ['keys', 'update', '--db', `${dir}/main.db`, '--id', String(out.id), '--disable']);
  const until = async (fn, code) => {
    let r;
    for (let i = 0; i < 40; i++) {
      r = await fn();
      if (r.json?.error?.code === code) return r;
      await sleep(100);
    }
    return r;
  };
  assert.equal((await until(() => chat(gw.base, out.key), 'key_disabled')).status, 403);
  execFileSync(BIN, ['keys', 'revoke', '--db', `${dir}/main.db`, '--id', String(out.id)]);
  assert.equal((await until(() => chat(gw.base, out.key), 'key_revoked')).status, 401);
  assert.equal((await until(() => chat(gw.base, soon.key), 'key_expired')).status, 401);
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
  // The gateway prices the engine time the backend measured (its token share of each batch):
  // busy_watts 100, $0.30/kWh, PUE 1.2, hardware $0.50 per busy hour.
  const priced = (u) => {
    assert.ok(u.engine_time_s > 0, JSON.stringify(u));
    const energy = 100 * u.engine_time_s;
    assert.ok(Math.abs(u.cost.energy_j - energy) <= 1e-12 * energy, JSON.stringify(u));
    const local = energy / 3.6e6 * 0.30 * 1.2 + 0.5 * u.engine_time_s / 3600;
    assert.ok(Math.abs(u.cost.local_usd - local) <= 1e-12 * local, JSON.stringify(u));
    assert.ok(Math.abs(u.cost.saving_usd - (u.cost.cloud_usd - u.cost.local_usd)) <= 1e-15);
    return u.cost;
  };
  const costs = [priced(g.usage)];

  // /v1/completions (legacy) goes through too, with its usage recorded.
  const cbody = { model: MODEL, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 };
  const dc = await direct.completions.create(cbody);
  const gc = await via.completions.create(cbody);
  assert.equal(gc.choices[0].text, dc.choices[0].text);
  assert.equal(gc.usage.prompt_tokens, dc.usage.prompt_tokens);
  costs.push(priced(gc.usage));

  const collect = async (c, opts) => {
    const chunks = [];
    for await (const ch of await c.chat.completions.create({ ...body, stream: true, ...opts })) chunks.push(ch);
    return chunks;
  };
  const strip = (chunks) => chunks.map((c) => JSON.stringify({ ...c, id: undefined, created: undefined, usage: c.usage ? { ...c.usage, cost: undefined, engine_time_s: undefined } : undefined }));
  // Without include_usage the client gets no usage chunk (the gateway asked for one upstream).
  const ds = await collect(direct, {});
  const gs = await collect(via, {});
  assert.deepEqual(strip(gs), strip(ds));
  assert.ok(gs.every((c) => !c.usage));
  const du = await collect(direct, { stream_options: { include_usage: true } });
  const gu = await collect(via, { stream_options: { include_usage: true } });
  assert.deepEqual(strip(gu), strip(du));
  assert.ok(gu.at(-1).usage.cost.cloud_usd > 0);
  costs.push(priced(gu.at(-1).usage));

  // Usage is recorded to the token, the ledger's costs are the ones the responses carried.
  await new Promise((r) => setTimeout(r, 50));
  const u = await (await fetch(`${gw.base}/v1/usage`, { headers: { authorization: `Bearer ${k.key}` } })).json();
  assert.equal(u.total.requests, 4);
  assert.equal(u.total.prompt_tokens, 3 * d.usage.prompt_tokens + dc.usage.prompt_tokens);
  assert.equal(u.total.completion_tokens, 3 * d.usage.completion_tokens + dc.usage.completion_tokens);
  const rep = await admin(gw.base, 'GET', `/admin/usage?by=model&key=${k.id}`);
  assert.equal(rep.json.data[0].model, MODEL);
  assert.equal(rep.json.data[0].completion_tokens, 3 * d.usage.completion_tokens + dc.usage.completion_tokens);
  const cli = JSON.parse(execFileSync(BIN, ['usage', '--db', `${dir}/main.db`, '--by', 'key', '--key', String(k.id), '--json']).toString());
  assert.equal(cli[0].prompt_tokens, 3 * d.usage.prompt_tokens + dc.usage.prompt_tokens);
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(metrics, /pocket_gateway_requests_total\{endpoint="\/v1\/chat\/completions",status="200"\} \d+/);
  // JSON-lines access log: one line per proxied request with its tokens.
  const lines = readFileSync(`${dir}/main.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const mine = lines.filter((l) => l.key_id === k.id && l.path === '/v1/chat/completions');
  assert.equal(mine.length, 3);
  assert.equal(lines.filter((l) => l.key_id === k.id && l.path === '/v1/completions' && l.prompt_tokens === dc.usage.prompt_tokens).length, 1);
  // Each cost a client saw is its row's; the ledger's total is the sum of the rows (the
  // stream without include_usage was priced too, out of the client's sight).
  const rows = lines.filter((l) => l.key_id === k.id);
  assert.equal(rows.length, 4);
  for (const c of costs) assert.equal(rows.filter((l) => l.cost_local === c.local_usd && l.cost_cloud === c.cloud_usd).length, 1, JSON.stringify(c));
  const sum = (f) => rows.reduce((a, l) => a + l[f], 0);
  assert.ok(rows.every((l) => l.cost_local > 0));
  assert.ok(Math.abs(u.total.cost_local - sum('cost_local')) <= 1e-12 * u.total.cost_local, `${u.total.cost_local} vs ${sum('cost_local')}`);
  assert.ok(Math.abs(u.total.cost_cloud - sum('cost_cloud')) <= 1e-12 * u.total.cost_cloud);
  assert.ok(mine.every((l) => l.status === 200 && l.prompt_tokens === d.usage.prompt_tokens && l.backend.startsWith('http://127.0.0.1:')));
});

test('retrieve model: proxied to a backend through auth, limits and the ledger', async () => {
  const k = await newKey(gw.base, { name: 'retrieve', limits: { requests_per_minute: 3 } });
  const direct = await Promise.all([b1, b2].map(async (b) => (await fetch(`${b.url}/v1/models/${MODEL}`)).json()));
  const m = await client(gw.base, k.key).models.retrieve(MODEL);
  assert.equal(m.id, MODEL);
  // The backend's answer (it stamps its own start time; the gateway's own answer had 0).
  assert.ok(direct.some((d) => d.created === m.created && d.owned_by === m.owned_by), JSON.stringify({ m, direct }));
  assert.ok(m.created > 0);
  await assert.rejects(client(gw.base, 'pk-wrong').models.retrieve(MODEL), (e) => e.status === 401);
  const unknown = await fetch(`${gw.base}/v1/models/nope`, { headers: { authorization: `Bearer ${k.key}` } });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, 'model_not_found');
  // Counted by the key's requests/min like any request: the 4th in a minute is refused
  // (a minute boundary meanwhile restarts the count, so up to 8 tries).
  const statuses = [];
  while (statuses.length < 8 && !statuses.includes(429))
    statuses.push((await fetch(`${gw.base}/v1/models/${MODEL}`, { headers: { authorization: `Bearer ${k.key}` } })).status);
  assert.equal(statuses.at(-1), 429, JSON.stringify(statuses));
  // Ledger rows (429s too) are written by the gateway's writer thread within 100 ms: another
  // process reading the SQLite file sees them without anything asking the gateway to flush.
  await sleep(400);
  const cli = JSON.parse(execFileSync(BIN, ['usage', '--db', `${dir}/main.db`, '--by', 'key', '--key', String(k.id), '--json']).toString());
  assert.equal(cli[0].requests, statuses.length + 1, JSON.stringify(cli));
  const usage = await admin(gw.base, 'GET', `/admin/usage?by=key&key=${k.id}`);
  assert.equal(usage.json.total.requests, statuses.length + 1, JSON.stringify(usage.json));
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(metrics, /pocket_gateway_requests_total\{endpoint="\/v1\/models\/\{model\}",status="200"\} [1-9]/);
});

test('limits: requests/min, tokens/min, concurrent, budgets trip with 429 + Retry-After and recover', async () => {
  // Trip both minute limits inside one UTC minute, then see them recover when it ends.
  const sec = new Date().getUTCSeconds();
  if (sec > 50) await sleep((61 - sec) * 1000);
  const rpm = await newKey(gw.base, { name: 'rpm', limits: { requests_per_minute: 2 } });
  assert.equal((await chat(gw.base, rpm.key)).status, 200);
  assert.equal((await chat(gw.base, rpm.key)).status, 200);
  const hit = await chat(gw.base, rpm.key);
  assert.equal(hit.status, 429);
  assert.equal(hit.json.error.code, 'requests_per_minute');
  assert.equal(hit.json.error.type, 'rate_limit_exceeded');
  await assert.rejects(client(gw.base, rpm.key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }),
    (e) => e.status === 429);

  const tpm = await newKey(gw.base, { name: 'tpm', limits: { tokens_per_minute: 10 } });
  const first = await chat(gw.base, tpm.key, { stream: true });  // prompt alone is > 10 tokens
  assert.equal(first.status, 200);  // a stream's tokens count too (usage asked upstream)
  const t = await chat(gw.base, tpm.key, { stream: true });
  assert.equal(t.status, 429);
  assert.equal(t.json.error.code, 'tokens_per_minute');

  // Retry-After is the rest of the minute; after it both keys work again, with no change to
  // their limits.
  const wait = Number(hit.headers.get('retry-after'));
  const utcLeft = 60 - new Date().getUTCSeconds();
  assert.ok(wait >= 1 && wait <= 60 && Math.abs(wait - utcLeft) <= 1, `Retry-After ${wait}, ${utcLeft} s left in the minute`);
  assert.ok(Math.abs(Number(t.headers.get('retry-after')) - wait) <= 1);
  await sleep(wait * 1000 + 200);
  assert.equal((await chat(gw.base, rpm.key)).status, 200);
  assert.equal((await chat(gw.base, rpm.key)).status, 200);
  assert.equal((await chat(gw.base, rpm.key)).status, 429);  // and trips again in the new minute
  assert.equal((await chat(gw.base, tpm.key, { stream: true })).status, 200);

  // Budgets (their windows are a day or a month; the rollover is in the unit tests):
  // trip, then recover when the budget is raised.
  // A day budget's Retry-After is the time to the next UTC midnight; keep the trip and its check
  // inside one UTC day.
  const toMidnight = () => { const d = new Date(); return 86400 - (d.getUTCHours() * 3600 + d.getUTCMinutes() * 60 + d.getUTCSeconds()); };
  if (toMidnight() < 10) await sleep(toMidnight() * 1000 + 1000);
  const budget = await newKey(gw.base, { name: 'budget', limits: { tokens_per_day: 5 } });
  assert.equal((await chat(gw.base, budget.key)).status, 200);
  const b = await chat(gw.base, budget.key);
  assert.equal(b.status, 429);
  assert.equal(b.json.error.code, 'tokens_per_day');
  assert.equal(b.json.error.type, 'insufficient_quota');
  const dayLeft = toMidnight();
  assert.ok(Math.abs(Number(b.headers.get('retry-after')) - dayLeft) <= 2, `Retry-After ${b.headers.get('retry-after')}, ${dayLeft} s left in the UTC day`);
  await admin(gw.base, 'PATCH', `/admin/keys/${budget.id}`, { limits: { tokens_per_day: 100000 } });
  assert.equal((await chat(gw.base, budget.key)).status, 200);
  const money = await newKey(gw.base, { name: 'money', limits: { dollars_per_month: 1e-12 } });
  assert.equal((await chat(gw.base, money.key)).status, 200);
  const m = await chat(gw.base, money.key);
  assert.equal(m.status, 429);
  assert.equal(m.json.error.code, 'dollars_per_month');

  const conc = await newKey(gw.base, { name: 'conc', limits: { concurrent: 1 } });
  const slow = chat(gw.base, conc.key, { max_tokens: 200 });
  await sleep(30);
  const c = await chat(gw.base, conc.key);
  assert.equal(c.status, 429);
  assert.equal(c.json.error.code, 'concurrent');
  assert.equal(c.headers.get('retry-after'), '1');
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

test('redis concurrency slots: one limit over two gateways; a crashed gateway\'s slot frees itself', async () => {
  const cfg = writeConfig('lease', { db: `${dir}/lease.db`, redis: redisUrl, backends: [b1.url], leaseMs: 1000 });
  const [g1, g2] = await Promise.all([startGateway(cfg), startGateway(cfg)]);
  const k = await newKey(g1.base, { name: 'lease', limits: { concurrent: 1 } });
  const ac = new AbortController();
  const r = await fetch(`${g1.base}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 900, ignore_eos: true, stream: true }),
  });
  assert.equal(r.status, 200);
  await r.body.getReader().read();
  // g1 holds the key's only slot: g2 refuses.
  const refused = await chat(g2.base, k.key);
  assert.equal(refused.status, 429);
  assert.equal(refused.json.error.code, 'concurrent');
  // g1 dies without releasing it: the slot stays taken until its lease (1 s, renewed every
  // third of it) runs out, then comes free.
  const t0 = Date.now();
  g1.proc.kill('SIGKILL');
  await new Promise((res) => g1.proc.on('exit', res));
  ac.abort();
  assert.equal((await chat(g2.base, k.key)).status, 429);
  let status = 429;
  while (status === 429 && Date.now() - t0 < 5000) {
    await sleep(100);
    status = (await chat(g2.base, k.key)).status;
  }
  assert.equal(status, 200);
  const freedMs = Date.now() - t0;
  assert.ok(freedMs <= 2000, `slot freed after ${freedMs} ms`);
  await stop(g2.proc);
});

test('restart keeps usage and limits (SQLite, no redis)', async () => {
  const cfg = writeConfig('restart', { db: `${dir}/restart.db`, backends: [b1.url] });
  let g = await startGateway(cfg);
  const sec = new Date().getUTCSeconds();
  if (sec > 50) await sleep((61 - sec) * 1000);  // the requests/min part needs one minute
  const k = await newKey(g.base, { name: 'r', limits: { tokens_per_day: 30, requests_per_minute: 50 } });
  const rk = await newKey(g.base, { name: 'r-rpm', limits: { requests_per_minute: 2 } });
  assert.equal((await chat(g.base, rk.key)).status, 200);
  assert.equal((await chat(g.base, rk.key)).status, 200);
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
  const rpm = await chat(g.base, rk.key);  // this minute's two requests were remembered
  assert.equal(rpm.status, 429);
  assert.equal(rpm.json.error.code, 'requests_per_minute');
  const metrics = await (await fetch(`${g.base}/metrics`)).text();
  assert.match(metrics, /pocket_gateway_requests_total\{endpoint="\/v1\/chat\/completions",status="429"\} 2/);
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

test('routing: least outstanding requests over weights', async () => {
  // b1 weight 1, b2 weight 3: a backend's score is (outstanding + 1) / weight, lowest wins.
  const path = `${dir}/weights.toml`;
  writeFileSync(path, readFileSync(writeConfig('weights', { db: `${dir}/weights.db`, backends: [] }), 'utf8') +
    `[[pools.backends]]\nurl = "${b1.url}"\nweight = 1\n[[pools.backends]]\nurl = "${b2.url}"\nweight = 3\n`);
  const g = await startGateway(path);
  const k = await newKey(g.base, { name: 'w' });
  // One at a time nothing is outstanding: the heavier backend takes every request.
  for (let i = 0; i < 4; i++) assert.equal((await chat(g.base, k.key)).status, 200);
  const rows = () => readFileSync(`${dir}/weights.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => l.key_id === k.id);
  assert.deepEqual(rows().map((l) => l.backend), Array(4).fill(b2.url));
  // Held open together: b2 (1/3), b2 (2/3 < 1), then a tie at 1 goes to b1, the first listed.
  const streams = [];
  for (let i = 0; i < 3; i++) {
    const ac = new AbortController();
    const r = await fetch(`${g.base}/v1/chat/completions`, {
      method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 900, ignore_eos: true, stream: true }),
    });
    await r.body.getReader().read();
    streams.push({ ac, backend: r.headers.get('x-pocket-backend') });
  }
  assert.deepEqual(streams.map((x) => x.backend), [b2.url, b2.url, b1.url]);
  const cancelled = await metricSum([b1.url, b2.url], 'pocket_cancelled_requests_total');
  for (const x of streams) x.ac.abort();
  // The three generations end before the next test counts cancellations.
  for (let i = 0; i < 50 && (await metricSum([b1.url, b2.url], 'pocket_cancelled_requests_total')) < cancelled + 3; i++) await sleep(100);
  await stop(g.proc);
});

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

test('a client that disconnects from a non-streaming request cancels the upstream generation', async () => {
  const k = await newKey(gw.base, { name: 'abort-plain' });
  const before = await metricSum([b1.url, b2.url], 'pocket_cancelled_requests_total');
  const ac = new AbortController();
  const pending = fetch(`${gw.base}/v1/chat/completions`, {
    method: 'POST', signal: ac.signal, headers: { authorization: `Bearer ${k.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 900, ignore_eos: true }),
  }).catch((e) => e);
  await sleep(300);
  ac.abort();
  assert.equal((await pending).name, 'AbortError');
  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await sleep(100);
    after = await metricSum([b1.url, b2.url], 'pocket_cancelled_requests_total');
  }
  assert.equal(after, before + 1);
  let rep;
  for (let i = 0; i < 20; i++) {  // the gateway records it once its upstream call returns
    rep = await admin(gw.base, 'GET', `/admin/usage?by=key&key=${k.id}`);
    if (rep.json.data.length) break;
    await sleep(100);
  }
  assert.equal(rep.json.data[0].requests, 1);
  assert.equal(rep.json.data[0].ok_requests, 0);  // recorded with status 499
  const log = readFileSync(`${dir}/main.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(log.some((l) => l.key_id === k.id && l.status === 499 && !l.stream));
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
