import { describeError, SourceError, type XctError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type EachMessagePayload, isRetriableKafkaError, type KafkaProducer } from './kafka-client.ts';

/**
 * Move a poison message to the dead-letter topic, as it came (key and value) with headers that say
 * why and where from. Acknowledged by every in-sync replica before it resolves; a dead-letter topic
 * that cannot be written is a SourceError (retriable when the broker's error is): then the message
 * can be neither kept nor skipped, its offset stays uncommitted and it is read again after a restart.
 */
export async function moveToDeadLetter(
  producer: KafkaProducer,
  payload: EachMessagePayload,
  error: XctError,
  o: { topic: string; deadLetterTopic: string; log: Logger },
): Promise<void> {
  const { partition, message } = payload;
  const { topic, deadLetterTopic } = o;
  try {
    await producer.send({
      topic: deadLetterTopic,
      acks: -1,
      messages: [
        {
          key: message.key,
          value: message.value,
          headers: {
            'xct-error-code': error.code,
            'xct-error': describeError(error),
            'xct-source-topic': topic,
            'xct-source-partition': String(partition),
            'xct-source-offset': message.offset,
            'xct-failed-at': new Date().toISOString(),
          },
        },
      ],
    });
  } catch (cause) {
    throw new SourceError(
      `cannot write poison message ${topic}[${partition}]@${message.offset} to ${deadLetterTopic}`,
      { topic: deadLetterTopic, partition, offset: message.offset, stage: 'source' },
      { cause, canRetry: isRetriableKafkaError(cause) },
    );
  }
  o.log.warn(
    { topic, partition, offset: message.offset, deadLetterTopic, code: error.code },
    `poison message ${topic}[${partition}]@${message.offset} moved to ${deadLetterTopic}: ${describeError(error)}`,
  );
}
