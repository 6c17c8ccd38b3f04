using Attribution.Contracts;

namespace Attribution.Simulator;

/// <summary>
/// Which units (examples and sources) of a probe set this Simulator instance simulates, when one checkpoint's probe set
/// is spread over <see cref="Instances"/> instances: a unit belongs to exactly one instance, decided by a hash of its
/// identity (subject, id) alone, so two instances can never both own a unit whatever else they see, and together they
/// own every unit. A unit's probe records the whole set's size, so a reader knows the set is complete once every
/// instance's share is on the probes topic, whichever instance wrote it.
/// </summary>
public sealed class UnitPartition
{
    /// <summary>Creates the partition of instance <paramref name="instance"/> (0-based) of <paramref name="instances"/>.</summary>
    public UnitPartition(int instance, int instances)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(instances, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(instance);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(instance, instances);
        Instance = instance;
        Instances = instances;
    }

    /// <summary>This instance's index.</summary>
    public int Instance { get; }

    /// <summary>How many instances share each probe set.</summary>
    public int Instances { get; }

    /// <summary>Whether this instance simulates the unit (<paramref name="subject"/>, <paramref name="id"/>).</summary>
    public bool Owns(ProbeSubject subject, long id) => Instances == 1 || Owner(subject, id, Instances) == Instance;

    /// <summary>The instance (of <paramref name="instances"/>) that owns the unit: a SplitMix64 hash of (subject, id), modulo.</summary>
    public static int Owner(ProbeSubject subject, long id, int instances)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(instances, 1);
        ulong z = unchecked((ulong)id + ((ulong)subject + 1) * 0x9E3779B97F4A7C15UL);
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z % (ulong)instances);
    }

    /// <inheritdoc />
    public override string ToString() => $"instance {Instance} of {Instances}";
}
