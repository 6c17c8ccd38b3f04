using System.Globalization;

namespace Attribution.Arrow;

/// <summary>The column types this codec reads and writes.</summary>
public enum ArrowTypeKind
{
    /// <summary>Bit-packed booleans.</summary>
    Bool,
    /// <summary>Signed 32-bit integers.</summary>
    Int32,
    /// <summary>Signed 64-bit integers.</summary>
    Int64,
    /// <summary>IEEE 754 single precision.</summary>
    Float32,
    /// <summary>IEEE 754 double precision.</summary>
    Float64,
    /// <summary>Signed 64-bit count of <see cref="ArrowType.Unit"/> since the Unix epoch.</summary>
    Timestamp,
    /// <summary>UTF-8 strings (int32 offsets).</summary>
    Utf8,
    /// <summary>Opaque byte strings (int32 offsets).</summary>
    Binary,
    /// <summary>Variable-length list (int32 offsets) of <see cref="ArrowType.Item"/>.</summary>
    List,
    /// <summary>Fixed-length list of <see cref="ArrowType.ListSize"/> items.</summary>
    FixedSizeList,
}

/// <summary>Timestamp resolution; the numeric values are the Arrow wire values (int16).</summary>
public enum ArrowTimeUnit : short
{
    /// <summary>Seconds.</summary>
    Second = 0,
    /// <summary>Milliseconds.</summary>
    Millisecond = 1,
    /// <summary>Microseconds.</summary>
    Microsecond = 2,
    /// <summary>Nanoseconds.</summary>
    Nanosecond = 3,
}

/// <summary>
/// An Arrow logical type from the supported subset. Primitive types are singletons
/// (<see cref="Int32"/>, ...); parameterised types come from <see cref="Timestamp"/>,
/// <see cref="List(ArrowType, bool)"/> and <see cref="FixedSizeList(int, ArrowType, bool)"/>.
/// </summary>
public sealed record ArrowType
{
    private ArrowType(ArrowTypeKind kind, ArrowTimeUnit unit = ArrowTimeUnit.Second, string? timeZone = null, int listSize = 0, ArrowField? item = null)
    {
        Kind = kind;
        Unit = unit;
        TimeZone = timeZone;
        ListSize = listSize;
        Item = item;
    }

    /// <summary>Which type this is.</summary>
    public ArrowTypeKind Kind { get; }

    /// <summary>Timestamp unit (timestamps only).</summary>
    public ArrowTimeUnit Unit { get; }

    /// <summary>Timestamp time zone; null means naive wall-clock time, "UTC" means instants (timestamps only).</summary>
    public string? TimeZone { get; }

    /// <summary>Items per slot (fixed-size lists only).</summary>
    public int ListSize { get; }

    /// <summary>The child field (lists only).</summary>
    public ArrowField? Item { get; }

    /// <summary>bool.</summary>
    public static ArrowType Bool { get; } = new(ArrowTypeKind.Bool);
    /// <summary>int32.</summary>
    public static ArrowType Int32 { get; } = new(ArrowTypeKind.Int32);
    /// <summary>int64.</summary>
    public static ArrowType Int64 { get; } = new(ArrowTypeKind.Int64);
    /// <summary>float32.</summary>
    public static ArrowType Float32 { get; } = new(ArrowTypeKind.Float32);
    /// <summary>float64.</summary>
    public static ArrowType Float64 { get; } = new(ArrowTypeKind.Float64);
    /// <summary>utf8.</summary>
    public static ArrowType Utf8 { get; } = new(ArrowTypeKind.Utf8);
    /// <summary>binary.</summary>
    public static ArrowType Binary { get; } = new(ArrowTypeKind.Binary);

    /// <summary>A timestamp type. Use time zone "UTC" for instants; null for naive wall-clock times.</summary>
    public static ArrowType Timestamp(ArrowTimeUnit unit, string? timeZone) =>
        unit is < ArrowTimeUnit.Second or > ArrowTimeUnit.Nanosecond
            ? throw new ArgumentOutOfRangeException(nameof(unit), unit, "Timestamp unit must be Second, Millisecond, Microsecond or Nanosecond.")
            : new(ArrowTypeKind.Timestamp, unit, string.IsNullOrEmpty(timeZone) ? null : timeZone);

