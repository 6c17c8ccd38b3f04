using System.Numerics.Tensors;
using Attribution.Attribution.Kernels;
using Attribution.Engine;
using Attribution.Engine.Autograd;
using Attribution.Engine.Models;
using Attribution.Engine.Optim;

namespace Attribution.Attribution.Stride;

/// <summary>
/// Trains STRIDE's steering operators on a frozen classifier (shared/docs/stride.md §4) with
/// <c>L = L_fid + β·L_stab + κ·L_lin</c>:
/// <list type="bullet">
/// <item>fidelity: steered cross-entropy of each subset's members under its own operator, averaged per subset;</item>
/// <item>stability: KL(frozen ‖ steered) on a fresh reference batch drawn outside the subset every step;</item>
/// <item>linearity: for a few inputs, the K responses y must fit the additive model: ‖(I − P)y‖²/K with
/// P = M̃(M̃ᵀM̃ + γI)⁻¹M̃ᵀ and M̃ = M·R a Gaussian sketch redrawn every step.</item>
/// </list>
/// The frozen model is run once over the training set (logits and the hidden activation are then constants); every step
/// is a full-batch Adam step on the basis and all K matrices, with exact hand-written gradients. a_k starts at 0, so
/// every operator starts as the frozen model.
/// </summary>
public static class SteeringTrainer
{
    /// <summary>
    /// Trains operators for <paramref name="design"/> over the training set <paramref name="training"/> (one unit per row:
    /// classifier examples, or a language model's documents whose target tokens are the scored positions).
    /// </summary>
    public static SteeringOperators Train(IHiddenStateModel model, in ModelBatch training, SubsetDesign design,
        SteeringOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(design);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var (layer, measure) = Resolve(model, training, design, options);
        int width = model.HiddenWidth(layer), c = model.Classes, r = options.Rank, kk = design.Subsets;
        bool residual = options.Form == SteeringForm.Residual;
        int shift = residual ? width : c;

        var rng = new Rng(options.Seed);
        var basis = new Parameter("stride.basis", r, width);
        var matrices = new Parameter("stride.matrices", r, kk * shift);
        rng.FillNormal(basis.Data, 0f, 1f / MathF.Sqrt(width));
        var operators = new SteeringOperators(layer, width, r, c, kk, measure, basis.Data, matrices.Data, options.Form);
        var optimizer = new AdamW([basis, matrices], weightDecay: 0f);
        Func<int, (double, double, double)> gradients = residual
            ? new ResidualStepState(operators, SteeringOperators.Tail(model), design, ResidualRows.Read(model, training, layer), options).Gradients(basis.Grad, matrices.Grad)
            : new StepState(operators, design, SteeringRows.Read(model, training, layer), options).Gradients(rng, basis.Grad, matrices.Grad);
        for (int step = 0; step < options.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            gradients(step);
            optimizer.Step(options.LearningRate);
        }

        return operators;
    }

    /// <summary>
    /// The three loss terms at the operators' current parameters (fidelity, stability before β, linearity before κ; the
    /// objective is <c>fid + β·stab + κ·lin</c>) and its exact gradient, written into <paramref name="gradBasis"/> [r·H]
    /// and <paramref name="gradMatrices"/> [r·K·C]. <paramref name="step"/> selects the step's reference draws and sketch.
    /// </summary>
    public static (double Fidelity, double Stability, double Linearity) LossesAndGradients(SteeringOperators operators, IHiddenStateModel model,
        in ModelBatch training, SubsetDesign design, SteeringOptions options, float[] gradBasis, float[] gradMatrices, int step = 0)
    {
        ArgumentNullException.ThrowIfNull(operators);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(design);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(gradBasis);
        ArgumentNullException.ThrowIfNull(gradMatrices);
        if (gradBasis.Length != operators.Basis.Length || gradMatrices.Length != operators.Matrices.Length || design.Subsets != operators.Subsets
            || design.Examples != training.Count)
        {
            throw new ArgumentException("SteeringTrainer.LossesAndGradients: gradient buffers, design or training set do not match the operators.");
        }

        if (operators.Form == SteeringForm.Residual)
        {
            var residual = new ResidualStepState(operators, SteeringOperators.Tail(model), design, ResidualRows.Read(model, training, operators.Layer), options);
            return residual.Gradients(gradBasis, gradMatrices)(step);
        }

        var rows = SteeringRows.Read(model, training, operators.Layer);
        var state = new StepState(operators, design, rows, options);
        return state.Gradients(step, new Rng(options.Seed ^ (ulong)step), gradBasis, gradMatrices);
    }

