// Independent-implementation check for our C# Arrow IPC codec (tests/Arrow.Tests/NodeInteropTests.cs).
// Usage: node arrow-interop.mjs <workdir>
//   <workdir>/cs/*.arrow      streams written by C#: each is read with apache-arrow, dumped to
//                             <name>.js.json, and re-encoded with tableToIPC(table, 'stream') into
//                             <workdir>/rewrite/<name>.arrow
//   <workdir>/js/             receives JS-native fixtures (<name>.arrow) and their dumps (<name>.js.json)
// Dumps are canonical JSON: int64/timestamp as decimal strings, floats as IEEE bit patterns in hex,
// binary as hex, so both sides compare exact values.
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
    case A.Type.FixedSizeList: return `fixed_size_list<${fieldName(t.children[0])}>[${t.listSize}]`;
    default: throw new Error(`unsupported type ${t}`);
  }
}
const fieldName = (f) => `${f.name}: ${typeName(f.type)}${f.nullable ? '' : ' not null'}`;
const bit = (bytes, i) => (bytes[i >> 3] >> (i & 7)) & 1;
const hex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
const utf8 = new TextDecoder('utf-8');

function slot(data, i) {
  const j = data.offset + i;
  if (data.nullCount > 0 && !bit(data.nullBitmap, j)) return null;
  const t = data.type;
  switch (t.typeId) {
    case A.Type.Int:
      return t.bitWidth === 64 ? data.values[j].toString() : data.values[j];
    case A.Type.Timestamp:
      return data.values[j].toString();
    case A.Type.Float: {
      const v = data.values;
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
    case A.Type.FixedSizeList: {
      const out = [];
      for (let k = 0; k < t.listSize; k++) out.push(slot(data.children[0], j * t.listSize + k));
      return out;
    }
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
      fields: schema.fields.map((f) => ({ name: f.name, type: typeName(f.type), nullable: f.nullable, metadata: Object.fromEntries(f.metadata) })),
      metadata: Object.fromEntries(schema.metadata),
    },
    batches,
  };
}

// ---- JS-native fixtures -------------------------------------------------------------------
const item = (type, nullable = true) => new A.Field('item', type, nullable);
function bitmap(valid) {
  const bytes = new Uint8Array(Math.max(1, Math.ceil(valid.length / 8)));
  valid.forEach((v, i) => { if (v) bytes[i >> 3] |= 1 << (i & 7); });
  return bytes;
}
function timestamps(type, values) {
  const valid = values.map((v) => v !== null);
  return A.makeData({ type, length: values.length, nullCount: valid.filter((v) => !v).length, nullBitmap: bitmap(valid), data: BigInt64Array.from(values.map((v) => v ?? 0n)) });
}
function batchOf(schema, columns) {
  const length = columns.length ? columns[0].length : 0;
  return new A.RecordBatch(schema, A.makeData({ type: new A.Struct(schema.fields), length, nullCount: 0, children: columns }));
}
const vec = (values, type) => A.vectorFromArray(values, type).data[0];

