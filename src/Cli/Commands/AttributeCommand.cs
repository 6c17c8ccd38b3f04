using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Attribution.Attribution;
using Attribution.Attribution.Methods;
using Attribution.Attribution.Probes;
using Attribution.Cli.Evaluation;
using Attribution.Engine.Data;
using Attribution.Engine.Models;
using Attribution.Engine.Training;

namespace Attribution.Cli.Commands;

/// <summary>
/// <c>./pipeline attribute</c>: precomputes a method on a trained run and writes the score matrix of chosen test
/// queries (train id × test id, plus per-source sums) as CSV or an Arrow IPC stream.
/// </summary>
internal static class AttributeCommand
{
    public static Command Create()
    {
        var run = new Option<string>("--run") { Description = "Run directory written by './pipeline train' (run.json + model.safetensors).", Required = true };
        var method = new Option<string>("--method") { Description = "Method: forward-only, forward-only-single, trak, tracin, grad-dot, if, stride; options after a colon, e.g. forward-only:horizon=50,eps=1e-3. models=M averages over M independently trained models: the run's own plus M-1 trained from its recipe with seeds seed+1..seed+M-1 (kept under <run>/ensemble/seed-<s>/ and reused). tracin needs a run trained with --save-every. A request that cannot be honoured exits 2.", Required = true };
        var testIds = new Option<string>("--test-ids") { Description = "File of query ids (0-based), separated by newlines, commas or spaces: FashionMNIST test-split ids, or for a GPT run positions in the run's held-out documents (each split into prompt and completion).", Required = true };
        var trainLimit = new Option<int>("--train-limit") { Description = "GPT runs only: attribute to the first N training documents (run.json order); 0 = all.", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "Output file (.csv, or .arrow / .arrows for an Arrow IPC stream).", Required = true };
        var probes = new Option<string?>("--probes") { Description = "Forward-only only: a probe set file. Read when it exists (after checking it was simulated from this run, data and method), else simulated and written there, so the simulation is paid once." };
        var data = new Option<string>("--data") { Description = "FashionMNIST IDX folder.", DefaultValueFactory = _ => FashionMnist.DefaultDirectory };
        var command = new Command("attribute", "Score training examples (and sources) for test queries with one attribution method; write the score matrix.");
        foreach (var o in new Option[] { run, method, testIds, output, probes, data, trainLimit })
        {
            command.Options.Add(o);
        }

        command.SetAction((parseResult, cancellationToken) => Task.FromResult(Execute(
            parseResult.GetValue(run)!, parseResult.GetValue(method)!, parseResult.GetValue(testIds)!, parseResult.GetValue(output)!,
            parseResult.GetValue(data)!, parseResult.GetValue(probes), parseResult.GetValue(trainLimit), cancellationToken)));
        return command;
    }