    // The layer and the measurement the options name, or the model's defaults; refuses what the model cannot honour.
    private static (int Layer, ModelOutput Measure) Resolve(IHiddenStateModel model, in ModelBatch training, SubsetDesign design, SteeringOptions options)
    {
        if (design.Examples != training.Count)
        {
            throw new ArgumentException($"SteeringTrainer: the design covers {design.Examples} examples; the training set has {training.Count}.");
        }

        int layer = options.Layer < 0 ? model.DefaultHiddenLayer : options.Layer;
        if (layer >= model.HiddenLayerCount)
        {
            throw new ArgumentException($"SteeringTrainer: layer {options.Layer} does not exist; {model.Architecture} has hidden layers 0..{model.HiddenLayerCount - 1}.");
        }

        bool sequences = training.Tokens is not null;
        if (sequences && options.Measure == ModelOutput.Margin)
        {
            throw new ArgumentException($"SteeringTrainer: measure=margin is not defined for a language model ({model.Architecture}); use measure=loss (the change of the completion's log-likelihood).");
        }

        return (layer, options.Measure ?? (sequences ? ModelOutput.Loss : ModelOutput.Margin));
    }

    // Rows are scored positions (see SteeringRows); units (examples, documents) are what the design assigns to subsets.
    private sealed class StepState(SteeringOperators op, SubsetDesign design, SteeringRows rows, SteeringOptions options)
    {
        private readonly int _n = rows.Units;
        private readonly int _rows = rows.Count;
        private readonly float[] o = rows.Logits;
        private readonly float[] h = rows.Hidden;
        private readonly int[] labels = rows.Targets;
        private readonly float[] _u = new float[(long)rows.Count * op.Rank];

        // The step function Train runs (one rng across the steps).
        public Func<int, (double, double, double)> Gradients(Rng rng, float[] gradBasis, float[] gradMatrices) =>
            step => Gradients(step, rng, gradBasis, gradMatrices);

        // Fills the gradients of L at the current parameters and returns the three loss values.
        public (double, double, double) Gradients(int step, Rng rng, float[] gradBasis, float[] gradMatrices)
        {
            int nr = _rows, r = op.Rank, c = op.Classes, kk = op.Subsets;
            Blas.Gemm(false, true, nr, r, op.Width, 1f, h, op.Basis, 0f, _u);
            Array.Clear(gradMatrices);
            var gradU = new float[(long)nr * r];
            var gate = new object();
            double fid = 0, stab = 0;
            ulong stepSeed = options.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(step + 1));
            Parallel.For(0, kk, () => (new float[(long)nr * r], new double[2]), (k, _, local) =>
            {
                var members = design.MembersOf(k);
                var z = new float[c];
                var g = new float[c];
                int memberRows = 0;
                foreach (int i in members)
                {
                    memberRows += rows.Start[i + 1] - rows.Start[i];
                }

                float fidScale = 1f / (kk * Math.Max(memberRows, 1));
                foreach (int i in members)
                {
                    for (int row = rows.Start[i]; row < rows.Start[i + 1]; row++)
                    {
                        Shift(row, k, z);
                        local.Item2[0] += MlpKernels.Output(ModelOutput.Loss, z, labels[row], fidScale, g) * fidScale;
                        Accumulate(row, k, g, gradMatrices, local.Item1);
                    }
                }

                int refs = options.ReferenceSize > 0 ? options.ReferenceSize : Math.Max(memberRows, 1);
                var draw = new Rng(stepSeed ^ (0xD1B54A32D192ED03UL * (ulong)(k + 1)));
                float stabScale = options.Stability / (kk * refs);
                bool outside = memberRows < nr;
                for (int t = 0; t < refs && options.Stability > 0 && outside; t++)
                {
                    int row = draw.NextInt(nr);
                    if (design.SubsetsOf(rows.Unit[row]).Contains(k))
                    {
                        t--;
                        continue;
                    }

                    Shift(row, k, z);
                    local.Item2[1] += Kl(o.AsSpan(row * c, c), z, stabScale, g) * stabScale;
                    Accumulate(row, k, g, gradMatrices, local.Item1);
                }

                return local;
            }, local =>
            {
                lock (gate)
                {
                    fid += local.Item2[0];
                    stab += local.Item2[1];
                    TensorPrimitives.Add(gradU, local.Item1, gradU);
                }
            });

