using System.Numerics.Tensors;
using Attribution.Attribution.Kernels;
using Attribution.Engine;
using Attribution.Engine.Models;

namespace Attribution.Attribution.Methods;

/// <summary>
/// Training-time half of forward-only attribution (docs/forward-only-attribution.md §3), for any model: for each
/// training example (an image, a document) run short gradient trajectories from θ* on one shared mini-batch sequence
/// with the example's loss up-weighted by ±ε, and return the response <c>r = (θ⁺_K − θ⁻_K)/(2ε)</c> (two-trajectory)
/// or <c>(θ⁺_K − θ̄_K)/ε</c> against one shared unperturbed baseline (single-trajectory). A source's response is the
/// sum of its examples' (the product's one definition, docs/benchmarks/model-core.md), so nothing larger is simulated. The simulated objective is the training objective (mean loss plus weight
/// decay) plus the proximal damping <c>λ/2 ‖θ − θ*‖²</c>; every gradient is the model's. An MLP's examples run in blocks
/// whose parameter vectors are stacked (<see cref="MlpStack"/>: the first layer of every trajectory is one GEMM per
/// step); any other model's run one after the other through <see cref="IModel.OutputGradient"/> (2K gradients of batch
/// + example rows per example). With <see cref="ForwardPropagation.Spectral"/> the same map is applied linearised,
/// through a <see cref="TrajectoryOperator"/> built once per checkpoint: one gradient per example plus two GEMMs per block.
/// </summary>
public sealed class ForwardOnlySimulator
{
    private readonly AttributionProblem _problem;
    private readonly ForwardOnlyOptions _options;
    private readonly int[]?[] _rows;
    private readonly float[][] _batchInputs;
    private readonly int[][] _batchLabels;
    private float[]? _baseline;

