using System.CommandLine;
using System.Globalization;
using Attribution.Attribution;
using Attribution.Attribution.Evaluation;
using Attribution.Attribution.Methods;
using Attribution.Cli.Evaluation;
using Attribution.Engine;
using Attribution.Engine.Data;
using Attribution.Engine.Models;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>bench simdiag</c>: where a forward-only propagation departs from a reference propagation (issue 15: why the
/// spectral form falls from the tangent's LDS at 1,000 examples to far below it at 5,000). For each N it selects the
/// eval's data (same selection seed), trains the eval's full-data model (the benchmark recipe, seed 1000·seed: the
/// model the eval caches), and for a seeded slice of training examples simulates the reference
/// (<c>forward-only:propagation=tangent</c> by default) and every variant at each horizon of <c>--horizons</c>. Per
/// variant and horizon: the mean cosine of the response vectors against the reference's, the median norm ratio, and
/// the mean over test queries of the Spearman correlation between the two methods' scores of the slice (scores
/// <c>∇margin_q(θ*) · r_i</c>, before the readout's compression: what LDS ranks), plus, for a spectral variant, the
/// fraction of the reference responses' and of the gradients' energy inside the operator's span.
/// </summary>
internal static class SimDiagBench
{
    public static Command Create()
    {
        var sizes = new Option<string>("--sizes") { Description = "Training-set sizes N (the eval's --train), comma separated.", DefaultValueFactory = _ => "1000,5000" };
        var test = new Option<int>("--test") { Description = "Test queries (the eval's --test selection; all are used as queries).", DefaultValueFactory = _ => 100 };
        var epochs = new Option<int>("--epochs") { Description = "Epochs of the full-data model (the eval's --epochs).", DefaultValueFactory = _ => 20 };
        var seed = new Option<ulong>("--seed") { Description = "The eval's --seed (data selection and model seed).", DefaultValueFactory = _ => 0UL };
        var slice = new Option<int>("--slice") { Description = "Training examples simulated (a seeded slice).", DefaultValueFactory = _ => 100 };
        var horizons = new Option<string>("--horizons") { Description = "Horizons K at which every method is simulated and compared, comma separated.", DefaultValueFactory = _ => "1,10,50" };
        var reference = new Option<string>("--reference") { Description = "Reference method spec.", DefaultValueFactory = _ => "forward-only:propagation=tangent" };
        var methods = new Option<string[]>("--method") { Description = "Variant method specs (forward-only options), repeatable.", AllowMultipleArgumentsPerToken = true };
        var command = new Command("simdiag", "Forward-only propagation variants against a reference on the eval's data and model: response cosine, norm ratio, score Spearman per query and operator-captured energy, by horizon.");
        foreach (var o in new Option[] { sizes, test, epochs, seed, slice, horizons, reference, methods })
        {
            command.Options.Add(o);
        }

        command.SetAction((parse, ct) => Task.FromResult(Run(parse.GetValue(sizes)!, parse.GetValue(test), parse.GetValue(epochs), parse.GetValue(seed), parse.GetValue(slice),
            parse.GetValue(horizons)!, parse.GetValue(reference)!, parse.GetValue(methods) is { Length: > 0 } m ? m : ["forward-only:propagation=spectral"], ct)));
        return command;
    }

    private static int Run(string sizesText, int nTest, int epochs, ulong seed, int slice, string horizonsText, string referenceText, string[] variantTexts, CancellationToken ct)
    {
        int[] sizes, horizons;
        ForwardOnlyOptions referenceOptions;
        List<(string Text, ForwardOnlyOptions Options)> variants;
        try
        {
            sizes = [.. sizesText.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s.Trim(), CultureInfo.InvariantCulture))];
            horizons = [.. horizonsText.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s.Trim(), CultureInfo.InvariantCulture))];
            referenceOptions = Options(referenceText);
            variants = [.. variantTexts.Select(t => (t, Options(t)))];
        }
        catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
        {
            Console.Error.WriteLine($"bench simdiag: {e.Message}");
            return 2;
        }

        if (sizes.Length == 0 || sizes.Any(n => n < 10) || horizons.Length == 0 || horizons.Any(k => k < 1) || epochs < 1 || slice < 2 || nTest < 1)
        {
            Console.Error.WriteLine("bench simdiag: --sizes need at least 10, --horizons and --epochs at least 1, --slice at least 2, --test at least 1.");
            return 2;
        }

        var raw = FashionMnist.Load();
        var testSet = raw.Test.Select(SubsetSelector.Select(raw.Test.Count, nTest, seed + 1), Normalization.FashionMnist);
        Console.WriteLine($"simdiag: FashionMNIST MLP 784-128-64-10, eval selection seed {seed}, {epochs} epochs, {nTest} queries, slice {slice}, reference {referenceText}");
        Console.WriteLine("| N | K | variant | eta (variant / reference) | response cosine (mean, 10th pct) | norm ratio (median) | score Spearman per query (mean) | reference energy in operator span | gradient energy in span |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        foreach (int n in sizes)
        {
            var trainSet = raw.Train.Select(SubsetSelector.Select(raw.Train.Count, n, seed), Normalization.FashionMnist);
            int[] widths = [trainSet.Features, 128, 64, FashionMnist.Classes];
            var recipe = BenchmarkRecipe.Standard(epochs);
            var theta = recipe.Trainer(widths, trainSet)([.. Enumerable.Range(0, n)], (int)(seed * 1000) & 0x7FFF_FFFF, ct);
            var layout = new MlpLayout(widths);
            var optimizer = Engine.Training.TrainingRecipe.DefaultMlp([], [], epochs).Optimizer;
            var problem = new AttributionProblem(layout, theta, trainSet.Inputs, trainSet.Labels, new int[n], 1, optimizer.WeightDecay)
            {
                TrainingLearningRate = optimizer.LearningRate,
            };
            int p = layout.ParameterCount;
            int[] rows = n > slice ? [.. new Rng(seed ^ 0xD1A6UL ^ (ulong)n).Permutation(n).Take(slice).Order()] : [.. Enumerable.Range(0, n)];
            var queries = QueryGradients(layout, theta, testSet);
            var gradients = new float[rows.Length * p];
            IModel mlp = new Mlp(layout);
            mlp.LoadFrom(theta);
            for (int u = 0; u < rows.Length; u++)
            {
                mlp.OutputGradient(ForwardOnlySimulator.Rows(problem.Training, [rows[u]]), ModelOutput.Loss, default, gradients.AsSpan(u * p, p), default);
            }

            foreach (int k in horizons)
            {
                var (reference, referenceEta, _) = Simulate(problem, referenceOptions with { Horizon = k }, rows, ct);
                var referenceScores = Scores(queries, nTest, reference, rows.Length, p);
                foreach (var (text, options) in variants)
                {
                    var (responses, eta, op) = Simulate(problem, options with { Horizon = k }, rows, ct);
                    var scores = Scores(queries, nTest, responses, rows.Length, p);
                    var cosines = new double[rows.Length];
                    var ratios = new double[rows.Length];
                    for (int u = 0; u < rows.Length; u++)
                    {
                        var a = responses.AsSpan(u * p, p);
                        var b = reference.AsSpan(u * p, p);
                        cosines[u] = TensorPrimitivesCosine(a, b);
                        ratios[u] = Norm(a) / Math.Max(Norm(b), 1e-30);
                    }

                    double spearman = 0;
                    for (int q = 0; q < nTest; q++)
                    {
                        spearman += Correlation.Spearman(scores.AsSpan(q * rows.Length, rows.Length), referenceScores.AsSpan(q * rows.Length, rows.Length));
                    }

                    string energy = op is null ? "" : $"{Captured(op, reference, rows.Length):F3}";
                    string gradientEnergy = op is null ? "" : $"{Captured(op, gradients, rows.Length):F3}";
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"| {n} | {k} | {text} | {eta:G4} / {referenceEta:G4} | {cosines.Average():F3}, {Percentile(cosines, 0.1):F3} | {Percentile(ratios, 0.5):F3} | {spearman / nTest:F3} | {energy} | {gradientEnergy} |"));
                }
            }
        }

        return 0;
    }

    private static ForwardOnlyOptions Options(string text)
    {
        var (name, options) = MethodFactory.ParseSpec(text);
        return MethodFactory.Create(name, options) is ForwardOnlyMethod method ? method.Options : throw new ArgumentException($"'{text}' is not a forward-only method.");
    }

    private static (float[] Responses, float Eta, TrajectoryOperator? Operator) Simulate(AttributionProblem problem, ForwardOnlyOptions options, int[] rows, CancellationToken ct)
    {
        int p = problem.ParameterCount;
        var simulator = new ForwardOnlySimulator(problem, options, ct);
        var responses = new float[rows.Length * p];
        simulator.Simulate(rows, (u, r) => r.CopyTo(responses.AsSpan(u * p, p)), ct);
        return (responses, simulator.StepSize, simulator.Operator);
    }

    // Each query's margin gradient at θ*, [queries, p].
    private static float[] QueryGradients(MlpLayout layout, float[] theta, ClassificationSet test)
    {
        int p = layout.ParameterCount;
        IModel mlp = new Mlp(layout);
        mlp.LoadFrom(theta);
        var g = new float[test.Count * p];
        var batch = ModelBatch.Classification(test.Inputs, test.Labels);
        for (int q = 0; q < test.Count; q++)
        {
            mlp.OutputGradient(ForwardOnlySimulator.Rows(batch, [q]), ModelOutput.Margin, default, g.AsSpan(q * p, p), default);
        }

        return g;
    }

    // scores[q, u] = ∇margin_q · r_u.
    private static double[] Scores(float[] queries, int nq, float[] responses, int units, int p)
    {
        var s = new float[nq * units];
        Blas.Gemm(false, true, nq, units, p, 1f, queries, responses, 0f, s);
        return [.. s.Select(v => (double)v)];
    }

    // Σ‖V r‖² / Σ‖r‖² over the rows.
    private static double Captured(TrajectoryOperator op, float[] rows, int count)
    {
        int p = op.ParameterCount, r = op.Rank;
        var c = new float[count * r];
        Blas.Gemm(false, true, count, r, p, 1f, rows, op.Vectors, 0f, c);
        double inside = 0, total = 0;
        foreach (var v in c)
        {
            inside += (double)v * v;
        }

        foreach (var v in rows.AsSpan(0, count * p))
        {
            total += (double)v * v;
        }

        return inside / Math.Max(total, 1e-30);
    }

    private static double Norm(ReadOnlySpan<float> a) => Math.Sqrt(System.Numerics.Tensors.TensorPrimitives.Dot<float>(a, a));

    private static double TensorPrimitivesCosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b) =>
        System.Numerics.Tensors.TensorPrimitives.Dot<float>(a, b) / Math.Max(Norm(a) * Norm(b), 1e-30);

    private static double Percentile(double[] values, double fraction)
    {
        var sorted = values.Order().ToArray();
        return sorted[(int)Math.Clamp(Math.Round(fraction * (sorted.Length - 1)), 0, sorted.Length - 1)];
    }
}
