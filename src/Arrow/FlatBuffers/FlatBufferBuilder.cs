using System.Buffers.Binary;
using System.Text;

namespace Attribution.Arrow.FlatBuffers;

/// <summary>
/// A minimal back-to-front FlatBuffers builder (the algorithm of the official builders): objects
/// are written from the end of the buffer towards the start, so every uoffset points forward,
/// and each scalar is aligned relative to the end. <see cref="Finish"/> pads the whole buffer to
/// the largest alignment used, which makes end-relative alignment equal start-relative alignment.
/// Offsets handed out are "distance from the end" and stay valid while the buffer grows.
/// Reused across messages via <see cref="Clear"/> to avoid allocation per event.
/// </summary>
internal sealed class FlatBufferBuilder
{
    private byte[] _buffer;
    private int _space;
    private int _minAlign = 1;
    private readonly int[] _vtable = new int[16];
    private int _vtableSlots;
    private int _objectStart;

    public FlatBufferBuilder(int initialSize = 1024)
    {
        _buffer = new byte[initialSize];
        _space = initialSize;
    }

    /// <summary>Bytes written so far (also the offset of the most recent object).</summary>
    public int Offset => _buffer.Length - _space;

    /// <summary>The finished flatbuffer.</summary>
    public ReadOnlySpan<byte> WrittenSpan => _buffer.AsSpan(_space);

    public void Clear()
    {
        _space = _buffer.Length;
        _minAlign = 1;
        _vtableSlots = 0;
    }

    /// <summary>Pads so that after writing <paramref name="additional"/> bytes, a <paramref name="size"/>-byte value is aligned.</summary>
    public void Prep(int size, int additional)
    {
        if (size > _minAlign)
        {
            _minAlign = size;
        }
        var alignSize = (~(Offset + additional) + 1) & (size - 1);
        while (_space < alignSize + size + additional)
        {
            Grow();
        }
        for (var i = 0; i < alignSize; i++)
        {
            _buffer[--_space] = 0;
        }
    }

    public void PutByte(byte value) => _buffer[--_space] = value;

    public void PutInt16(short value)
    {
        _space -= 2;
        BinaryPrimitives.WriteInt16LittleEndian(_buffer.AsSpan(_space), value);
    }

    public void PutInt32(int value)
    {
        _space -= 4;
        BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_space), value);
    }

    public void PutInt64(long value)
    {
        _space -= 8;
        BinaryPrimitives.WriteInt64LittleEndian(_buffer.AsSpan(_space), value);
    }

    /// <summary>Writes a uoffset to an object written earlier.</summary>
    public void AddOffset(int target)
    {
        Prep(4, 0);
        PutInt32(Offset - target + 4);
    }

    public int CreateString(string value)
    {
        var length = Encoding.UTF8.GetByteCount(value);
        Prep(4, length + 1);
        PutByte(0);
        _space -= length;
        Encoding.UTF8.GetBytes(value, _buffer.AsSpan(_space, length));
        PutInt32(length);
        return Offset;
    }

    /// <summary>Begins a vector; then write the elements last to first and call <see cref="EndVector"/>.</summary>
    public void StartVector(int elementSize, int count, int alignment)
    {
        Prep(4, elementSize * count);
        Prep(alignment, elementSize * count);
    }

    public int EndVector(int count)
    {
        PutInt32(count);
        return Offset;
    }

    /// <summary>A vector of uoffsets to objects written earlier.</summary>
    public int CreateOffsetVector(ReadOnlySpan<int> targets)
    {
        StartVector(4, targets.Length, 4);
        for (var i = targets.Length - 1; i >= 0; i--)
        {
            AddOffset(targets[i]);
        }
        return EndVector(targets.Length);
    }

    /// <summary>A vector of 16-byte {int64, int64} structs (FieldNode, Buffer), first element 8-aligned.</summary>
    public int CreateStructVector(ReadOnlySpan<(long First, long Second)> items)
    {
        StartVector(16, items.Length, 8);
        for (var i = items.Length - 1; i >= 0; i--)
        {
            Prep(8, 16);
            PutInt64(items[i].Second);
            PutInt64(items[i].First);
        }
        return EndVector(items.Length);
    }

    public void StartTable(int slots)
    {
        if (slots > _vtable.Length)
        {
            throw new InvalidOperationException("Too many table slots.");
        }
        Array.Clear(_vtable, 0, slots);
        _vtableSlots = slots;
        _objectStart = Offset;
    }

    public void AddByte(int slot, byte value)
    {
        Prep(1, 0);
        PutByte(value);
        _vtable[slot] = Offset;
    }

    public void AddBool(int slot, bool value) => AddByte(slot, value ? (byte)1 : (byte)0);

    public void AddInt16(int slot, short value)
    {
        Prep(2, 0);
        PutInt16(value);
        _vtable[slot] = Offset;
    }

    public void AddInt32(int slot, int value)
    {
        Prep(4, 0);
        PutInt32(value);
        _vtable[slot] = Offset;
    }

    public void AddInt64(int slot, long value)
    {
        Prep(8, 0);
        PutInt64(value);
        _vtable[slot] = Offset;
    }

    public void AddOffset(int slot, int target)
    {
        AddOffset(target);
        _vtable[slot] = Offset;
    }

    public int EndTable()
    {
        Prep(4, 0);
        PutInt32(0); // soffset placeholder
        var tableOffset = Offset;
        var slots = _vtableSlots;
        while (slots > 0 && _vtable[slots - 1] == 0)
        {
            slots--;
        }
        for (var i = slots - 1; i >= 0; i--)
        {
            PutInt16((short)(_vtable[i] != 0 ? tableOffset - _vtable[i] : 0));
        }
        PutInt16((short)(tableOffset - _objectStart));
        PutInt16((short)((slots + 2) * 2));
        // The vtable sits just before the table: soffset = table position - vtable position.
        BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(_buffer.Length - tableOffset), Offset - tableOffset);
        return tableOffset;
    }

    public void Finish(int root)
    {
        Prep(_minAlign, 4);
        AddOffset(root);
    }

    private void Grow()
    {
        var old = _buffer;
        var size = checked(old.Length * 2);
        var bigger = new byte[size];
        old.AsSpan().CopyTo(bigger.AsSpan(size - old.Length));
        _space += size - old.Length;
        _buffer = bigger;
    }
}
