// A downstream subscriber in another ecosystem (tests/Integration.Tests/Kafka/NodeSubscriberTests.cs): kafkajs reads
// a topic of a running pipeline from the beginning to its end (the high watermarks when it starts), and apache-arrow
// decodes every event.
// Usage: node kafka-subscriber.mjs <bootstrap servers> <topic> <out.json> [<key prefix>]
//   writes <out.json>: [{topic, partition, offset, key, headers: {name: value}, rows: [{column: value}]}] for every
//   record whose key starts with the prefix (all records without one). Values: int64 as decimal strings, float32 as
//   the JS number (exact: every float32 is a double), lists as arrays. Exit 0 when done, 1 on any error (stderr says).
import { Kafka, logLevel } from 'kafkajs';
import { tableFromIPC } from 'apache-arrow';
import fs from 'node:fs';

const [bootstrap, topic, outFile, prefix = ''] = process.argv.slice(2);
if (!bootstrap || !topic || !outFile) {
  console.error('usage: node kafka-subscriber.mjs <bootstrap servers> <topic> <out.json> [<key prefix>]');
  process.exit(2);
}

const plain = (v) =>
  typeof v === 'bigint' ? v.toString()
  : v === null || v === undefined ? null
  : typeof v === 'object' && typeof v.toArray === 'function' ? Array.from(v.toArray(), plain)
  : ArrayBuffer.isView(v) ? Array.from(v, plain)
  : v;

function decode(value) {
  const table = tableFromIPC(value);
  const names = table.schema.fields.map((f) => f.name);
  const rows = [];
  for (let i = 0; i < table.numRows; i++) {
    const row = {};
    for (const name of names) row[name] = plain(table.getChild(name).get(i));
    rows.push(row);
  }
  return { schema: table.schema.fields.map((f) => `${f.name}: ${f.type}`), metadata: Object.fromEntries(table.schema.metadata), rows };
}

const kafka = new Kafka({ clientId: 'node-subscriber', brokers: bootstrap.split(','), logLevel: logLevel.WARN, retry: { retries: 8 } });
const admin = kafka.admin();
await admin.connect();
// Read up to the end as of now: the high watermark of every partition.
const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
await admin.disconnect();

const records = [];
const pending = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
const report = () => console.log(`read ${records.length} records of ${topic} matching '${prefix}' up to offsets ${JSON.stringify(Object.fromEntries([...ends].map(([p, h]) => [p, h.toString()])))}`);
if (pending.size === 0) {
  fs.writeFileSync(outFile, '[]');
  report();
  process.exit(0);
}
const consumer = kafka.consumer({ groupId: `node-subscriber-${process.pid}-${Date.now()}`, maxWaitTimeInMs: 100 });
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
const done = new Promise((resolve, reject) => {
  consumer.run({
    eachMessage: async ({ partition, message }) => {
      try {
        const key = message.key ? message.key.toString('utf8') : '';
        if (key.startsWith(prefix)) {
          const headers = Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, v?.toString('utf8') ?? null]));
          records.push({ topic, partition, offset: message.offset, key, headers, ...decode(message.value) });
        }
        if (BigInt(message.offset) + 1n >= ends.get(partition)) {
          pending.delete(partition);
          if (pending.size === 0) resolve();
        }
      } catch (e) {
        reject(e);
      }
    },
  }).catch(reject);
});
const timeout = setTimeout(() => { console.error(`timed out: partitions ${[...pending]} not read to their end`); process.exit(1); }, 60_000);
try {
  await done;
} catch (e) {
  console.error(`decoding failed: ${e.stack ?? e}`);
  process.exit(1);
}
clearTimeout(timeout);
await consumer.disconnect();
fs.writeFileSync(outFile, JSON.stringify(records));
report();
process.exit(0);
