/**
 * Reach (harness/reach.ts, swarm.ts, ddmin.ts): named scenarios, error
 * coverage, swarm subsets and delta debugging, on the toy domain and on the
 * three domains that declare scenarios.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fc from 'fast-check';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { toyDomain, type ToyConfig, type ToyOp, type ToyResult, type ToyView } from '../fixtures/toy';
import { checkDomain } from '../../harness/check';
import { runTrace } from '../../harness/lockstep';
import { ddmin, DDMIN_BUDGET } from '../../harness/ddmin';
import { reachJson, ScenarioWatch, unreachedErrors, unreachedScenarios, type Scenario } from '../../harness/reach';
import { swarm, swarmLabel, tagSwarm, type WeightedArb } from '../../harness/swarm';
import type { Domain } from '../../harness/domain';
import { findDomain } from '../../domains';
import { decodeReport, mergeReports } from '../../harness/merge';

type ToyScenario = Scenario<ToyConfig, ToyOp, ToyResult, ToyView>;

/** A release that takes a page from one reference to none. */
const lastRelease: ToyScenario = {
  id: 'last-release',
  title: 'a page loses its last reference',
  source: 'test fixture',
  before(v, op) {
    if (op.op !== 'release' || v.refs[op.args.page] !== 1) return null;
    const page = op.args.page;
    return (r, after) => r.ok && after.refs[page] === 0;
  },
};
/** Never reachable: the toy generator takes at most 20 references. */
const thousand: ToyScenario = {
  id: 'thousand-refs',
  title: 'a page reaches 1000 references',
  source: 'test fixture',
  before: (v, op) => (op.op === 'take' && v.refs[op.args.page] === 999 ? () => true : null),
};

const toyWithReach: Domain<ToyConfig, ToyOp, ToyResult, ToyView> = {
  ...toyDomain,
  scenarios: [lastRelease, thousand],
  errors: { release: ['ENOENT'], take: ['EINVAL'] },
};

describe('reach: named scenarios', () => {
  it('the observer sees the View before and after each step', () => {
    const watch = new ScenarioWatch(toyWithReach.scenarios!, { pages: 2 });
    const ops: ToyOp[] = [
      { op: 'take', args: { page: 1 } },
      { op: 'take', args: { page: 1 } },
      { op: 'release', args: { page: 1 } },
    ];
    runTrace(toyWithReach, { pages: 2 }, ops, { observer: watch });
    assert.equal(watch.reached.has('last-release'), false, 'two references to one is not the last one');
    runTrace(toyWithReach, { pages: 2 }, [...ops, { op: 'release', args: { page: 1 } }], { observer: watch });
    assert.equal(watch.reached.has('last-release'), true);
    assert.equal(watch.reached.has('thousand-refs'), false);
  });

  it('check counts the runs that reached each scenario and names the unreached', () => {
    const out = checkDomain(toyWithReach, { runs: 50, maxOps: 20, seed: 3 });
    assert.equal(out.failure, null);
    const n = out.reach!.scenarios['last-release']!;
    assert.ok(n > 0 && n <= 50, `last-release reached by ${n} runs`);
    assert.equal(out.reach!.scenarios['thousand-refs'], 0);
    assert.deepEqual(unreachedScenarios(toyWithReach, out.reach), ['thousand-refs']);
    const json = reachJson(toyWithReach, out.tallies, out.reach);
    assert.deepEqual(json['scenarios'], [
      { id: 'last-release', title: lastRelease.title, reached: n },
      { id: 'thousand-refs', title: thousand.title, reached: 0 },
    ]);
  });

  it('a domain without scenarios reports none', () => {
    const out = checkDomain(toyDomain, { runs: 5, maxOps: 10, seed: 1 });
    assert.deepEqual(unreachedScenarios(toyDomain, out.reach), []);
    assert.deepEqual(reachJson(toyDomain, out.tallies, out.reach)['scenarios'], []);
  });
});

