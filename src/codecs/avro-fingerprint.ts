/**
 * CRC-64-AVRO, the Rabin fingerprint the Avro specification uses to name a schema in single-object
 * encoding, computed over the schema's Parsing Canonical Form. avsc (5.7) has no such fingerprint:
 * its `fingerprint()` hashes with Node's crypto (md5, sha256), so the table below follows the
 * spec's reference algorithm ("Schema Fingerprints", the `fingerprint64` listing).
 */
import type avro from 'avsc';

const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;

// Built on first use, not at import: 256 BigInt steps are cheap, but nothing runs until asked.
let table: BigUint64Array | undefined;

function fingerprintTable(): BigUint64Array {
  if (table) return table;
  table = new BigUint64Array(256);
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & (-(fp & 1n) & MASK));
    table[i] = fp;
  }
  return table;
}

/** CRC-64-AVRO of some bytes, as an unsigned 64-bit integer. */
export function crc64Avro(bytes: Uint8Array): bigint {
  const t = fingerprintTable();
  let fp = EMPTY;
  for (const byte of bytes) fp = (fp >> 8n) ^ t[Number((fp ^ BigInt(byte)) & 0xffn)]!;
  return fp;
}

/**
 * The schema's Parsing Canonical Form. avsc's `schema()` (without `exportAttrs`) already writes it:
 * full names, only type/name/fields/symbols/items/values/size in that order, logical types, docs,
 * defaults and aliases stripped, no whitespace. The tests check this against the spec's examples.
 */
export function parsingCanonicalForm(type: avro.Type): string {
  return JSON.stringify(type.schema());
}

/** The 8-byte little-endian CRC-64-AVRO fingerprint of the schema's canonical form. */
export function avroFingerprint(type: avro.Type): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(crc64Avro(Buffer.from(parsingCanonicalForm(type), 'utf8')));
  return out;
}
