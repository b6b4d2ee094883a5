/**
 * The fuzz suite (issue 16, "make it stay fixed"): fast-check drives
 * structure-aware mutations of every case file of every domain, and argument
 * vectors of the commands, through the real `main()` in a worker process,
 * and checks the command-line contract on each:
 *
 *   - the exit code is 0, 1 or 2 (never an internal error, 70, nor a crash);
 *   - no exception escapes `main()`, no stack trace reaches stderr;
 *   - stderr lines are short (at most MAX_LINE bytes; echoed input is cut),
 *     and an exit 2 says what was wrong in at most MAX_LINES lines (a usage
 *     error in one; a case file's decoding errors one per line, as
 *     CONTRIBUTING.md shows);
 *   - every input answers within PER_INPUT_MS and the process stays under
 *     MAX_RSS bytes (the worker's heap is capped: an input that would need
 *     more ends the worker, and that is reported as a failure).
 *
 * The time budget (about 20 s in all, HVSPEC_FUZZ_SECONDS to change it) is
 * split between the two; the figures are printed. fast-check shrinks a
 * failing input and prints its seed and path, so a failure reproduces.
 */
import { strict as assert } from 'assert';
import { fork, type ChildProcess } from 'child_process';
import * as fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DOMAINS } from '../../domains';
import { applyMutations, argvArb, mutationArb, serializationArb, serialize, type JsonV, type Mutation, type Serialization } from './mutate';
import type { FuzzReply, FuzzRequest } from './driver';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TOTAL_S = Number(process.env['HVSPEC_FUZZ_SECONDS'] ?? 20);
/** A mutated case replays in well under a second; a worker's first input also pays its start-up. */
const PER_INPUT_MS = 8_000;
const START_MS = 20_000;
const MAX_LINE = 400;
const MAX_LINES = 25;
const MAX_RSS = 1536 * 1024 * 1024;
const HEAP_MIB = 1024;

type Outcome = { kind: 'reply'; r: FuzzReply } | { kind: 'timeout' } | { kind: 'died'; how: string };

/** One worker process at a time; restarted after a hang or a death. */
class Worker {
  private child: ChildProcess | null = null;
  private next = 1;
  private current = 0;
  private fresh = true;
  private waiting: ((o: Outcome) => void) | null = null;

  private start(): ChildProcess {
    const c = fork(path.join(__dirname, 'driver.js'), [], { execArgv: [`--max-old-space-size=${HEAP_MIB}`], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    c.on('message', (m: FuzzReply) => {
      // A reply from a worker already given up on, or to an earlier request, answers nothing.
      if (this.child !== c || (m.id !== this.current && m.id !== -1)) return;
      const w = this.waiting;
      this.waiting = null;
      w?.({ kind: 'reply', r: m });
    });
    c.on('exit', (code, signal) => {
      // A worker killed after a timeout exits later: its exit belongs to no request.
      if (this.child !== c) return;
      this.child = null;
      const w = this.waiting;
      this.waiting = null;
      w?.({ kind: 'died', how: signal ?? `exit ${code}` });
    });
    this.child = c;
    this.fresh = true;
    return c;
  }

  private queue: Promise<unknown> = Promise.resolve();

  /**
   * Requests run one after another: fast-check's time limit may end a
   * property while an input is still running, and the next request must
   * not be sent to a worker that is still busy with it.
   */
  run(argv: string[], cwd: string): Promise<Outcome> {
    const next = this.queue.then(() => this.runNow(argv, cwd));
    this.queue = next;
    return next;
  }

  /** Resolves when no request is running. */
  async idle(): Promise<void> {
    await this.queue;
  }

  private runNow(argv: string[], cwd: string): Promise<Outcome> {
    const c = this.child ?? this.start();
    const limit = this.fresh ? PER_INPUT_MS + START_MS : PER_INPUT_MS;
    this.fresh = false;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        c.kill('SIGKILL');
        if (this.child === c) this.child = null;
        resolve({ kind: 'timeout' });
      }, limit);
      this.waiting = (o) => {
        clearTimeout(timer);
        resolve(o);
      };
      this.current = this.next++;
      c.send({ id: this.current, argv, cwd } satisfies FuzzRequest);
    });
  }

  stop(): void {
    this.child?.kill('SIGKILL');
    this.child = null;
  }
}