    private static int Execute(string runDir, string methodSpec, string testIdsFile, string outFile, string dataDir, string? probesFile, int trainLimit, CancellationToken cancellationToken)
    {
        try
        {
            if (!Directory.Exists(runDir))
            {
                throw new ArgumentException($"run directory {runDir} does not exist; train one with './pipeline train --out {runDir}'.");
            }

            var format = Path.GetExtension(outFile).ToLowerInvariant() switch
            {
                ".csv" => "csv",
                ".arrow" or ".arrows" => "arrow",
                var ext => throw new ArgumentException($"--out {outFile}: unknown extension '{ext}'; use .csv or .arrow."),
            };
            var (name, options) = EvalRunner.ParseSpec(methodSpec);
            var attribution = EvalRunner.CreateChecked(MethodFactory.Create, name, options); // fail on a bad method before any heavy work
            int models = EvalRunner.ModelsOf(options);
            if (probesFile is not null && attribution is not ForwardOnlyMethod)
            {
                throw new MethodOptionException($"--probes stores one model's forward-only probe set; '{methodSpec}' has none. Drop --probes, or use forward-only with one model.");
            }

            if (LanguageModelRun.IsLanguageModelRun(runDir))
            {
                if (probesFile is not null || format != "csv" || trainLimit < 0)
                {
                    Console.Error.WriteLine($"attribute: {(probesFile is not null ? "--probes (probe set files are MLP probe sets)" : trainLimit < 0 ? "a negative --train-limit" : "Arrow output (its id column is 32-bit; document ids are 63-bit)")} is not supported for a GPT run; write .csv and drop --probes.");
                    return 2;
                }

                return ExecuteLanguageModel(runDir, attribution, testIdsFile, outFile, trainLimit, cancellationToken);
            }

            if (trainLimit != 0)
            {
                Console.Error.WriteLine("attribute: --train-limit applies to GPT runs only; an MLP run attributes to its whole training set.");
                return 2;
            }

            var (manifest, model) = RunDirectory.LoadMlp(runDir);
            bool tracin = EvalRunner.NeedsTrainingCheckpoints(name, options);
            if (tracin && manifest.TrainingCheckpoints.Count == 0)
            {
                throw new MethodOptionException($"{name} reads checkpoints saved during training, and {Path.Combine(runDir, RunDirectory.ManifestFile)} lists none: retrain with './pipeline train --save-every 2 --out {runDir} ...' (same options){(name.Trim().Equals("tracin", StringComparison.OrdinalIgnoreCase) ? ", or use --method grad-dot (the final model alone)" : ", or drop checkpoints")}.");
            }

            var recipe = manifest.Recipe;
            if (recipe.Data.Name != "fashion-mnist")
            {
                throw new ArgumentException($"{Path.Combine(runDir, RunDirectory.ManifestFile)}: data '{recipe.Data.Name}' is not supported by 'attribute' (fashion-mnist only).");
            }

            if (!Directory.Exists(dataDir))
            {
                throw new ArgumentException($"FashionMNIST folder {dataDir} does not exist; pass --data.");
            }

            var raw = FashionMnist.Load(dataDir);
            var ids = ReadIds(testIdsFile, raw.Test.Count);
            var train = raw.Train.Select(recipe.Data.TrainIds, recipe.Data.Normalization);
            var test = raw.Test.Select(ids, recipe.Data.Normalization);
            var (thetas, trainingCheckpoints, ensembleNote) = Ensemble(runDir, manifest, model.ToFlat(), raw, models, tracin);
            var problem = new AttributionProblem(model.Layout, thetas[0], train.Inputs, train.Labels, weightDecay: recipe.Optimizer.WeightDecay, checkpoints: thetas)
            {
                TrainingLearningRate = recipe.Optimizer.LearningRate,
                TrainingCheckpoints = trainingCheckpoints,
            };
            var clock = Stopwatch.StartNew();
            var probeNote = "";
            if (probesFile is not null && attribution is ForwardOnlyMethod forward)
            {
                var identity = ProbeSetIdentity.Of(problem, name.Trim().ToLowerInvariant() + string.Concat(options.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $";{kv.Key.Trim().ToLowerInvariant()}={kv.Value.Trim()}")));
                var probesPath = Path.GetFullPath(probesFile);
                // One serving path: the method scores from the probe set's state exactly as the Scorer imports it.
                var served = new ForwardOnlyMethod(forward.Options);
                if (File.Exists(probesPath))
                {
                    var stored = ProbeSetFile.Read(File.ReadAllBytes(probesPath), probesPath);
                    if (stored.Identity.Difference(identity) is { } why)
                    {
                        throw new ArgumentException($"--probes {probesPath} was not simulated for this run: {why}. Point --probes at a new file (it will be simulated) or at this run's own.");
                    }

                    if (!stored.ExampleIds.SequenceEqual(train.Ids.Select(i => (long)i)) || stored.SourceIds.Length > 0)
                    {
                        throw new ArgumentException($"--probes {probesPath} holds units {Ids(stored.ExampleIds)} / sources {Ids(stored.SourceIds)}, not this run's training examples in order (and no source units: a source's score is the sum of its examples'); point --probes at a new file.");
                    }

                    served.ImportState(ServedModel.Of(problem), stored.State);
                    probeNote = $" (probes read from {probesPath})";
                }
                else
                {
                    // The file holds the simulated factors as they are; any query-time compression (the shared input
                    // basis) is applied after loading, the same way on this run and on every later one.
                    var simulation = new ForwardOnlyMethod(forward.Options with { InputBasisEnergy = 0 });
                    simulation.Precompute(problem, cancellationToken);
                    var state = simulation.ExportState();
                    Directory.CreateDirectory(Path.GetDirectoryName(probesPath)!);
                    var temp = $"{probesPath}.{Environment.ProcessId}.tmp";
                    try
                    {
                        using (var file = File.Create(temp))
                        {
                            ProbeSetFile.Write(file, identity, new DirectoryInfo(runDir).Name, manifest.Metrics.Steps, [.. train.Ids.Select(i => (long)i)], [], state);
                        }

                        File.Move(temp, probesPath, overwrite: true);
                    }
                    finally
                    {
                        File.Delete(temp);
                    }

                    served.ImportState(ServedModel.Of(problem), state);
                    probeNote = $" (probes simulated and written to {probesPath})";
                }

                attribution = served;
            }
            else
            {
                attribution.Precompute(problem, cancellationToken);
            }

            double precompute = clock.Elapsed.TotalSeconds;
            clock.Restart();
            var scores = attribution.Score(new QueryBatch(test.Inputs, test.Labels, test.Features), cancellationToken);
            double scoring = clock.Elapsed.TotalSeconds;
            var bytes = format == "csv"
                ? Encoding.UTF8.GetBytes(ToCsv(scores, scores.SourceScores, [.. train.Ids.Select(i => (long)i)], problem.SourceIds, ids))
                : ScoreMatrixArrow.ToStream(scores, train.Ids, problem.SourceIds, ids, attribution.Describe());
            var full = Path.GetFullPath(outFile);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            RetrainCache.WriteAtomically(full, bytes);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{attribution.Describe()}\n{ensembleNote}precompute {precompute:F2} s{probeNote}, scoring {ids.Length} queries {scoring:F3} s; wrote {train.Count} × {ids.Length} scores (+{scores.SourceCount} source rows) to {full}"));
            return 0;
        }
        catch (MethodOptionException e)
        {
            Console.Error.WriteLine($"attribute: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is ArgumentException or ProbeFormatException or IOException or RecipeException or DataFormatException or InvalidOperationException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"attribute: {e.Message}");
            return 1;
        }
    }

