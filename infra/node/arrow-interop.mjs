// Independent-implementation check of our Arrow event contracts (tests/Contracts.Tests/NodeInteropTests.cs).
// Usage: node arrow-interop.mjs <workdir>
//   <workdir>/cs/*.arrow   event streams written by our C# codec: each is read with apache-arrow and dumped to
//                          <name>.js.json (canonical JSON, below), or <name>.js.error when it cannot be read
//   <workdir>/js/          receives queries written the way a JS client writes them (tableFromArrays-style
//                          dictionary strings, an extra list<struct<...>> column, several batches, the file
//                          format), as <name>.arrow, with the values put in as <name>.expected.json
// Usage: node arrow-interop.mjs --compressed <dir>
//   writes the same queries with lz4- and zstd-compressed bodies (needs `npm install --no-save lz4js@0.2.0
//   zstd-codec@0.1.5`), <name>.arrow with corrected length prefixes (see fixPrefixes) and <name>.as-written.arrow as
//   apache-arrow wrote it; committed under tests/Contracts.Tests/Fixtures/js, so tests never need those packages.
// Canonical dumps: int64/timestamp as decimal strings, floats as IEEE bit patterns in hex, binary as hex,
// dictionaries decoded, structs as objects: both sides compare exact values.
import * as A from 'apache-arrow';
import fs from 'node:fs';
import path from 'node:path';

const UNITS = ['s', 'ms', 'us', 'ns'];

function typeName(t) {
  switch (t.typeId) {
    case A.Type.Int: return `${t.isSigned ? '' : 'u'}int${t.bitWidth}`;
    case A.Type.Float: return t.precision === A.Precision.SINGLE ? 'float32' : t.precision === A.Precision.DOUBLE ? 'float64' : 'float16';
    case A.Type.Bool: return 'bool';
    case A.Type.Utf8: return 'utf8';
    case A.Type.Binary: return 'binary';
    case A.Type.Timestamp: return `timestamp[${UNITS[t.unit]}${t.timezone ? ', ' + t.timezone : ''}]`;
    case A.Type.List: return `list<${fieldName(t.children[0])}>`;
    case A.Type.Struct: return `struct<${t.children.map(fieldName).join(', ')}>`;
    case A.Type.Dictionary: return `dictionary<values=${typeName(t.dictionary)}, indices=${typeName(t.indices)}>`;
    default: throw new Error(`unsupported type ${t}`);
  }
}
const fieldName = (f) => `${f.name}: ${typeName(f.type)}${f.nullable ? '' : ' not null'}`;
const bit = (bytes, i) => (bytes[i >> 3] >> (i & 7)) & 1;
const hex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const utf8 = new TextDecoder('utf-8', { fatal: true });

function slot(data, i) {
  const j = data.offset + i;
  if (data.nullCount > 0 && !bit(data.nullBitmap, j)) return null;
  const t = data.type;
  switch (t.typeId) {
    case A.Type.Int: return t.bitWidth === 64 ? data.values[j].toString() : data.values[j];
    case A.Type.Timestamp: return data.values[j].toString();
    case A.Type.Float: {
      const v = data.values;
      if (t.precision === A.Precision.HALF) return '0x' + new Uint16Array(v.buffer, v.byteOffset, v.length)[j].toString(16).padStart(4, '0');
      if (t.precision === A.Precision.SINGLE) return '0x' + new Uint32Array(v.buffer, v.byteOffset, v.length)[j].toString(16).padStart(8, '0');
      return '0x' + new BigUint64Array(v.buffer, v.byteOffset, v.length)[j].toString(16).padStart(16, '0');
    }
    case A.Type.Bool: return bit(data.values, j) === 1;
    case A.Type.Utf8: return utf8.decode(data.values.subarray(data.valueOffsets[j], data.valueOffsets[j + 1]));
    case A.Type.Binary: return hex(data.values.subarray(data.valueOffsets[j], data.valueOffsets[j + 1]));
    case A.Type.List: {
      const out = [];
      for (let k = data.valueOffsets[j]; k < data.valueOffsets[j + 1]; k++) out.push(slot(data.children[0], k));
      return out;
    }
    case A.Type.Struct: return Object.fromEntries(t.children.map((f, c) => [f.name, slot(data.children[c], j)]));
    case A.Type.Dictionary: return slot(data.dictionary.data[0], data.values[j]);
    default: throw new Error(`unsupported type ${t}`);
  }
}