/** The contract; null when it holds, else what broke. */
export function contractBroken(o: Outcome): string | null {
  if (o.kind === 'timeout') return `no answer within ${PER_INPUT_MS / 1000} s`;
  if (o.kind === 'died') return `the process died (${o.how}): out of memory or a crash`;
  const r = o.r;
  if (r.threw !== null) return `an exception escaped: ${r.threw.split('\n')[0]}`;
  if (r.code !== 0 && r.code !== 1 && r.code !== 2) return `exit ${r.code} (stderr: ${r.err.slice(0, 300)})`;
  if (/\n\s+at .+:\d+:\d+\)?/.test(r.err)) return `a stack trace on stderr: ${r.err.slice(0, 300)}`;
  const lines = r.err.split('\n').filter((l) => l !== '');
  const long = lines.find((l) => Buffer.byteLength(l) > MAX_LINE);
  if (long !== undefined) return `a stderr line of ${Buffer.byteLength(long)} bytes: ${long.slice(0, 120)}...`;
  if (r.code === 2) {
    if (lines.length === 0) return 'exit 2 with nothing on stderr';
    if (lines.length > MAX_LINES) return `exit 2 with ${lines.length} lines on stderr`;
  }
  if (r.rss > MAX_RSS) return `resident memory ${Math.round(r.rss / 1048576)} MiB over the budget of ${MAX_RSS / 1048576} MiB`;
  return null;
}

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-fuzz-'));
}

