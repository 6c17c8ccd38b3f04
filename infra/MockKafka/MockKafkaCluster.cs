using System.Runtime.InteropServices;
using System.Text;
using Attribution.Transport;
using Attribution.Transport.Kafka;

namespace Attribution.MockKafka;

/// <summary>Kafka protocol API keys used with <see cref="MockKafkaCluster.PushRequestErrors"/>.</summary>
public enum KafkaApiKey : short
{
    /// <summary>Produce requests.</summary>
    Produce = 0,
    /// <summary>Fetch requests.</summary>
    Fetch = 1,
    /// <summary>ListOffsets requests.</summary>
    ListOffsets = 2,
    /// <summary>Metadata requests.</summary>
    Metadata = 3,
    /// <summary>OffsetCommit requests.</summary>
    OffsetCommit = 8,
    /// <summary>OffsetFetch requests.</summary>
    OffsetFetch = 9,
    /// <summary>FindCoordinator requests.</summary>
    FindCoordinator = 10,
    /// <summary>JoinGroup requests.</summary>
    JoinGroup = 11,
    /// <summary>Heartbeat requests.</summary>
    Heartbeat = 12,
}

/// <summary>
/// A librdkafka mock Kafka cluster: <c>brokerCount</c> brokers listening on loopback TCP ports inside this process.
/// Real Kafka clients (Confluent.Kafka, Node's kafkajs) connect to <see cref="BootstrapServers"/>. Broker ids are 1..N.
/// Topics are auto-created on first use (default partition count 4, replication factor
/// min(3, brokers)) unless created with <see cref="CreateTopic"/>. Not thread-safe against concurrent
/// <see cref="Dispose"/>; the control methods themselves may be called from any thread.
/// </summary>
public sealed class MockKafkaCluster : IDisposable
{
    private static readonly UIntPtr ErrStrSize = (UIntPtr)512;
    private IntPtr _handle;
    private IntPtr _cluster;

    /// <summary>Starts a mock cluster with <paramref name="brokerCount"/> brokers (1..16).</summary>
    /// <exception cref="MockKafkaException">librdkafka could not be loaded or the cluster could not start.</exception>
    public MockKafkaCluster(int brokerCount = 3)
    {
        if (brokerCount is < 1 or > 16)
        {
            throw new ArgumentOutOfRangeException(nameof(brokerCount), brokerCount, "A mock cluster needs 1 to 16 brokers.");
        }

        BrokerCount = brokerCount;
        var err = new byte[(int)ErrStrSize];
        try
        {
            KafkaLibrary.EnsureLoaded();
        }
        catch (EventLogException e)
        {
            throw new MockKafkaException(e.Message, e);
        }

        var conf = NativeMethods.ConfNew();

        // The handle only hosts the mock cluster; keep it quiet and never let it connect anywhere.
        Set(conf, "bootstrap.servers", "", err);
        Set(conf, "log_level", "0", err);
        _handle = NativeMethods.KafkaNew(NativeMethods.RdKafkaProducer, conf, err, ErrStrSize);
        if (_handle == IntPtr.Zero)
        {
            NativeMethods.ConfDestroy(conf);
            throw new MockKafkaException($"rd_kafka_new failed: {Decode(err)}");
        }

        _cluster = NativeMethods.MockClusterNew(_handle, brokerCount);
        if (_cluster == IntPtr.Zero)
        {
            NativeMethods.KafkaDestroy(_handle);
            _handle = IntPtr.Zero;
            throw new MockKafkaException("rd_kafka_mock_cluster_new failed (no loopback ports available?).");
        }

        BootstrapServers = Marshal.PtrToStringUTF8(NativeMethods.MockClusterBootstraps(_cluster))
            ?? throw new MockKafkaException("rd_kafka_mock_cluster_bootstraps returned null.");
        // A real cluster names a controller; without one, every admin request (CreateTopics, DescribeConfigs) waits for
        // it until its timeout. With broker 1 as controller they fail at once: the mock implements neither request.
        NativeMethods.MockSetControllerId(_cluster, 1);
    }

    /// <summary>Comma-separated <c>host:port</c> list of the brokers, for <c>bootstrap.servers</c>.</summary>
    public string BootstrapServers { get; }

    /// <summary>Number of brokers; their ids are 1..<see cref="BrokerCount"/>.</summary>
    public int BrokerCount { get; }