function dump(bytes) {
  const reader = A.RecordBatchReader.from(bytes);
  reader.open();
  const schema = reader.schema;
  const batches = [];
  for (const batch of reader) {
    const columns = schema.fields.map((_, c) => {
      const data = batch.data.children[c];
      const values = [];
      for (let i = 0; i < batch.numRows; i++) values.push(slot(data, i));
      return values;
    });
    batches.push({ rows: batch.numRows, columns });
  }
  return {
    schema: {
      fields: schema.fields.map((f) => ({ name: f.name, type: typeName(f.type), nullable: f.nullable })),
      metadata: Object.fromEntries(schema.metadata),
    },
    batches,
  };
}

// ---- queries as a JS client writes them ----------------------------------------------------------------------
const QUERY_META = new Map([['event-type', 'model-query'], ['schema-version', '1']]);
const TAG = new A.Struct([new A.Field('name', new A.Utf8(), true), new A.Field('weight', new A.Float64(), true)]);
const f32 = (x) => Math.fround(x);

function bitmap(valid) {
  const bytes = new Uint8Array(Math.max(1, Math.ceil(valid.length / 8)));
  valid.forEach((v, i) => { if (v) bytes[i >> 3] |= 1 << (i & 7); });
  return bytes;
}

function queryBatch(rows) {
  // Strings the way tableFromArrays infers them (dictionary<utf8, int32>); the rest typed explicitly.
  const strings = A.tableFromArrays({ query_id: rows.map((r) => r.id), model_version: rows.map((r) => r.model) });
  const ts = new A.TimestampMicrosecond('UTC');
  const table = new A.Table({
    query_id: strings.getChild('query_id'),
    model_version: strings.getChild('model_version'),
    features: A.vectorFromArray(rows.map((r) => r.features), new A.List(new A.Field('item', new A.Float32(), false))),
    token_ids: A.vectorFromArray(rows.map((r) => r.tokens && r.tokens.map(BigInt)), new A.List(new A.Field('item', new A.Int64(), false))),
    timestamp: A.makeVector(A.makeData({ type: ts, length: rows.length, nullCount: 0, data: BigInt64Array.from(rows.map((r) => BigInt(r.micros))) })),
    tags: A.vectorFromArray(rows.map((r) => r.tags), new A.List(new A.Field('item', TAG, true))),
    tokenizer: A.vectorFromArray(rows.map((r) => r.tokenizer), new A.Utf8()),
    prompt: A.vectorFromArray(rows.map((r) => r.prompt), new A.Utf8()),
    completion: A.vectorFromArray(rows.map((r) => r.completion), new A.Utf8()),
    completion_token_ids: A.vectorFromArray(rows.map((r) => r.completionTokens && r.completionTokens.map(BigInt)), new A.List(new A.Field('item', new A.Int64(), false))),
  });
  const schema = new A.Schema(table.schema.fields, QUERY_META);
  return table.batches.map((b) => new A.RecordBatch(schema, b.data));
}

