/**
 * The little of a Confluent Schema Registry the alert sink needs: register the schema a topic's
 * values are written with (subject `<topic>-value`) and learn its id. Registering an identical
 * schema again returns the same id, so a restart is harmless.
 */
import { OutputError } from '../errors.ts';

/** Register `schema` (Avro JSON) under `subject`; resolves to the registry's schema id. */
export async function registerSchema(registryUrl: string, subject: string, schema: unknown): Promise<number> {
  const url = `${registryUrl.replace(/\/+$/, '')}/subjects/${encodeURIComponent(subject)}/versions`;
  const fail = (why: string, cause?: unknown): never => {
    throw new OutputError(
      `schema registry ${registryUrl}: cannot register subject ${subject}: ${why}`,
      { stage: 'sink', option: 'schemaRegistry' },
      cause === undefined ? {} : { cause, canRetry: true },
    );
  };
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
      body: JSON.stringify({ schema: JSON.stringify(schema) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (cause) {
    return fail(`unreachable (${(cause as Error).message})`, cause);
  }
  const text = await res.text();
  if (!res.ok) return fail(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  let body: { id?: unknown };
  try {
    body = JSON.parse(text) as { id?: unknown };
  } catch {
    return fail(`answer is not JSON: ${text.slice(0, 200)}`);
  }
  if (!Number.isSafeInteger(body.id) || (body.id as number) < 0)
    return fail(`answer has no schema id: ${text.slice(0, 200)}`);
  return body.id as number;
}
