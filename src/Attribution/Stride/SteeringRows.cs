using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Stride;

/// <summary>
/// The frozen model's readout that STRIDE's operators act on, from one forward pass: one row per scored position (a
/// classifier example; a language model's position with a next-token target, padding and −1 targets left out), with its
/// logits, its hidden activation at the operators' layer, its target, and the unit (example or document) it belongs to.
/// A unit's rows are contiguous: <c>Start[i] .. Start[i + 1]</c>.
/// </summary>
internal sealed class SteeringRows
{
    private SteeringRows(float[] logits, float[] hidden, int[] targets, int[] unit, int[] start, int classes, int width)
    {
        Logits = logits;
        Hidden = hidden;
        Targets = targets;
        Unit = unit;
        Start = start;
        Classes = classes;
        Width = width;
    }

    /// <summary>Logits [Count, Classes].</summary>
    public float[] Logits { get; }

    /// <summary>Hidden activations [Count, Width].</summary>
    public float[] Hidden { get; }

    /// <summary>Target class / next token per row.</summary>
    public int[] Targets { get; }

    /// <summary>Unit (training example, document or query) of every row.</summary>
    public int[] Unit { get; }

    /// <summary>Row offsets per unit, [Units + 1].</summary>
    public int[] Start { get; }

    /// <summary>Logits per row.</summary>
    public int Classes { get; }

    /// <summary>Hidden width.</summary>
    public int Width { get; }

    /// <summary>Number of rows.</summary>
    public int Count => Targets.Length;

    /// <summary>Number of units.</summary>
    public int Units => Start.Length - 1;

    /// <summary>Reads <paramref name="batch"/> through <paramref name="model"/> at hidden layer <paramref name="layer"/>, <paramref name="chunk"/> units per forward call.</summary>
    public static SteeringRows Read(IHiddenStateModel model, in ModelBatch batch, int layer, int chunk = 32)
    {
        ArgumentNullException.ThrowIfNull(model);
        int c = model.Classes, w = model.HiddenWidth(layer), t = batch.SequenceLength, n = batch.Count;
        var logits = new List<float>();
        var hidden = new List<float>();
        var targets = new List<int>();
        var unit = new List<int>();
        var start = new int[n + 1];
        var o = new float[(long)chunk * t * c];
        var h = new float[(long)chunk * t * w];
        int inputWidth = batch.Inputs is { } x && n > 0 ? x.Length / n : 0;
        for (int first = 0; first < n; first += chunk)
        {
            int b = Math.Min(chunk, n - first);
            var part = batch.Tokens is { } tokens
                ? ModelBatch.Sequences(tokens.AsSpan(first * t, b * t).ToArray(), batch.Labels.AsSpan(first * t, b * t).ToArray(), b, t)
                : ModelBatch.Classification(batch.Inputs!.AsSpan(first * inputWidth, b * inputWidth).ToArray(), batch.Labels.AsSpan(first, b).ToArray());
            model.LogitsAndHidden(part, layer, o.AsSpan(0, b * t * c), h.AsSpan(0, b * t * w));
            for (int i = 0; i < b; i++)
            {
                start[first + i] = targets.Count;
                for (int p = 0; p < t; p++)
                {
                    int target = part.Labels[i * t + p];
                    if (target == -1)
                    {
                        continue;
                    }

                    if ((uint)target >= (uint)c)
                    {
                        throw new ArgumentException($"row {first + i}, position {p}: target {target} is outside the model's {c} classes.");
                    }

                    int row = i * t + p;
                    logits.AddRange(o.AsSpan(row * c, c));
                    hidden.AddRange(h.AsSpan(row * w, w));
                    targets.Add(target);
                    unit.Add(first + i);
                }
            }
        }

        start[n] = targets.Count;
        return new SteeringRows([.. logits], [.. hidden], [.. targets], [.. unit], start, c, w);
    }
}

/// <summary>
/// The frozen model's readout that residual-form operators need, from one forward pass: every position of every unit
/// (the tail's attention reads the whole sequence, so prompt and padding positions are kept), with the hidden layer's
/// output, the base logits and the next-token target (−1 = not scored). Row-major [Units, Length, ·].
/// </summary>
internal sealed class ResidualRows
{
    private ResidualRows(float[] logits, float[] hidden, int[] labels, int units, int length, int classes, int width)
    {
        (Logits, Hidden, Labels, Units, Length, Classes, Width) = (logits, hidden, labels, units, length, classes, width);
    }

    /// <summary>Base logits [Units·Length, Classes].</summary>
    public float[] Logits { get; }

    /// <summary>Hidden layer output [Units·Length, Width].</summary>
    public float[] Hidden { get; }

    /// <summary>Next-token target per position, −1 where nothing is scored.</summary>
    public int[] Labels { get; }

    /// <summary>Number of units (documents, queries).</summary>
    public int Units { get; }

    /// <summary>Positions per unit.</summary>
    public int Length { get; }

    /// <summary>Logits per position.</summary>
    public int Classes { get; }

    /// <summary>Hidden width.</summary>
    public int Width { get; }

    /// <summary>Scored positions of unit <paramref name="unit"/>.</summary>
    public int Targets(int unit)
    {
        int count = 0;
        foreach (int label in Labels.AsSpan(unit * Length, Length))
        {
            count += label == -1 ? 0 : 1;
        }

        return count;
    }

    /// <summary>z·Bᵀ for every position, [Units·Length, rank].</summary>
    public float[] Project(float[] basis, int rank)
    {
        var u = new float[(long)Units * Length * rank];
        if (u.Length > 0)
        {
            Blas.Gemm(false, true, Units * Length, rank, Width, 1f, Hidden, basis, 0f, u);
        }

        return u;
    }

    /// <summary>Reads a token batch through <paramref name="model"/> at hidden layer <paramref name="layer"/>, <paramref name="chunk"/> units per forward call.</summary>
    public static ResidualRows Read(IHiddenStateModel model, in ModelBatch batch, int layer, int chunk = 32)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (batch.Tokens is not { } tokens)
        {
            throw new ArgumentException($"form=residual steers a sequence model's residual stream; {model.Architecture} got a batch of feature rows.");
        }

        int c = model.Classes, w = model.HiddenWidth(layer), t = batch.SequenceLength, n = batch.Count;
        var logits = new float[(long)n * t * c];
        var hidden = new float[(long)n * t * w];
        var labels = batch.Labels.ToArray();
        foreach (int target in labels)
        {
            if (target != -1 && (uint)target >= (uint)c)
            {
                throw new ArgumentException($"target {target} is outside the model's {c} classes.");
            }
        }

        for (int first = 0; first < n; first += chunk)
        {
            int b = Math.Min(chunk, n - first);
            var part = ModelBatch.Sequences(tokens.AsSpan(first * t, b * t).ToArray(), labels.AsSpan(first * t, b * t).ToArray(), b, t);
            model.LogitsAndHidden(part, layer, logits.AsSpan(first * t * c, b * t * c), hidden.AsSpan(first * t * w, b * t * w));
        }

        return new ResidualRows(logits, hidden, labels, n, t, c, w);
    }
}