const Q = (n, extra) => ({
  id: `q-js-${n}`, model: 'run-1@step-300', features: null, tokens: null, micros: 1764896523123456 + n, tags: [],
  tokenizer: null, prompt: null, completion: null, completionTokens: null, ...extra,
});
const SINGLE = [Q(1, { id: 'q-js-ü€-1', features: [f32(0.5), f32(0.25), f32(-1.5), f32(0.1)], tags: [{ name: 'client', weight: 0.5 }, { name: null, weight: 2 }] })];
const SEVERAL = [
  [Q(2, { features: [1, 2, 3].map(f32) }), Q(3, { tokens: [101, 2023, 102], model: 'gpt@7' })],
  [Q(4, { features: [f32(0.3)], tags: null })],
  [Q(5, { tokens: [], model: 'gpt@7' }), Q(6, { features: [], tags: [{ name: 'x', weight: null }] }), Q(7, { features: [f32(1e-3)] })],
];

// Language-model queries: text (prompt + completion) and token ids (prompt ids + completion ids), with their tokenizer.
const TEXT = [
  Q(8, { model: 'gpt@7', tokenizer: 'gpt2', prompt: 'The answer is', completion: ' 42, ü€😀' }),
  Q(9, { model: 'gpt@7', tokenizer: 'bytes', completion: 'no prompt' }),
  Q(10, { model: 'gpt@7', tokenizer: 'bytes', tokens: [72, 105], completionTokens: [33, 10] }),
];

const expected = (rows) => rows.map((r) => ({
  query_id: r.id, model_version: r.model,
  features: r.features && r.features.map((x) => '0x' + new Uint32Array(Float32Array.of(x).buffer)[0].toString(16).padStart(8, '0')),
  token_ids: r.tokens && r.tokens.map(String), timestamp_us: String(r.micros),
  tokenizer: r.tokenizer, prompt: r.prompt, completion: r.completion,
  completion_token_ids: r.completionTokens && r.completionTokens.map(String),
}));

// apache-arrow 21.2.0 writes the *compressed* length into each compressed buffer's 8-byte prefix, where the format
// wants the uncompressed length (ipc/writer.mjs _compressBodyBuffers); spec-following readers (ours, C++, Rust)
// refuse such bodies. The codecs below remember what they compressed, and fixPrefixes() writes the right lengths.
const compressed = [];

function fixPrefixes(bytes) {
  const out = Buffer.from(bytes);
  for (const { frame, length } of compressed) {
    const prefix = Buffer.alloc(8);
    prefix.writeBigInt64LE(BigInt(frame.length));
    const at = out.indexOf(Buffer.concat([prefix, Buffer.from(frame)]));
    if (at >= 0) out.writeBigInt64LE(BigInt(length), at);
  }
  return out;
}

function writeQueries(dir, name, batchesOfRows, format, compressionType = null) {
  // One table over all rows (one dictionary per string column), cut into the requested record batches.
  const whole = new A.Table(queryBatch(batchesOfRows.flat()));
  let start = 0;
  const batches = batchesOfRows.map((rows) => {
    const part = whole.slice(start, start += rows.length);
    return new A.RecordBatch(whole.schema, part.batches[0].data);
  });
  const table = new A.Table(whole.schema, batches);
  const bytes = A.tableToIPC(table, format, compressionType);
  fs.writeFileSync(path.join(dir, name + '.arrow'), compressionType == null ? bytes : fixPrefixes(bytes));
  if (compressionType != null) fs.writeFileSync(path.join(dir, name + '.as-written.arrow'), bytes);
  fs.writeFileSync(path.join(dir, name + '.expected.json'), JSON.stringify(expected(batchesOfRows.flat())));
}

async function registerCodecs() {
  const lz4 = (await import('lz4js')).default;
  const { ZstdCodec } = await import('zstd-codec');
  const zstd = await new Promise((resolve) => ZstdCodec.run((z) => resolve(new z.Simple())));
  const remember = (encode) => (d) => { const frame = encode(d); compressed.push({ frame, length: d.length }); return frame; };
  A.compressionRegistry.set(A.CompressionType.LZ4_FRAME, { encode: remember((d) => lz4.compress(d)), decode: (d) => lz4.decompress(d) });
  A.compressionRegistry.set(A.CompressionType.ZSTD, { encode: remember((d) => zstd.compress(d, 3)), decode: (d) => zstd.decompress(d) });
}

