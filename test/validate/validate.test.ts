/**
 * hvspec validate: recorded traces checked against the spec.
 *
 * Every case file of every domain is turned into the log a kernel engineer
 * would have: the model's answers recorded, the domain's choice arguments
 * left out, and the hidden environment steps (cache-line evictions, TLB
 * evictions, host invalidations) dropped where the validator can recover them.
 * Each such trace must validate and its witness must replay; a tampered
 * answer must be refused at its own line.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { DOMAINS } from '../../domains';
import { someDomain, type Domain, type Json, type OpShape, type ResultShape } from '../../harness/domain';
import { toy, toyDomain } from '../fixtures/toy';
import { loadCaseFile, replayCase } from '../../harness/cases';
import { deepEqual } from '../../harness/codec';
import { traceHeaderLine, traceStepLine } from '../../harness/trace-format';
import { validateTraceFile, TraceInputError } from '../../harness/validate-file';
import { copyStateInto } from '../../harness/clone';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-validate-'));

function caseFiles(domain: string): string[] {
  const dir = path.join(ROOT, 'spec', 'cases', domain);
  return fs.readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => path.join(dir, f));
}

interface Built {
  lines: string[];
  dropped: number;
  omitted: number;
  /** Index into `lines` (after the header) of each kept step. */
  kept: number;
}

/**
 * The log of `ops` as the model answers them, with choice arguments left out
 * and hidden ops dropped (at most `maxHidden` per gap, and only those the
 * domain would try in that state).
 */
function buildTrace<C, O extends OpShape, R extends ResultShape, V, S>(
  d: Domain<C, O, R, V, S>,
  config: C,
  ops: readonly O[],
  maxHidden = 2,
): Built {
  const model = d.createModel(config);
  const lines = [traceHeaderLine(d.id, d.encodeConfig(config), { name: 'from a case file' })];
  let gap = 0;
  let dropped = 0;
  let omitted = 0;
  for (const op of ops) {
    const view = model.liveView ? model.liveView().view : model.view();
    const hidden = d.hidden?.hiddenOps?.(config, view) ?? [];
    // Droppable: some hidden op the validator would try here leads to the same state.
    const after = (o: O): string | null => {
      const copy = copyStateInto(d.createModel(config), model);
      return copy.apply(o).ok ? JSON.stringify(copy.view()) : null;
    };
    const target = hidden.length > 0 && gap < maxHidden && hidden.some((h) => h.op === op.op) ? after(op) : null;
    const isHidden = target !== null && hidden.some((h) => h.op === op.op && after(h) === target);
    const r = model.apply(op);
    if (isHidden && r.ok) {
      gap++;
      dropped++;
      continue;
    }
    gap = 0;
    const choices = d.hidden?.choiceArgs?.[op.op];
    let args = op.args as { [k: string]: Json };
    if (choices) {
      args = { ...args };
      // Omit a choice only where its value is one the domain declares (a bad value stays spelled out).
      for (const a of Object.keys(choices)) {
        if (a in args && choices[a]!(config, args).some((v) => deepEqual(v, args[a]))) (delete args[a], omitted++);
      }
    }
    lines.push(traceStepLine({ op: op.op, args }, r as unknown as Json));
  }
  return { lines, dropped, omitted, kept: lines.length - 1 };
}

function write(name: string, lines: string[]): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, lines.join('\n') + '\n');
  return f;
}

const opts = { maxHidden: 2, maxStates: 20_000, witnessDir: path.join(tmp, 'witness') };

describe('validate: every case file, as a log with its choices and hidden steps left out', () => {
  let totalDropped = 0;
  let totalOmitted = 0;
  after(() => {
    process.stdout.write(`      (validate: ${totalDropped} hidden ops dropped and ${totalOmitted} choice arguments omitted across all case files, all recovered)\n`);
    assert.ok(totalDropped > 0, 'no case file had a hidden op to drop: the hidden-op search was never exercised');
    assert.ok(totalOmitted > 0, 'no case file had a choice argument to omit');
  });
  for (const some of DOMAINS) {
    for (const file of caseFiles(some.id)) {
      it(`${some.id}/${path.basename(file)} validates and its witness replays`, async () => {
        const loaded = loadCaseFile(file, DOMAINS);
        assert.ok(loaded.ok);
        const built = loaded.value.use((d, c) => buildTrace(d, c.config, c.ops));
        totalDropped += built.dropped;
        totalOmitted += built.omitted;
        const trace = write(`${some.id}-${path.basename(file, '.json')}.ndjson`, built.lines);
        const report = await validateTraceFile(DOMAINS, trace, opts);
        assert.equal(report.verdict, 'valid', JSON.stringify(report.rejection ?? report.incomplete));
        assert.equal(report.summary.steps, built.kept);
        const w = loadCaseFile(report.witness!, DOMAINS);
        assert.ok(w.ok, w.ok ? '' : JSON.stringify(w.errors));
        const replay = replayCase(w.value);
        assert.equal(replay.failure, null, JSON.stringify(replay.failure));
      });
    }
  }
});