            double lin = options.Linearity > 0 ? Linearity(rng, gradMatrices, gradU) : 0;
            Blas.Gemm(true, false, r, op.Width, nr, 1f, gradU, h, 0f, gradBasis);
            return (fid, options.Stability > 0 ? stab / options.Stability : 0, lin);
        }

        // κ·mean over inputs of ‖(I − P)y‖²/K, and its gradient (see the class summary).
        private double Linearity(Rng rng, float[] gradMatrices, float[] gradU)
        {
            int kk = op.Subsets, c = op.Classes, q = Math.Min(options.SketchSize, kk);
            // Sketch M̃ = M·R with R ∈ ℝ^{n×q} Gaussian: row k of M̃ is the sum of R's rows over A_k's members.
            var sketchRows = new float[_n * q];
            rng.FillNormal(sketchRows);
            var mt = new double[kk * q];
            for (int k = 0; k < kk; k++)
            {
                foreach (int i in design.MembersOf(k))
                {
                    for (int j = 0; j < q; j++)
                    {
                        mt[k * q + j] += sketchRows[i * q + j];
                    }
                }
            }

            var gram = new double[q * q];
            for (int k = 0; k < kk; k++)
            {
                for (int a = 0; a < q; a++)
                {
                    double v = mt[k * q + a];
                    for (int b = 0; b <= a; b++)
                    {
                        gram[a * q + b] += v * mt[k * q + b];
                    }
                }
            }

            double trace = 0;
            for (int a = 0; a < q; a++)
            {
                trace += gram[a * q + a];
            }

            double ridge = options.Ridge * trace / q;
            for (int a = 0; a < q; a++)
            {
                gram[a * q + a] += ridge;
                for (int b = 0; b < a; b++)
                {
                    gram[b * q + a] = gram[a * q + b];
                }
            }

            Linalg.Cholesky(gram, q);
            double total = 0;
            int inputs = options.LinearityInputs;
            var y = new double[kk];
            var res = new double[kk];
            var pres = new double[kk];
            var z = new float[c];
            var g = new float[c];
            for (int s = 0; s < inputs; s++)
            {
                // y_k = Σ over the unit's rows of the steered minus the frozen output (a classifier example has one row).
                int i = rng.NextInt(_n);
                Array.Clear(y);
                for (int row = rows.Start[i]; row < rows.Start[i + 1]; row++)
                {
                    double baseValue = MlpKernels.Output(op.Helpful, o.AsSpan(row * c, c), labels[row], 1f, default);
                    for (int k = 0; k < kk; k++)
                    {
                        Shift(row, k, z);
                        y[k] += MlpKernels.Output(op.Helpful, z, labels[row], 1f, default) - baseValue;
                    }
                }

                Project(mt, gram, kk, q, y, res);
                for (int k = 0; k < kk; k++)
                {
                    res[k] = y[k] - res[k];
                    total += res[k] * res[k];
                }

                // ∂/∂y of ‖(I − P)y‖² is 2(I − P)ᵀ(I − P)y = 2(r − P r) (P is symmetric).
                Project(mt, gram, kk, q, res, pres);
                double scale = 2.0 * options.Linearity / ((double)kk * inputs);
                for (int row = rows.Start[i]; row < rows.Start[i + 1]; row++)
                {
                    for (int k = 0; k < kk; k++)
                    {
                        Shift(row, k, z);
                        MlpKernels.Output(op.Helpful, z, labels[row], (float)(scale * (res[k] - pres[k])), g);
                        Accumulate(row, k, g, gradMatrices, gradU);
                    }
                }
            }

            return total / ((double)kk * inputs);
        }

