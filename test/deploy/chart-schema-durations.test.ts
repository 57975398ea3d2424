// The chart's schema and the gateway agree on durations: a value the schema accepts but the gateway
// refuses installs fine and then crash-loops every pod (exit 2); one the schema refuses but the gateway
// takes turns a working value away. Each duration setting the chart passes to the gateway is checked over
// a table of what users write, with the schema (ajv) on one side and the gateway's own parser on the other.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Ajv from 'ajv';
import { load } from 'js-yaml';
import { optionDefinitions } from '../../src/config.ts';
import { formatGoDuration } from '../../src/duration.ts';
import { CHART_DIR } from './tools.ts';

const written = [
  '0',
  '0s',
  '0m0s',
  '0.0s',
  '-0s',
  '2m0s',
  '90s',
  '30s',
  '1h2m3.5s',
  '500ms',
  '1s500ms',
  '1.5h',
  '.5s',
  '5.s',
  '1us',
  '1\u00b5s',
  '1\u03bcs',
  '10ns',
  '+5s',
  '720h',
  '1000h',
  '-1s',
  '1d',
  '5',
  '',
  ' ',
  '1 s',
  '1S',
  '1h-1m',
  's',
  '.s',
  '1e3s',
  '5sec',
  'PT5S',
];

// The chart computes terminationGracePeriodSeconds from these two (templates/_helpers.tpl), so it takes
// only integer h, m, s and ms parts: narrower than the gateway on purpose, and exactly these values here.
const narrowerOnPurpose: Record<string, readonly string[]> = {
  'gateway.shutdownDelay': [
    '0',
    '0.0s',
    '-0s',
    '1h2m3.5s',
    '1.5h',
    '.5s',
    '5.s',
    '1us',
    '1\u00b5s',
    '1\u03bcs',
    '10ns',
    '+5s',
  ],
  'gateway.shutdownGracePeriod': [
    '0',
    '0.0s',
    '-0s',
    '1h2m3.5s',
    '1.5h',
    '.5s',
    '5.s',
    '1us',
    '1\u00b5s',
    '1\u03bcs',
    '10ns',
    '+5s',
  ],
};

const schema = JSON.parse(readFileSync(path.join(CHART_DIR, 'values.schema.json'), 'utf8')) as SchemaNode;
const values = load(readFileSync(path.join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
const template = readFileSync(path.join(CHART_DIR, 'templates/deployment.yaml'), 'utf8');

interface SchemaNode {
  properties?: Record<string, SchemaNode>;
  [keyword: string]: unknown;
}

/** Which value feeds which environment variable, read from the Deployment template itself. */
const valuePathByEnv = new Map(
  [...template.matchAll(/- name: ([A-Z_]+)\n\s+value: \{\{ \.Values\.([\w.]+) \| quote \}\}/g)].map((m) => [
    m[1] ?? '',
    m[2] ?? '',
  ]),
);

function schemaAt(valuePath: string): SchemaNode {
  let node: SchemaNode | undefined = schema;
  for (const key of valuePath.split('.')) node = node?.properties?.[key];
  assert.ok(node, `values.schema.json has no entry for ${valuePath}`);
  return node;
}

function valueAt(valuePath: string): unknown {
  return valuePath
    .split('.')
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], values);
}

const ajv = new Ajv();
const durationSettings = optionDefinitions
  .filter((d) => (d.format as unknown) === formatGoDuration)
  .map((d) => ({ definition: d, valuePath: valuePathByEnv.get(d.env) }))
  .filter((s): s is { definition: (typeof optionDefinitions)[number]; valuePath: string } => s.valuePath !== undefined);

describe('chart schema vs the gateway, for durations', () => {
  it('finds the duration settings the chart passes to the gateway (a new one is checked below without a change here)', () => {
    const found = new Set(durationSettings.map((s) => s.definition.env));
    assert.deepEqual(
      [
        'FIRST_BYTE_TIMEOUT',
        'LEADER_ELECTION_LEASE_DURATION',
        'LEADER_ELECTION_RENEW_DEADLINE',
        'LEADER_ELECTION_RETRY_PERIOD',
        'MAX_REPORT_STALENESS',
        'READY_WAIT_TIMEOUT',
        'SCALE_DOWN_IDLE_TIMEOUT',
        'SHUTDOWN_DELAY',
        'SHUTDOWN_GRACE_PERIOD',
      ].filter((env) => !found.has(env)),
      [],
    );
  });

  for (const { definition, valuePath } of durationSettings) {
    it(`${valuePath} (${definition.env}): the schema accepts exactly what the gateway accepts`, () => {
      const validate = ajv.compile(schemaAt(valuePath));
      const gatewayAccepts = (raw: string) => {
        try {
          definition.parse(raw);
          return true;
        } catch {
          return false;
        }
      };
      const defaultValue = valueAt(valuePath);
      assert.equal(typeof defaultValue, 'string', `values.yaml sets ${valuePath}`);
      const disagreements: string[] = [];
      const narrower: string[] = [];
      for (const raw of [String(defaultValue), ...written]) {
        const bySchema = validate(raw) === true;
        const byGateway = gatewayAccepts(raw);
        if (bySchema === byGateway) continue;
        if (!bySchema && byGateway) narrower.push(raw);
        else disagreements.push(`${JSON.stringify(raw)}: schema accepts, gateway refuses`);
      }
      assert.deepEqual(disagreements, [], `values.schema.json lets through what the gateway refuses at start`);
      assert.deepEqual(
        narrower,
        narrowerOnPurpose[valuePath] ?? [],
        `values.schema.json refuses what the gateway accepts`,
      );
    });
  }
});