describe('validate: refusals', () => {
  const sample = path.join(ROOT, 'spec', 'cases', 'stage2-dirty', '05-get-dirty-log-reprotects.json');

  function sampleTrace(): string[] {
    const loaded = loadCaseFile(sample, DOMAINS);
    assert.ok(loaded.ok);
    return loaded.value.use((d, c) => buildTrace(d, c.config, c.ops)).lines;
  }

  it('a tampered answer is refused at its own line, naming the rule and the model answer', async () => {
    const lines = sampleTrace();
    const at = lines.findIndex((l) => l.includes('"getDirtyLog"'));
    assert.ok(at > 0);
    const step = JSON.parse(lines[at]!) as { result: { dirty: number[] } };
    step.result.dirty = [...step.result.dirty, 999];
    lines[at] = JSON.stringify(step);
    const report = await validateTraceFile(DOMAINS, write('tampered.ndjson', lines), opts);
    assert.equal(report.verdict, 'invalid');
    assert.equal(report.rejection!.line, at + 1);
    assert.equal(report.rejection!.op, 'getDirtyLog');
    assert.ok(report.rejection!.closest.length > 0);
    assert.equal(report.rejection!.closest[0]!.rule, 'op getDirtyLog');
    assert.match(report.rejection!.closest[0]!.message, /dirty/);
  });

  it('an unobserved answer constrains nothing', async () => {
    const lines = sampleTrace();
    const last = JSON.parse(lines[lines.length - 1]!) as { op: string; result?: Json };
    delete last.result;
    lines[lines.length - 1] = JSON.stringify(last);
    const report = await validateTraceFile(DOMAINS, write('unobserved.ndjson', lines), opts);
    assert.equal(report.verdict, 'valid');
  });

  it('a trace that reaches a bad state is refused by the invariant even when every answer matches', async () => {
    // A "spec" whose model drops a reference it does not hold: the answer { ok: true } matches, the state breaks non-negative.
    const broken = someDomain({ ...toyDomain, createModel: (c) => toyDomain.mutants[0]!.create(c) });
    const f = write('toy-bad-state.ndjson', [traceHeaderLine('toy', { pages: 2 }), traceStepLine({ op: 'release', args: { page: 0 } }, { ok: true })]);
    const report = await validateTraceFile([broken], f, opts);
    assert.equal(report.verdict, 'invalid');
    assert.equal(report.rejection!.line, 2);
    assert.equal(report.rejection!.closest[0]!.rule, 'invariant non-negative');
    const good = await validateTraceFile([toy], f, opts);
    assert.equal(good.verdict, 'invalid', 'the real toy model answers ENOENT');
    assert.equal(good.rejection!.closest[0]!.rule, 'op release');
  });

  it('"maybe" steps are explained both ways: taken effect, or not', async () => {
    const d = DOMAINS.find((x) => x.id === 'stage2-dirty')!;
    const header = d.use((dd) => traceHeaderLine(dd.id, {}));
    const write0 = traceStepLine({ op: 'enableDirtyLog', args: { slot: 0 } }, { ok: true });
    const timedOut = JSON.stringify({ op: 'guestWrite', args: { gfn: 5, value: 1 }, maybe: true });
    const happened = traceStepLine({ op: 'getDirtyLog', args: { slot: 0 } }, { ok: true, dirty: [5] });
    const notHappened = traceStepLine({ op: 'getDirtyLog', args: { slot: 0 } }, { ok: true, dirty: [] });
    for (const [name, last] of [['happened', happened], ['not-happened', notHappened]] as const) {
      const report = await validateTraceFile(DOMAINS, write(`maybe-${name}.ndjson`, [header, write0, timedOut, last]), opts);
      assert.equal(report.verdict, 'valid', `${name}: ${JSON.stringify(report.rejection)}`);
    }
    // Without "maybe", the write took effect: an empty log after it is refused.
    const sure = traceStepLine({ op: 'guestWrite', args: { gfn: 5, value: 1 } });
    const report = await validateTraceFile(DOMAINS, write('maybe-not-marked.ndjson', [header, write0, sure, notHappened]), opts);
    assert.equal(report.verdict, 'invalid');
    assert.equal(report.rejection!.line, 4);
  });

  it('a bound reached before a verdict is incomplete, not valid', async () => {
    const lines = sampleTrace();
    const report = await validateTraceFile(DOMAINS, write('bounded.ndjson', lines), { ...opts, maxStates: 1, mode: 'exhaustive' });
    assert.equal(report.verdict, 'incomplete');
  });

  it('bad lines are refused with file:line and JSON path', async () => {
    const lines = sampleTrace();
    const bad = [...lines];
    bad[2] = JSON.stringify({ op: 'guestWrite', args: { gfn: 'x' } });
    await assert.rejects(validateTraceFile(DOMAINS, write('bad-arg.ndjson', bad), opts), (e: unknown) => {
      assert.ok(e instanceof TraceInputError);
      assert.equal(e.line, 3);
      assert.equal(e.at, '$.args.gfn');
      return true;
    });
    const proto = [...lines];
    proto[1] = JSON.stringify({ op: 'toString', args: {} });
    await assert.rejects(validateTraceFile(DOMAINS, write('proto.ndjson', proto), opts), /:2: \$\.op: unknown op "toString"/);
    await assert.rejects(validateTraceFile(DOMAINS, write('noheader.ndjson', lines.slice(1)), opts), /:1: .*format/);
    await assert.rejects(validateTraceFile(DOMAINS, '/dev/zero', opts), /not a regular file/);
  });
});