    private static string Ids(long[] ids) => ids.Length <= 4 ? $"[{string.Join(", ", ids)}]" : $"[{ids[0]}, {ids[1]}, …, {ids[^1]}] ({ids.Length})";

    /// <summary>
    /// The models an ensemble needs: the run's own, then members 1..M−1 trained from the run's recipe with seeds
    /// seed+1..seed+M−1 under <c>&lt;run&gt;/ensemble/seed-&lt;s&gt;/</c> (reused when their recipe matches); with
    /// <paramref name="checkpoints"/>, each model's checkpoints saved along training (members are trained saving the
    /// same epochs as the run).
    /// </summary>
    internal static (float[][] Thetas, IReadOnlyList<float[]>[] Checkpoints, string Note) Ensemble(string runDir, RunManifest manifest, float[] theta,
        FashionMnistData raw, int models, bool checkpoints)
    {
        var thetas = new float[models][];
        var saved = new IReadOnlyList<float[]>[checkpoints ? models : 0];
        thetas[0] = theta;
        if (checkpoints)
        {
            saved[0] = RunDirectory.LoadTrainingCheckpoints(runDir, manifest);
        }

        var note = new StringBuilder();
        int saveEvery = manifest.TrainingCheckpoints.Count > 0 ? manifest.TrainingCheckpoints[0].Epoch : 0;
        for (int k = 1; k < models; k++)
        {
            var recipe = manifest.Recipe with { Seed = manifest.Recipe.Seed + (ulong)k };
            var dir = Path.Combine(runDir, "ensemble", string.Create(CultureInfo.InvariantCulture, $"seed-{recipe.Seed}"));
            bool reuse = File.Exists(Path.Combine(dir, RunDirectory.ManifestFile))
                && RunDirectory.ToJson(RunDirectory.LoadManifest(dir).Recipe) == RunDirectory.ToJson(recipe)
                && (!checkpoints || RunDirectory.LoadManifest(dir).TrainingCheckpoints.Count == manifest.TrainingCheckpoints.Count);
            var clock = Stopwatch.StartNew();
            if (!reuse)
            {
                TrainCommand.TrainAndSave(recipe, raw, dir, saveEvery);
            }

            var (memberManifest, member) = RunDirectory.LoadMlp(dir);
            thetas[k] = member.ToFlat();
            if (checkpoints)
            {
                saved[k] = RunDirectory.LoadTrainingCheckpoints(dir, memberManifest);
            }

            note.Append(CultureInfo.InvariantCulture, $"ensemble model {k + 1}/{models}: seed {recipe.Seed}, {(reuse ? "read from" : $"trained in {clock.Elapsed.TotalSeconds:F1} s into")} {dir}\n");
        }

        return (thetas, saved, note.ToString());
    }