    /// <summary>list&lt;item&gt; with a child field named "item".</summary>
    public static ArrowType List(ArrowType itemType, bool itemNullable = true) => List(new ArrowField("item", itemType, itemNullable));

    /// <summary>list&lt;item&gt; with the given child field.</summary>
    public static ArrowType List(ArrowField item)
    {
        ArgumentNullException.ThrowIfNull(item);
        return new(ArrowTypeKind.List, item: item);
    }

    /// <summary>fixed_size_list&lt;item&gt;[listSize] with a child field named "item".</summary>
    public static ArrowType FixedSizeList(int listSize, ArrowType itemType, bool itemNullable = true) =>
        FixedSizeList(listSize, new ArrowField("item", itemType, itemNullable));

    /// <summary>fixed_size_list&lt;item&gt;[listSize] with the given child field.</summary>
    public static ArrowType FixedSizeList(int listSize, ArrowField item)
    {
        ArgumentNullException.ThrowIfNull(item);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(listSize);
        return new(ArrowTypeKind.FixedSizeList, listSize: listSize, item: item);
    }

    /// <summary>Bytes per value for fixed-width types (int, float, timestamp); 0 otherwise.</summary>
    public int FixedWidth => Kind switch
    {
        ArrowTypeKind.Int32 or ArrowTypeKind.Float32 => 4,
        ArrowTypeKind.Int64 or ArrowTypeKind.Float64 or ArrowTypeKind.Timestamp => 8,
        _ => 0,
    };

    /// <summary>Canonical text form, e.g. <c>timestamp[us, UTC]</c> or <c>list&lt;item: float32&gt;</c>.</summary>
    public override string ToString() => Kind switch
    {
        ArrowTypeKind.Bool => "bool",
        ArrowTypeKind.Int32 => "int32",
        ArrowTypeKind.Int64 => "int64",
        ArrowTypeKind.Float32 => "float32",
        ArrowTypeKind.Float64 => "float64",
        ArrowTypeKind.Utf8 => "utf8",
        ArrowTypeKind.Binary => "binary",
        ArrowTypeKind.Timestamp => string.Create(CultureInfo.InvariantCulture,
            $"timestamp[{UnitName(Unit)}{(TimeZone is null ? "" : ", " + TimeZone)}]"),
        ArrowTypeKind.List => $"list<{Item}>",
        ArrowTypeKind.FixedSizeList => string.Create(CultureInfo.InvariantCulture, $"fixed_size_list<{Item}>[{ListSize}]"),
        _ => Kind.ToString(),
    };

    /// <summary>Short unit name: s, ms, us, ns.</summary>
    public static string UnitName(ArrowTimeUnit unit) => unit switch
    {
        ArrowTimeUnit.Second => "s",
        ArrowTimeUnit.Millisecond => "ms",
        ArrowTimeUnit.Microsecond => "us",
        _ => "ns",
    };
}

/// <summary>A named, typed column (or list child) with optional key/value metadata.</summary>
/// <param name="Name">Column name.</param>
/// <param name="Type">Column type.</param>
/// <param name="Nullable">Whether slots may be null.</param>
/// <param name="Metadata">Field-level custom metadata, or null.</param>
public sealed record ArrowField(string Name, ArrowType Type, bool Nullable = true, IReadOnlyDictionary<string, string>? Metadata = null)
{
    /// <summary>Canonical text form: <c>name: type</c>, with <c>not null</c> when not nullable.</summary>
    public override string ToString() => $"{Name}: {Type}{(Nullable ? "" : " not null")}";
}

/// <summary>The columns of a stream, plus schema-level custom metadata.</summary>
/// <param name="Fields">Top-level columns in order.</param>
/// <param name="Metadata">Schema-level custom metadata, or null.</param>
public sealed record ArrowSchema(IReadOnlyList<ArrowField> Fields, IReadOnlyDictionary<string, string>? Metadata = null)
{
    /// <summary>Index of the column named <paramref name="name"/>, or -1.</summary>
    public int IndexOf(string name)
    {
        for (var i = 0; i < Fields.Count; i++)
        {
            if (Fields[i].Name == name)
            {
                return i;
            }
        }
        return -1;
    }
}
