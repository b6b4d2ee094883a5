/**
 * The fuzz suite's worker process: runs `hvspec` commands in-process (the
 * real `main()`, its output captured), one request at a time, and reports
 * the exit code, what reached stderr, whether anything was thrown, and the
 * memory in use. It runs in its own process (with a capped heap) so that an
 * input that hangs or exhausts memory ends this process, not the test run:
 * the parent kills it after a time budget and says which input did it.
 */
import { main } from '../../cli/main';
import { withSink } from '../../cli/io';

export interface FuzzRequest {
  readonly id: number;
  readonly argv: string[];
  readonly cwd: string;
}

export interface FuzzReply {
  readonly id: number;
  readonly code: number | null;
  readonly outBytes: number;
  readonly err: string;
  readonly errBytes: number;
  readonly threw: string | null;
  readonly ms: number;
  readonly rss: number;
  readonly heapUsed: number;
}

const MAX_ERR = 64 * 1024;

process.on('uncaughtException', (e) => {
  process.send!({ id: -1, code: null, outBytes: 0, err: '', errBytes: 0, threw: `uncaught: ${e instanceof Error ? e.stack : String(e)}`, ms: 0, rss: 0, heapUsed: 0 } satisfies FuzzReply, undefined, {}, () => process.exit(3));
});
process.on('unhandledRejection', (e) => {
  process.send!({ id: -1, code: null, outBytes: 0, err: '', errBytes: 0, threw: `unhandled rejection: ${e instanceof Error ? e.stack : String(e)}`, ms: 0, rss: 0, heapUsed: 0 } satisfies FuzzReply, undefined, {}, () => process.exit(3));
});

process.on('message', (req: FuzzRequest) => {
  void (async () => {
    process.chdir(req.cwd);
    let outBytes = 0;
    let err = '';
    let errBytes = 0;
    let code: number | null = null;
    let threw: string | null = null;
    const t0 = Date.now();
    try {
      code = await withSink(
        {
          out: (s) => {
            outBytes += Buffer.byteLength(s);
          },
          err: (s) => {
            errBytes += Buffer.byteLength(s);
            if (err.length < MAX_ERR) err += s.slice(0, MAX_ERR - err.length);
          },
          tty: false,
        },
        () => main(req.argv),
      );
    } catch (e) {
      threw = e instanceof Error ? (e.stack ?? e.message) : String(e);
    }
    const mem = process.memoryUsage();
    process.send!({ id: req.id, code, outBytes, err, errBytes, threw, ms: Date.now() - t0, rss: mem.rss, heapUsed: mem.heapUsed } satisfies FuzzReply);
  })();
});
