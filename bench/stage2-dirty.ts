/**
 * stage2-dirty benchmarks (one run, ratios side by side):
 *
 *  1. KVM_GET_DIRTY_LOG on a 4 GiB slot (1,048,576 pages) at 0%, 1% and
 *     100% dirty: implementation vs model (default mode: fetch + clear +
 *     write-protect), and the implementation's pages/s against memory
 *     bandwidth as the limit. The bandwidth reference is a plain
 *     typed-array copy of a buffer the size of the bitmap (128 KiB): a fetch
 *     that only had to read the bitmap once could not beat it, so bitmap
 *     bytes/s divided by copy bytes/s is the fraction of the limit.
 *     Also: the same scan over BigUint64Array words, to show why the bitmap
 *     is Uint32Array.
 *  2. Enabling logging on a block-mapped 4 GiB slot (2048 blocks
 *     write-protected, one TLB flush): implementation vs model.
 *  3. Lockstep throughput (model + impl + every invariant on both Views
 *     after every op) on the property's own generated traces.
 */
import type { Json } from '../harness/domain';
import { resolveConfig } from '../spec/stage2-dirty/config';
import type { Config, Op, Result } from '../spec/stage2-dirty/types';
import { createModel } from '../model/stage2-dirty/model';
import { createImpl } from '../impl/stage2-dirty/impl';
import { stage2DirtyDomain } from '../domains/stage2-dirty';
import { fmt, lockstepThroughput, timeMs } from './harness';

const PAGES = 1 << 20; // 4 GiB of 4 KiB pages

function config(manualProtect: boolean): Config {
  const r = resolveConfig({ memslots: [{ id: 0, baseGfn: 0, npages: PAGES, backing: 'thp' }], blockPages: 512, manualProtect });
  if (!r.ok) throw new Error('bench config');
  return r.value;
}

interface Sys {
  apply(op: Op): Result;
}

function dirty(sys: Sys, every: number): number {
  let n = 0;
  if (every === 0) return 0;
  for (let g = 0; g < PAGES; g += every) {
    sys.apply({ op: 'guestWrite', args: { gfn: g, value: g } });
    n++;
  }
  return n;
}

const GET: Op = { op: 'getDirtyLog', args: { slot: 0 } };

function count(r: Result): number {
  return 'dirty' in r ? r.dirty.length : -1;
}

/** Scan a bitmap of 32-bit words, collecting set bits (the implementation's inner loop). */
function scan32(bm: Uint32Array, out: number[]): void {
  for (let i = 0; i < bm.length; i++) {
    let w = bm[i]!;
    while (w !== 0) {
      const b = 31 - Math.clz32(w & -w);
      w &= w - 1;
      out.push(i * 32 + b);
    }
  }
}

/** The same over 64-bit BigInt words. */
function scan64(bm: BigUint64Array, out: number[]): void {
  for (let i = 0; i < bm.length; i++) {
    let w = bm[i]!;
    let b = 0;
    while (w !== 0n) {
      if ((w & 1n) !== 0n) out.push(i * 64 + b);
      w >>= 1n;
      b++;
    }
  }
}

