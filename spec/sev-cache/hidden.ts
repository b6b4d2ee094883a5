/**
 * What a recorded sev-cache log may leave out (trace validation).
 *
 * Cache-line evictions: hardware writes a dirty line back, or drops a clean
 * one, whenever it needs the way; no log records it. Between two observed
 * steps any cached line may have been evicted: each line a guest key holds
 * (the View's `guestLines`), and each line the host (key 0) may hold — the
 * View does not list host lines, so every (cpu, page, line) is tried with key
 * 0; evicting a line that is not cached changes nothing and is deduplicated
 * away. The cost per gap is therefore about cpus × pages × linesPerPage model
 * copies; `hvspec validate --max-hidden 0` turns the search off.
 */
import type { HiddenChoices } from '../../harness/domain';
import type { Config, SevOp, SevView } from './types';

export const sevCacheHidden: HiddenChoices<Config, SevOp, SevView> = {
  hiddenOps: (c, view) => {
    const ops: SevOp[] = view.guestLines.map((l): SevOp => ({ op: 'evict', args: { cpu: l.cpu, page: l.page, line: l.line, key: l.key } }));
    for (let cpu = 0; cpu < c.cpus; cpu++) {
      for (let page = 0; page < c.pages; page++) {
        for (let line = 0; line < c.linesPerPage; line++) ops.push({ op: 'evict', args: { cpu, page, line, key: 0 } });
      }
    }
    return ops;
  },
};
