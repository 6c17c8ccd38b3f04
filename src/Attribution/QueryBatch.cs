using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>
/// Queries to attribute: a <see cref="ModelBatch"/> and the <see cref="ModelOutput"/> measured on each row. For a
/// classifier the rows are float inputs with the label whose margin is measured (the true or the predicted class); for a
/// language model they are prompt + completion token rows whose targets are the completion tokens (the prompt's are −1),
/// and the output is the completion log-likelihood (<see cref="CompletionQuery.OutputFunction"/>).
/// </summary>
public sealed class QueryBatch
{
    /// <summary>Classifier queries: checks that inputs hold exactly <c>labels.Length × inputWidth</c> finite values; the output is the margin.</summary>
    public QueryBatch(float[] inputs, int[] labels, int inputWidth)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfLessThan(inputWidth, 1);
        if (inputs.Length != (long)labels.Length * inputWidth)
        {
            throw new ArgumentException($"query inputs have {inputs.Length} values; {labels.Length} queries of width {inputWidth} need {(long)labels.Length * inputWidth}.", nameof(inputs));
        }

        for (int i = 0; i < inputs.Length; i++)
        {
            if (!float.IsFinite(inputs[i]))
            {
                throw new ArgumentException($"query {i / inputWidth} has a non-finite value at feature {i % inputWidth}.", nameof(inputs));
            }
        }

        Batch = ModelBatch.Classification(inputs, labels);
        Output = ModelOutput.Margin;
        _inputWidth = inputWidth;
    }

    /// <summary>Queries as any model batch with the output measured on each row.</summary>
    public QueryBatch(ModelBatch batch, ModelOutput output)
    {
        if (batch.Labels is null || (batch.Inputs is null && batch.Tokens is null))
        {
            throw new ArgumentException("the query batch is an empty ModelBatch.", nameof(batch));
        }

        Batch = batch;
        Output = output;
        _inputWidth = batch.Inputs is { } x && batch.Count > 0 ? x.Length / batch.Count : 0;
    }

    private readonly int _inputWidth;

    /// <summary>
    /// Language-model queries: one row per prompt + completion (<see cref="CompletionQuery.Rows"/> within
    /// <paramref name="context"/>), padded to the longest (input 0, target −1); the output is the completion log-likelihood.
    /// </summary>
    public static QueryBatch Completions(IReadOnlyList<CompletionQuery> queries, int context)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var rows = queries.Select(q => q.Rows(context)).ToArray();
        int length = Math.Max(1, rows.Length == 0 ? 1 : rows.Max(r => r.Inputs.Length));
        return new QueryBatch(AttributionProblem.PaddedRows(rows, length), ModelOutput.LogLikelihood);
    }

    /// <summary>The rows as the model takes them.</summary>
    public ModelBatch Batch { get; }

    /// <summary>The output measured on every row (the classifier margin, or a completion's log-likelihood).</summary>
    public ModelOutput Output { get; }

    /// <summary>Inputs, row-major [q, d] (classifier queries only).</summary>
    public float[] Inputs => Batch.Inputs ?? throw new InvalidOperationException("these queries are token sequences, not float inputs: use Batch.");

    /// <summary>Label per query whose margin is attributed (classifier queries only).</summary>
    public int[] Labels => Batch.Inputs is not null ? Batch.Labels : throw new InvalidOperationException("these queries are token sequences with completion targets, not labels: use Batch.");

    /// <summary>Feature width d (0 for token queries).</summary>
    public int InputWidth => _inputWidth;

    /// <summary>Number of queries q.</summary>
    public int Count => Batch.Count;

    /// <summary>The queries as a model batch (<see cref="Batch"/>).</summary>
    public ModelBatch AsModelBatch() => Batch;
}
