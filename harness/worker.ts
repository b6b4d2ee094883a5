/**
 * Worker-process entry (see parallel.ts): receives one slice of a campaign,
 * runs it, sends the outcome back and exits.
 */
import { checkDomain } from './check';
import { findDomain } from '../domains';
import type { WorkerMessage, WorkerRequest } from './parallel';

function post(m: WorkerMessage, then?: () => void): void {
  process.send!(m, undefined, {}, then);
}

process.once('message', (req: WorkerRequest) => {
  const some = findDomain(req.domain);
  if (!some) {
    post({ kind: 'error', message: `unknown domain ${req.domain}` }, () => process.disconnect());
    return;
  }
  try {
    // Progress at most every 100 ms: enough for the parent's progress line.
    let last = 0;
    const outcome = some.use((d) =>
      checkDomain(d, {
        ...req.options,
        onProgress: (done) => {
          const now = Date.now();
          if (now - last >= 100) {
            last = now;
            post({ kind: 'progress', done });
          }
        },
      }),
    );
    post({ kind: 'done', outcome: outcome as never }, () => process.disconnect());
  } catch (e) {
    post({ kind: 'error', message: e instanceof Error ? e.message : String(e) }, () => process.disconnect());
  }
});
