/**
 * `hvspec`: the command line. Bad usage prints one clear line and exits 2;
 * nothing throws a stack trace at a user for bad input.
 */
import { io } from './io';
import * as fs from 'fs';
import * as path from 'path';
import { UsageError } from './args';
import { clip, clipText } from '../harness/input';
import { auditCommand, AUDIT_HELP } from './audit';
import { checkCommand, CHECK_HELP } from './check';
import { mutantsCommand, MUTANTS_HELP } from './mutants';
import { replayCommand, REPLAY_HELP } from './replay';
import { exploreCommand, EXPLORE_HELP } from './explore';
import { mergeCommand, MERGE_HELP } from './merge';
import { schemaCommand, SCHEMA_HELP } from './schema';
import { promoteCommand, PROMOTE_HELP } from './promote';
import { reportCommand, REPORT_HELP } from './report';
import { validateCommand, VALIDATE_HELP } from './validate';
import { conformCommand, CONFORM_HELP } from './conform';
import { DOMAINS } from '../domains';

type Command = { run: (argv: string[]) => Promise<number>; help: string; summary: string };

const COMMANDS: { [name: string]: Command } = {
  check: { run: checkCommand, help: CHECK_HELP, summary: 'replay saved failures, then run the lockstep property of each domain' },
  replay: { run: replayCommand, help: REPLAY_HELP, summary: 'replay case files (against the impl or a mutant)' },
  audit: { run: auditCommand, help: AUDIT_HELP, summary: 'every invariant: source, killing mutants, exercising cases, coverage' },
  mutants: { run: mutantsCommand, help: MUTANTS_HELP, summary: 'run the property against every known-bug mutant' },
  report: { run: reportCommand, help: REPORT_HELP, summary: 'write a self-contained HTML report (invariants, kill matrix, charts, traces)' },
  promote: { run: promoteCommand, help: PROMOTE_HELP, summary: 'turn a saved counterexample into a named regression case' },
  schema: { run: schemaCommand, help: SCHEMA_HELP, summary: 'write a JSON Schema of case files per domain (editor support)' },
  merge: { run: mergeCommand, help: MERGE_HELP, summary: 'combine the JSON reports of check shards' },
  conform: { run: conformCommand, help: CONFORM_HELP, summary: 'ask the running kernel (/dev/kvm) the same questions as the model' },
  explore: { run: exploreCommand, help: EXPLORE_HELP, summary: 'breadth-first exploration of every op sequence of a small config' },
  validate: { run: validateCommand, help: VALIDATE_HELP, summary: 'check recorded traces (hvspec-trace/1) against the spec, hidden choices searched' },
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: hvspec <command> [options]      (hvspec <command> --help for its options)',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    `domains: ${DOMAINS.map((d) => d.id).join(', ')}`,
    'exit codes: 0 pass, 1 fail (a counterexample, failing case, surviving mutant; an incomplete merge), 2 bad usage or invalid input, 130 interrupted',
    '--version prints the version; NO_COLOR=1 turns colour off',
  ].join('\n');
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** The package version (`hvspec --version`). */
export function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Run one command. Exit codes: 0 pass, 1 fail (a counterexample, failing
 * case, surviving mutant, or an incomplete result that must not pass),
 * 2 bad usage or invalid input (one short line on stderr), 130 interrupted
 * (Ctrl-C), 70 an internal error (a bug in hvspec: please report it).
 * Nothing escapes as an exception.
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V' || name === 'version') {
    io.out(`hvspec ${version()}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0] !== undefined) {
      if (!hasOwn(COMMANDS, rest[0])) {
        io.err(`hvspec: unknown command ${clip(rest[0])} (commands: ${Object.keys(COMMANDS).join(', ')})\n`);
        return 2;
      }
      io.out(COMMANDS[rest[0]]!.help + '\n');
      return 0;
    }
    io.out(usage() + '\n');
    if (name === undefined) io.err('hvspec: no command given (see the list above, or hvspec --help)\n');
    return name === undefined ? 2 : 0;
  }
  if (!hasOwn(COMMANDS, name)) {
    io.err(`hvspec: unknown command ${clip(name)} (commands: ${Object.keys(COMMANDS).join(', ')}; see hvspec --help)\n`);
    return 2;
  }
  const cmd = COMMANDS[name]!;
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`hvspec ${name}: ${clipText(e.message.split('\n')[0]!, 400)}\n`);
      return 2;
    }
    const err = e as NodeJS.ErrnoException;
    if (err && typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code) && err.syscall !== undefined) {
      // A file system error outside any input check (a read-only folder, a full disk): one line.
      io.err(`hvspec ${name}: ${err.code}${err.path ? ` on ${clipText(err.path)}` : ''} (${err.syscall})\n`);
      return 2;
    }
    io.err(`hvspec ${name}: internal error: ${clipText(e instanceof Error ? e.message : String(e), 300)} (a bug in hvspec; HVSPEC_DEBUG=1 prints the stack)\n`);
    if (process.env['HVSPEC_DEBUG']) io.err(`${e instanceof Error ? e.stack : String(e)}\n`);
    return 70;
  }
}

/**
 * Process-level behaviour of the `hvspec` binary (not of `main`, which the
 * tests and the fuzz suite call in-process): a reader that closes stdout
 * early (`hvspec check | head`) ends the command quietly with 141, the
 * status of a process ended by SIGPIPE, as `cat` or `yes` would give.
 */
export function installProcessHandlers(): void {
  const onPipeError = (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') process.exit(141);
    process.stderr.write(`hvspec: cannot write: ${e.code ?? e.message}\n`);
    process.exit(2);
  };
  process.stdout.on('error', onPipeError);
  process.stderr.on('error', () => process.exit(141));
}
