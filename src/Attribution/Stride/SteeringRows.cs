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
