namespace Attribution.Arrow;

/// <summary>
/// Arrow IPC wire constants (FlatBuffers union tags, enum values). These numbers are the format;
/// they are frozen by a golden test and must never change.
/// </summary>
public static class ArrowWire
{
    /// <summary>Continuation marker that precedes every message's metadata size.</summary>
    public const int Continuation = -1;

    /// <summary>MetadataVersion.V4.</summary>
    public const short MetadataV4 = 3;

    /// <summary>MetadataVersion.V5, the version we write.</summary>
    public const short MetadataV5 = 4;

    /// <summary>MessageHeader union tags.</summary>
    public static class MessageHeader
    {
        /// <summary>Schema.</summary>
        public const byte Schema = 1;
        /// <summary>DictionaryBatch (rejected).</summary>
        public const byte DictionaryBatch = 2;
        /// <summary>RecordBatch.</summary>
        public const byte RecordBatch = 3;
        /// <summary>Tensor (rejected).</summary>
        public const byte Tensor = 4;
        /// <summary>SparseTensor (rejected).</summary>
        public const byte SparseTensor = 5;
    }

    /// <summary>Type union tags.</summary>
    public static class Type
    {
        /// <summary>Int.</summary>
        public const byte Int = 2;
        /// <summary>FloatingPoint.</summary>
        public const byte FloatingPoint = 3;
        /// <summary>Binary.</summary>
        public const byte Binary = 4;
        /// <summary>Utf8.</summary>
        public const byte Utf8 = 5;
        /// <summary>Bool.</summary>
        public const byte Bool = 6;
        /// <summary>Timestamp.</summary>
        public const byte Timestamp = 10;
        /// <summary>List.</summary>
        public const byte List = 12;
        /// <summary>FixedSizeList.</summary>
        public const byte FixedSizeList = 16;
    }

    /// <summary>FloatingPoint.precision values.</summary>
    public static class Precision
    {
        /// <summary>HALF (unsupported).</summary>
        public const short Half = 0;
        /// <summary>SINGLE.</summary>
        public const short Single = 1;
        /// <summary>DOUBLE.</summary>
        public const short Double = 2;
    }

    /// <summary>Human-readable name of a Type union tag, for error messages.</summary>
    public static string TypeName(byte tag) => tag switch
    {
        0 => "NONE", 1 => "Null", 2 => "Int", 3 => "FloatingPoint", 4 => "Binary", 5 => "Utf8", 6 => "Bool",
        7 => "Decimal", 8 => "Date", 9 => "Time", 10 => "Timestamp", 11 => "Interval", 12 => "List",
        13 => "Struct", 14 => "Union", 15 => "FixedSizeBinary", 16 => "FixedSizeList", 17 => "Map",
        18 => "Duration", 19 => "LargeBinary", 20 => "LargeUtf8", 21 => "LargeList", 22 => "RunEndEncoded",
        23 => "BinaryView", 24 => "Utf8View", 25 => "ListView", 26 => "LargeListView",
        _ => "unknown",
    };
}