        // destination = M̃ (M̃ᵀM̃ + γI)⁻¹ M̃ᵀ v, with the Gram matrix already Cholesky-factored.
        private static void Project(double[] mt, double[] cholesky, int kk, int q, double[] v, double[] destination)
        {
            var t = new double[q];
            for (int k = 0; k < kk; k++)
            {
                for (int j = 0; j < q; j++)
                {
                    t[j] += mt[k * q + j] * v[k];
                }
            }

            Linalg.CholeskySolve(cholesky, q, t);
            for (int k = 0; k < kk; k++)
            {
                double s = 0;
                for (int j = 0; j < q; j++)
                {
                    s += mt[k * q + j] * t[j];
                }

                destination[k] = s;
            }
        }

        // z = o_row + (B·h_row)ᵀ a_k.
        private void Shift(int row, int k, Span<float> z)
        {
            int r = op.Rank, c = op.Classes, kc = op.Subsets * c;
            o.AsSpan(row * c, c).CopyTo(z);
            for (int j = 0; j < r; j++)
            {
                TensorPrimitives.MultiplyAdd(op.Matrices.AsSpan(j * kc + k * c, c), _u[row * r + j], z, z);
            }
        }

        // Back-propagates a logit gradient g of pair (row, k) into a_k and u_row.
        private void Accumulate(int row, int k, ReadOnlySpan<float> g, float[] gradMatrices, float[] gradU)
        {
            int r = op.Rank, c = op.Classes, kc = op.Subsets * c;
            for (int j = 0; j < r; j++)
            {
                var ga = gradMatrices.AsSpan(j * kc + k * c, c);
                TensorPrimitives.MultiplyAdd(g, _u[row * r + j], ga, ga);
                gradU[row * r + j] += TensorPrimitives.Dot(g, op.Matrices.AsSpan(j * kc + k * c, c));
            }
        }

