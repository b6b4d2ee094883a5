/**
 * Reading untrusted input files safely: every file the harness reads (case
 * files, the failure corpus, `check --json` reports, `explore --config`) goes
 * through here, so that no input can hang the tool, exhaust its memory or
 * reach the user as a stack trace.
 *
 *   - only regular files are read (a FIFO would block forever, a device such
 *     as /dev/zero never ends), symlinks are followed and the target judged;
 *   - at most `MAX_INPUT_BYTES` bytes are read;
 *   - the text must be valid UTF-8 and valid JSON (RFC 8259), with no
 *     duplicate keys in any object (JSON.parse keeps the last one silently),
 *     and nested at most `MAX_JSON_DEPTH` deep (the decoders recurse);
 *   - every error is one `{ path, message }` with a JSON path where there is
 *     one, and echoed input is cut to `CLIP` characters.
 *
 * Writes that other processes may race with (the failure corpus, recorded
 * reports) go through `writeFileAtomic`: a temporary file in the same folder,
 * then rename(2), which replaces the target in one step.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import type { InputError, Resolved } from './domain';

/** Largest input file read, in bytes (32 MiB: the largest case in the tree is under 64 KiB; a 100,000-step trace is about 8 MiB). */
export const MAX_INPUT_BYTES = 32 * 1024 * 1024;
/** Deepest nesting of arrays and objects accepted in a JSON input. */
export const MAX_JSON_DEPTH = 256;
/** Echoed input values are cut to this many characters. */
export const CLIP = 100;

