using Attribution.Engine.Models;

namespace Attribution.Engine.Tests;

public class GptHiddenStatesTests
{
    private static Gpt Model() => new(new GptConfig(VocabSize: 11, Context: 8, DModel: 8, Heads: 2, Layers: 1), seed: 3);

    [Fact]
    public void Hidden_states_are_the_tied_heads_input()
    {
        var gpt = Model();
        int[] inputs = [1, 4, 2, 9, 0];
        var hidden = gpt.HiddenStates(inputs, 1, inputs.Length);
        var logits = gpt.Logits(inputs, 1, inputs.Length);
        var wte = gpt.Parameters[0].Data;
        for (int p = 0; p < inputs.Length; p++)
        {
            for (int v = 0; v < 11; v++)
            {
                double dot = 0;
                for (int k = 0; k < 8; k++)
                {
                    dot += hidden[(p * 8) + k] * wte[(v * 8) + k];
                }

                Assert.Equal(logits[(p * 11) + v], dot, 4);
            }
        }
    }

    [Fact]
    public void Logits_into_a_destination_are_the_graph_forwards_bits_and_a_wrong_length_is_refused()
    {
        var gpt = Model();
        int[] inputs = [1, 4, 2, 9, 0, 7, 3, 3];
        var graph = new Autograd.Graph(recordBackward: false);
        var expected = gpt.Forward(graph, inputs, 2, 4).Data;
        var destination = new float[2 * 4 * 11];
        gpt.Logits(inputs, 2, 4, destination);
        Assert.Equal(expected, destination);
        Assert.Equal(expected, gpt.Logits(inputs, 2, 4));
        var ex = Assert.Throws<ArgumentException>(() => gpt.Logits(inputs, 2, 4, new float[10]));
        Assert.Contains("needs 88", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mean_hidden_states_average_a_rows_positions_up_to_its_last_target_and_ignore_padding()
    {
        var gpt = Model();
        var model = new GptModel(gpt);
        // Row 0: a query (prompt targets ignored) of 4 positions, then 2 padding positions; row 1: no target at all.
        int[] tokens = [1, 4, 2, 9, 0, 0, 3, 3, 3, 3, 3, 3];
        int[] targets = [-1, -1, 2, 9, -1, -1, -1, -1, -1, -1, -1, -1];
        var batch = ModelBatch.Sequences(tokens, targets, 2, 6);
        var mean = new float[2 * 8];
        model.MeanHiddenStates(batch, mean);
        var hidden = gpt.HiddenStates([1, 4, 2, 9], 1, 4);
        for (int k = 0; k < 8; k++)
        {
            Assert.Equal((hidden[k] + hidden[8 + k] + hidden[16 + k] + hidden[24 + k]) / 4, mean[k], 5);
            Assert.Equal(0f, mean[8 + k]);
        }
    }
}