        // KL(softmax(p) ‖ softmax(z)) and scale·∂/∂z = scale·(softmax(z) − softmax(p)).
        internal static float Kl(ReadOnlySpan<float> p, ReadOnlySpan<float> z, float scale, Span<float> gradient)
        {
            float lp = MlpKernels.LogSumExp(p), lz = MlpKernels.LogSumExp(z);
            double kl = 0;
            for (int t = 0; t < p.Length; t++)
            {
                double pp = Math.Exp(p[t] - lp), qz = Math.Exp(z[t] - lz);
                kl += pp * ((p[t] - lp) - (z[t] - lz));
                gradient[t] = (float)(scale * (qz - pp));
            }

            return (float)kl;
        }
    }

    // Residual form: per subset, its members' documents and reference documents outside it are steered at the layer
    // (ẑ = z + (B·z)ᵀa_k at every position) and the frozen tail runs on them; fidelity is the steered next-token NLL of
    // the members' targets, stability the KL from the base logits on the references' targets (reference rows are drawn as
    // whole documents, the tail's attention reads them whole, until the reference size is reached). The tail's backward
    // gives ∂L/∂ẑ; the operator's gradients follow by hand (ẑ is linear in a_k and in B). No linearity term.
    private sealed class ResidualStepState(SteeringOperators op, IResidualStreamModel model, SubsetDesign design, ResidualRows rows, SteeringOptions options)
    {
        private readonly int[] _targets = [.. Enumerable.Range(0, rows.Units).Select(rows.Targets)];

        public Func<int, (double, double, double)> Gradients(float[] gradBasis, float[] gradMatrices) => step => Step(step, gradBasis, gradMatrices);

        private (double, double, double) Step(int step, float[] gradBasis, float[] gradMatrices)
        {
            int r = op.Rank, w = op.Width, c = op.Classes, kk = op.Subsets, t = rows.Length, n = rows.Units, kw = kk * w;
            var u = rows.Project(op.Basis, r);
            Array.Clear(gradMatrices);
            Array.Clear(gradBasis);
            var gate = new object();
            double fid = 0, stab = 0;
            int totalRows = _targets.Sum();
            ulong stepSeed = options.Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(step + 1));
            Parallel.For(0, kk, new ParallelOptions { MaxDegreeOfParallelism = SubsetFineTunes.BlasThreads }, () => (Model: (IResidualStreamModel)model.Clone(), Graph: new Graph(), GradBasis: new float[r * w], Loss: new double[2]), (k, _, local) =>
            {
                var members = design.MembersOf(k).ToArray();
                int memberRows = members.Sum(i => _targets[i]);
                int refs = options.ReferenceSize > 0 ? options.ReferenceSize : Math.Max(memberRows, 1);
                var units = new List<int>(members);
                var draw = new Rng(stepSeed ^ (0xD1B54A32D192ED03UL * (ulong)(k + 1)));
                int drawn = 0;
                bool stable = options.Stability > 0 && memberRows < totalRows;
                for (int tries = 0; stable && drawn < refs && tries < 64 * n; tries++)
                {
                    int i = draw.NextInt(n);
                    if (_targets[i] > 0 && !design.SubsetsOf(i).Contains(k))
                    {
                        units.Add(i);
                        drawn += _targets[i];
                    }
                }

                int m = units.Count;
                if (m == 0)
                {
                    return local;
                }

                var unitSpan = units.ToArray();
                var steered = new float[(long)m * t * w];
                var gradSteered = new float[steered.Length];
                op.SteerResidual(k, unitSpan, t, rows.Hidden, u, steered);
                var g = local.Graph;
                g.Reset();
                var logits = local.Model.LogitsFrom(g, Graph.Wrap(steered, [m, t, w], gradSteered), op.Layer);
                var seed = new float[(long)m * t * c];
                float fidScale = 1f / (kk * Math.Max(memberRows, 1)), stabScale = drawn > 0 ? options.Stability / (kk * drawn) : 0f;
                for (int a = 0; a < m; a++)
                {
                    bool member = a < members.Length;
                    for (int p = 0; p < t; p++)
                    {
                        int target = rows.Labels[unitSpan[a] * t + p];
                        if (target == -1)
                        {
                            continue;
                        }

                        int row = (a * t) + p;
                        var z = logits.Data.AsSpan(row * c, c);
                        var gz = seed.AsSpan(row * c, c);
                        if (member)
                        {
                            local.Loss[0] += MlpKernels.Output(ModelOutput.Loss, z, target, fidScale, gz) * fidScale;
                        }
                        else
                        {
                            local.Loss[1] += StepState.Kl(rows.Logits.AsSpan(((unitSpan[a] * t) + p) * c, c), z, stabScale, gz) * stabScale;
                        }
                    }
                }

                g.Backward(logits, seed);
                g.Reset();
                // ẑ_p = z_p + Σ_j u_pj a_k[j]: ∂a_k[j] += u_pj ∂ẑ_p; ∂u_pj = ∂ẑ_p · a_k[j]; ∂B[j] += ∂u_pj z_p.
                for (int a = 0; a < m; a++)
                {
                    for (int p = 0; p < t; p++)
                    {
                        int row = (unitSpan[a] * t) + p;
                        var gz = gradSteered.AsSpan(((a * t) + p) * w, w);
                        var z = rows.Hidden.AsSpan(row * w, w);
                        for (int j = 0; j < r; j++)
                        {
                            var ak = op.Matrices.AsSpan(j * kw + k * w, w);
                            var ga = gradMatrices.AsSpan(j * kw + k * w, w);
                            TensorPrimitives.MultiplyAdd(gz, u[row * r + j], ga, ga);
                            float gu = TensorPrimitives.Dot(gz, ak);
                            var gb = local.GradBasis.AsSpan(j * w, w);
                            TensorPrimitives.MultiplyAdd(z, gu, gb, gb);
                        }
                    }
                }

                return local;
            }, local =>
            {
                lock (gate)
                {
                    fid += local.Loss[0];
                    stab += local.Loss[1];
                    TensorPrimitives.Add(gradBasis, local.GradBasis, gradBasis);
                }
            });

            return (fid, options.Stability > 0 ? stab / options.Stability : 0, 0);
        }
    }
}