    /// <summary>
    /// Draws the shared mini-batch sequence, builds the spectral operator when asked, and resolves the step size (power
    /// iteration, or the operator's top Ritz value, when not given).
    /// </summary>
    public ForwardOnlySimulator(AttributionProblem problem, ForwardOnlyOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(problem);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var propagation = options.PropagationFor(problem.HasMlpLayout || problem.Architecture.StartsWith("mlp:", StringComparison.Ordinal));
        if (options.Propagation is null && propagation != ForwardPropagation.Spectral && options.HasOperatorSettings)
        {
            throw new ArgumentException($"the operator settings configure the spectral propagator, which is not this model's default ({problem.Architecture} propagates by {propagation.ToString().ToLowerInvariant()}): add propagation=spectral or drop them.", nameof(options));
        }

        // The horizon in steps for this training set (an explicit K, or E epochs of the shared mini-batches).
        options = options with { Propagation = propagation, Horizon = options.StepsFor(problem.Count, propagation), HorizonEpochs = null };
        if (options.OperatorSegments > options.Horizon)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.OperatorSegments, $"operator-segments ({options.OperatorSegments}) cannot exceed the horizon's {options.Horizon} steps.");
        }

        _problem = problem;
        _options = options;
        var rows = _rows = BatchRows(problem.Count, options);
        if (options.Propagation == ForwardPropagation.Spectral)
        {
            // The operator's Lanczos gives h_max too: no separate power iteration over the whole training set.
            // Default: the examples the horizon's mini-batches visit (rows are drawn a permutation at a time, so the
            // first K·b of the sequence; all of them when K·b ≥ n), at most OperatorSampleCap of them.
            long visited = rows[0] is null ? problem.Count : (long)options.Horizon * rows[0]!.Length;
            int size = (int)Math.Min(options.OperatorSample == 0 ? Math.Min(visited, options.OperatorSampleCap) : options.OperatorSample, problem.Count);
            OperatorSampleSize = size;
            var batch = rows[0] is null || size == problem.Count ? problem.Training : Rows(problem.Training, [.. rows.SelectMany(r => r!).Take(size)]);
            var objective = new TrainingObjective(problem, batch);
            Operator = problem.HasMlpLayout && batch.Inputs is { } sampleInputs
                ? TrajectoryOperator.Build(ExactHvp(problem, sampleInputs, batch.Labels), problem.ParameterCount, problem.WeightDecay, options.OperatorRank, options.Seed, cancellationToken)
                : TrajectoryOperator.Build(objective, problem.Theta, problem.WeightDecay, options.OperatorRank, options.Seed, cancellationToken);
            if (options.OperatorComplementProbes > 0)
            {
                int probes = Math.Min(options.OperatorComplementProbes, batch.Count);
                var model = problem.CreateModel();
                var g = new float[(long)probes * problem.ParameterCount];
                for (int i = 0; i < probes; i++)
                {
                    model.OutputGradient(Rows(batch, [i]), ModelOutput.Loss, default, g.AsSpan(i * problem.ParameterCount, problem.ParameterCount), default);
                }

                Operator = Operator.WithGradientComplement(objective, problem.Theta, g, probes, cancellationToken);
            }
        }

        if (options.StepSize is { } eta)
        {
            StepSize = eta;
        }
        else
        {
            cancellationToken.ThrowIfCancellationRequested();
            TopEigenvalue = Operator?.TopEigenvalue ?? Math.Abs(new TrainingObjective(problem).TopEigenvalue(problem.Theta, options.PowerIterations, options.Seed));
            StepSize = (float)(1.0 / (TopEigenvalue + options.Damping));
            // The horizon's implicit damping is 1/(ηK) (forward-only-attribution.md §6); at η = 1/h_max it depends on the
            // sharpness of the particular trained minimum (h_max 5.9 vs 16.7 for two runs of the same FashionMNIST
            // recipe), which moved LDS from 0.32 to 0.15. Capping η at the training learning rate ties the simulated
            // time to training's own scale.
            if (problem.TrainingLearningRate > 0 && problem.TrainingLearningRate < StepSize)
            {
                StepSize = problem.TrainingLearningRate;
            }
        }

        if (Operator is not null && options.OperatorSegments == 1)
        {
            _batchInputs = [];
            _batchLabels = [];
            _segmentThetas = [problem.Theta];
            return;
        }

        _batchInputs = new float[problem.HasMlpLayout ? options.Horizon : 0][];
        _batchLabels = new int[_batchInputs.Length][];
        for (int k = 0; k < _batchInputs.Length; k++)
        {
            if (rows[k] is null)
            {
                _batchInputs[k] = problem.TrainInputs;
                _batchLabels[k] = problem.TrainLabels;
                continue;
            }

            int d = problem.InputWidth;
            var x = new float[rows[k]!.Length * d];
            var y = new int[rows[k]!.Length];
            for (int i = 0; i < y.Length; i++)
            {
                int idx = rows[k]![i];
                problem.TrainInputs.AsSpan(idx * d, d).CopyTo(x.AsSpan(i * d, d));
                y[i] = problem.TrainLabels[idx];
            }

            _batchInputs[k] = x;
            _batchLabels[k] = y;
        }

        if (options.Propagation == ForwardPropagation.Tangent && !problem.HasMlpLayout)
        {
            throw new ArgumentException($"propagation=tangent needs an MLP (its Hessian-vector products are the MLP's R-operator); this model is {problem.Architecture}: use propagation=trajectory or spectral.", nameof(options));
        }

        _segmentThetas = [];
        if (Operator is not null)
        {
            // The shared unperturbed trajectory (one mini-batch run from θ*), read at each segment's midpoint.
            var (_, mids) = Segments(options.Horizon, options.OperatorSegments);
            var thetas = mids.Select(m => m == 0 ? problem.Theta : null!).ToArray();
            Baseline(cancellationToken, (step, theta) =>
            {
                for (int j = 0; j < mids.Length; j++)
                {
                    if (mids[j] == step)
                    {
                        thetas[j] = theta.ToArray();
                    }
                }
            });
            _segmentThetas = thetas;
        }
    }

    // An MLP's exact Hessian-vector products of the sample's mean loss plus weight decay at θ* (Pearlmutter's R-operator
    // on activations prepared once, MlpCurvature): about half the work of the central difference of two gradients.
    private static TrajectoryOperator.HessianProduct ExactHvp(AttributionProblem problem, float[] inputs, int[] labels)
    {
        var layout = problem.Layout;
        var curvature = new MlpCurvature(layout, problem.Theta, inputs, labels, 1f / labels.Length);
        var direction = new MlpStack(layout, 1);
        var product = new MlpStack(layout, 1);
        var v32 = new float[layout.ParameterCount];
        float wd = problem.WeightDecay;
        return (v, hv) =>
        {
            for (int i = 0; i < v32.Length; i++)
            {
                v32[i] = (float)v[i];
            }

            direction.SetSlot(0, v32);
            curvature.Multiply(direction, product);
            product.GetSlot(0, v32);
            for (int i = 0; i < v32.Length; i++)
            {
                hv[i] = v32[i] + (wd * v[i]);
            }
        };
    }

    // Segment boundaries b_0 = 0 < … < b_J = K and the trajectory step each segment's gradient is taken at (its
    // midpoint; θ* itself when there is one segment).
    private static (int[] Bounds, int[] Mids) Segments(int horizon, int segments)
    {
        var bounds = new int[segments + 1];
        for (int j = 0; j <= segments; j++)
        {
            bounds[j] = (int)Math.Round((double)j * horizon / segments);
        }

        var mids = new int[segments];
        for (int j = 0; j < segments; j++)
        {
            mids[j] = segments == 1 ? 0 : (bounds[j] + bounds[j + 1]) / 2;
        }

        return (bounds, mids);
    }

    private readonly float[][] _segmentThetas;

    // The shared mini-batch sequence as training-example indices per step (null = the whole training set).
    private static int[]?[] BatchRows(int n, ForwardOnlyOptions options)
    {
        int bs = options.BatchSize == 0 || options.BatchSize >= n ? n : options.BatchSize;
        var rows = new int[]?[options.Horizon];
        if (bs == n)
        {
            return rows;
        }

        var rng = new Rng(options.Seed ^ 0x9E3779B97F4A7C15UL);
        int[] perm = rng.Permutation(n);
        int cursor = 0;
        for (int k = 0; k < options.Horizon; k++)
        {
            var step = rows[k] = new int[bs];
            for (int i = 0; i < bs; i++)
            {
                if (cursor == n)
                {
                    perm = rng.Permutation(n);
                    cursor = 0;
                }

                step[i] = perm[cursor++];
            }
        }

        return rows;
    }

    /// <summary>The rows <paramref name="indices"/> of a batch, as a batch (classifier inputs or token sequences).</summary>
    public static ModelBatch Rows(in ModelBatch batch, ReadOnlySpan<int> indices)
    {
        var labels = new int[indices.Length * batch.SequenceLength];
        int length = batch.SequenceLength;
        for (int i = 0; i < indices.Length; i++)
        {
            batch.Labels.AsSpan(indices[i] * length, length).CopyTo(labels.AsSpan(i * length, length));
        }

        if (batch.Inputs is { } inputs)
        {
            int width = batch.Count == 0 ? 0 : inputs.Length / batch.Count;
            var x = new float[indices.Length * width];
            for (int i = 0; i < indices.Length; i++)
            {
                inputs.AsSpan(indices[i] * width, width).CopyTo(x.AsSpan(i * width, width));
            }

            return ModelBatch.Classification(x, labels);
        }

        var tokens = new int[labels.Length];
        for (int i = 0; i < indices.Length; i++)
        {
            batch.Tokens!.AsSpan(indices[i] * length, length).CopyTo(tokens.AsSpan(i * length, length));
        }

        return ModelBatch.Sequences(tokens, labels, indices.Length, length);
    }

    /// <summary>The horizon K in steps used (explicit, or from the horizon in epochs and the training set's size).</summary>
    public int Horizon => _options.Horizon;

    /// <summary>The step size η used.</summary>
    public float StepSize { get; }

    /// <summary>|h_max| from power iteration or the spectral operator's Lanczos (0 when the step size was given).</summary>
    public double TopEigenvalue { get; }

    /// <summary>Training examples the spectral operator's Hessian was averaged over (0 without one).</summary>
    public int OperatorSampleSize { get; }

    /// <summary>The propagation used (the options', or the model's default when they leave it open).</summary>
    public ForwardPropagation Propagation => _options.Propagation!.Value;

    /// <summary>The spectral propagator (null for <see cref="ForwardPropagation.Trajectory"/>).</summary>
    public TrajectoryOperator? Operator { get; }

    /// <summary>
    /// Simulates every training example in <paramref name="examples"/> (indices into the problem's training set) and
    /// hands each flat response to <paramref name="sink"/> as (position in <paramref name="examples"/>, response).
    /// Blocks of <see cref="ForwardOnlyOptions.UnitsPerBlock"/> examples run together.
    /// </summary>
    public void Simulate(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(sink);
        foreach (int i in examples)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(i, nameof(examples));
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(i, _problem.Count, nameof(examples));
        }

        if (Operator is not null)
        {
            Propagate(Operator, examples, sink, cancellationToken);
            return;
        }

        if (_options.Propagation == ForwardPropagation.Tangent)
        {
            PropagateTangent(examples, sink, cancellationToken);
            return;
        }

        if (!_options.TwoTrajectory && _baseline is null)
        {
            _baseline = Baseline(cancellationToken);
        }

        if (!_problem.HasMlpLayout)
        {
            SimulateEach(examples, sink, cancellationToken);
            return;
        }

        var layout = _problem.Layout;
        int p = layout.ParameterCount;
        float eps = _options.Epsilon;
        // Keep the stacked first-layer activations (slots · width · batch floats) under ~32 M floats, so full-batch
        // simulation of large n shrinks the block instead of allocating gigabytes.
        long perUnit = (_options.TwoTrajectory ? 2L : 1L) * layout.Out(0) * _batchLabels[0].Length;
        int block = (int)Math.Clamp((1L << 25) / Math.Max(perUnit, 1), 1, _options.UnitsPerBlock);
        for (int start = 0; start < examples.Count; start += block)
        {
            int count = Math.Min(block, examples.Count - start);
            var members = new List<int[]>();
            var weights = new List<float>();
            for (int u = 0; u < count; u++)
            {
                members.Add([examples[start + u]]);
                weights.Add(eps);
                if (_options.TwoTrajectory)
                {
                    members.Add([examples[start + u]]);
                    weights.Add(-eps);
                }
            }

            var state = Run(members, weights.ToArray(), cancellationToken);
            var plus = new float[p];
            var other = new float[p];
            for (int u = 0; u < count; u++)
            {
                var response = new float[p];
                if (_options.TwoTrajectory)
                {
                    state.GetSlot(2 * u, plus);
                    state.GetSlot(2 * u + 1, other);
                    TensorPrimitives.Subtract(plus, other, response);
                    TensorPrimitives.Multiply(response, 1f / (2f * eps), response);
                }
                else
                {
                    state.GetSlot(u, plus);
                    TensorPrimitives.Subtract(plus, _baseline!, response);
                    TensorPrimitives.Multiply(response, 1f / eps, response);
                }

                sink(start + u, response);
            }
        }
    }

    /// <summary>
    /// Simulates the training examples <paramref name="examples"/> into a response set over <paramref name="layers"/>
    /// (unit u = examples[u]) and writes each response's norm to <paramref name="norms"/>. Spectral propagation on an
    /// MLP stores every response exactly in the operator's own form (<see cref="PropagateFactored"/>: the per-example
    /// gradient's rank-one factors per layer scaled by φ(c), plus its coefficients on the operator's active Ritz
    /// vectors, kept once); any other propagation stores each simulated response as <paramref name="rank"/>-r factors
    /// (<see cref="ResponseSet.Set"/>).
    /// </summary>
    public ResponseSet SimulateResponses(IReadOnlyList<int> examples, IReadOnlyList<LinearFactors> layers, int rank, ulong seed, Span<float> norms,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(layers);
        if (norms.Length < examples.Count)
        {
            throw new ArgumentException($"{norms.Length} norms for {examples.Count} examples.", nameof(norms));
        }

        if (Operator is { } op && _problem.HasMlpLayout)
        {
            return PropagateFactored(op, examples, layers, seed, norms, cancellationToken);
        }

        var set = new ResponseSet(_problem.ParameterCount, layers, examples.Count, rank, seed);
        var sink = new float[examples.Count];
        Simulate(examples, (i, response) =>
        {
            sink[i] = MathF.Sqrt(TensorPrimitives.Dot(response, response));
            set.Set(i, response);
        }, cancellationToken);
        sink.CopyTo(norms);
        return set;
    }

    // Spectral path on an MLP, stored exactly: with J segments a response is Σ_s [φ_s(c) g_s + Σ_k β_sk (V_k · g_s) V_k]
    // (SegmentScales), and each example's gradient g_s at segment s's θ is rank one per layer (δ aᵀ, bias δ). Per unit
    // the set keeps, per layer, the J pairs (φ_s(c) δ_s, a_s) (rank J; full where that is smaller) and the m coefficients
    // c_k = Σ_s β_sk (V_k · g_s) on the m active Ritz vectors V (stored once). Per block: one factored gradient pass per
    // segment, the dense gradients formed from their factors, and one GEMM G Vᵀ (2·m·p flops per example): no
    // back-projection and no factorisation. Readout: φ(c)⟨q, g⟩ through the factors plus c · (V q).
    private ResponseSet PropagateFactored(TrajectoryOperator op, IReadOnlyList<int> examples, IReadOnlyList<LinearFactors> layers, ulong seed, Span<float> norms,
        CancellationToken cancellationToken)
    {
        int p = op.ParameterCount, m = op.ActiveRank, segments = _segmentThetas.Length;
        var models = _segmentThetas.Select(theta => _problem.CreateModel(theta)).ToArray();
        var (bounds, _) = Segments(_options.Horizon, segments);
        var ranks = ResponseSet.RanksFor(layers, segments);
        var set = new ResponseSet(p, layers, examples.Count, ranks, op.ActiveVectors, m, seed);
        var vectors = op.ActiveVectors;
        var training = _problem.Training;
        int block = (int)Math.Clamp((1L << 24) / p, 1, _options.UnitsPerBlock);
        var gradients = new float[(long)block * p];
        var sum = new float[(long)block * p]; // Σ_s φ_s(c) g_s (for the norms)
        var projections = new float[block * m];
        var coefficients = new float[block * m];
        var along = new float[block * m]; // V · Σ_s φ_s(c) g_s
        var unit = new float[set.FloatsPerUnit];
        for (int start = 0; start < examples.Count; start += block)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(block, examples.Count - start);
            var rows = new int[count];
            for (int u = 0; u < count; u++)
            {
                rows[u] = examples[start + u];
            }

            var batch = Rows(training, rows);
            Array.Clear(coefficients);
            Array.Clear(along);
            sum.AsSpan(0, count * p).Clear();
            var factors = new GradientFactors[segments];
            var outside = new float[segments];
            for (int j = 0; j < segments; j++)
            {
                var (o, scales) = op.SegmentScales(StepSize, bounds[j + 1] - bounds[j], _options.Horizon - bounds[j + 1], _options.Damping);
                outside[j] = (float)o;
                var g = factors[j] = models[j].PerExampleGradients(batch, ModelOutput.Loss);
                var dense = gradients.AsSpan(0, count * p);
                dense.Clear();
                foreach (var layer in g.Layers)
                {
                    for (int u = 0; u < count; u++)
                    {
                        var a = layer.Activations.AsSpan(u * layer.In, layer.In);
                        var d = layer.Deltas.AsSpan(u * layer.Out, layer.Out);
                        var w = dense.Slice(u * p + layer.WeightOffset, layer.Out * layer.In);
                        for (int r = 0; r < layer.Out; r++)
                        {
                            TensorPrimitives.Multiply(a, d[r], w.Slice(r * layer.In, layer.In));
                        }

                        if (layer.BiasOffset >= 0)
                        {
                            d.CopyTo(dense.Slice(u * p + layer.BiasOffset, layer.Out));
                        }
                    }
                }

                if (m > 0)
                {
                    Blas.Gemm(false, true, count, m, p, 1f, dense, vectors, 0f, projections.AsSpan(0, count * m));
                    for (int u = 0; u < count; u++)
                    {
                        for (int k = 0; k < m; k++)
                        {
                            float v = projections[u * m + k];
                            coefficients[u * m + k] += scales[k] * v;
                            along[u * m + k] += outside[j] * v;
                        }
                    }
                }

                TensorPrimitives.MultiplyAdd(dense, outside[j], sum.AsSpan(0, count * p), sum.AsSpan(0, count * p));
            }

            for (int u = 0; u < count; u++)
            {
                int at = 0;
                for (int l = 0; l < layers.Count; l++)
                {
                    int o = layers[l].Out, i = layers[l].In, r = ranks[l];
                    if (r == 0)
                    {
                        // Full: the layer of Σ_s φ_s(c) g_s.
                        sum.AsSpan(u * p + layers[l].WeightOffset, o * i).CopyTo(unit.AsSpan(at, o * i));
                        at += o * i;
                    }
                    else
                    {
                        // U [out, r] (column s = φ_s(c) δ_s), then Vᵀ [r, in] (row s = a_s).
                        for (int j = 0; j < segments; j++)
                        {
                            var layer = factors[j].Layers[l];
                            for (int row = 0; row < o; row++)
                            {
                                unit[at + row * r + j] = outside[j] * layer.Deltas[u * o + row];
                            }

                            layer.Activations.AsSpan(u * i, i).CopyTo(unit.AsSpan(at + o * r + j * i, i));
                        }

                        at += r * (o + i);
                    }

                    if (layers[l].BiasOffset >= 0)
                    {
                        sum.AsSpan(u * p + layers[l].BiasOffset, o).CopyTo(unit.AsSpan(at, o));
                        at += o;
                    }
                }

                coefficients.AsSpan(u * m, m).CopyTo(unit.AsSpan(at, m));
                set.SetFactors(start + u, unit);
                // ‖S + Σ c_k V_k‖² = ‖S‖² + 2 c · (V S) + ‖c‖² (V orthonormal), S = Σ_s φ_s(c) g_s.
                var s = sum.AsSpan(u * p, p);
                var c = coefficients.AsSpan(u * m, m);
                double squared = TensorPrimitives.Dot(s, s) + 2.0 * TensorPrimitives.Dot(c, along.AsSpan(u * m, m)) + TensorPrimitives.Dot(c, c);
                norms[start + u] = (float)Math.Sqrt(Math.Max(squared, 0));
            }
        }

        return set;
    }

    // Spectral path: each example's loss gradient at θ* (one backward pass through the model), then the operator's
    // two GEMMs per block. Blocks are capped at ~32 M floats of gradients so wide models shrink the block.
    private void Propagate(TrajectoryOperator op, IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken cancellationToken)
    {
        int p = op.ParameterCount;
        var models = _segmentThetas.Select(theta => _problem.CreateModel(theta)).ToArray();
        var (bounds, _) = Segments(_options.Horizon, _segmentThetas.Length);
        var training = _problem.Training;
        int block = (int)Math.Clamp((1L << 24) / p, 1, _options.UnitsPerBlock);
        var gradients = new float[(long)block * p];
        var responses = new float[(long)block * p];
        for (int start = 0; start < examples.Count; start += block)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(block, examples.Count - start);
            responses.AsSpan(0, count * p).Clear();
            for (int j = 0; j < models.Length; j++)
            {
                for (int u = 0; u < count; u++)
                {
                    models[j].OutputGradient(Rows(training, [examples[start + u]]), ModelOutput.Loss, default, gradients.AsSpan(u * p, p), default);
                }

                op.Accumulate(gradients, count, StepSize, bounds[j + 1] - bounds[j], _options.Horizon - bounds[j + 1], _options.Damping, responses);
            }

            for (int u = 0; u < count; u++)
            {
                sink(start + u, responses.AsSpan(u * p, p).ToArray());
            }
        }
    }

    // Tangent path (MLP): the unperturbed run's mini-batch curvature at every step, prepared once and kept for all blocks.
    private MlpCurvature[]? _curvatures;

    // Tangent path: the block's responses R (one slot per example) start at 0 and follow the linearised trajectory,
    // R ← R − η((wd + λ) R + H_k R + G_k), H_k the Hessian of step k's mini-batch loss at θ̄_k (the shared unperturbed
    // run) and G_k each example's loss gradient there: the two-trajectory response (θ⁺_K − θ⁻_K)/(2ε) as ε → 0.
    private void PropagateTangent(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken cancellationToken)
    {
        var layout = _problem.Layout;
        int p = layout.ParameterCount, d = _problem.InputWidth, horizon = _options.Horizon;
        if (_curvatures is null)
        {
            var curvatures = new MlpCurvature[horizon];
            float shared = 1f / _batchLabels[0].Length;
            curvatures[0] = new MlpCurvature(layout, _problem.Theta, _batchInputs[0], _batchLabels[0], shared);
            Baseline(cancellationToken, (step, theta) =>
            {
                if (step < horizon)
                {
                    curvatures[step] = new MlpCurvature(layout, theta, _batchInputs[step], _batchLabels[step], 1f / _batchLabels[step].Length);
                }
            });
            _curvatures = curvatures;
        }

        float eta = StepSize, shrink = -eta * (_problem.WeightDecay + _options.Damping);
        var response = new float[p];
        for (int start = 0; start < examples.Count; start += _options.UnitsPerBlock)
        {
            int count = Math.Min(_options.UnitsPerBlock, examples.Count - start);
            var x = new float[count * d];
            var y = new int[count];
            for (int u = 0; u < count; u++)
            {
                int idx = examples[start + u];
                _problem.TrainInputs.AsSpan(idx * d, d).CopyTo(x.AsSpan(u * d, d));
                y[u] = _problem.TrainLabels[idx];
            }

            // r: the block's responses; step: (H_k r + G_k), then r ← (1 − η(wd + λ)) r − η step.
            var r = new MlpStack(layout, count);
            var step = new MlpStack(layout, count);
            for (int k = 0; k < horizon; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (k == 0)
                {
                    for (int l = 0; l < layout.LayerCount; l++)
                    {
                        Array.Clear(step.W[l]);
                        Array.Clear(step.B[l]);
                    }
                }
                else
                {
                    _curvatures[k].Multiply(r, step);
                }

                _curvatures[k].AddRowGradients(x, y, 1f, step);
                for (int l = 0; l < layout.LayerCount; l++)
                {
                    Decay(r.W[l], step.W[l], 1f + shrink, -eta);
                    Decay(r.B[l], step.B[l], 1f + shrink, -eta);
                }
            }

            for (int u = 0; u < count; u++)
            {
                r.GetSlot(u, response);
                sink(start + u, (float[])response.Clone());
            }
        }
    }

    // r ← keep·r + rate·step.
    private static void Decay(float[] r, float[] step, float keep, float rate)
    {
        if (keep != 1f)
        {
            TensorPrimitives.Multiply(r, keep, r);
        }

        TensorPrimitives.MultiplyAdd(step, rate, r, r);
    }

    // Any model but the MLP: each example's trajectories one after the other through the model's own gradient.
    private void SimulateEach(IReadOnlyList<int> examples, Action<int, float[]> sink, CancellationToken cancellationToken)
    {
        int p = _problem.ParameterCount;
        var model = _problem.CreateModel();
        for (int u = 0; u < examples.Count; u++)
        {
            float w = _options.Epsilon;
            var plus = Run(model, [examples[u]], w, cancellationToken);
            var other = _options.TwoTrajectory ? Run(model, [examples[u]], -w, cancellationToken) : _baseline!;
            var response = new float[p];
            TensorPrimitives.Subtract(plus, other, response);
            TensorPrimitives.Multiply(response, 1f / ((_options.TwoTrajectory ? 2f : 1f) * w), response);
            sink(u, response);
        }
    }

    // The shared unperturbed trajectory (no example up-weighted); afterStep sees θ after every step.
    private float[] Baseline(CancellationToken cancellationToken, Action<int, ReadOnlySpan<float>>? afterStep = null)
    {
        if (!_problem.HasMlpLayout)
        {
            return Run(_problem.CreateModel(), [], 0f, cancellationToken, afterStep);
        }

        var theta = new float[_problem.ParameterCount];
        var state = Run([Array.Empty<int>()], [0f], cancellationToken, afterStep is null ? null : (step, stack) =>
        {
            stack.GetSlot(0, theta);
            afterStep(step, theta);
        });
        state.GetSlot(0, theta);
        return theta;
    }

    // One trajectory of any model: K steps on the shared mini-batches (rows weighted 1/|batch|) plus the up-weighted
    // rows (one example, none for the baseline) weighted by weight each, the regularisers, θ −= η ∇.
    private float[] Run(IModel model, int[] extra, float weight, CancellationToken cancellationToken, Action<int, ReadOnlySpan<float>>? afterStep = null)
    {
        int p = _problem.ParameterCount, n = _problem.Count;
        var theta = (float[])_problem.Theta.Clone();
        var grad = new float[p];
        float wd = _problem.WeightDecay, lambda = _options.Damping, eta = StepSize;
        for (int k = 0; k < _options.Horizon; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int[] batch = _rows[k] ?? [.. Enumerable.Range(0, n)];
            int[] rows = weight == 0f ? batch : [.. batch, .. extra];
            var weights = new float[rows.Length];
            Array.Fill(weights, 1f / batch.Length, 0, batch.Length);
            Array.Fill(weights, weight, batch.Length, rows.Length - batch.Length);
            model.LoadFrom(theta);
            model.OutputGradient(Rows(_problem.Training, rows), ModelOutput.Loss, weights, grad, default);
            for (int j = 0; j < p; j++)
            {
                grad[j] += wd * theta[j] + lambda * (theta[j] - _problem.Theta[j]);
            }

            TensorPrimitives.MultiplyAdd(grad, -eta, theta, theta);
            afterStep?.Invoke(k + 1, theta);
        }

        return theta;
    }

    private MlpStack Run(IReadOnlyList<int[]> members, float[] weights, CancellationToken cancellationToken, Action<int, MlpStack>? afterStep = null)
    {
        var layout = _problem.Layout;
        int slots = members.Count, d = _problem.InputWidth;
        var state = new MlpStack(layout, slots);
        var grad = new MlpStack(layout, slots);
        for (int s = 0; s < slots; s++)
        {
            state.SetSlot(s, _problem.Theta);
        }

        var extraX = new float[slots][];
        var extraY = new int[slots][];
        for (int s = 0; s < slots; s++)
        {
            var idx = members[s];
            extraX[s] = new float[idx.Length * d];
            extraY[s] = new int[idx.Length];
            for (int j = 0; j < idx.Length; j++)
            {
                _problem.TrainInputs.AsSpan(idx[j] * d, d).CopyTo(extraX[s].AsSpan(j * d, d));
                extraY[s][j] = _problem.TrainLabels[idx[j]];
            }
        }

        float wd = _problem.WeightDecay, lambda = _options.Damping, eta = StepSize;
        for (int k = 0; k < _options.Horizon; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var by = _batchLabels[k];
            state.LossGradient(_batchInputs[k], by, 1f / by.Length, extraX, extraY, weights, grad);
            state.AddRegularisers(grad, wd, lambda, _problem.Theta);

            state.AddScaled(grad, -eta);
            afterStep?.Invoke(k + 1, state);
        }

        return state;
    }
}