    // A GPT run: units = training documents, queries = held-out documents split into prompt and completion, output =
    // the completion log-likelihood.
    private static int ExecuteLanguageModel(string runDir, IAttributionMethod attribution, string testIdsFile, string outFile, int trainLimit, CancellationToken cancellationToken)
    {
        var lm = LanguageModelRun.Load(runDir);
        var positions = ReadIds(testIdsFile, lm.ValidationDocuments.Length);
        var problem = lm.Problem(trainLimit);
        var queries = lm.Queries(positions);
        var clock = Stopwatch.StartNew();
        attribution.Precompute(problem, cancellationToken);
        double precompute = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var scores = attribution.Score(queries, cancellationToken);
        double scoring = clock.Elapsed.TotalSeconds;
        var docIds = lm.TrainDocuments[..problem.Count].Select(i => lm.Corpus.Documents[i].Id).ToArray();
        var full = Path.GetFullPath(outFile);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        RetrainCache.WriteAtomically(full, Encoding.UTF8.GetBytes(ToCsv(scores, attribution.ScoreSources(queries, cancellationToken), docIds, problem.SourceIds, positions)));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{attribution.Describe()}\n{problem.Architecture}, {problem.Count} training documents, {problem.SourceCount} sources; output: {CompletionQuery.OutputFunction}\nprecompute {precompute:F2} s, scoring {positions.Length} queries {scoring:F3} s ({scoring / positions.Length * 1000:F1} ms per query), state {attribution.StateBytes / 1048576.0:F1} MiB; wrote {problem.Count} × {positions.Length} scores (+{scores.SourceCount} source rows) to {full}"));
        for (int q = 0; q < Math.Min(positions.Length, 3); q++)
        {
            var query = lm.Query(positions[q]);
            var (top, score) = ScoreMatrix.TopK(scores.Row(q), 1)[0];
            var doc = lm.Corpus.Documents[lm.TrainDocuments[top]];
            Console.WriteLine($"query {positions[q]}: \"{Snippet(lm.Tokenizer.Decode(query.Prompt))}\" → \"{Snippet(lm.Tokenizer.Decode(query.Completion))}\"; top document {doc.Id} ({lm.Corpus.Sources[doc.SourceId].Name}, score {score.ToString("G3", CultureInfo.InvariantCulture)}): \"{Snippet(lm.Corpus.Text(doc.Index))}\"");
        }

        return 0;
    }

    private static string Snippet(string text)
    {
        var flat = text.ReplaceLineEndings(" ").Trim();
        return flat.Length <= 60 ? flat : flat[..57] + "...";
    }

    /// <summary>Reads test ids; every one must lie in the test split, and duplicates are rejected.</summary>
    internal static int[] ReadIds(string path, int testCount)
    {
        if (!File.Exists(path))
        {
            throw new ArgumentException($"--test-ids file {path} does not exist; write one id per line (0..{testCount - 1}).");
        }

        var ids = new List<int>();
        var seen = new HashSet<int>();
        foreach (var token in File.ReadAllText(path).Split([',', ' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(token, NumberStyles.Integer, CultureInfo.InvariantCulture, out int id))
            {
                throw new ArgumentException($"{path}: '{token}' (entry {ids.Count + 1}) is not an integer test id.");
            }

            if ((uint)id >= (uint)testCount)
            {
                throw new ArgumentException($"{path}: test id {id} (entry {ids.Count + 1}) is outside the test split 0..{testCount - 1}.");
            }

            if (!seen.Add(id))
            {
                throw new ArgumentException($"{path}: test id {id} appears twice.");
            }

            ids.Add(id);
        }

        return ids.Count == 0 ? throw new ArgumentException($"{path}: no test ids.") : [.. ids];
    }

    /// <summary>
    /// Wide CSV: header <c>unit,id,source,&lt;test ids&gt;</c>; one <c>example</c> row per training example (dataset
    /// train id, its source) and one <c>source</c> row per source with the summed scores.
    /// </summary>
    internal static string ToCsv(ScoreMatrix scores, float[] sourceScores, IReadOnlyList<long> trainIds, int[] sourceIds, int[] testIds)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.Append("unit,id,source,").AppendJoin(',', testIds).Append('\n');
        for (int i = 0; i < scores.ExampleCount; i++)
        {
            sb.Append(inv, $"example,{trainIds[i]},{sourceIds[i]}");
            for (int q = 0; q < scores.QueryCount; q++)
            {
                sb.Append(',').Append(scores.Scores[(q * scores.ExampleCount) + i].ToString("R", inv));
            }

            sb.Append('\n');
        }

        int sourceCount = scores.QueryCount == 0 ? 0 : sourceScores.Length / scores.QueryCount;
        for (int s = 0; s < sourceCount; s++)
        {
            sb.Append(inv, $"source,{s},{s}");
            for (int q = 0; q < scores.QueryCount; q++)
            {
                sb.Append(',').Append(sourceScores[(q * sourceCount) + s].ToString("R", inv));
            }

            sb.Append('\n');
        }

        return sb.ToString();
    }
}
