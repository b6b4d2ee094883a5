/**
 * Command-line parsing shared by every command: one clear line and exit 2
 * for bad usage, in the tool's own words.
 *
 * Our own parser rather than util.parseArgs: parseArgs refuses `--seed -5`
 * as "ambiguous" (a value that starts with a dash: in strict mode a string
 * option does not take a following argument that starts with "-", as
 * discussed in pkgjs/parseargs issue #77), so the repro line that
 * `check` prints for a negative run seed did not run. Here a string option
 * takes the next argument as its value when that argument does not start
 * with `--` (so `--seed -5` and `--runs -1` reach the number check and get
 * its message), `--name=value` always works, and `--` ends the options.
 * Options are looked up as own properties only (`--constructor` is unknown).
 */
import { DOMAINS, findDomain } from '../domains';
import type { SomeDomain } from '../harness/domain';
import { clip, clipText } from '../harness/input';

export class UsageError extends Error {}

type Opt = { type: 'string'; multiple?: boolean } | { type: 'boolean'; multiple?: false };
export type OptionSpec = { [name: string]: Opt };
type ValueOf<O extends Opt> = O extends { type: 'string'; multiple: true } ? string[] : O extends { type: 'string' } ? string : boolean;
export type Parsed<T extends OptionSpec> = {
  values: { [K in keyof T]?: ValueOf<T[K]> } & { help?: boolean };
  positionals: string[];
};

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

export function parse<T extends OptionSpec>(argv: readonly string[], options: T, allowPositionals: boolean): Parsed<T> {
  const spec: OptionSpec = { ...options, help: { type: 'boolean' } };
  const values: { [k: string]: string | string[] | boolean } = Object.create(null) as { [k: string]: string | string[] | boolean };
  const positionals: string[] = [];
  const positional = (a: string) => {
    if (!allowPositionals) throw new UsageError(`unexpected argument ${clip(a)} (this command takes options only)`);
    positionals.push(a);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      for (const rest of argv.slice(i + 1)) positional(rest);
      break;
    }
    if (a === '-h') {
      values['help'] = true;
      continue;
    }
    if (!a.startsWith('-') || a === '-' || /^-\d/.test(a)) {
      positional(a);
      continue;
    }
    if (!a.startsWith('--')) throw new UsageError(`unknown option ${clip(a)} (options are spelled --name; see --help)`);
    const eq = a.indexOf('=');
    const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
    if (!hasOwn(spec, name)) throw new UsageError(`unknown option ${clipText(`--${name}`)} (see --help)`);
    const opt = spec[name]!;
    if (opt.type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      values[name] = true;
      continue;
    }
    let v: string;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      v = next;
      i++;
    }
    if (opt.multiple) {
      const prev = values[name];
      values[name] = [...(Array.isArray(prev) ? prev : []), v];
    } else {
      if (hasOwn(values, name)) throw new UsageError(`--${name} is given more than once`);
      values[name] = v;
    }
  }
  return { values: { ...values } as Parsed<T>['values'], positionals };
}

export function intOption(name: string, raw: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`--${name} takes a whole number, got ${clip(raw)}`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${clipText(raw.trim(), 40)}`);
  }
  return n;
}

/** A seed: any 32-bit integer, signed or unsigned (run seeds print signed). */
export function seedOption(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = intOption('seed', raw, -0x80000000, 0xffffffff)!;
  return n | 0;
}

export function numberOption(name: string, raw: string | undefined, min: number, max = 1e9): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--${name} takes a number from ${min} to ${max}, got ${clip(raw)}`);
  return n;
}

/** `--domain D` (repeatable, comma lists allowed); all domains when absent. */
export function domainsOption(raw: string[] | string | undefined): SomeDomain[] {
  if (raw === undefined) return [...DOMAINS];
  const ids = (Array.isArray(raw) ? raw : [raw]).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const known = DOMAINS.map((x) => x.id).join(', ');
  // `--domain ''` used to check nothing and exit 0: name at least one domain.
  if (ids.length === 0) throw new UsageError(`--domain needs a domain name (known: ${known})`);
  const out: SomeDomain[] = [];
  for (const id of ids) {
    const d = findDomain(id);
    if (!d) throw new UsageError(`unknown domain ${clip(id)} (known: ${known})`);
    if (!out.includes(d)) out.push(d);
  }
  return out;
}

/** `--impl impl` or `--impl mutant:ID`. */
export function implOption(raw: string | undefined): string | undefined {
  if (raw === undefined || raw === 'impl') return undefined;
  const m = /^mutant:(.+)$/.exec(raw);
  if (!m) throw new UsageError(`--impl takes "impl" or "mutant:ID", got ${clip(raw)}`);
  return m[1]!;
}

/** `--shard I/N` with 1 <= I <= N. */
export function shardOption(raw: string | undefined): { index: number; count: number } | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(raw.trim());
  if (!m) throw new UsageError(`--shard takes I/N (e.g. 1/4), got ${clip(raw)}`);
  const i = Number(m[1]);
  const n = Number(m[2]);
  if (!Number.isSafeInteger(n) || n < 1 || i < 1 || i > n || n > 1_000_000) throw new UsageError(`--shard I/N needs 1 <= I <= N <= 1000000, got ${clipText(raw.trim(), 40)}`);
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
