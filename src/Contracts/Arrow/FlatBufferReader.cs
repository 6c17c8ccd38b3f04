using System.Buffers.Binary;
using System.Text;
using System.Text.Unicode;

namespace Attribution.Contracts.Arrow;

/// <summary>A table's position and its vtable, validated against the buffer.</summary>
internal readonly record struct FbTable(int Position, int VTable, int VTableSize, int TableSize);

/// <summary>
/// Bounds-checked FlatBuffers access over untrusted bytes. Every uoffset, soffset, vtable entry,
/// string and vector length is checked against the buffer before use; failures throw
/// <see cref="InvalidArrowException"/> naming what was being read and the stream offset.
/// </summary>
internal readonly ref struct FlatBufferReader(ReadOnlySpan<byte> buffer, long streamOffset)
{
    private readonly ReadOnlySpan<byte> _buffer = buffer;

    public FbTable Root(string what)
    {
        Need(0, 4, what);
        return Table(Uoffset(0, what), what);
    }

    public FbTable Table(int position, string what)
    {
        Need(position, 4, what);
        var vtable = (long)position - BinaryPrimitives.ReadInt32LittleEndian(_buffer[position..]);
        if (vtable < 0 || vtable > _buffer.Length - 4)
        {
            throw Fail(position, $"{what}: vtable position {vtable} is outside the {_buffer.Length}-byte metadata");
        }
        var vt = (int)vtable;
        int vtSize = BinaryPrimitives.ReadUInt16LittleEndian(_buffer[vt..]);
        int tableSize = BinaryPrimitives.ReadUInt16LittleEndian(_buffer[(vt + 2)..]);
        if (vtSize < 4 || (vtSize & 1) != 0 || vt + vtSize > _buffer.Length)
        {
            throw Fail(vt, $"{what}: vtable size {vtSize} is invalid or runs past the metadata end");
        }
        if (tableSize < 4 || (long)position + tableSize > _buffer.Length)
        {
            throw Fail(position, $"{what}: table size {tableSize} runs past the metadata end");
        }
        return new FbTable(position, vt, vtSize, tableSize);
    }

    /// <summary>Position of field <paramref name="id"/> of <paramref name="size"/> bytes, or -1 when absent.</summary>
    public int Field(FbTable table, int id, int size, string what)
    {
        var slot = 4 + (2 * id);
        if (slot + 2 > table.VTableSize)
        {
            return -1;
        }
        int offset = BinaryPrimitives.ReadUInt16LittleEndian(_buffer[(table.VTable + slot)..]);
        if (offset == 0)
        {
            return -1;
        }
        if (offset < 4 || offset + size > table.TableSize)
        {
            throw Fail(table.Position, $"{what}: field offset {offset} (+{size} bytes) lies outside its {table.TableSize}-byte table");
        }
        return table.Position + offset;
    }

    public bool Has(FbTable table, int id) => Field(table, id, 1, "field") >= 0;

    public byte Byte(FbTable table, int id, byte defaultValue, string what)
    {
        var p = Field(table, id, 1, what);
        return p < 0 ? defaultValue : _buffer[p];
    }

    public short Int16(FbTable table, int id, short defaultValue, string what)
    {
        var p = Field(table, id, 2, what);
        return p < 0 ? defaultValue : BinaryPrimitives.ReadInt16LittleEndian(_buffer[p..]);
    }

    public int Int32(FbTable table, int id, int defaultValue, string what)
    {
        var p = Field(table, id, 4, what);
        return p < 0 ? defaultValue : BinaryPrimitives.ReadInt32LittleEndian(_buffer[p..]);
    }

    public long Int64(FbTable table, int id, long defaultValue, string what)
    {
        var p = Field(table, id, 8, what);
        return p < 0 ? defaultValue : BinaryPrimitives.ReadInt64LittleEndian(_buffer[p..]);
    }

    /// <summary>Target position of an offset field, or -1 when absent.</summary>
    public int Reference(FbTable table, int id, string what)
    {
        var p = Field(table, id, 4, what);
        return p < 0 ? -1 : Uoffset(p, what);
    }

    public FbTable? TableField(FbTable table, int id, string what)
    {
        var target = Reference(table, id, what);
        return target < 0 ? null : Table(target, what);
    }

    public string? String(FbTable table, int id, string what)
    {
        var target = Reference(table, id, what);
        return target < 0 ? null : StringAt(target, what);
    }

    public string StringAt(int position, string what)
    {
        Need(position, 4, what);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(_buffer[position..]);
        if (length > (uint)(_buffer.Length - position - 4))
        {
            throw Fail(position, $"{what}: string length {length} runs past the metadata end");
        }
        var bytes = _buffer.Slice(position + 4, (int)length);
        if (!Utf8.IsValid(bytes))
        {
            throw Fail(position, $"{what}: string is not valid UTF-8");
        }
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Position of the first element and the element count of a vector field; (-1, 0) when absent.</summary>
    public (int Start, int Count) Vector(FbTable table, int id, int elementSize, string what)
    {
        var target = Reference(table, id, what);
        if (target < 0)
        {
            return (-1, 0);
        }
        Need(target, 4, what);
        var count = BinaryPrimitives.ReadUInt32LittleEndian(_buffer[target..]);
        if (count > (uint)((_buffer.Length - target - 4) / elementSize))
        {
            throw Fail(target, $"{what}: vector of {count} elements ({elementSize} bytes each) runs past the metadata end");
        }
        return (target + 4, (int)count);
    }

    /// <summary>Follows element <paramref name="index"/> of a vector of offsets.</summary>
    public FbTable VectorTable((int Start, int Count) vector, int index, string what) =>
        Table(Uoffset(vector.Start + (4 * index), what), what);

    public int VectorStringAt((int Start, int Count) vector, int index) => vector.Start + (4 * index);

    public long ReadInt64At(int position) => BinaryPrimitives.ReadInt64LittleEndian(_buffer[position..]);

    public int ReadInt32At(int position) => BinaryPrimitives.ReadInt32LittleEndian(_buffer[position..]);

    private int Uoffset(int position, string what)
    {
        Need(position, 4, what);
        var value = BinaryPrimitives.ReadUInt32LittleEndian(_buffer[position..]);
        var target = position + (long)value;
        if (value == 0 || target >= _buffer.Length)
        {
            throw Fail(position, $"{what}: offset {value} points outside the {_buffer.Length}-byte metadata");
        }
        return (int)target;
    }

    private void Need(long position, int size, string what)
    {
        if (position < 0 || position + size > _buffer.Length)
        {
            throw Fail(position, $"{what}: needs {size} bytes at metadata position {position} but the metadata has {_buffer.Length}");
        }
    }

    private InvalidArrowException Fail(long position, string message) => InvalidArrowException.At(streamOffset + position, message);
}
