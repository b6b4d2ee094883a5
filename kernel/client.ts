/**
 * The Node side of the driver: one child process, JSON lines both ways,
 * one answer per command, in order. The harness sees it only as a
 * `KernelDriver` (harness/conform.ts).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'child_process';
import * as readline from 'readline';
import type { Json } from '../harness/domain';
import type { KernelDriver, DriverAnswer } from '../harness/conform';
import { buildDriver, kvmUnusable } from './build';

/**
 * One command as a line. Flat objects only; integers at or above 2^53 are
 * written with all their digits (JSON.stringify would round them, e.g. a gpa
 * of 2^64 - 4096 as "18446744073709548000"): every such double is an exact
 * integer, and BigInt prints it exactly.
 */
export function commandLine(command: { [k: string]: Json }): string {
  const parts = Object.entries(command).map(([k, v]) => {
    const text = typeof v === 'number' && Number.isInteger(v) && Math.abs(v) >= 2 ** 53 ? BigInt(v).toString() : JSON.stringify(v);
    return `${JSON.stringify(k)}:${text}`;
  });
  return `{${parts.join(',')}}`;
}

/** A driver that could not be started, with the reason (exit 2 material). */
export class DriverUnavailable extends Error {}

export class DriverClient implements KernelDriver {
  private readonly waiting: Array<{ resolve: (a: DriverAnswer) => void; reject: (e: Error) => void }> = [];
  private closed: Error | null = null;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const w = this.waiting.shift();
      if (!w) return;
      try {
        const v = JSON.parse(line) as unknown;
        if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
        w.resolve(v as DriverAnswer);
      } catch {
        w.reject(new Error(`the driver answered something that is not a JSON object: ${line.slice(0, 200)}`));
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-2000);
    });
    child.on('exit', (code, signal) => {
      this.closed = new Error(`the driver exited (${signal ?? `code ${String(code)}`})${this.stderr ? `: ${this.stderr.trim()}` : ''}`);
      for (const w of this.waiting.splice(0)) w.reject(this.closed);
    });
    child.stdin.on('error', () => undefined);
  }

  /** Build if needed, start, and wait for the driver's first line (it opens /dev/kvm before answering). */
  static async start(): Promise<DriverClient> {
    const unusable = kvmUnusable();
    if (unusable !== null) throw new DriverUnavailable(unusable);
    const built = buildDriver();
    if (!built.ok) throw new DriverUnavailable(built.reason);
    // Its own process group: a Ctrl-C meant for hvspec must not kill the driver mid-answer (it exits on EOF).
    const child = spawn(built.binary, [], { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const client = new DriverClient(child);
    const hello = await new Promise<DriverAnswer>((resolve, reject) => {
      client.waiting.push({ resolve, reject });
      child.on('error', (e) => reject(e));
    }).catch((e: Error) => {
      throw new DriverUnavailable(`the KVM driver did not start: ${e.message}`);
    });
    if (hello['ok'] !== true) {
      child.kill();
      throw new DriverUnavailable(`the KVM driver could not open /dev/kvm: ${String(hello['error'])}`);
    }
    return client;
  }

  send(command: { [k: string]: Json }): Promise<DriverAnswer> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(commandLine(command) + '\n');
    });
  }

  /** Send one raw line (tests of the driver's parser). */
  sendRaw(line: string): Promise<DriverAnswer> {
    if (this.closed) return Promise.reject(this.closed);
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.child.stdin.write(line + '\n');
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin.end(JSON.stringify({ cmd: 'quit' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