export default function bench(log: (line: string) => void): Json {
  const out: { [k: string]: Json } = {};

  // --- memory-bandwidth reference: copy a bitmap-sized buffer -------------
  const bitmapBytes = PAGES / 8;
  const src = new Uint32Array(bitmapBytes / 4).fill(0x5a5a5a5a);
  const dst = new Uint32Array(bitmapBytes / 4);
  // Best of many short batches: on a shared machine the best batch is the one least disturbed.
  const reps = 100;
  const copyMs = timeMs(() => {
    for (let i = 0; i < reps; i++) dst.set(src);
  }, 200) / reps;
  const copyBytesPerSec = bitmapBytes / (copyMs / 1000);
  const limitPagesPerSec = copyBytesPerSec * 8;
  log(
    `bandwidth reference: copy of a bitmap-sized buffer (${bitmapBytes / 1024} KiB, cache-resident): ${(copyMs * 1000).toFixed(1)} us = ${fmt(copyBytesPerSec / 1e9, 2)} GB/s => limit ${fmt(limitPagesPerSec / 1e9, 1)} G pages/s (one bit per page)`,
  );
  out['bandwidth'] = { bitmapBytes, copyMicroseconds: copyMs * 1000, bytesPerSecond: Math.round(copyBytesPerSec), limitPagesPerSecond: Math.round(limitPagesPerSec) };

  // --- getDirtyLog at 0%, 1% and 100% ------------------------------------
  // Default mode (no manual protect): fetch + clear + write-protect, which
  // consumes the bits, so before every timed fetch the same pages are
  // dirtied again (untimed); best of three timed rounds after a warm-up
  // round, model and implementation on the same rounds. Then, for the
  // bandwidth comparison, the implementation's bitmap scan alone: a fetch
  // with manual protect leaves the bitmap as it is, so it repeats.
  const getLog: { [k: string]: Json } = {};
  for (const [label, every] of [
    ['0%', 0],
    ['1%', 100],
    ['100%', 1],
  ] as const) {
    const impl = createImpl(config(false));
    const model = createModel(config(false));
    let n = 0;
    const best = { impl: Infinity, model: Infinity };
    for (const [name, sys] of [
      ['impl', impl],
      ['model', model],
    ] as const) {
      sys.apply({ op: 'enableDirtyLog', args: { slot: 0 } });
      for (let round = 0; round < 4; round++) {
        n = dirty(sys, every);
        const t0 = process.hrtime.bigint();
        const r = sys.apply(GET);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (count(r) !== n) throw new Error(`${name} reported ${count(r)} of ${n}`);
        if (round > 0) best[name] = Math.min(best[name], ms);
      }
    }
    const scanImpl = createImpl(config(true));
    scanImpl.apply({ op: 'enableDirtyLog', args: { slot: 0 } });
    dirty(scanImpl, every);
    const scanMs = timeMs(() => {
      if (count(scanImpl.apply(GET)) !== n) throw new Error('scan count');
    }, every === 1 ? 7 : 50);
    const pagesPerSec = PAGES / (scanMs / 1000);
    const bitmapBytesPerSec = bitmapBytes / (scanMs / 1000);
    log(
      `getDirtyLog 4 GiB slot, ${label} dirty (${n} pages): fetch+clear+protect impl ${best.impl.toFixed(2)} ms, model ${best.model.toFixed(2)} ms => impl/model speedup ${fmt(best.model / best.impl, 1)}x; ` +
        `fetch only (manual protect) ${scanMs.toFixed(3)} ms = ${fmt(pagesPerSec / 1e6, 1)} M pages/s = ${(100 * (bitmapBytesPerSec / copyBytesPerSec)).toFixed(1)}% of the bandwidth limit`,
    );
    getLog[label] = {
      dirtyPages: n,
      implFetchClearProtectMs: best.impl,
      modelFetchClearProtectMs: best.model,
      implOverModelSpeedup: best.model / best.impl,
      implFetchOnlyMs: scanMs,
      implPagesPerSecond: Math.round(pagesPerSec),
      fractionOfBandwidthLimit: bitmapBytesPerSec / copyBytesPerSec,
    };
  }
  out['getDirtyLog'] = getLog;

  // --- Uint32Array vs BigUint64Array scan of the same bitmap ---------------
  {
    const b32 = new Uint32Array(PAGES / 32);
    for (let g = 0; g < PAGES; g += 100) b32[g >>> 5]! |= 1 << (g & 31);
    const b64 = new BigUint64Array(b32.buffer);
    const o32: number[] = [];
    const o64: number[] = [];
    const t32 = timeMs(() => {
      o32.length = 0;
      scan32(b32, o32);
    }, 30);
    const t64 = timeMs(() => {
      o64.length = 0;
      scan64(b64, o64);
    }, 5);
    if (o32.length !== o64.length) throw new Error('scan mismatch');
    log(`bitmap scan at 1%: Uint32Array ${t32.toFixed(2)} ms vs BigUint64Array ${t64.toFixed(2)} ms (${fmt(t64 / t32, 1)}x slower)`);
    out['wordScan'] = { uint32Ms: t32, bigUint64Ms: t64, bigIntSlowdown: t64 / t32 };
  }

  // --- enabling logging on a block-mapped 4 GiB slot ------------------------
  {
    const impl = createImpl(config(false));
    const model = createModel(config(false));
    for (const s of [impl, model] as Sys[]) for (let g = 0; g < PAGES; g += 512) s.apply({ op: 'guestWrite', args: { gfn: g, value: 1 } });
    const cycle = (s: Sys) => () => {
      s.apply({ op: 'disableDirtyLog', args: { slot: 0 } });
      s.apply({ op: 'enableDirtyLog', args: { slot: 0 } });
    };
    const implMs = timeMs(cycle(impl), 30);
    const modelMs = timeMs(cycle(model), 5);
    const m = impl.apply({ op: 'mappingOf', args: { gfn: 4096 } });
    if (!('size' in m) || m.size !== '2m' || m.writable) throw new Error('enable did not write-protect the blocks');
    log(`enableDirtyLog on a block-mapped 4 GiB slot (2048 blocks): impl ${(implMs * 1000).toFixed(0)} us, model ${implMs > 0 ? (modelMs * 1000).toFixed(0) : '?'} us => impl ${fmt(modelMs / implMs, 1)}x faster`);
    out['enableOnBlocks'] = { blocks: PAGES / 512, implMs, modelMs, implOverModelSpeedup: modelMs / implMs };
  }

  // --- lockstep throughput -----------------------------------------------------
  {
    const d = stage2DirtyDomain;
    const t = lockstepThroughput(d, { traces: 200, maxOps: d.budget.maxOps, seed: 1 });
    log(
      `lockstep (model + impl + 7 invariants x 2 Views per op, traces of the check budget): best ${fmt(t.opsPerSecond)} ops/s, median ${fmt(t.medianOpsPerSecond)} ops/s over ${t.calls} passes of ${t.ops} ops (target 50,000)`,
    );
    out['lockstep'] = { ...t };
  }
  return out;
}

if (require.main === module) {
  bench((l) => process.stdout.write(l + '\n'));
}
