import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import type { DendriteAlert } from '../alerts/dendrite-alert.ts';
import { decodeAlert } from '../codecs/avro-alert.ts';
import { describeError, SourceError, UsageError } from '../errors.ts';
import { createKafkaClient, isRetriableKafkaError, kafkaSecurityFromEnv } from '../kafka/kafka-client.ts';
import { isTopicName, parseBrokerList, parseKafkaUrl } from '../kafka/parse-kafka-url.ts';
import { createLogger } from '../log.ts';
import { formatAlert } from '../sinks/format-alert.ts';
import { DEFAULT_ALERT_TOPIC } from '../sinks/kafka-alert-sink.ts';
import type { CommandContext } from './command-context.ts';
import { intOption, parseOptions, stringOption } from './parse-options.ts';

export const ALERTS_HELP = `Usage:
  xct-sentinel alerts --brokers HOST:PORT[,HOST:PORT] [--topic T] [--from-beginning] [--scan ID]
                      [--json] [--max N] [--log-level LEVEL]

Follows dendrite alerts on a Kafka topic (default ${DEFAULT_ALERT_TOPIC}) as they are raised:
readable lines on a terminal, one JSON object per line otherwise (or with --json), the same JSON
as the daemon's JSON-lines sink.
  --brokers         HOST:PORT list, or a kafka://HOST:PORT[/TOPIC] URL
  --from-beginning  start with the oldest alert the topic still holds (default: new alerts only)
  --scan ID         only this scan's alerts
  --max N           exit 0 after N alerts (for scripts)
TLS and SASL come from XCT_KAFKA_TLS*, XCT_KAFKA_SASL_* (see \`xct-sentinel run --help\`).
`;

const SPEC = {
  brokers: { type: 'string' },
  topic: { type: 'string' },
  'from-beginning': { type: 'boolean' },
  scan: { type: 'string' },
  json: { type: 'boolean' },
  max: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `xct-sentinel alerts`: follow the alert topic. */
export async function alertsCommand(args: readonly string[], ctx: CommandContext): Promise<number> {
  const { values } = parseOptions('alerts', args, SPEC);
  if (values.help) {
    ctx.stdout.write(ALERTS_HELP);
    return 0;
  }
  const brokersText = stringOption(values, 'brokers');
  if (brokersText === undefined)
    throw new UsageError('alerts needs --brokers HOST:PORT', { option: '--brokers' });
  const endpoint = brokersText.startsWith('kafka://')
    ? parseKafkaUrl(brokersText, { option: '--brokers', defaultTopic: DEFAULT_ALERT_TOPIC })
    : { brokers: parseBrokerList(brokersText, '--brokers'), topic: DEFAULT_ALERT_TOPIC };
  const topic = stringOption(values, 'topic') ?? endpoint.topic;
  if (!isTopicName(topic))
    throw new UsageError(`--topic "${topic}" is not a Kafka topic name`, { option: '--topic' });
  const max = stringOption(values, 'max') === undefined ? undefined : intOption(values, 'max', 1, 1, 1e9);
  const scan = stringOption(values, 'scan');
  const tty = (ctx.stdout as Writable & { isTTY?: boolean }).isTTY === true;
  const format =
    values.json || !tty
      ? (a: DendriteAlert) => `${JSON.stringify(a)}\n`
      : (a: DendriteAlert) => formatAlert(a, true);
  const security = kafkaSecurityFromEnv(process.env, endpoint);
  // A follower is a tool for people and scripts: only its own trouble on stderr, unless asked.
  const log = createLogger({
    level: stringOption(values, 'log-level') ?? 'error',
    name: 'xct-sentinel-alerts',
  });
  const client = createKafkaClient({
    brokers: endpoint.brokers,
    log,
    security,
    clientId: 'xct-sentinel-alerts',
  });
  // A fresh group that never commits: every follower sees every alert, and leaves nothing behind.
  const consumer = client.consumer({
    groupId: `xct-sentinel-alerts-${randomBytes(6).toString('hex')}`,
    maxWaitTimeInMs: 500,
    allowAutoTopicCreation: false,
  });
  const where = { topic };
  try {
    await consumer.connect();
  } catch (cause) {
    throw new SourceError(
      `cannot connect to Kafka at ${endpoint.brokers.join(',')}`,
      { ...where, stage: 'source' },
      { cause, canRetry: isRetriableKafkaError(cause) },
    );
  }
  let shown = 0;
  let skipped = 0;
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: values['from-beginning'] === true });
    await new Promise<void>((resolve, reject) => {
      let finished = false;
      const finish = (err?: unknown) => {
        if (finished) return;
        finished = true;
        ctx.signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = () => finish();
      if (ctx.signal.aborted) return finish();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      // Said once the first fetch is back, i.e. once the start offsets are resolved: from here on no
      // new alert is missed (scripts wait for this line before they raise one).
      const stopSaying = consumer.on(consumer.events.FETCH, () => {
        stopSaying();
        ctx.stderr.write(`following ${topic} on ${endpoint.brokers.join(',')}\n`);
      });
      consumer.on(consumer.events.CRASH, ({ payload }) => {
        if (!payload.restart)
          finish(
            new SourceError(
              `following ${topic} failed`,
              { ...where, stage: 'source' },
              { cause: payload.error },
            ),
          );
      });
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            if (finished) return;
            const at = { topic, partition, offset: message.offset };
            if (!message.value) return;
            let alert: DendriteAlert;
            try {
              alert = decodeAlert(message.value, { where: at });
            } catch (err) {
              skipped++;
              ctx.stderr.write(
                `xct-sentinel alerts: skipped ${topic}[${partition}]@${message.offset}: ${describeError(err)}\n`,
              );
              return;
            }
            if (scan !== undefined && alert.scanId !== scan) return;
            await new Promise<void>((done, fail) =>
              ctx.stdout.write(format(alert), (err) => (err ? fail(err) : done())),
            );
            shown++;
            if (max !== undefined && shown >= max) finish();
          },
        })
        .catch((cause: unknown) =>
          finish(new SourceError(`cannot follow ${topic}`, { ...where, stage: 'source' }, { cause })),
        );
    });
  } finally {
    await consumer.disconnect();
  }
  if (skipped > 0) log.warn({ skipped }, `${skipped} message(s) on ${topic} were not alerts`);
  return 0;
}
