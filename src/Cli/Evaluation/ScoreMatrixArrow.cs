using Apache.Arrow;
using Apache.Arrow.Types;
using Attribution.Attribution;
using Attribution.Contracts.Arrow;

namespace Attribution.Cli.Evaluation;

/// <summary>
/// A score matrix as an Arrow IPC stream in long form, one record batch per test query: columns <c>test_id</c>
/// (int32), <c>unit</c> (utf8: "example" or "source"), <c>id</c> (int32: dataset train id or source id), <c>source</c>
/// (int32) and <c>score</c> (float32). Schema metadata carries the method's configuration.
/// </summary>
internal static class ScoreMatrixArrow
{
    public static byte[] ToStream(ScoreMatrix scores, int[] trainIds, int[] sourceIds, int[] testIds, string method)
    {
        var schema = new Schema(
        [
            new Field("test_id", Int32Type.Default, nullable: false),
            new Field("unit", StringType.Default, nullable: false),
            new Field("id", Int32Type.Default, nullable: false),
            new Field("source", Int32Type.Default, nullable: false),
            new Field("score", FloatType.Default, nullable: false),
        ], new Dictionary<string, string> { ["method"] = method, ["sign"] = "positive = training on the unit helps the query (raises its margin)" });
        int n = scores.ExampleCount, m = scores.SourceCount, rows = n + m;
        var unit = new string?[rows];
        var id = new int[rows];
        var source = new int[rows];
        for (int i = 0; i < n; i++)
        {
            unit[i] = "example";
            id[i] = trainIds[i];
            source[i] = sourceIds[i];
        }

        for (int s = 0; s < m; s++)
        {
            unit[n + s] = "source";
            id[n + s] = s;
            source[n + s] = s;
        }

        var unitColumn = ArrowArrays.Utf8(unit);
        var idColumn = ArrowArrays.Int32(id);
        var sourceColumn = ArrowArrays.Int32(source);
        var batches = new List<RecordBatch>(scores.QueryCount);
        var score = new float[rows];
        for (int q = 0; q < scores.QueryCount; q++)
        {
            scores.Row(q).CopyTo(score);
            scores.SourceScores.AsSpan(q * m, m).CopyTo(score.AsSpan(n));
            var testColumn = ArrowArrays.Int32(Enumerable.Repeat(testIds[q], rows).ToArray());
            batches.Add(new RecordBatch(schema, [testColumn, unitColumn, idColumn, sourceColumn, ArrowArrays.Float32(score)], rows));
        }

        return ArrowIpc.ToBytes(schema, batches);
    }
}
