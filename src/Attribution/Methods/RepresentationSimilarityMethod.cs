using System.Numerics.Tensors;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Representation similarity, a baseline for language models (DATE-LM's "RepSim"): the score of a training document for
/// a query is the cosine between their mean final hidden states under θ* (<see cref="GptModel.MeanHiddenStates"/>:
/// the residual stream after the final LayerNorm, averaged over each sequence's positions). Scores lie in [−1, 1];
/// larger is read as more helpful. Source scores are the sums over each source's documents.
/// </summary>
public sealed class RepresentationSimilarityMethod : IAttributionMethod
{
    private GptModel? _model;
    private AttributionProblem? _problem;
    private float[] _documents = [];
    private int _width;

    /// <inheritdoc />
    public string Name => "repsim";

    /// <inheritdoc />
    public string Describe() => "cosine of mean final hidden states (after ln_f), θ*";

    /// <inheritdoc />
    public long StateBytes => _documents.Length * 4L;

    /// <inheritdoc />
    public void Precompute(AttributionProblem problem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        _model = problem.CreateModel() as GptModel
            ?? throw new ArgumentException($"repsim compares a transformer's hidden states; the model {problem.Architecture} is not a GPT.", nameof(problem));
        _width = _model.Gpt.Config.DModel;
        _documents = Normalised(_model, problem.Training, _width);
        _problem = problem;
    }

    /// <inheritdoc />
    public ScoreMatrix Score(QueryBatch queries, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        var problem = _problem ?? throw new InvalidOperationException("repsim: call Precompute first.");
        problem.CheckQueries(queries);
        var q = Normalised(_model!, queries.Batch, _width);
        int n = problem.Count, count = queries.Count;
        var scores = new float[(long)count * n];
        for (int r = 0; r < count; r++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var query = q.AsSpan(r * _width, _width);
            for (int i = 0; i < n; i++)
            {
                scores[((long)r * n) + i] = TensorPrimitives.Dot(query, _documents.AsSpan(i * _width, _width));
            }
        }

        return new ScoreMatrix(scores, count, n, problem.SourceIds, problem.SourceCount);
    }

    // Unit-length mean hidden states, one row per sequence (a zero vector stays zero: cosine 0 with everything).
    private static float[] Normalised(GptModel model, in ModelBatch batch, int width)
    {
        var means = new float[(long)batch.Count * width];
        model.MeanHiddenStates(batch, means);
        for (int i = 0; i < batch.Count; i++)
        {
            var row = means.AsSpan(i * width, width);
            float norm = TensorPrimitives.Norm(row);
            if (norm > 0)
            {
                TensorPrimitives.Divide(row, norm, row);
            }
        }

        return means;
    }
}