    /// <summary>Creates a topic explicitly (otherwise topics are auto-created on first use).</summary>
    public void CreateTopic(string topic, int partitions, int replicationFactor)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(topic);
        Check(NativeMethods.MockTopicCreate(Cluster, topic, partitions, replicationFactor), $"create topic '{topic}'");
    }

    /// <summary>Sets the controller reported in metadata (-1: none, so admin requests wait for one until they time out).</summary>
    public void SetControllerId(int brokerId) => NativeMethods.MockSetControllerId(Cluster, brokerId == -1 ? -1 : CheckBroker(brokerId));

    /// <summary>Takes broker <paramref name="brokerId"/> down: its connections are closed and new ones refused.</summary>
    public void SetBrokerDown(int brokerId) => Check(NativeMethods.MockBrokerSetDown(Cluster, CheckBroker(brokerId)), $"set broker {brokerId} down");

    /// <summary>Brings broker <paramref name="brokerId"/> back up.</summary>
    public void SetBrokerUp(int brokerId) => Check(NativeMethods.MockBrokerSetUp(Cluster, CheckBroker(brokerId)), $"set broker {brokerId} up");

    /// <summary>Adds <paramref name="rttMs"/> milliseconds of round-trip delay to every response of a broker.</summary>
    public void SetBrokerRtt(int brokerId, int rttMs) => Check(NativeMethods.MockBrokerSetRtt(Cluster, CheckBroker(brokerId), rttMs), $"set broker {brokerId} rtt");

    /// <summary>Moves the leadership of a partition to another broker (clients must re-discover it).</summary>
    public void SetPartitionLeader(string topic, int partition, int brokerId) =>
        Check(NativeMethods.MockPartitionSetLeader(Cluster, topic, partition, CheckBroker(brokerId)), $"move leader of {topic}[{partition}]");

    /// <summary>
    /// Makes the next <c>errors.Length</c> requests of type <paramref name="apiKey"/> (to any broker) fail with the given
    /// Kafka error codes, in order (e.g. 7 = REQUEST_TIMED_OUT, 6 = NOT_LEADER_FOR_PARTITION).
    /// </summary>
    public void PushRequestErrors(KafkaApiKey apiKey, params int[] errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (errors.Length == 0)
        {
            return;
        }

        NativeMethods.MockPushRequestErrorsArray(Cluster, (short)apiKey, (UIntPtr)errors.Length, errors);
    }

    /// <summary>Removes any pushed errors for <paramref name="apiKey"/> that have not fired yet.</summary>
    public void ClearRequestErrors(KafkaApiKey apiKey) => NativeMethods.MockClearRequestErrors(Cluster, (short)apiKey);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_cluster != IntPtr.Zero)
        {
            NativeMethods.MockClusterDestroy(_cluster);
            _cluster = IntPtr.Zero;
        }

        if (_handle != IntPtr.Zero)
        {
            NativeMethods.KafkaDestroy(_handle);
            _handle = IntPtr.Zero;
        }
    }

    private IntPtr Cluster => _cluster != IntPtr.Zero ? _cluster : throw new ObjectDisposedException(nameof(MockKafkaCluster));

    private int CheckBroker(int brokerId) => brokerId >= 1 && brokerId <= BrokerCount
        ? brokerId
        : throw new ArgumentOutOfRangeException(nameof(brokerId), brokerId, $"Broker ids of this cluster are 1..{BrokerCount}.");

    private static void Set(IntPtr conf, string name, string value, byte[] err)
    {
        if (NativeMethods.ConfSet(conf, name, value, err, ErrStrSize) != NativeMethods.ConfOk)
        {
            throw new MockKafkaException($"rd_kafka_conf_set({name}) failed: {Decode(err)}");
        }
    }

    private static void Check(int errorCode, string what)
    {
        if (errorCode != 0)
        {
            throw new MockKafkaException($"Mock cluster could not {what}: {Marshal.PtrToStringUTF8(NativeMethods.ErrorToString(errorCode))} (error {errorCode}).");
        }
    }

    private static string Decode(byte[] err)
    {
        var end = Array.IndexOf(err, (byte)0);
        return Encoding.UTF8.GetString(err, 0, end < 0 ? err.Length : end);
    }
}

/// <summary>The mock cluster could not be started or controlled.</summary>
public sealed class MockKafkaException : Exception
{
    /// <summary>Creates the exception.</summary>
    public MockKafkaException(string message) : base(message) { }

    /// <summary>Creates the exception with its cause.</summary>
    public MockKafkaException(string message, Exception inner) : base(message, inner) { }

    /// <summary>Creates the exception.</summary>
    public MockKafkaException() { }
}