describe('fuzz: no input breaks hvspec', function () {
  this.timeout(600_000);
  const worker = new Worker();
  const dir = scratch();
  after(() => worker.stop());

  it(`mutated case files of every domain (about ${Math.round(TOTAL_S * 0.6)} s): exit 0/1/2, short errors, no exception, bounded time and memory`, async () => {
    const cases: { domain: string; file: string; value: JsonV }[] = [];
    for (const d of DOMAINS) {
      const folder = path.join(ROOT, 'spec', 'cases', d.id);
      for (const f of fs.readdirSync(folder).filter((n) => n.endsWith('.json')).sort()) {
        cases.push({ domain: d.id, file: f, value: JSON.parse(fs.readFileSync(path.join(folder, f), 'utf8')) as JsonV });
      }
    }
    assert.ok(DOMAINS.every((d) => cases.some((c) => c.domain === d.id)), 'every domain has case files to mutate');
    const opNames = [...new Set(DOMAINS.flatMap((d) => d.use((x) => Object.keys(x.opArgs))))];
    const domainIds = DOMAINS.map((d) => d.id);
    const codes: { [k: string]: number } = {};
    const perDomain: { [k: string]: number } = {};
    let n = 0;
    const input = fc.record({
      pick: fc.nat(),
      muts: fc.array(mutationArb(opNames, domainIds), { minLength: 1, maxLength: 4 }),
      ser: serializationArb(),
    });
    const file = path.join(dir, 'case.json');
    const corpusCwd = path.join(dir, 'corpus-cwd');
    const corpus = path.join(corpusCwd, '.hvspec', 'failures');
    let corpusRuns = 0;
    const run = async ({ pick, muts, ser }: { pick: number; muts: Mutation[]; ser: Serialization }) => {
      const base = cases[pick % cases.length]!;
      const mutated = applyMutations(base.value, muts);
      fs.writeFileSync(file, serialize(mutated, ser));
      // One input in eight also goes through the failure corpus: saved in .hvspec/failures/, replayed by check.
      const viaCorpus = ser.at % 8 === 0;
      let argv = ['replay', file];
      if (viaCorpus) {
        fs.rmSync(corpus, { recursive: true, force: true });
        fs.mkdirSync(corpus, { recursive: true });
        fs.writeFileSync(path.join(corpus, `${base.domain}-fuzz.json`), fs.readFileSync(file));
        argv = ['check', '--domain', base.domain, '--runs', '1', '--max-ops', '5'];
        corpusRuns++;
      }
      const o = await worker.run(argv, viaCorpus ? corpusCwd : dir);
      n++;
      perDomain[base.domain] = (perDomain[base.domain] ?? 0) + 1;
      if (o.kind === 'reply') codes[String(o.r.code)] = (codes[String(o.r.code)] ?? 0) + 1;
      const broken = contractBroken(o);
      assert.equal(broken, null, `${viaCorpus ? '(via .hvspec/failures/ and check) ' : ''}${base.domain}/${base.file} mutated by ${JSON.stringify(muts).slice(0, 600)}, written as ${ser.how}: ${broken}`);
    };
    await fc.assert(fc.asyncProperty(input, run), {
      seed: Number(process.env['HVSPEC_FUZZ_SEED'] ?? 16),
      numRuns: 1_000_000,
      interruptAfterTimeLimit: TOTAL_S * 600,
      markInterruptAsFailure: false,
    });
    await worker.idle();
    console.log(`      ${n} mutated case files (${Object.entries(perDomain).map(([d, k]) => `${d} ${k}`).join(', ')}; ${corpusRuns} of them through check's failure corpus); exit codes ${JSON.stringify(codes)}`);
    assert.ok(n >= 50, `only ${n} inputs ran in the time budget`);
    for (const d of domainIds) assert.ok((perDomain[d] ?? 0) > 0, `no mutated case of ${d} ran`);
    assert.ok((codes['2'] ?? 0) > 0 && ((codes['0'] ?? 0) + (codes['1'] ?? 0)) > 0, 'both valid and invalid mutants were produced');
  });

  it(`argument vectors of every command (about ${Math.round(TOTAL_S * 0.4)} s): exit 0/1/2, one short line for bad usage, no exception`, async () => {
    const caseFile = path.join(ROOT, 'spec', 'cases', DOMAINS[0]!.id, fs.readdirSync(path.join(ROOT, 'spec', 'cases', DOMAINS[0]!.id)).sort()[0]!);
    const fifo = path.join(dir, 'fifo');
    try {
      fs.rmSync(fifo, { force: true });
      require('child_process').execFileSync('mkfifo', [fifo]);
    } catch {
      // No mkfifo: the FIFO value is then a missing file, still a fine input.
    }
    const zero = path.join(dir, 'zero.json');
    fs.rmSync(zero, { force: true });
    fs.symlinkSync('/dev/zero', zero);
    const report = path.join(dir, 'report.json');
    fs.writeFileSync(report, JSON.stringify({ seed: 1, verdict: 'pass', shard: '1/2', domains: {} }));
    const mutantIds = DOMAINS.flatMap((d) => d.use((x) => x.mutants.map((m) => m.id)));
    const values = [
      '-1', '0', '1', '2', '3', '-1640531524', '4294967295', '4294967296', '9007199254740993', '1e3', '0x10', ' 5 ', '', 'lots', 'A'.repeat(5000),
      ...DOMAINS.map((d) => d.id), 'nope', `mutant:${mutantIds[0]}`, 'mutant:', 'impl', '1/2', '3/2', '0/0', '1/1000001',
      'text', 'markdown', 'json', 'pair', 'model', 'small', caseFile, path.join(ROOT, 'spec', 'cases', DOMAINS[0]!.id), '/dev/zero', zero, fifo, report,
      path.join(dir, 'no-such.json'), 'toString', '__proto__', 'constructor',
    ];
    // Budget-bounding options are appended by `bounded` below and kept out of the fuzzed ones.
    const commands: { [c: string]: string[] } = {
      check: ['--domain', '--seed', '--impl', '--shard', '--workers', '--path', '--no-corpus', '--json', '--help'],
      replay: ['--impl', '--json', '--help'],
      explore: ['--domain', '--depth', '--config', '--impl', '--dedupe', '--json', '--help'],
      mutants: ['--domain', '--mutant', '--seed', '--json', '--verbose', '--help'],
      merge: ['--json', '--help'],
      schema: ['--domain', '--stdout', '--json', '--help'],
      promote: ['--name', '--force', '--json', '--help'],
      audit: ['--help', '--format'],
      report: ['--help'],
    };
    const bounded = (argv: string[]): string[] => {
      const [cmd] = argv;
      if (cmd === 'check') return [...argv, '--runs', '3', '--max-ops', '30', '--time-limit', '2'];
      if (cmd === 'explore') return [...argv, '--max-states', '300'];
      if (cmd === 'mutants') return [...argv, '--runs', '2', '--max-ops', '10', '--no-explore'];
      if (cmd === 'schema') return [...argv, '--out', path.join(dir, 'schema')];
      if (cmd === 'promote') return [...argv, '--out', path.join(dir, 'promoted')];
      if (cmd === 'audit') return argv.includes('--help') ? argv : [...argv, '--help'];
      if (cmd === 'report') return ['report', '--help'];
      return argv;
    };
    const codes: { [k: string]: number } = {};
    let n = 0;
    await fc.assert(
      fc.asyncProperty(argvArb(commands, values), async (raw) => {
        const argv = bounded(raw);
        const o = await worker.run(argv, dir);
        n++;
        if (o.kind === 'reply') codes[String(o.r.code)] = (codes[String(o.r.code)] ?? 0) + 1;
        const broken = contractBroken(o);
        assert.equal(broken, null, `hvspec ${argv.map((a) => (a.length > 60 ? `${a.slice(0, 20)}...(${a.length} chars)` : JSON.stringify(a))).join(' ')}: ${broken}`);
        if (o.kind === 'reply' && o.r.code === 2 && argv[0] !== 'replay' && argv[0] !== 'merge' && argv[0] !== 'explore' && argv[0] !== 'promote') {
          // A usage error is one line.
          assert.equal(o.r.err.split('\n').filter((l) => l !== '').length, 1, `hvspec ${argv.join(' ').slice(0, 200)}: more than one line for a usage error:\n${o.r.err.slice(0, 800)}`);
        }
      }),
      { seed: Number(process.env['HVSPEC_FUZZ_SEED'] ?? 16), numRuns: 1_000_000, interruptAfterTimeLimit: TOTAL_S * 400, markInterruptAsFailure: false },
    );
    await worker.idle();
    console.log(`      ${n} argument vectors run; exit codes ${JSON.stringify(codes)}`);
    assert.ok(n >= 30, `only ${n} inputs ran in the time budget`);
    assert.ok((codes['2'] ?? 0) > 0 && (codes['0'] ?? 0) > 0, 'both good and bad usage were produced');
  });
});