// ---- main ----------------------------------------------------------------------------------------------------
if (process.argv[2] === '--compressed') {
  const dir = process.argv[3];
  await registerCodecs();
  fs.mkdirSync(dir, { recursive: true });
  writeQueries(dir, 'queries_lz4', SEVERAL, 'stream', A.CompressionType.LZ4_FRAME);
  writeQueries(dir, 'queries_zstd', SEVERAL, 'stream', A.CompressionType.ZSTD);
  writeQueries(dir, 'query_zstd_file', [SINGLE], 'file', A.CompressionType.ZSTD);
  console.log(`ok: compressed fixtures in ${dir}`);
  process.exit(0);
}
const work = process.argv[2];
if (!work) { console.error('usage: node arrow-interop.mjs <workdir> | --compressed <dir>'); process.exit(2); }
const csDir = path.join(work, 'cs'), jsDir = path.join(work, 'js');
fs.mkdirSync(jsDir, { recursive: true });
let failures = 0;
if (fs.existsSync(csDir)) {
  for (const name of fs.readdirSync(csDir).filter((f) => f.endsWith('.arrow')).sort()) {
    const base = name.slice(0, -'.arrow'.length);
    try {
      fs.writeFileSync(path.join(csDir, base + '.js.json'), JSON.stringify(dump(fs.readFileSync(path.join(csDir, name)))));
    } catch (e) {
      failures++;
      fs.writeFileSync(path.join(csDir, base + '.js.error'), String(e && e.stack || e));
    }
  }
}
// Probes as an Arrow user reads them, through apache-arrow's table API (float16 decoded to numbers): each row's
// tensors and factor values, for NodeInteropTests.ProbeFactorsReadThroughArrowJsTables_AreTheValuesWritten (probes.arrow,
// one event stream) and ProbeSetFileReadThroughArrowJsTables_IsTheSetWritten (probe_set.arrow, an Arrow IPC file of the
// same schema with the set's metadata, several record batches).
for (const name of ['probes', 'probe_set']) {
  if (!fs.existsSync(path.join(csDir, name + '.arrow'))) continue;
  const table = A.tableFromIPC(fs.readFileSync(path.join(csDir, name + '.arrow')));
  const rows = [];
  for (let i = 0; i < table.numRows; i++) {
    const f16 = table.getChild('factors_f16').get(i), f32 = table.getChild('factors_f32').get(i);
    rows.push({
      key: `${table.getChild('run_id').get(i)}/${table.getChild('step').get(i)}/${table.getChild('subject').get(i) === 1 ? 'example' : 'source'}/${table.getChild('subject_id').get(i)}`,
      architecture: table.getChild('architecture').get(i),
      rank: table.getChild('rank').get(i),
      tensors: [...table.getChild('tensor_names').get(i)].map((name, t) => ({
        name, rows: table.getChild('tensor_rows').get(i).get(t), cols: table.getChild('tensor_cols').get(i).get(t), rank: table.getChild('tensor_ranks').get(i).get(t),
      })),
      factors: [...(f16 ?? f32)].map(Number),
    });
  }
  const out = name === 'probes' ? rows : { metadata: Object.fromEntries(table.schema.metadata), batches: table.batches.length, rows };
  fs.writeFileSync(path.join(csDir, name + '.js.table.json'), JSON.stringify(out));
}
writeQueries(jsDir, 'query_dictionary', [SINGLE], 'stream');
writeQueries(jsDir, 'queries_batches', SEVERAL, 'stream');
writeQueries(jsDir, 'queries_file', SEVERAL, 'file');
writeQueries(jsDir, 'queries_text', [TEXT], 'stream');
console.log(`ok (${failures} C# streams failed to read)`);
