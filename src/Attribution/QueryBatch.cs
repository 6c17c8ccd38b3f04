using Attribution.Engine.Models;

namespace Attribution.Attribution;

/// <summary>Queries to attribute: inputs [q, d] row-major and the label whose margin is measured (the true or the predicted class).</summary>
public sealed class QueryBatch
{
    /// <summary>Creates a batch after checking that inputs hold exactly <c>labels.Length × inputWidth</c> finite values.</summary>
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

        Inputs = inputs;
        Labels = labels;
        InputWidth = inputWidth;
    }

    /// <summary>Inputs, row-major [q, d].</summary>
    public float[] Inputs { get; }

    /// <summary>Label per query whose margin is attributed.</summary>
    public int[] Labels { get; }

    /// <summary>Feature width d.</summary>
    public int InputWidth { get; }

    /// <summary>Number of queries q.</summary>
    public int Count => Labels.Length;

    /// <summary>The queries as a model batch.</summary>
    public ModelBatch AsModelBatch() => ModelBatch.Classification(Inputs, Labels);
}
