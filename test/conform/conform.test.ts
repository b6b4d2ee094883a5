/**
 * hvspec conform: the driver, the runner and the CLI against the running
 * kernel. Where /dev/kvm or a C compiler is missing, every test that needs
 * them is skipped with the reason printed.
 */
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { loadCaseFile } from '../../harness/cases';
import * as C from '../../harness/conform';
import { buildDriver, findCompiler, kvmUnusable } from '../../kernel/build';
import { commandLine, DriverClient } from '../../kernel/client';
import { findAdapter, GUEST_GFN, GUEST_SLOT } from '../../kernel';
import { chooseGuest } from '../../kernel/guest';
import { stage2DirtyDomain } from '../../domains/stage2-dirty';
import { stage2DirtyAdapter } from '../../kernel/stage2-dirty';
import type { Config, Op } from '../../spec/stage2-dirty/types';
import { DOMAINS } from '../../domains';
import { validateTraceFile } from '../../harness/validate-file';

const ROOT = path.join(__dirname, '..', '..', '..');
const BIN = path.join(ROOT, 'bin', 'hvspec.js');
const CASES = path.join(ROOT, 'spec', 'cases', 'stage2-dirty');

function hostless(): string | null {
  const kvm = kvmUnusable();
  if (kvm !== null) return kvm;
  if (findCompiler() === null) return 'no C compiler (cc, gcc, clang) to build the driver';
  return null;
}