function allTypes() {
  const fields = [
    new A.Field('b', new A.Bool(), true),
    new A.Field('i32', new A.Int32(), true, new Map([['unit', 'count'], ['empty', '']])),
    new A.Field('i64', new A.Int64(), true),
    new A.Field('f32', new A.Float32(), true),
    new A.Field('f64', new A.Float64(), true),
    new A.Field('ts_us', new A.Timestamp(A.TimeUnit.MICROSECOND, 'UTC'), true),
    new A.Field('ts_ns_naive', new A.Timestamp(A.TimeUnit.NANOSECOND), true),
    new A.Field('s', new A.Utf8(), true),
    new A.Field('bin', new A.Binary(), true),
    new A.Field('lf', new A.List(item(new A.Float32())), true),
    new A.Field('li', new A.List(item(new A.Int64())), true),
    new A.Field('fsl', new A.FixedSizeList(2, item(new A.Float32())), true),
  ];
  const schema = new A.Schema(fields, new Map([['schema-version', '1'], ['note', 'héllo'], ['blank', '']]));
  const rows = (n, f) => Array.from({ length: n }, (_, i) => f(i));
  const make = (n, nulls) => {
    const nul = (i, v) => (nulls && i % 3 === 1 ? null : v);
    return [
      vec(rows(n, (i) => nul(i, i % 2 === 0)), new A.Bool()),
      vec(rows(n, (i) => nul(i, i * 7 - 3)), new A.Int32()),
      vec(rows(n, (i) => nul(i, BigInt(i) * 1000000000007n - 5n)), new A.Int64()),
      vec(rows(n, (i) => nul(i, i === 0 ? -0 : i / 3)), new A.Float32()),
      vec(rows(n, (i) => nul(i, i === 2 ? NaN : i === 4 ? -Infinity : i * 1.5e300)), new A.Float64()),
      timestamps(fields[5].type, rows(n, (i) => nul(i, 1700000000123456n + BigInt(i)))),
      timestamps(fields[6].type, rows(n, (i) => nul(i, -1n - BigInt(i)))),
      vec(rows(n, (i) => nul(i, i % 4 === 0 ? '' : `r${i}-ü€😀`)), new A.Utf8()),
      vec(rows(n, (i) => nul(i, Uint8Array.from(rows(i % 5, (k) => (k * 37 + i) & 255)))), new A.Binary()),
      vec(rows(n, (i) => nul(i, rows(i % 4, (k) => k + i / 8))), fields[9].type),
      vec(rows(n, (i) => nul(i, rows(i % 3, (k) => BigInt(k) - BigInt(i) * 3n))), fields[10].type),
      vec(rows(n, (i) => nul(i, [i, -i / 2])), fields[11].type),
    ];
  };
  return new A.Table(schema, [batchOf(schema, make(9, true)), batchOf(schema, make(0, true)), batchOf(schema, make(65, true)), batchOf(schema, make(8, false))]);
}

function noNulls() {
  const schema = new A.Schema([new A.Field('id', new A.Int64(), false), new A.Field('x', new A.Float64(), false)]);
  return new A.Table(schema, [batchOf(schema, [vec([1n, 2n, 3n, 4n, 5n, 6n, 7n], new A.Int64()), vec([1, 2, 3, 4, 5, 6, 7], new A.Float64())])]);
}

function emptyTable() {
  const schema = new A.Schema([new A.Field('s', new A.Utf8(), true), new A.Field('l', new A.List(item(new A.Int64())), true)]);
  return new A.Table(schema, []);
}

// ---- main ---------------------------------------------------------------------------------
const work = process.argv[2];
if (!work) { console.error('usage: node arrow-interop.mjs <workdir>'); process.exit(2); }
const csDir = path.join(work, 'cs'), jsDir = path.join(work, 'js'), rewriteDir = path.join(work, 'rewrite');
fs.mkdirSync(jsDir, { recursive: true });
fs.mkdirSync(rewriteDir, { recursive: true });
let failures = 0;
if (fs.existsSync(csDir)) {
  for (const name of fs.readdirSync(csDir).filter((f) => f.endsWith('.arrow')).sort()) {
    const base = name.slice(0, -'.arrow'.length);
    try {
      const bytes = fs.readFileSync(path.join(csDir, name));
      fs.writeFileSync(path.join(csDir, base + '.js.json'), JSON.stringify(dump(bytes)));
      fs.writeFileSync(path.join(rewriteDir, name), A.tableToIPC(A.tableFromIPC(bytes), 'stream'));
    } catch (e) {
      failures++;
      fs.writeFileSync(path.join(csDir, base + '.js.error'), String(e && e.stack || e));
    }
  }
}
for (const [name, make] of [['all_types', allTypes], ['no_nulls', noNulls], ['empty', emptyTable]]) {
  const bytes = A.tableToIPC(make(), 'stream');
  fs.writeFileSync(path.join(jsDir, name + '.arrow'), bytes);
  fs.writeFileSync(path.join(jsDir, name + '.js.json'), JSON.stringify(dump(bytes)));
}
console.log(`ok (${failures} C# streams failed to read)`);