describe('reach: merging shard reports', () => {
  it('adds up the runs that reached each scenario and the swarm subsets', () => {
    const shard = (i: number, reached: number[]) => ({
      seed: 1,
      verdict: 'pass',
      shard: `${i}/2`,
      domains: {
        d: {
          verdict: 'pass', runsPlanned: 5, runsExecuted: 5, elapsedMs: 1, steps: 10, ops: {}, invariants: {}, counters: { model: {}, impl: {} },
          scenarios: reached.map((n, k) => ({ id: `s${k}`, title: `t${k}`, reached: n })),
          swarm: { all: 4, 'a+b': 1 },
        },
      },
    });
    const a = decodeReport(shard(1, [1, 0]), 'a.json');
    const b = decodeReport(shard(2, [2, 0]), 'b.json');
    assert.ok(a.ok && b.ok);
    const m = mergeReports([{ file: 'a.json', report: a.value }, { file: 'b.json', report: b.value }]);
    assert.ok(m.ok);
    const d = (m.value['domains'] as { d: { scenarios: { id: string; reached: number }[]; swarm: { [k: string]: number } } }).d;
    assert.deepEqual(d.scenarios.map((x) => [x.id, x.reached]), [['s0', 3], ['s1', 0]]);
    assert.deepEqual(d.swarm, { all: 8, 'a+b': 2 });
  });
});

describe('reach: error coverage', () => {
  it('lists the documented errors no run answered', () => {
    const out = checkDomain(toyWithReach, { runs: 50, maxOps: 20, seed: 3 });
    // The toy generator never names a page past the config: EINVAL is never answered; ENOENT is.
    assert.deepEqual(unreachedErrors(toyWithReach, out.tallies), [{ op: 'take', error: 'EINVAL' }]);
  });
});

describe('reach: swarm testing', () => {
  const table: WeightedArb<string>[] = ['a', 'b', 'c', 'd'].map((name) => ({ name, weight: 1, arbitrary: fc.constant(name) }));

  it('draws subsets for about the configured share of runs, whole table otherwise', () => {
    const draws = fc.sample(swarm(table, 25), { seed: 42, numRuns: 400 });
    const subsets = draws.filter((d) => d.label !== 'all');
    assert.ok(subsets.length > 40 && subsets.length < 140, `${subsets.length} of 400 drew a subset`);
    for (const d of subsets) {
      const kept = d.label.split('+');
      assert.ok(kept.length >= 1 && kept.length < 4);
      // A subset's arbitrary only produces kept entries.
      for (const x of fc.sample(d.arbitrary, { seed: 1, numRuns: 20 })) assert.ok(kept.includes(x), `${x} not in ${d.label}`);
    }
  });

  it('percent 0 never draws a subset; labels travel with the trace', () => {
    assert.ok(fc.sample(swarm(table, 0), { seed: 1, numRuns: 50 }).every((d) => d.label === 'all'));
    const trace = tagSwarm(['x'], 'a+b');
    assert.equal(swarmLabel(trace), 'a+b');
    assert.equal(swarmLabel(['x']), 'all');
  });

  it('check reports how many runs used which subset, for every domain that uses it', () => {
    for (const id of ['shadow-pt', 'sev-cache', 'stage2-dirty']) {
      findDomain(id)!.use((d) => {
        const out = checkDomain(d, { runs: 40, maxOps: 20, seed: 9 });
        const swarmRuns = Object.values(out.reach!.swarm).reduce((a, b) => a + b, 0);
        assert.equal(swarmRuns, 40, `${id}: every run is counted once`);
        assert.ok(Object.keys(out.reach!.swarm).some((k) => k !== 'all'), `${id}: some run drew a subset`);
        assert.ok((out.reach!.swarm['all'] ?? 0) > 0, `${id}: some run used the whole table`);
      });
    }
  });
});

