using Attribution.Arrow.FlatBuffers;

namespace Attribution.Arrow;

/// <summary>Encodes a Schema message. Field add order follows arrow-js, so the bytes match the spec's golden vector.</summary>
internal static class SchemaEncoder
{
    public static int WriteSchemaMessage(FlatBufferBuilder fb, ArrowSchema schema)
    {
        var fields = new int[schema.Fields.Count];
        for (var i = 0; i < fields.Length; i++)
        {
            fields[i] = WriteField(fb, schema.Fields[i]);
        }
        var fieldsVector = fb.CreateOffsetVector(fields);
        var metadata = WriteMetadata(fb, schema.Metadata);
        fb.StartTable(4);
        fb.AddOffset(1, fieldsVector);
        if (metadata != 0)
        {
            fb.AddOffset(2, metadata);
        }
        var schemaTable = fb.EndTable();
        fb.StartTable(5);
        fb.AddOffset(2, schemaTable);
        fb.AddInt16(0, ArrowWire.MetadataV5);
        fb.AddByte(1, ArrowWire.MessageHeader.Schema);
        return fb.EndTable();
    }

    private static int WriteField(FlatBufferBuilder fb, ArrowField field)
    {
        var type = field.Type;
        int[] children = type.Item is null ? [] : [WriteField(fb, type.Item)];
        var childrenVector = fb.CreateOffsetVector(children);
        var name = fb.CreateString(field.Name);
        var (tag, typeTable) = WriteType(fb, type);
        var metadata = WriteMetadata(fb, field.Metadata);
        fb.StartTable(7);
        fb.AddOffset(0, name);
        if (field.Nullable)
        {
            fb.AddBool(1, true);
        }
        fb.AddByte(2, tag);
        fb.AddOffset(3, typeTable);
        fb.AddOffset(5, childrenVector);
        if (metadata != 0)
        {
            fb.AddOffset(6, metadata);
        }
        return fb.EndTable();
    }

    private static (byte Tag, int Table) WriteType(FlatBufferBuilder fb, ArrowType type)
    {
        switch (type.Kind)
        {
            case ArrowTypeKind.Int32 or ArrowTypeKind.Int64:
                fb.StartTable(2);
                fb.AddInt32(0, type.Kind == ArrowTypeKind.Int32 ? 32 : 64);
                fb.AddBool(1, true);
                return (ArrowWire.Type.Int, fb.EndTable());
            case ArrowTypeKind.Float32 or ArrowTypeKind.Float64:
                fb.StartTable(1);
                fb.AddInt16(0, type.Kind == ArrowTypeKind.Float32 ? ArrowWire.Precision.Single : ArrowWire.Precision.Double);
                return (ArrowWire.Type.FloatingPoint, fb.EndTable());
            case ArrowTypeKind.Timestamp:
                var zone = type.TimeZone is null ? 0 : fb.CreateString(type.TimeZone);
                fb.StartTable(2);
                if (zone != 0)
                {
                    fb.AddOffset(1, zone);
                }
                if (type.Unit != ArrowTimeUnit.Second)
                {
                    fb.AddInt16(0, (short)type.Unit);
                }
                return (ArrowWire.Type.Timestamp, fb.EndTable());
            case ArrowTypeKind.FixedSizeList:
                fb.StartTable(1);
                fb.AddInt32(0, type.ListSize);
                return (ArrowWire.Type.FixedSizeList, fb.EndTable());
            default:
                fb.StartTable(0);
                var tag = type.Kind switch
                {
                    ArrowTypeKind.Bool => ArrowWire.Type.Bool,
                    ArrowTypeKind.Utf8 => ArrowWire.Type.Utf8,
                    ArrowTypeKind.Binary => ArrowWire.Type.Binary,
                    _ => ArrowWire.Type.List,
                };
                return (tag, fb.EndTable());
        }
    }

    private static int WriteMetadata(FlatBufferBuilder fb, IReadOnlyDictionary<string, string>? metadata)
    {
        if (metadata is null || metadata.Count == 0)
        {
            return 0;
        }
        var entries = new int[metadata.Count];
        var i = 0;
        foreach (var (key, value) in metadata)
        {
            var k = fb.CreateString(key);
            var v = fb.CreateString(value ?? "");
            fb.StartTable(2);
            fb.AddOffset(0, k);
            fb.AddOffset(1, v);
            entries[i++] = fb.EndTable();
        }
        return fb.CreateOffsetVector(entries);
    }
}
