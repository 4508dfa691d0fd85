import t from 'tap';
import { isXctError } from '../../src/errors.ts';
import { kafkaSecurityFromEnv } from '../../src/kafka/kafka-client.ts';
import { parseBrokerList, parseKafkaUrl } from '../../src/kafka/parse-kafka-url.ts';

const FLAG = { option: '--alerts', defaultTopic: 'xct.dendrite-alerts' };

t.test('kafka:// URLs: brokers, topic, tls and sasl', async (t) => {
  t.same(parseKafkaUrl('kafka://b1:9092', FLAG), { brokers: ['b1:9092'], topic: 'xct.dendrite-alerts' });
  t.same(parseKafkaUrl('kafka://b1:9092,b2:9093/plant.alerts', FLAG), {
    brokers: ['b1:9092', 'b2:9093'],
    topic: 'plant.alerts',
  });
  t.same(parseKafkaUrl('kafka://[::1]:9092/', FLAG), {
    brokers: ['[::1]:9092'],
    topic: 'xct.dendrite-alerts',
  });
  t.same(parseKafkaUrl('kafka://b:1/t?tls=true&sasl=scram-sha-512', FLAG), {
    brokers: ['b:1'],
    topic: 't',
    tls: true,
    sasl: 'scram-sha-512',
  });
  t.same(parseBrokerList('a:1, b:2', '--kafka'), ['a:1', 'b:2']);
});

t.test('bad URLs fail with the option, the problem and the fix', async (t) => {
  const cases: [string, RegExp][] = [
    ['http://b:9092', /expected kafka:\/\/HOST:PORT/],
    ['kafka://', /expected HOST:PORT/],
    ['kafka://b', /"b" is not HOST:PORT \(the port is required/],
    ['kafka://b:0', /port 0 is not from 1 to 65535/],
    ['kafka://b:1,,c:2', /expected HOST:PORT/],
    ['kafka://user:secret@b:1', /XCT_KAFKA_SASL_USERNAME/],
    ['kafka://b:1/a/b', /"a\/b" is not a Kafka topic name/],
    ['kafka://b:1/..', /is not a Kafka topic name/],
    ['kafka://b:1/t?acks=all', /unknown parameter "acks"/],
    ['kafka://b:1/t?tls=yes', /tls=yes: expected tls=true or tls=false/],
    ['kafka://b:1/t?sasl=gssapi', /sasl=gssapi: expected one of plain, scram-sha-256, scram-sha-512/],
  ];
  for (const [url, message] of cases) {
    const err = (() => {
      try {
        parseKafkaUrl(url, FLAG);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(isXctError(err, 'ERR_USAGE'), `${url}: a usage error`);
    t.match((err as Error)?.message, message, url);
    t.match((err as Error)?.message, /^--alerts /, 'names the option');
  }
  t.throws(() => parseKafkaUrl('kafka://b', { option: 'alerts.kafka', defaultTopic: 'x' }), {
    code: 'ERR_CONFIG',
  });
});

t.test('TLS and SASL from the environment, loud when they do not add up', async (t) => {
  const dir = t.testdir({ 'ca.pem': 'CA', 'key.pem': 'KEY' });
  t.same(kafkaSecurityFromEnv({}), {}, 'plaintext by default');
  t.same(kafkaSecurityFromEnv({ XCT_KAFKA_TLS: 'true' }), { ssl: true });
  t.same(kafkaSecurityFromEnv({}, { tls: true }), { ssl: true }, 'or from the URL');
  const withCa = kafkaSecurityFromEnv({ XCT_KAFKA_TLS_CA_FILE: `${dir}/ca.pem` });
  t.same(withCa.ssl, { ca: Buffer.from('CA') }, 'a CA file implies TLS');
  t.same(
    kafkaSecurityFromEnv(
      { XCT_KAFKA_SASL_USERNAME: 'u', XCT_KAFKA_SASL_PASSWORD: 'p' },
      { sasl: 'scram-sha-256' },
    ),
    { sasl: { mechanism: 'scram-sha-256', username: 'u', password: 'p' } },
  );
  t.same(kafkaSecurityFromEnv({ XCT_KAFKA_SASL_USERNAME: 'u', XCT_KAFKA_SASL_PASSWORD: '' }).sasl, {
    mechanism: 'plain',
    username: 'u',
    password: '',
  });
  const bad: [NodeJS.ProcessEnv, { tls?: boolean; sasl?: 'plain' }, RegExp, string][] = [
    [
      { XCT_KAFKA_SASL_USERNAME: 'u' },
      {},
      /both XCT_KAFKA_SASL_USERNAME and XCT_KAFKA_SASL_PASSWORD/,
      'XCT_KAFKA_SASL_PASSWORD',
    ],
    [
      { XCT_KAFKA_SASL_MECHANISM: 'kerberos' },
      {},
      /XCT_KAFKA_SASL_MECHANISM=kerberos/,
      'XCT_KAFKA_SASL_MECHANISM',
    ],
    [
      { XCT_KAFKA_SASL_MECHANISM: 'scram-sha-512' },
      { sasl: 'plain' },
      /drop one/,
      'XCT_KAFKA_SASL_MECHANISM',
    ],
    [{}, { sasl: 'plain' }, /SASL plain needs XCT_KAFKA_SASL_USERNAME/, 'XCT_KAFKA_SASL_USERNAME'],
    [{ XCT_KAFKA_TLS: 'maybe' }, {}, /XCT_KAFKA_TLS=maybe/, 'XCT_KAFKA_TLS'],
    [
      { XCT_KAFKA_TLS_CA_FILE: `${dir}/missing.pem` },
      {},
      /missing\.pem: cannot read/,
      'XCT_KAFKA_TLS_CA_FILE',
    ],
    [
      { XCT_KAFKA_TLS_KEY_FILE: `${dir}/key.pem` },
      { tls: false },
      /tls=false but XCT_KAFKA_TLS_/,
      'XCT_KAFKA_TLS_CA_FILE',
    ],
  ];
  for (const [env, url, message, option] of bad) {
    t.throws(() => kafkaSecurityFromEnv(env, url), { code: 'ERR_CONFIG', message, context: { option } });
  }
});
