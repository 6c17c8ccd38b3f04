using System.Globalization;
using Apache.Arrow;
using Apache.Arrow.Types;

namespace Attribution.Contracts.Arrow;

/// <summary>
/// Compact text for Arrow types and fields, in the style of pyarrow (<c>list&lt;item: int64 not null&gt;</c>,
/// <c>timestamp[us, UTC]</c>): used by error messages, the schema golden tests and <c>./pipeline arrow inspect</c>.
/// </summary>
public static class ArrowText
{
    /// <summary>"name: type" plus " not null" for a non-nullable field.</summary>
    public static string Field(Field field)
    {
        ArgumentNullException.ThrowIfNull(field);
        return $"{field.Name}: {Type(field.DataType)}{(field.IsNullable ? "" : " not null")}";
    }

    /// <summary>The type's text.</summary>
    public static string Type(IArrowType type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return type switch
        {
            BooleanType => "bool",
            Int8Type => "int8",
            Int16Type => "int16",
            Int32Type => "int32",
            Int64Type => "int64",
            UInt8Type => "uint8",
            UInt16Type => "uint16",
            UInt32Type => "uint32",
            UInt64Type => "uint64",
            HalfFloatType => "float16",
            FloatType => "float32",
            DoubleType => "float64",
            StringType => "utf8",
            LargeStringType => "large_utf8",
            StringViewType => "utf8_view",
            LargeBinaryType => "large_binary",
            BinaryViewType => "binary_view",
            FixedSizeBinaryType f and not (Decimal32Type or Decimal64Type or Decimal128Type or Decimal256Type) => $"fixed_size_binary[{f.ByteWidth}]",
            BinaryType => "binary",
            TimestampType t => $"timestamp[{Unit(t.Unit)}{(string.IsNullOrEmpty(t.Timezone) ? "" : ", " + t.Timezone)}]",
            ListType l => $"list<{Field(l.ValueField)}>",
            LargeListType l => $"large_list<{Field(l.ValueField)}>",
            FixedSizeListType l => $"fixed_size_list<{Field(l.ValueField)}>[{l.ListSize.ToString(CultureInfo.InvariantCulture)}]",
            MapType m => $"map<{Type(m.KeyField.DataType)}, {Type(m.ValueField.DataType)}>",
            StructType s => $"struct<{string.Join(", ", s.Fields.Select(Field))}>",
            DictionaryType d => $"dictionary<values={Type(d.ValueType)}, indices={Type(d.IndexType)}{(d.Ordered ? ", ordered" : "")}>",
            _ => type.Name,
        };
    }

    private static string Unit(TimeUnit unit) => unit switch
    {
        TimeUnit.Second => "s",
        TimeUnit.Millisecond => "ms",
        TimeUnit.Microsecond => "us",
        TimeUnit.Nanosecond => "ns",
        _ => unit.ToString(),
    };
}
