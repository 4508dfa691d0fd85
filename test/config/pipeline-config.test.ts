import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import {
  loadPipelineConfig,
  parsePipelineConfig,
  validatePipelineConfig,
} from '../../src/config/pipeline-config.ts';

t.test('every shipped pipeline file validates', async (t) => {
  const dir = new URL('../../pipelines/', import.meta.url).pathname;
  const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 4, 'folder → JSONL, folder → Kafka, Kafka → Kafka, replay');
  for (const f of files) {
    const c = await loadPipelineConfig(join(dir, f));
    t.ok((c.source.folder?.path ?? c.source.kafka?.brokers[0]) && c.output.zarr, `${f} parses`);
  }
});

t.test("the compose file's pipeline validates", async (t) => {
  const c = await loadPipelineConfig(new URL('../../deploy/compose-pipeline.yaml', import.meta.url).pathname);
  t.match(c, { source: { folder: { path: '/data/scanner' } }, metrics: { port: 9464 } });
});

t.test('defaults fill in', async (t) => {
  const c = validatePipelineConfig({ source: { folder: { path: '/in' } }, output: { zarr: '/out' } });
  t.match(c, {
    model: { name: 'tnet', provider: 'cpu', threads: 0, sessions: 0 },
    inference: { maxBatch: 16, overlap: 32, neighbourWaitMs: 60_000 },
    alerts: { sinks: [{ type: 'stdout' }] },
  });
});

t.test('errors name the key path, what was wrong and what is allowed', async (t) => {
  const base = { source: { folder: { path: '/in' } }, output: { zarr: '/out' } };
  const cases: [unknown, RegExp][] = [
    [
      { ...base, model: { provider: 'tpu' } },
      /model\.provider: "tpu" is not one of cpu, cuda, tensorrt, webgpu/,
    ],
    [
      { ...base, inference: { maxBatch: 0 } },
      /inference\.maxBatch: 0 is not allowed; use an integer from 1 to 1024/,
    ],
    [{ ...base, inference: { overlap: 'lots' } }, /inference\.overlap: "lots" is not allowed/],
    [
      { ...base, model: { sessions: 1.5 } },
      /model\.sessions: 1\.5 is not allowed; use an integer from 0 to 64/,
    ],
    [
      { ...base, inference: { neighbourWaitMs: -1 } },
      /inference\.neighbourWaitMs: -1 is not allowed; use an integer from 0 to 3600000/,
    ],
    [
      { ...base, alerts: { sinks: [{ jsonl: 'a.jsonl' }, { smoke: 1 }] } },
      /alerts\.sinks\[1\]\.smoke: unknown sink/,
    ],
    [{ ...base, alerts: { rules: { minVoxels: -3 } } }, /alerts\.rules\.minVoxels: -3 is not allowed/],
    [
      { ...base, alerts: { rules: { minVolts: 3 } } },
      /alerts\.rules\.minVolts: unknown key; allowed here: minVoxels/,
    ],
    [{ ...base, sourc: {} }, /sourc: unknown key/],
    [{ output: { zarr: '/o' } }, /source: needs exactly one of `folder:`/],
    [
      { source: { kafka: { brokers: ['localhost'] } }, output: { zarr: '/o' } },
      /source\.kafka\.brokers\[0\]: "localhost" has no port; use HOST:PORT, e.g\. localhost:9092/,
    ],
    [
      { ...base, alerts: { sinks: [{ kafka: { brokers: ['k1:9092', 'k2:99999'] } }] } },
      /alerts\.sinks\[0\]\.kafka\.brokers\[1\]: "k2:99999": port 99999 is not from 1 to 65535/,
    ],
    [
      { ...base, alerts: { sinks: [{ kafka: { brokers: ['k:9092'], topic: 'a b' } }] } },
      /alerts\.sinks\[0\]\.kafka\.topic: "a b" is not a Kafka topic name/,
    ],
    [
      { source: { kafka: { brokers: ['k:9092'], sasl: 'kerberos' } }, output: { zarr: '/o' } },
      /source\.kafka\.sasl: "kerberos" is not one of plain, scram-sha-256, scram-sha-512/,
    ],
    [
      { source: { kafka: { brokers: 'k:9092' } }, output: { zarr: '/o' } },
      /source\.kafka\.brokers: must be a list of HOST:PORT/,
    ],
    [
      { source: { folder: { path: '/in' }, kafka: { brokers: ['k:9092'] } }, output: { zarr: '/o' } },
      /source: needs exactly one of/,
    ],
    [
      { source: { kafka: { brokers: ['k:9092'], fileRoots: '/data' } }, output: { zarr: '/o' } },
      /source\.kafka\.fileRoots: must be a list of folders, got "\/data"/,
    ],
    [
      { source: { kafka: { brokers: ['k:9092'], fileRoots: ['/data', ''] } }, output: { zarr: '/o' } },
      /source\.kafka\.fileRoots\[1\]: must be a folder path, got ""/,
    ],
    [
      { source: { kafka: { brokers: ['k:9092'], sessionTimeoutSeconds: 2 } }, output: { zarr: '/o' } },
      /source\.kafka\.sessionTimeoutSeconds: 2 is not allowed; use a number from 6 to 1800/,
    ],
    [{ ...base, metrics: { port: 70000 } }, /metrics\.port: 70000 is not allowed/],
    [
      { ...base, alerts: { sinks: [{ kafka: { brokers: ['k:9092'], schemaRegistry: 'registry:8081' } }] } },
      /alerts\.sinks\[0\]\.kafka\.schemaRegistry: "registry:8081" is not an http\(s\):\/\/ URL/,
    ],
    [{ source: { folder: {} }, output: { zarr: '/o' } }, /source\.folder\.path: must be a non-empty string/],
    [[1, 2], /must be a mapping/],
  ];
  for (const [doc, message] of cases)
    t.throws(() => validatePipelineConfig(doc, 'p.yaml'), { code: 'ERR_CONFIG', message }, String(message));
});

