/**
 * Build the native driver (kernel/driver/hvspec-kvm.c) with the system C
 * compiler on first use, and find out whether this machine can use it at
 * all. No network, no node-gyp: one `cc` invocation, cached under
 * `.hvspec/kvm/hvspec-kvm-<hash of the source>`, so an edited source is
 * rebuilt and an unchanged one never is.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { spawnSync } from 'child_process';

/** The repository root (this file runs as dist/kernel/build.js). */
export function repoRoot(): string {
  return path.resolve(__dirname, '..', '..');
}

export function driverSource(): string {
  return path.join(repoRoot(), 'kernel', 'driver', 'hvspec-kvm.c');
}

export type Built = { ok: true; binary: string; compiler: string; rebuilt: boolean } | { ok: false; reason: string };

/**
 * Why the KVM device cannot be used here, or null. HVSPEC_KVM_DEVICE names
 * another path to check instead of /dev/kvm (so the "no usable /dev/kvm"
 * exit can be tested on a machine that has one).
 */
export function kvmUnusable(device = process.env['HVSPEC_KVM_DEVICE'] ?? '/dev/kvm'): string | null {
  try {
    const fd = fs.openSync(device, fs.constants.O_RDWR);
    fs.closeSync(fd);
    return null;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    if (code === 'ENOENT') return `${device} does not exist (no KVM on this machine, or the module is not loaded)`;
    if (code === 'EACCES' || code === 'EPERM') return `${device} is not readable and writable by this user (${code}: add the user to the kvm group, or run as root)`;
    return `${device} cannot be opened (${code})`;
  }
}

/** The first C compiler on PATH ($CC first), or null. */
export function findCompiler(): string | null {
  const candidates = [process.env['CC'], 'cc', 'gcc', 'clang'].filter((c): c is string => c !== undefined && c !== '');
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { stdio: 'ignore' });
    if (r.status === 0) return c;
  }
  return null;
}

/** Build (or reuse) the driver binary; `cacheDir` defaults to `.hvspec/kvm` in the repository. */
export function buildDriver(cacheDir = path.join(repoRoot(), '.hvspec', 'kvm')): Built {
  const src = driverSource();
  let text: Buffer;
  try {
    text = fs.readFileSync(src);
  } catch {
    return { ok: false, reason: `the driver source ${src} is missing` };
  }
  const hash = crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
  const binary = path.join(cacheDir, `hvspec-kvm-${hash}`);
  const compiler = findCompiler();
  if (fs.existsSync(binary)) return { ok: true, binary, compiler: compiler ?? 'cached', rebuilt: false };
  if (compiler === null) return { ok: false, reason: 'no C compiler found (tried $CC, cc, gcc, clang): install gcc to build the KVM driver' };
  fs.mkdirSync(cacheDir, { recursive: true });
  // Build to a private name and rename, so two processes never run a half-written binary.
  const tmp = `${binary}.${process.pid}.tmp`;
  const r = spawnSync(compiler, ['-O2', '-Wall', '-Wextra', '-std=gnu11', '-o', tmp, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    const why = (r.stderr || r.error?.message || `exit ${String(r.status)}`).trim().split('\n').slice(0, 6).join('\n');
    return { ok: false, reason: `${compiler} could not build ${path.relative(process.cwd(), src)}:\n${why}` };
  }
  fs.renameSync(tmp, binary);
  return { ok: true, binary, compiler, rebuilt: true };
}
