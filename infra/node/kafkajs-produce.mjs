// Produces records to Kafka with kafkajs (a Kafka client independent of librdkafka and of our code), as an outside
// client of the pipeline would.
//   node kafkajs-produce.mjs BOOTSTRAP INPUT.json OUTPUT.json
// INPUT: {"topic": "queries", "messages": [{"key": base64 | null, "value": base64}, ...]}
// OUTPUT: [{"partition": p, "offset": "o"}, ...] in input order (from the brokers' acknowledgements, acks=all).
// Messages with a key go where kafkajs's default (Java-compatible murmur2) partitioner puts them; without one, kafkajs
// spreads them. They are sent one at a time so each one's partition and offset are known.
import { readFileSync, writeFileSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';

const [bootstrap, inputPath, outputPath] = process.argv.slice(2);
if (!bootstrap || !inputPath || !outputPath) {
  console.error('usage: node kafkajs-produce.mjs BOOTSTRAP INPUT.json OUTPUT.json');
  process.exit(2);
}

const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const kafka = new Kafka({ clientId: 'kafkajs-outside-client', brokers: bootstrap.split(','), logLevel: logLevel.WARN, retry: { retries: 10 } });
const producer = kafka.producer({ allowAutoTopicCreation: false });
await producer.connect();
const acks = [];
try {
  for (const m of input.messages) {
    const [meta] = await producer.send({
      topic: input.topic,
      acks: -1,
      messages: [{ key: m.key === null ? null : Buffer.from(m.key, 'base64'), value: Buffer.from(m.value, 'base64') }],
    });
    acks.push({ partition: meta.partition, offset: meta.baseOffset });
  }
} finally {
  await producer.disconnect();
}

writeFileSync(outputPath, JSON.stringify(acks));
console.log(`kafkajs produced ${acks.length} messages to ${input.topic}`);
