/**
 * Where the commands write. Every command writes through `io.out` (stdout:
 * reports) and `io.err` (stderr: errors, warnings), so that the fuzz suite
 * can run `main()` in-process and read what a user would have seen, and so
 * that colour follows one rule: only on a terminal, and never when NO_COLOR
 * is set (https://no-color.org/).
 */
export interface Sink {
  out(text: string): void;
  err(text: string): void;
  /** Whether the report stream is a terminal (colour, progress lines). */
  readonly tty: boolean;
}

const processSink: Sink = {
  out: (s) => {
    process.stdout.write(s);
  },
  err: (s) => {
    process.stderr.write(s);
  },
  get tty() {
    return process.stdout.isTTY === true;
  },
};

let current: Sink = processSink;

export const io = {
  out: (s: string): void => current.out(s),
  err: (s: string): void => current.err(s),
  get tty(): boolean {
    return current.tty;
  },
};

/** Run `f` with the commands' output going to `sink` (tests, the fuzz suite). */
export async function withSink<T>(sink: Sink, f: () => Promise<T>): Promise<T> {
  const before = current;
  current = sink;
  try {
    return await f();
  } finally {
    current = before;
  }
}

/** Colour for a verdict word: on a terminal only, never with NO_COLOR set (to any non-empty value). */
export function useColour(): boolean {
  const no = process.env['NO_COLOR'];
  if (no !== undefined && no !== '') return false;
  return io.tty;
}

export function paint(text: string, colour: 'red' | 'green' | 'yellow'): string {
  if (!useColour()) return text;
  const code = colour === 'red' ? 31 : colour === 'green' ? 32 : 33;
  return `\x1b[${code}m${text}\x1b[0m`;
}

/** The verdict vocabulary shared by every command: pass, fail, incomplete. */
export type Verdict = 'pass' | 'fail' | 'incomplete';

export function verdictWord(v: Verdict): string {
  return v === 'pass' ? paint('pass', 'green') : v === 'fail' ? paint('FAIL', 'red') : paint('INCOMPLETE', 'yellow');
}