/** A value as it may be echoed in an error message: JSON, cut to `max` characters. */
export function clip(value: unknown, max = CLIP): string {
  let s: string;
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') s = JSON.stringify(value.length > max * 2 ? value.slice(0, max * 2) : value);
  else {
    try {
      s = JSON.stringify(value) ?? String(value);
    } catch {
      s = String(value);
    }
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** A plain string (a file name, an option) cut to `max` characters. */
export function clipText(s: string, max = CLIP): string {
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

/** Byte offset of the first invalid UTF-8 sequence, or -1. */
export function invalidUtf8At(b: Uint8Array): number {
  let i = 0;
  const n = b.length;
  while (i < n) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (c >= 0xc2 && c <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    if (i + need >= n) return i;
    let cp = c & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const x = b[i + k];
      if (x === undefined || (x & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (x & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

class JsonSyntaxError extends Error {
  constructor(
    readonly jsonPath: string,
    message: string,
  ) {
    super(message);
  }
}

function keyPath(p: string, k: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k) ? `${p}.${k}` : `${p}[${clip(k, 40)}]`;
}

/**
 * A strict JSON parser: RFC 8259 grammar, no duplicate keys, bounded depth.
 * Objects get their keys as own data properties (as JSON.parse does, so a
 * key "__proto__" is a plain key, never a prototype).
 */
export function parseJsonStrict(text: string): Resolved<unknown> {
  let i = 0;
  const n = text.length;
  const where = (at: number): string => {
    let line = 1;
    let col = 1;
    for (let k = 0; k < at && k < n; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        col = 1;
      } else col++;
    }
    return `line ${line} column ${col}`;
  };
  const fail = (p: string, what: string): never => {
    throw new JsonSyntaxError(p, `not valid JSON: ${what} at ${where(i)}`);
  };
  const ws = () => {
    while (i < n) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const unexpected = (p: string): never => fail(p, i >= n ? 'unexpected end of input' : `unexpected ${clip(text[i])}`);
  const str = (p: string): string => {
    // text[i] === '"'
    i++;
    let out = '';
    let start = i;
    for (;;) {
      if (i >= n) fail(p, 'unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(start, i);
        i++;
        return out;
      }
      if (c < 0x20) fail(p, 'control character in a string');
      if (c === 0x5c) {
        out += text.slice(start, i);
        const e = text[i + 1];
        i += 2;
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const h = text.slice(i, i + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(h)) fail(p, 'bad \\u escape');
            out += String.fromCharCode(parseInt(h, 16));
            i += 4;
            break;
          }
          default:
            i -= 2;
            fail(p, 'bad escape in a string');
        }
        start = i;
        continue;
      }
      i++;
    }
  };
  const NUM = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (p: string, depth: number): unknown => {
    ws();
    if (i >= n) unexpected(p);
    const c = text[i]!;
    if (c === '{') {
      if (depth >= MAX_JSON_DEPTH) fail(p, `nested deeper than ${MAX_JSON_DEPTH}`);
      i++;
      const o: { [k: string]: unknown } = {};
      ws();
      if (text[i] === '}') {
        i++;
        return o;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') unexpected(p);
        const k = str(p);
        const kp = keyPath(p, k);
        if (Object.prototype.hasOwnProperty.call(o, k)) throw new JsonSyntaxError(kp, `duplicate key ${clip(k)} (JSON keeps only one; remove the other)`);
        ws();
        if (text[i] !== ':') unexpected(kp);
        i++;
        const v = value(kp, depth + 1);
        Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return o;
        }
        unexpected(p);
      }
    }
    if (c === '[') {
      if (depth >= MAX_JSON_DEPTH) fail(p, `nested deeper than ${MAX_JSON_DEPTH}`);
      i++;
      const a: unknown[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return a;
      }
      for (;;) {
        a.push(value(`${p}[${a.length}]`, depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return a;
        }
        unexpected(p);
      }
    }
    if (c === '"') return str(p);
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (m && m[0].length > 0) {
      i += m[0].length;
      const x = Number(m[0]);
      if (!Number.isFinite(x)) fail(p, `number ${clip(m[0], 40)} is out of range`);
      return x;
    }
    return unexpected(p);
  };
  try {
    if (text.charCodeAt(0) === 0xfeff) i = 1; // a byte-order mark is tolerated
    const v = value('$', 0);
    ws();
    if (i < n) unexpected('$');
    return { ok: true, value: v };
  } catch (e) {
    if (e instanceof JsonSyntaxError) return { ok: false, errors: [{ path: e.jsonPath, message: e.message }] };
    throw e;
  }
}

/** Read a regular file of at most `maxBytes` bytes; anything else is one error. */
export function readInputFile(file: string, maxBytes = MAX_INPUT_BYTES): { ok: true; bytes: Buffer } | { ok: false; message: string } {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { ok: false, message: code === 'ENOENT' ? 'no such file' : code === 'ELOOP' ? 'a symlink loop' : `cannot read (${code ?? 'error'})` };
  }
  if (st.isDirectory()) return { ok: false, message: 'is a directory, not a case file' };
  if (!st.isFile()) return { ok: false, message: `not a regular file (${st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : st.isSocket() ? 'a socket' : 'special file'}); only regular files are read` };
  if (st.size > maxBytes) return { ok: false, message: `too large: ${st.size} bytes (the limit is ${maxBytes})` };
  let fd: number;
  try {
    // O_NONBLOCK: if the path was swapped for a FIFO since stat, open does not wait for a writer.
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    return { ok: false, message: `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  try {
    const fst = fs.fstatSync(fd);
    if (!fst.isFile()) return { ok: false, message: 'not a regular file; only regular files are read' };
    const buf = Buffer.alloc(Math.min(maxBytes + 1, Math.max(fst.size + 1, 1)));
    let got = 0;
    for (;;) {
      if (got === buf.length) return { ok: false, message: `too large: more than ${maxBytes} bytes` };
      const r = fs.readSync(fd, buf, got, buf.length - got, null);
      if (r === 0) break;
      got += r;
      if (got > maxBytes) return { ok: false, message: `too large: more than ${maxBytes} bytes` };
    }
    return { ok: true, bytes: buf.subarray(0, got) };
  } catch (e) {
    return { ok: false, message: `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  } finally {
    fs.closeSync(fd);
  }
}

/** Decode bytes as UTF-8 (refusing invalid sequences) and parse them as strict JSON. */
export function parseJsonBytes(bytes: Uint8Array): Resolved<unknown> {
  const bad = invalidUtf8At(bytes);
  if (bad >= 0) return { ok: false, errors: [{ path: '$', message: `not valid UTF-8 (byte ${bad}: 0x${bytes[bad]!.toString(16).padStart(2, '0')})` }] };
  return parseJsonStrict(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

/** Read and parse one JSON input file. Never throws for bad input. */
export function loadJsonFile(file: string, maxBytes = MAX_INPUT_BYTES): Resolved<unknown> {
  const r = readInputFile(file, maxBytes);
  if (!r.ok) return { ok: false, errors: [{ path: '$', message: r.message }] };
  return parseJsonBytes(r.bytes);
}

/**
 * Write a file in one step: a temporary file beside it, then rename over the
 * target. A symlink is followed (the link stays, its target is replaced); a
 * target that is not a regular file (`--html /dev/stdout`, a FIFO) is
 * written in place, never renamed over: as root, a rename would replace
 * /dev/null itself.
 */
export function writeFileAtomic(file: string, text: string): void {
  let target = file;
  try {
    target = fs.realpathSync(file);
  } catch {
    // Does not exist yet (or a dangling link): create it.
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(target);
  } catch {
    st = undefined;
  }
  if (st !== undefined && !st.isFile()) {
    fs.writeFileSync(target, text);
    return;
  }
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, text, { flag: 'wx' });
    fs.renameSync(tmp, target);
  } catch (e) {
    try {
      fs.unlinkSync(tmp);
    } catch {
      // Nothing to clean up.
    }
    throw e;
  }
}

/** Errors as lines `  PATH: MESSAGE`, at most `max` of them, each cut to a readable length. */
export function errorLines(errors: readonly InputError[], max = 20): string[] {
  const lines = errors.slice(0, max).map((e) => `  ${clipText(e.path, 120)}: ${clipText(e.message, 240)}`);
  if (errors.length > max) lines.push(`  ... and ${errors.length - max} more`);
  return lines;
}
