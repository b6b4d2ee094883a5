/** Worker-thread entry: one slice of a campaign (see parallel.ts). */
import { parentPort, workerData } from 'worker_threads';
import { checkDomain } from './check';
import { findDomain } from '../domains';
import type { WorkerMessage, WorkerRequest } from './parallel';

const req = workerData as WorkerRequest;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
const some = findDomain(req.domain);
if (!some) post({ kind: 'error', message: `unknown domain ${req.domain}` });
else {
  try {
    const outcome = some.use((d) =>
      checkDomain(d, { ...req.options, onProgress: (done) => post({ kind: 'progress', done }) }),
    );
    post({ kind: 'done', outcome: outcome as never });
  } catch (e) {
    post({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
  }
}