describe('hvspec conform (the running kernel)', function () {
  this.timeout(300000);
  let driver: DriverClient;
  let host: C.HostInfo;
  let tmp: string;

  before(async function () {
    const why = hostless();
    if (why !== null) {
      console.log(`      skipping the conform tests: ${why}`);
      this.skip();
    }
    driver = await DriverClient.start();
    host = await C.probeHost(driver, os.release(), { slot: GUEST_SLOT, gfn: GUEST_GFN });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hvspec-conform-'));
  });
  after(async () => {
    await driver?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('kvmUnusable names a missing device; conform exits 2 with the reason', () => {
    assert.match(kvmUnusable('/nonexistent/kvm') ?? '', /does not exist/);
    const r = spawnSync(process.execPath, [BIN, 'conform', '--runs', '1'], { cwd: tmp, encoding: 'utf8', env: { ...process.env, HVSPEC_KVM_DEVICE: '/nonexistent/kvm' } });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^hvspec conform: cannot ask the kernel: \/nonexistent\/kvm does not exist/);
  });

  it('without a C compiler the build says so', () => {
    const saved = { PATH: process.env['PATH'], CC: process.env['CC'] };
    process.env['PATH'] = '/nonexistent';
    delete process.env['CC'];
    try {
      const r = buildDriver(path.join(tmp, 'kvm-cache'));
      assert.ok(!r.ok);
      assert.match(r.reason, /no C compiler found/);
    } finally {
      process.env['PATH'] = saved.PATH;
      if (saved.CC !== undefined) process.env['CC'] = saved.CC;
    }
  });

  it('the driver builds once and is reused while its source is unchanged', () => {
    const a = buildDriver();
    const b = buildDriver();
    assert.ok(a.ok && b.ok);
    assert.equal(a.ok && a.binary, b.ok && b.binary);
    assert.equal(b.ok && b.rebuilt, false);
  });

  it('answers caps, creates a VM, and returns memslot errors as errnos', async () => {
    assert.ok(host.api >= 12, `KVM API ${host.api}`);
    assert.ok((host.caps['nrMemslots'] ?? 0) > GUEST_SLOT, 'KVM_CAP_NR_MEMSLOTS above the guest slot');
    assert.ok(host.guestsRun, host.guestReason);
    assert.deepEqual(await driver.send({ cmd: 'create_vm', guest_slot: GUEST_SLOT, guest_gfn: GUEST_GFN }), { ok: true });
    assert.deepEqual(await driver.send({ cmd: 'set_region', slot: 0, gfn: 16, npages: 16, flags: 0 }), { ok: true });
    // Overlapping another slot: EEXIST; id at KVM_USER_MEM_SLOTS: EINVAL; deleting a slot that does not exist: EINVAL.
    assert.deepEqual(await driver.send({ cmd: 'set_region', slot: 1, gfn: 20, npages: 4, flags: 0 }), { ok: false, error: 'EEXIST' });
    assert.deepEqual(await driver.send({ cmd: 'set_region', slot: host.caps['nrMemslots']!, gfn: 64, npages: 4, flags: 0 }), { ok: false, error: 'EINVAL' });
    assert.deepEqual(await driver.send({ cmd: 'set_region', slot: 5, gfn: 0, npages: 0, flags: 0 }), { ok: false, error: 'EINVAL' });
    assert.deepEqual(await driver.send({ cmd: 'get_log', slot: 0 }), { ok: false, error: 'ENOENT' });
    assert.deepEqual(await driver.send({ cmd: 'set_region', slot: 0, gfn: 16, npages: 16, flags: 1 }), { ok: true });
    assert.deepEqual(await driver.send({ cmd: 'access', gfn: 18, write: true, value: -7 }), { ok: true, exit: 'hlt', value: -7 });
    assert.deepEqual(await driver.send({ cmd: 'access', gfn: 18, write: false, value: 0 }), { ok: true, exit: 'hlt', value: -7 });
    assert.deepEqual(await driver.send({ cmd: 'access', gfn: 40, write: false, value: 0 }), { ok: true, exit: 'mmio', value: 0 });
    assert.deepEqual(await driver.send({ cmd: 'get_log', slot: 0 }), { ok: true, dirty: [2] });
    assert.deepEqual(await driver.send({ cmd: 'peek', gfns: [18, 19, 40] }), { ok: true, values: [-7, 0, null] });
  });

  it('stops a guest that does not halt and reports it', async () => {
    assert.deepEqual(await driver.send({ cmd: 'create_vm', guest_slot: GUEST_SLOT, guest_gfn: GUEST_GFN }), { ok: true });
    // Overwrite the guest's store entry with "jmp $" (eb fe) through its own store: the next store never halts.
    const jmpSelf = (0x9090feeb | 0) as number;
    assert.deepEqual(await driver.send({ cmd: 'access', gfn: GUEST_GFN, write: true, value: jmpSelf }), { ok: true, exit: 'hlt', value: jmpSelf });
    const t0 = Date.now();
    assert.deepEqual(await driver.send({ cmd: 'access', gfn: 3, write: true, value: 1 }), { ok: true, exit: 'timeout' });
    assert.ok(Date.now() - t0 < 10000);
    // The driver goes on answering; a fresh VM has the program back.
    assert.deepEqual(await driver.send({ cmd: 'create_vm', guest_slot: GUEST_SLOT, guest_gfn: GUEST_GFN }), { ok: true });
  });

  it('answers malformed input with an EPROTO error and keeps going', async () => {
    const bad = ['{"cmd":"nope"}', 'not json', '{"cmd":"get_log","slot":1.5}', '{"cmd":"get_log","slot":0,"extra":1}', '{"cmd":"get_log"}', '{"cmd":"caps"} trailing', 'x'.repeat(1100000)];
    for (const line of bad) {
      const a = await driver.sendRaw(line);
      assert.equal(a['error'], 'EPROTO', `${line.slice(0, 40)} -> ${JSON.stringify(a)}`);
    }
    assert.equal((await driver.send({ cmd: 'caps' }))['ok'], true);
  });

  it('places the guest program where the trace does not reach', () => {
    assert.deepEqual(chooseGuest(new Set([0, 1]), [[0, 64]], 32764), { slot: GUEST_SLOT, gfn: GUEST_GFN });
    assert.deepEqual(chooseGuest(new Set([32763, 32762]), [[0xffff0, 0x100000], [0xfff00, 0xffff8]], 32764), { slot: 32761, gfn: 0xffeff });
    assert.equal(chooseGuest(new Set(), [[0, 2 ** 21]], 32764), null);
  });

  it('runs a trace that uses the default guest slot and page (the guest moves)', async () => {
    const config: Config = { memslots: [{ id: GUEST_SLOT, baseGfn: 0xffff0, npages: 16, backing: '4k', readonly: false }], blockPages: 8, manualProtect: true, initiallySet: false, userMemSlots: 32764 };
    const ops: Op[] = [
      { op: 'enableDirtyLog', args: { slot: GUEST_SLOT } },
      { op: 'guestWrite', args: { gfn: GUEST_GFN, value: 3 } },
      { op: 'guestRead', args: { gfn: GUEST_GFN } },
      { op: 'getDirtyLog', args: { slot: GUEST_SLOT } },
    ];
    const tally = C.emptyConformTally();
    const r = await C.conformTrace(stage2DirtyDomain, stage2DirtyAdapter, driver, host, { name: 'guest place', config, ops, source: 'test' }, tally, null);
    assert.deepEqual(r.disagreements, []);
    assert.equal(r.run, 4);
  });

  it('writes integers of 2^53 and above digit for digit', () => {
    assert.equal(commandLine({ cmd: 'prefault', gpa: 2 ** 64 - 4096 }), '{"cmd":"prefault","gpa":18446744073709547520}');
  });

  it('agrees with the model on every stage2-dirty case file, running every API-level step this host can answer', async () => {
    const tally = C.emptyConformTally();
    const files = fs.readdirSync(CASES).filter((f) => f.endsWith('.json'));
    for (const f of files) {
      const loaded = loadCaseFile(path.join(CASES, f), DOMAINS);
      assert.ok(loaded.ok);
      const r = await findAdapter(loaded.value.domainId)!.withCase(loaded.value, (d, a, lc) =>
        C.conformTrace(d, a, driver, host, { name: f, config: lc.config, ops: lc.ops, expects: lc.expects, source: f }, tally, null),
      );
      assert.equal(r.lockstep, undefined, `${f}: model/impl lockstep failed`);
      assert.ok(r.run > 0, `${f}: nothing ran`);
      assert.deepEqual((r.disagreements ?? []).map((d) => `step ${d.step + 1}: ${d.message}`), [], `${f}: the kernel disagrees`);
    }
    assert.ok(tally.run >= 500, `${tally.run} steps ran`);
    // Left out: only what this host cannot observe (TLB contents, leaf sizes), and the
    // few steps that ask an arm64-only question (a slot id between x86's and arm64's
    // KVM_USER_MEM_SLOTS, a region past arm64's IPA space) with what follows them.
    const archOnly = /KVM_USER_MEM_SLOTS|IPA space|earlier state-changing step/;
    let archSteps = 0;
    for (const [op, c] of Object.entries(tally.ops)) {
      for (const [reason, n] of Object.entries(c.notRun)) {
        assert.ok(op === 'mappingOf' || op === 'tlbEvict' || archOnly.test(reason), `${op} not run: ${reason}`);
        if (archOnly.test(reason)) archSteps += n;
      }
    }
    assert.ok(archSteps <= 20, `${archSteps} steps left out as arm64-only: more than the few expected`);
    process.stdout.write(`      (${tally.run} steps ran against the kernel; ${archSteps} arm64-only steps left out)\n`);
  });

  it('agrees with the model on random traces', async () => {
    const tally = C.emptyConformTally();
    const r = await C.conformRandom(stage2DirtyDomain, stage2DirtyAdapter, driver, host, { runs: 40, seed: 424242, maxOps: 60, saveDir: null }, tally);
    assert.equal(r.runsDone, 40);
    for (const t of r.reports) {
      assert.equal(t.lockstep, undefined);
      assert.deepEqual((t.disagreements ?? []).map((d) => `step ${d.step + 1}: ${d.message}`), [], `${t.name}: the kernel disagrees`);
    }
    assert.ok(tally.run >= 300, `${tally.run} steps ran`);
    for (const op of ['guestRead', 'guestWrite', 'enableDirtyLog', 'disableDirtyLog', 'getDirtyLog', 'clearDirtyLog', 'unmapRange']) {
      assert.ok((tally.ops[op]?.run ?? 0) > 0, `${op} never ran against the kernel`);
    }
  });

  it('a case with a wrong expect fails naming the kernel errno, and is saved with the kernel answers', async () => {
    const config: Config = { memslots: [{ id: 0, baseGfn: 0, npages: 64, backing: '4k', readonly: false }], blockPages: 8, manualProtect: false, initiallySet: false, userMemSlots: 32764 };
    const ops: Op[] = [{ op: 'guestWrite', args: { gfn: 3, value: 9 } }, { op: 'getDirtyLog', args: { slot: 0 } }];
    const tally = C.emptyConformTally();
    const r = await C.conformTrace(stage2DirtyDomain, stage2DirtyAdapter, driver, host, { name: 'wrong', config, ops, expects: [undefined, { ok: false, error: 'EINVAL' }], source: 'test' }, tally, tmp);
    const d = r.disagreements?.[0];
    assert.ok(d, 'no disagreement');
    assert.equal(d.kind, 'expect');
    assert.match(d.message, /ENOENT/);
    const saved = JSON.parse(fs.readFileSync(d.file!, 'utf8')) as { steps: { expect?: unknown }[] };
    assert.deepEqual(saved.steps[1]!.expect, { ok: false, error: 'ENOENT' });
    assert.equal(tally.disagreements, 1);
  });

  it('compares the host memory and the dirty bitmap with the model View', async () => {
    const config: Config = { memslots: [{ id: 2, baseGfn: 8, npages: 70, backing: 'thp', readonly: false }], blockPages: 8, manualProtect: true, initiallySet: false, userMemSlots: 32764 };
    const s = await stage2DirtyAdapter.open(config, driver, host, []);
    assert.ok(!('notRun' in s));
    const model = stage2DirtyDomain.createModel(config);
    for (const op of [{ op: 'enableDirtyLog', args: { slot: 2 } }, { op: 'guestWrite', args: { gfn: 75, value: 5 } }] as Op[]) {
      assert.deepEqual((await s.apply(op)) as unknown, { run: true, result: model.apply(op) });
    }
    const v = model.view();
    assert.equal(await s.observe(v), null);
    const wrongMemory = { ...v, memory: v.memory.map((m) => ({ ...m, expected: 6 })) };
    assert.match((await s.observe(wrongMemory)) ?? '', /gfn 75 holds 5/);
    const wrongBitmap = { ...v, slots: v.slots.map((x) => ({ ...x, dirty: [] })) };
    assert.match((await s.observe(wrongBitmap)) ?? '', /kernel \[75\] vs model \[\]/);
    assert.deepEqual(await s.apply({ op: 'mappingOf', args: { gfn: 75 } }), { run: false, reason: 'stage-2 leaf sizes are not observable on this host (no TDP, no per-gfn query)', diverges: false });
  });

  it('maps the agreed ops: setUserMemoryRegion (create, flags change, delete, errnos) and clearDirtyLog with a user bitmap', async () => {
    const config: Config = { memslots: [{ id: 0, baseGfn: 0, npages: 128, backing: '4k', readonly: false }], blockPages: 8, manualProtect: true, initiallySet: false, userMemSlots: 32764 };
    const s = await stage2DirtyAdapter.open(config, driver, host, []);
    assert.ok(!('notRun' in s));
    // The op is not in this branch's Op union yet: the adapter is written against the agreed shape.
    const region = (args: { [k: string]: number | boolean }) => ({ op: 'setUserMemoryRegion', args }) as unknown as Op;
    const result = async (op: Op) => {
      const k = await s.apply(op);
      assert.ok(k.run, JSON.stringify(k));
      return k.result;
    };
    assert.deepEqual(await result(region({ slot: 3, baseGfn: 200, npages: 16 })), { ok: true });
    assert.deepEqual(await result(region({ slot: 4, baseGfn: 210, npages: 16 })), { ok: false, error: 'EEXIST' });
    assert.deepEqual(await result(region({ slot: host.caps['nrMemslots']!, baseGfn: 400, npages: 1 })), { ok: false, error: 'EINVAL' });
    assert.deepEqual(await result(region({ slot: 3, baseGfn: 200, npages: 16, readonly: true })), { ok: false, error: 'EINVAL' });
    assert.deepEqual(await result(region({ slot: 3, baseGfn: 200, npages: 16, logDirty: true })), { ok: true });
    assert.deepEqual(await result({ op: 'guestWrite', args: { gfn: 201, value: 1 } }), { ok: true });
    assert.deepEqual(await result({ op: 'getDirtyLog', args: { slot: 3 } }), { ok: true, dirty: [201] });
    assert.deepEqual(await result(region({ slot: 3, baseGfn: 0, npages: 0 })), { ok: true });
    assert.deepEqual(await result(region({ slot: 3, baseGfn: 0, npages: 0 })), { ok: false, error: 'EINVAL' });
    assert.deepEqual(await result({ op: 'guestWrite', args: { gfn: 201, value: 1 } }), { ok: false, error: 'MMIO' });
    // KVM_CLEAR_DIRTY_LOG clears only the bits set in the user bitmap (bit i = page first + i).
    assert.deepEqual(await result({ op: 'enableDirtyLog', args: { slot: 0 } }), { ok: true });
    for (const gfn of [1, 2, 70]) assert.deepEqual(await result({ op: 'guestWrite', args: { gfn, value: gfn } }), { ok: true });
    const clear = { op: 'clearDirtyLog', args: { slot: 0, first: 0, num: 128, bits: [2, 70] } } as unknown as Op;
    assert.deepEqual(await result(clear), { ok: true });
    assert.deepEqual(await result({ op: 'getDirtyLog', args: { slot: 0 } }), { ok: true, dirty: [1] });
  });

  it('--record: the kernel runs written as traces validate against the spec; a tampered answer does not', async () => {
    const tally = C.emptyConformTally();
    const r = await C.conformRandom(stage2DirtyDomain, stage2DirtyAdapter, driver, host, { runs: 4, seed: 99, maxOps: 40, saveDir: null, record: true }, tally);
    const files = C.writeRecordedTraces(r.reports, path.join(tmp, 'rec.ndjson'));
    assert.equal(files.length, r.reports.filter((t) => (t.recorded?.length ?? 0) > 1).length);
    assert.ok(files.length >= 2, `${files.length} traces recorded`);
    for (const f of files) {
      const v = await validateTraceFile(DOMAINS, f, { maxHidden: 2, maxStates: 10_000 });
      assert.equal(v.verdict, 'valid', `${f}: ${JSON.stringify(v.rejection)}`);
    }
    const lines = fs.readFileSync(files[0]!, 'utf8').trim().split('\n');
    const at = lines.findIndex((l) => l.includes('"getDirtyLog"') && l.includes('"ok":true'));
    assert.ok(at > 0, 'the recorded run has a successful getDirtyLog');
    const step = JSON.parse(lines[at]!) as { result: { dirty: number[] } };
    step.result.dirty = [...step.result.dirty, 1_000_000];
    lines[at] = JSON.stringify(step);
    fs.writeFileSync(path.join(tmp, 'tampered.ndjson'), lines.join('\n') + '\n');
    const bad = await validateTraceFile(DOMAINS, path.join(tmp, 'tampered.ndjson'), { maxHidden: 2, maxStates: 10_000 });
    assert.equal(bad.verdict, 'invalid');
    assert.equal(bad.rejection!.line, at + 1);
  });

  it('hvspec conform prints the host line and the summary line, and exits 2 on bad usage', () => {
    const files = ['01-write-after-enable-logged-4k.json', '07-initially-set.json'].map((f) => path.join(CASES, f));
    const r = spawnSync(process.execPath, [BIN, 'conform', ...files], { cwd: tmp, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^host: Linux .*KVM API \d+.*guests run/);
    assert.match(lines.at(-1)!, /^conform: \d+ steps run against the kernel, \d+ not run on this host, 0 disagreements$/);
    // Steps the host cannot run make a case "partial", with the reason; never "agree".
    assert.match(r.stdout, /^partial +\S+01-write-after-enable-logged-4k\.json +\(4 steps run; 2 not run on this host: stage-2 leaf sizes/m);
    assert.match(r.stdout, /^agree +\S+07-initially-set\.json +\(12 steps run\)$/m);
    const j = spawnSync(process.execPath, [BIN, 'conform', '--json', '--domain', 'prefault', '--runs', '5', '--seed', '3'], { cwd: tmp, encoding: 'utf8' });
    assert.equal(j.status, 0, j.stderr);
    const o = JSON.parse(j.stdout) as { steps: number; disagreements: number; seed: number; host: { api: number }; summary: string };
    assert.equal(o.disagreements, 0);
    assert.equal(o.host.api, host.api);
    assert.match(o.summary, /^conform: \d+ steps run against the kernel/);
    assert.equal(o.seed, 3);
    const bad = spawnSync(process.execPath, [BIN, 'conform', '--runs', 'x'], { cwd: tmp, encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--runs takes a whole number/);
    const noAdapter = spawnSync(process.execPath, [BIN, 'conform', '--domain', 'sev-cache'], { cwd: tmp, encoding: 'utf8' });
    assert.equal(noAdapter.status, 2);
    assert.match(noAdapter.stderr, /no kernel adapter/);
  });
});