describe('validate: copying a system (harness/clone.ts)', () => {
  for (const some of DOMAINS) {
    it(`${some.id}: a copy taken mid-case continues exactly like the original, and neither disturbs the other`, () => {
      for (const file of caseFiles(some.id)) {
        const loaded = loadCaseFile(file, DOMAINS);
        assert.ok(loaded.ok);
        loaded.value.use((d, c) => {
          const half = Math.floor(c.ops.length / 2);
          const a = d.createModel(c.config);
          for (const op of c.ops.slice(0, half)) a.apply(op);
          const before = JSON.stringify(a.view());
          const b = copyStateInto(d.createModel(c.config), a);
          const rest = c.ops.slice(half);
          const rb = rest.map((op) => b.apply(op));
          assert.equal(JSON.stringify(a.view()), before, `${file}: steps on the copy changed the original`);
          const ra = rest.map((op) => a.apply(op));
          assert.deepEqual(rb, ra, `${file}: the copy answers differently`);
          assert.deepEqual(b.view(), a.view(), `${file}: the copy ends in another state`);
        });
      }
    });
  }
});

describe('validate: the command', () => {
  function run(args: string[]) {
    return spawnSync(process.execPath, [BIN, 'validate', ...args], { encoding: 'utf8', cwd: tmp });
  }
  const examples = path.join(ROOT, 'examples', 'traces');

  it('the worked examples validate (exit 0) and say where the witness is', () => {
    const files = fs.readdirSync(examples).filter((f) => f.endsWith('.ndjson') && !f.includes('tampered'));
    assert.ok(files.length >= 4, 'one worked example per domain');
    const r = run(files.map((f) => path.join(examples, f)));
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.equal((r.stdout.match(/^valid /gm) ?? []).length, files.length);
    assert.match(r.stdout, /witness: /);
  });

  it('the tampered example exits 1 naming its line and step', () => {
    const r = run([path.join(examples, 'stage2-dirty.tampered.ndjson')]);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /INVALID .*\n\s+line \d+ \(step \d+, getDirtyLog\)/);
  });

  it('a bad line exits 2 with one short line naming file:line and the path', () => {
    const f = write('cli-bad.ndjson', [traceHeaderLine('stage2-dirty', {}), '{"op":"guestWrite","args":{"gfn":-1}}']);
    const r = run([f]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /cli-bad\.ndjson:2: \$\.args\.gfn/);
  });

  it('--exhaustive --max-states 1 on a branching trace exits 3 (incomplete)', () => {
    const r = run(['--exhaustive', '--max-states', '1', '--no-witness', path.join(examples, 'sev-cache.ndjson')]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /INCOMPLETE/);
  });
});
