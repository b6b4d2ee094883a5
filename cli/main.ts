/**
 * `hvspec`: the command line. Bad usage prints one clear line and exits 2;
 * nothing throws a stack trace at a user for bad input.
 */
import { UsageError } from './args';
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
    'exit codes: 0 ok, 1 a counterexample / failing case / surviving mutant, 2 bad usage or invalid input',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    if (name === 'help' && rest[0] !== undefined && COMMANDS[rest[0]]) {
      process.stdout.write(COMMANDS[rest[0]]!.help + '\n');
      return 0;
    }
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`hvspec: unknown command ${JSON.stringify(name)} (commands: ${Object.keys(COMMANDS).join(', ')}; see hvspec --help)\n`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`hvspec ${name}: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}