describe('reach: delta debugging', () => {
  it('drops the ops a failure does not need, within the budget, keeping the same failure', () => {
    const mutant = toyDomain.mutants[0]!;
    const pad: ToyOp[] = [];
    for (let i = 0; i < 30; i++) pad.push({ op: 'take', args: { page: i % 3 } }, { op: 'count', args: { page: 2 } });
    const ops: ToyOp[] = [...pad, { op: 'reset', args: {} }, { op: 'count', args: { page: 1 } }, { op: 'release', args: { page: 3 } }];
    const config = { pages: 4 };
    const first = runTrace(toyDomain, config, ops, {}, (c) => mutant.create(c));
    assert.ok(first.failure);
    const dd = ddmin(toyDomain, config, ops, first.failure, (c) => mutant.create(c));
    assert.ok(dd.evaluations <= DDMIN_BUDGET);
    // The shortest: release a page with no reference (one op), and its argument moved to the edge 0.
    assert.deepEqual(dd.ops, [{ op: 'release', args: { page: 0 } }]);
    const again = runTrace(toyDomain, config, dd.ops, {}, (c) => mutant.create(c));
    assert.equal(again.failure?.kind, first.failure.kind);
    assert.equal(again.failure?.invariant, first.failure.invariant);
  });

  it('stops at its budget', () => {
    const mutant = toyDomain.mutants[0]!;
    const ops: ToyOp[] = [];
    for (let i = 0; i < 40; i++) ops.push({ op: 'count', args: { page: 0 } });
    ops.push({ op: 'release', args: { page: 1 } });
    const f = runTrace(toyDomain, { pages: 2 }, ops, {}, (c) => mutant.create(c)).failure!;
    const dd = ddmin(toyDomain, { pages: 2 }, ops, f, (c) => mutant.create(c), 3);
    assert.equal(dd.evaluations, 3);
    assert.ok(runTrace(toyDomain, { pages: 2 }, dd.ops, {}, (c) => mutant.create(c)).failure, 'what it returns still fails');
  });

  it('check reports the length before and after it', () => {
    const out = checkDomain(toyDomain, { runs: 100, maxOps: 20, seed: 5, mutant: 'release-unchecked' });
    assert.ok(out.failure);
    assert.ok(out.failure.shrunkLength !== undefined && out.failure.ops.length <= out.failure.shrunkLength);
    assert.ok((out.failure.ddminEvaluations ?? 0) <= DDMIN_BUDGET);
  });
});

describe('reach: the command line', function () {
  this.timeout(300_000);
  const ROOT = path.resolve(__dirname, '..', '..', '..');
  const BIN = path.join(ROOT, 'bin', 'hvspec.js');
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-reach-'));
  const hvspec = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };

  it('--require-scenarios fails a campaign too short to reach them, with its own message (exit 1)', () => {
    const r = hvspec(['check', '--domain', 'stage2-dirty', '--runs', '1', '--max-ops', '1', '--seed', '1', '--no-corpus', '--require-scenarios']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /stage2-dirty: --require-scenarios: \d+ scenarios? reached by no run: /);
    assert.match(r.stdout, /a required scenario was not reached/);
  });

  it('check --json carries scenarios, errors and swarm per domain; prefault reports none', () => {
    const r = hvspec(['check', '--domain', 'sev-cache,prefault', '--runs', '20', '--seed', '2', '--no-corpus', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as { domains: { [d: string]: { scenarios: { id: string; title: string; reached: number }[]; errors?: { unreached: string[] }; swarm: { [k: string]: number } } } };
    const sev = rep.domains['sev-cache']!;
    assert.ok(sev.scenarios.length >= 5);
    for (const s of sev.scenarios) assert.ok(typeof s.id === 'string' && typeof s.title === 'string' && Number.isInteger(s.reached));
    assert.ok(Array.isArray(sev.errors!.unreached));
    assert.equal(Object.values(sev.swarm).reduce((a, b) => a + b, 0), 20);
    assert.deepEqual(rep.domains['prefault']!.scenarios, []);
  });

  // One seed here (each run is ~10 s on the shared machine); other seeds were swept by hand.
  for (const seed of ['2']) {
    it(`every scenario and every documented error is reached at the default budget (seed ${seed})`, () => {
      const r = hvspec(['check', '--domain', 'shadow-pt,sev-cache,stage2-dirty', '--seed', seed, '--no-corpus', '--require-scenarios', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(r.stdout) as { domains: { [d: string]: { scenarios: { reached: number }[]; errors: { unreached: string[] } } } };
      for (const [id, d] of Object.entries(rep.domains)) {
        assert.ok(d.scenarios.length >= 5, `${id} declares at least 5 scenarios`);
        assert.deepEqual(d.errors.unreached, [], `${id}: documented errors never answered`);
      }
    });
  }
});
