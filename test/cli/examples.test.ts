/**
 * The sharding examples in examples/ci/ are working examples: their shard
 * commands are run here as written (with a small run count and `npx hvspec`
 * pointed at this checkout), and the merged shards must equal one run.
 */
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');
const hv = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)}`;

function sh(script: string, cwd: string, env: { [k: string]: string }): number {
  const r = spawnSync('/bin/sh', ['-c', script], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${r.stderr}`);
  return r.status;
}

function single(cwd: string, seed: string, runs: string): { [k: string]: { runsExecuted: number; steps: number; verdict: string } } {
  const r = spawnSync(process.execPath, [BIN, 'check', '--seed', seed, '--runs', runs, '--json'], { cwd, encoding: 'utf8', timeout: 300_000 });
  return JSON.parse(r.stdout).domains;
}

function merged(cwd: string, files: string[]): { [k: string]: { runsExecuted: number; steps: number; verdict: string } } {
  const r = spawnSync(process.execPath, [BIN, 'merge', '--json', ...files], { cwd, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const m = JSON.parse(r.stdout);
  assert.equal(m.complete, true);
  return m.domains;
}

function sameTotals(a: ReturnType<typeof single>, b: ReturnType<typeof single>): void {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  for (const id of Object.keys(a)) {
    assert.equal(a[id]!.verdict, b[id]!.verdict, id);
    assert.equal(a[id]!.runsExecuted, b[id]!.runsExecuted, id);
    assert.equal(a[id]!.steps, b[id]!.steps, id);
  }
}

describe('examples/ci: sharded campaigns', function () {
  this.timeout(600_000);

  it('the GitHub Actions matrix shards merge into one run', () => {
    const text = fs.readFileSync(path.join(ROOT, 'examples', 'ci', 'github-actions.yml'), 'utf8');
    const block = /- name: check one shard\n\s+run: \|\n((?:\s{10}.*\n)+)/.exec(text);
    assert.ok(block, 'no shard step in the workflow');
    const script = block[1]!.replace(/^ {10}/gm, '').replace(/npx hvspec/g, hv);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-gha-'));
    const files: string[] = [];
    for (const shard of [1, 2, 3, 4]) {
      sh(script.replace(/\$\{\{ matrix\.shard \}\}/g, String(shard)), dir, { HVSPEC_SEED: '20261124', HVSPEC_RUNS: '12' });
      files.push(path.join(dir, `shard-${shard}.json`));
    }
    assert.match(text, /npx hvspec merge reports\/shard-\*\/shard-\*\.json/);
    sameTotals(merged(dir, files), single(dir, '20261124', '12'));
  });

  it('the Kubernetes Indexed Job shards merge into one run', () => {
    const text = fs.readFileSync(path.join(ROOT, 'examples', 'ci', 'k8s-indexed-job.yaml'), 'utf8');
    const line = /^\s+(npx hvspec check .*)$/m.exec(text);
    assert.ok(line, 'no shard command in the job');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-k8s-'));
    const reports = path.join(dir, 'reports');
    fs.mkdirSync(reports);
    const script = line[1]!.replace(/npx hvspec/g, hv).replace(/\/reports\//g, `${reports}/`);
    const shards = Number(/name: HVSPEC_SHARDS\n\s+value: "(\d+)"/.exec(text)![1]);
    for (let i = 0; i < shards; i++) sh(script, dir, { JOB_COMPLETION_INDEX: String(i), HVSPEC_SEED: '20261124', HVSPEC_RUNS: '16', HVSPEC_SHARDS: String(shards) });
    const files = fs.readdirSync(reports).map((f) => path.join(reports, f));
    assert.equal(files.length, shards);
    sameTotals(merged(dir, files), single(dir, '20261124', '16'));
  });
});
