// Load generator for `pocket serve`: N concurrent streaming clients, each
// sending R chat (or completion) requests one after another, measuring from
// the client side:
//   - aggregate generated tokens/s (usage.completion_tokens summed / wall time),
//   - time to first token (first content or reasoning delta), p50/p99,
//   - inter-token latency (time between consecutive deltas), p50/p99.
//
//   node bench/serve_load.mjs --url http://127.0.0.1:8080 --clients 1,4,8 \
//        --requests 4 --max-tokens 64 [--model ID] [--api-key K] [--json]
//   node bench/serve_load.mjs --spawn "build/pocket serve -m M.gguf --parallel 8 --threads 2" ...
//
// --spawn starts the server itself (adding --port 0), waits until it is ready,
// and stops it at the end. Each run also reports, from the server's /metrics,
// the forward calls it took and the tokens per call (how much batching there was).
//
// Greedy with ignore_eos, so every request generates exactly --max-tokens
// tokens and the runs are comparable. Uses plain fetch + SSE parsing (no SDK),
// so the numbers carry no client-library overhead.

function parseArgs(argv) {
  const a = { url: 'http://127.0.0.1:8080', clients: '1,4,8', requests: 4, maxTokens: 64, model: '', apiKey: '',
              prompt: 'Write a short story about a robot learning to paint.', json: false };
  for (let i = 2; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    if (k === '--url') a.url = v();
    else if (k === '--clients') a.clients = v();
    else if (k === '--requests') a.requests = Number(v());
    else if (k === '--max-tokens') a.maxTokens = Number(v());
    else if (k === '--model') a.model = v();
    else if (k === '--api-key') a.apiKey = v();
    else if (k === '--prompt') a.prompt = v();
    else if (k === '--json') a.json = true;
    else if (k === '--spawn') a.spawn = v();
    else throw new Error(`unknown option ${k}`);
  }
  return a;
}

const percentile = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function oneRequest(a, headers) {
  const t0 = performance.now();
  const r = await fetch(`${a.url}/v1/chat/completions`, {
    method: 'POST', headers,
    body: JSON.stringify({ model: a.model, messages: [{ role: 'user', content: a.prompt }], max_tokens: a.maxTokens,
                           temperature: 0, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
  });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const decoder = new TextDecoder();
  let buf = '', ttft = NaN, last = NaN, tokens = 0;
  const gaps = [];
  for await (const bytes of r.body) {
    buf += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const line = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
      const chunk = JSON.parse(line.slice(6));
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      const d = chunk.choices?.[0]?.delta;
      if (!d || !(d.content || d.reasoning_content)) continue;
      const now = performance.now();
      if (Number.isNaN(ttft)) ttft = now - t0;
      else gaps.push(now - last);
      last = now;
    }
  }
  return { ttft, gaps, tokens };
}

// Sum of a counter in the server's Prometheus text.
async function counter(a, name) {
  const text = await (await fetch(`${a.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

// Starts `pocket serve ... --port 0`; resolves with its process and URL once ready.
async function spawnServer(command) {
  const { spawn } = await import('node:child_process');
  const [bin, ...args] = command.split(/\s+/).filter(Boolean);
  const proc = spawn(bin, [...args, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (m && log.includes(' ready ')) resolve(m[1]);
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  return { proc, url, log: () => log };
}

async function run(a, clients, headers) {
  const steps0 = await counter(a, 'pocket_engine_steps_total');
  const stepTokens0 = await counter(a, 'pocket_engine_step_tokens_total');
  const ttfts = [], gaps = [];
  let tokens = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = 0; i < a.requests; i++) {
      const r = await oneRequest(a, headers);
      ttfts.push(r.ttft);
      gaps.push(...r.gaps);
      tokens += r.tokens;
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const steps = (await counter(a, 'pocket_engine_steps_total')) - steps0;
  const stepTokens = (await counter(a, 'pocket_engine_step_tokens_total')) - stepTokens0;
  return { clients, requests: clients * a.requests, tokens, seconds, tokens_per_s: tokens / seconds,
           engine_steps: steps, tokens_per_step: stepTokens / steps,
           ttft_ms_p50: percentile(ttfts, 50), ttft_ms_p99: percentile(ttfts, 99),
           itl_ms_p50: percentile(gaps, 50), itl_ms_p99: percentile(gaps, 99) };
}

const a = parseArgs(process.argv);
const server = a.spawn ? await spawnServer(a.spawn) : null;
if (server) a.url = server.url;
const headers = { 'content-type': 'application/json' };
if (a.apiKey) headers.authorization = `Bearer ${a.apiKey}`;
if (!a.model) a.model = (await (await fetch(`${a.url}/v1/models`, { headers })).json()).data[0].id;
await oneRequest({ ...a, maxTokens: 4 }, headers);  // warm-up
const results = [];
for (const n of a.clients.split(',').map(Number)) {
  const r = await run(a, n, headers);
  results.push(r);
  if (!a.json)
    console.log(`clients ${String(n).padStart(2)}: ${r.tokens} tokens in ${r.seconds.toFixed(1)} s = ${r.tokens_per_s.toFixed(1)} tok/s | ` +
                `TTFT p50 ${r.ttft_ms_p50.toFixed(0)} ms p99 ${r.ttft_ms_p99.toFixed(0)} ms | ` +
                `ITL p50 ${r.itl_ms_p50.toFixed(1)} ms p99 ${r.itl_ms_p99.toFixed(1)} ms | ` +
                `${r.engine_steps} forward calls, ${r.tokens_per_step.toFixed(2)} tokens each`);
}
if (server) server.proc.kill();
if (a.json) console.log(JSON.stringify({ model: a.model, max_tokens: a.maxTokens, results }, null, 2));
