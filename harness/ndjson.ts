/**
 * Reading NDJSON files line by line in bounded memory: regular files only,
 * each line at most `maxLineBytes`, valid UTF-8. Lines are read in chunks
 * (synchronously, so a caller decides when to yield to the event loop).
 */
import * as fs from 'fs';

export class NdjsonError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(message);
  }
}

const CHUNK = 1 << 20;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Open `file` for streaming; refuses anything but a regular file. Throws NdjsonError(0, why). */
export function openRegularFile(file: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NdjsonError(0, code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? 'error'})`);
  }
  if (st.isDirectory()) throw new NdjsonError(0, 'is a directory, not a trace file');
  if (!st.isFile()) throw new NdjsonError(0, 'not a regular file (devices, FIFOs and sockets are refused)');
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    throw new NdjsonError(0, `cannot open (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * The non-empty lines of a file with their 1-based numbers. Throws
 * NdjsonError for an over-long line or invalid UTF-8.
 */
export function* ndjsonLines(file: string, maxLineBytes: number): Generator<{ line: number; text: string }> {
  const fd = openRegularFile(file);
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    let carry: Buffer = Buffer.alloc(0);
    let lineNo = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, CHUNK, null);
      const data = carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, n)]) : buf.subarray(0, n);
      let start = 0;
      for (;;) {
        const nl = data.indexOf(10, start);
        if (nl < 0) break;
        lineNo++;
        const text = lineText(data, start, nl, lineNo, maxLineBytes);
        if (text.trim() !== '') yield { line: lineNo, text };
        start = nl + 1;
      }
      carry = Buffer.from(data.subarray(start));
      if (carry.length > maxLineBytes) throw new NdjsonError(lineNo + 1, `line longer than ${maxLineBytes} bytes`);
      if (n === 0) {
        if (carry.length > 0) {
          lineNo++;
          const text = lineText(carry, 0, carry.length, lineNo, maxLineBytes);
          if (text.trim() !== '') yield { line: lineNo, text };
        }
        return;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

function lineText(data: Buffer, start: number, end: number, line: number, max: number): string {
  if (end - start > max) throw new NdjsonError(line, `line longer than ${max} bytes`);
  const text = data.toString('utf8', start, end);
  // toString replaces bad bytes with U+FFFD; only then pay for a strict decode to tell the two apart.
  if (text.includes('\uFFFD')) {
    try {
      strictUtf8.decode(data.subarray(start, end));
    } catch {
      throw new NdjsonError(line, 'not valid UTF-8');
    }
  }
  return text;
}
