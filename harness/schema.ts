/**
 * JSON Schemas for case files, generated from the same io-ts codecs that
 * decode them, one per domain: editors that read `$schema` validate and
 * complete ops and their arguments as a case is typed.
 */
import type { Domain, Json, OpShape, ResultShape } from './domain';
import { jsonSchemaOf, type JsonSchema } from './codec';
import { CASE_FORMAT } from './cases';

export function caseSchema<C, O extends OpShape, R extends ResultShape, V, S>(d: Domain<C, O, R, V, S>): JsonSchema {
  const steps: Json[] = Object.keys(d.opArgs).map((name) => ({
    type: 'object',
    title: name,
    properties: {
      op: { const: name },
      args: jsonSchemaOf(d.opArgs[name]!),
      expect: { type: 'object', description: 'partial result: every key given must deep-equal the result' },
    },
    required: ['op'],
    additionalProperties: false,
  }));
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `https://hvspec.invalid/schema/${d.id}.schema.json`,
    title: `hvspec case file: ${d.id}`,
    description: d.summary,
    type: 'object',
    properties: {
      $schema: { type: 'string' },
      format: { const: CASE_FORMAT },
      name: { type: 'string', description: 'the rule this case exercises' },
      domain: { const: d.id },
      source: { type: 'string', description: 'where the scenario comes from (seed, selftest, bug report)' },
      description: { type: 'string' },
      config: jsonSchemaOf(d.configCodec),
      steps: { type: 'array', items: { oneOf: steps } },
      found: { type: 'object', description: 'written by hvspec on saved counterexamples' },
    },
    required: ['format', 'name', 'domain', 'steps'],
    additionalProperties: false,
  };
}