t.test('Kafka source and sink: defaults for topics and group', async (t) => {
  const c = validatePipelineConfig({
    source: { kafka: { brokers: ['k1:9092', '[::1]:9093'] } },
    output: { zarr: '/o' },
    alerts: { sinks: [{ kafka: { brokers: ['k1:9092'], tls: true, sasl: 'scram-sha-512' } }] },
  });
  t.same(c.source, {
    kafka: {
      brokers: ['k1:9092', '[::1]:9093'],
      topic: 'xct.slices',
      group: 'xct-sentinel',
      fileRoots: [],
      sessionTimeoutSeconds: 30,
    },
  });
  t.same(c.alerts.sinks, [
    {
      type: 'kafka',
      brokers: ['k1:9092'],
      topic: 'xct.dendrite-alerts',
      tls: true,
      sasl: 'scram-sha-512',
      scanEventsTopic: 'xct.scan-events',
    },
  ]);
});

t.test('found by the fuzzer: YAML warnings are refused with the line, not printed', async (t) => {
  const printed: string[] = [];
  const onWarning = (w: Error) => void printed.push(w.message);
  process.on('warning', onWarning);
  t.teardown(() => void process.off('warning', onWarning));
  // An alias followed by ':' in a flow sequence: the YAML library only warns, on stderr.
  t.throws(() => parsePipelineConfig('a: &a [x]\nsource: { folder: { path: [*a: 1] } }\n', 'amb.yaml'), {
    code: 'ERR_CONFIG',
    message: /amb\.yaml: not valid YAML: .*at line 2, column/,
  });
  // An alias bomb: refused, never expanded.
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]']
    .concat(
      ['b', 'c', 'd', 'e', 'f', 'g'].map(
        (k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`,
      ),
    )
    .join('\n');
  t.throws(() => parsePipelineConfig(bomb, 'bomb.yaml'), {
    code: 'ERR_CONFIG',
    message: /bomb\.yaml: not valid YAML: .*alias/i,
  });
  await new Promise((r) => setImmediate(r));
  t.same(printed, [], 'no warning reached the process');
});

t.test('a file that is not YAML or not there is named', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'source: [unclosed' });
  await t.rejects(loadPipelineConfig(join(dir, 'bad.yaml')), {
    code: 'ERR_CONFIG',
    message: /bad\.yaml: not valid YAML/,
  });
  await t.rejects(loadPipelineConfig(join(dir, 'none.yaml')), {
    code: 'ERR_CONFIG',
    message: /none\.yaml: cannot read/,
  });
});
