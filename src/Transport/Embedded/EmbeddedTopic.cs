namespace Attribution.Transport.Embedded;

/// <summary>A topic of the embedded log: its spec and partitions.</summary>
internal sealed class EmbeddedTopic
{
    public EmbeddedTopic(TopicSpec spec, int capacity)
    {
        Spec = spec;
        Partitions = new EmbeddedPartition[spec.Partitions];
        for (var i = 0; i < Partitions.Length; i++)
        {
            Partitions[i] = new EmbeddedPartition(this, i, capacity);
        }
    }

    public TopicSpec Spec { get; }

    public EmbeddedPartition[] Partitions { get; }
}
