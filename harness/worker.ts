/**
 * Worker-process entry (see parallel.ts): receives one slice of a campaign,
 * runs it, sends the outcome back and exits.
 */
import { checkDomainAsync } from './check';
import type { SomeDomain } from './domain';
import { domainsFrom } from './registry';
import type { WorkerMessage, WorkerRequest, WorkerStop } from './parallel';



function post(m: WorkerMessage, then?: () => void): void {
  process.send!(m, undefined, {}, then);
}

// Ctrl-C in a terminal reaches the whole process group: the parent decides,
// and tells this worker to stop through a message.
let stop = false;
process.on('SIGINT', () => {
  stop = true;
});

process.on('message', (m: WorkerRequest | WorkerStop) => {
  if (m.kind === 'stop') {
    stop = true;
    return;
  }
  const req = m;
  let some: SomeDomain | undefined;
  try {
    some = domainsFrom(req.registry).find((d) => d.id === req.domain);
  } catch (e) {
    post({ kind: 'error', message: e instanceof Error ? e.message : String(e) }, () => process.disconnect());
    return;
  }
  if (!some) {
    post({ kind: 'error', message: `unknown domain ${req.domain}` }, () => process.disconnect());
    return;
  }
  // Progress at most every 100 ms: enough for the parent's progress line.
  let last = 0;
  some
    .use((d) =>
      checkDomainAsync(d, {
        ...req.options,
        shouldStop: () => stop,
        onProgress: (done) => {
          const now = Date.now();
          if (now - last >= 100) {
            last = now;
            post({ kind: 'progress', done });
          }
        },
      }),
    )
    .then(
      (outcome) => post({ kind: 'done', outcome: outcome as never }, () => process.disconnect()),
      (e: unknown) => post({ kind: 'error', message: e instanceof Error ? e.message : String(e) }, () => process.disconnect()),
    );
});
