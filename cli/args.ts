/**
 * Command-line parsing helpers: one clear line and exit 2 for bad usage.
 */
import { parseArgs } from 'util';
import { DOMAINS, findDomain } from '../domains';
import type { SomeDomain } from '../harness/domain';

export class UsageError extends Error {}

type Opt = { type: 'string'; multiple?: boolean } | { type: 'boolean'; multiple?: false };
export type OptionSpec = { [name: string]: Opt };
type ValueOf<O extends Opt> = O extends { type: 'string'; multiple: true } ? string[] : O extends { type: 'string' } ? string : boolean;
export type Parsed<T extends OptionSpec> = {
  values: { [K in keyof T]?: ValueOf<T[K]> } & { help?: boolean };
  positionals: string[];
};

export function parse<T extends OptionSpec>(argv: string[], options: T, allowPositionals: boolean): Parsed<T> {
  // util.parseArgs refuses "--seed -123" (a value starting with '-'), which is how the
  // printed reproduction lines give a negative seed: join a negative number to its option.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const name = a.startsWith('--') ? a.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d+$/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  try {
    const r = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    return r as unknown as Parsed<T>;
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/, '');
    throw new UsageError(msg);
  }
}

export function intOption(name: string, raw: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`--${name} takes a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${raw}`);
  }
  return n;
}

export function seedOption(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = intOption('seed', raw, -0x80000000, 0xffffffff)!;
  return n | 0;
}

export function numberOption(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min) throw new UsageError(`--${name} takes a number of at least ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** `--domain D` (repeatable, comma lists allowed); all domains when absent. */
export function domainsOption(raw: string[] | string | undefined): SomeDomain[] {
  if (raw === undefined) return [...DOMAINS];
  const ids = (Array.isArray(raw) ? raw : [raw]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const out: SomeDomain[] = [];
  for (const id of ids) {
    const d = findDomain(id);
    if (!d) throw new UsageError(`unknown domain ${JSON.stringify(id)} (known: ${DOMAINS.map((x) => x.id).join(', ')})`);
    if (!out.includes(d)) out.push(d);
  }
  return out;
}

/** `--impl impl` or `--impl mutant:ID`. */
export function implOption(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === 'impl') return undefined;
  const m = /^mutant:(.+)$/.exec(raw);
  if (!m) throw new UsageError(`--impl takes "impl" or "mutant:ID", got ${JSON.stringify(raw)}`);
  return m[1]!;
}

/** `--shard I/N` with 1 <= I <= N. */
export function shardOption(raw: string | undefined): { index: number; count: number } | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
  if (!m) throw new UsageError(`--shard takes I/N (e.g. 1/4), got ${JSON.stringify(raw)}`);
  const i = Number(m[1]);
  const n = Number(m[2]);
  if (n < 1 || i < 1 || i > n) throw new UsageError(`--shard I/N needs 1 <= I <= N, got ${raw}`);
  return { index: i - 1, count: n };
}

/** A progress line on a terminal, shown only for runs longer than a second. */
export class Progress {
  private readonly start = Date.now();
  private last = 0;
  private shown = false;
  constructor(private readonly enabled: boolean = process.stderr.isTTY === true) {}
  update(text: string): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.start < 1000 || now - this.last < 100) return;
    this.last = now;
    this.shown = true;
    process.stderr.write(`\r\x1b[2K${text}`);
  }
  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }
}
