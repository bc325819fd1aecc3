// Shared by the Node end-to-end tests: start `pocket serve` on a free loopback
// port and wait until its model is loaded.
import { spawn } from 'node:child_process';

// Spawns `BIN serve ARGS --port 0`; resolves { proc, port } once the server logs
// its address and ' ready '; rejects with the server's log if it exits or takes
// longer than 20 s.
export async function startPocketServe(bin, args, what = 'server') {
  const proc = spawn(bin, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${log}`)), 20000);
    proc.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && log.includes(' ready ')) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.on('exit', (code) => reject(new Error(`${what} exited with ${code}:\n${log}`)));
  });
  return { proc, port };
}
