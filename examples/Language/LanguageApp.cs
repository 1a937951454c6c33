using System;
using System.Collections.Generic;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using Mix.Examples.Data;
using Mix.Examples.Language.Models;
using Mix.Training.Summary;
using Mix.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples.Language;

/// <summary>Settings of the language example.</summary>
public sealed record LanguageOptions
{
    /// <summary>Training steps per model.</summary>
    public int Steps { get; init; } = 150;
    /// <summary>Characters per training sequence.</summary>
    public int Context { get; init; } = 64;
    /// <summary>Sequences per step.</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Chunk length of the Mamba layers' chunked selective scan (memory grows with its square); 0: the
    /// sequential scan, which is the faster one for these small models on a CPU.</summary>
    public int ScanChunk { get; init; }
    /// <summary>Which models: mamba, attention, hybrid, mamba2, gla (empty: all).</summary>
    public IReadOnlyList<string> Models { get; init; } = Array.Empty<string>();
    /// <summary>Start of the generated text.</summary>
    public string Prompt { get; init; } = "CYNIC, n.";
    /// <summary>Characters to generate.</summary>
    public int Length { get; init; } = 160;
    /// <summary>Sampling temperature (0: greedy only).</summary>
    public double Temperature { get; init; } = 0.8;
    /// <summary>Seed.</summary>
    public int Seed { get; init; }
    /// <summary>Force the CPU.</summary>
    public bool Cpu { get; init; }
    /// <summary>CPU threads (0: one per core).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Output folder.</summary>
    public string Output { get; init; } = Path.Combine("artifacts", "language");
    /// <summary>How training progress shows.</summary>
    public ProgressMode Progress { get; init; } = ProgressMode.Auto;
    /// <summary>KV-cache format of the model summary's second cache column (fp16, kivi4, kivi2, vidkv; fp32: none).</summary>
    public string SummaryKvFormat { get; init; } = "kivi4";
    /// <summary>After training: held-out perplexity with int8 and int4 (g32/64/128, ± AWQ) weights.</summary>
    public bool QuantizeWeights { get; init; }
    /// <summary>Training windows AWQ calibrates on.</summary>
    public int CalibrationWindows { get; init; } = 8;
    /// <summary>After training (models with attention): perplexity through a KIVI-4/KIVI-2/VidKV cache and greedy agreement.</summary>
    public bool QuantizeKvCache { get; init; }
    /// <summary>KV evaluation: held-out sequences decoded through the cache.</summary>
    public int KvSequences { get; init; } = 8;
    /// <summary>KV evaluation: characters per sequence (the cache quantizes from R + G = 64 on).</summary>
    public int KvLength { get; init; } = 256;
    /// <summary>KV evaluation: tokens per cache call.</summary>
    public int KvChunk { get; init; } = 16;
    /// <summary>KV evaluation: greedy prompts (32 held-out characters each).</summary>
    public int KvPrompts { get; init; } = 4;
    /// <summary>KV evaluation: characters generated per prompt.</summary>
    public int KvNewTokens { get; init; } = 192;
}

/// <summary>One model's result: held-out bits per character and its samples, and the quantization step's results when
/// it ran.</summary>
public sealed record LanguageResult(string Model, long Parameters, double BitsPerChar, double Seconds, string Greedy, string? Sampled,
    IReadOnlyList<EpochStats> History)
{
    /// <summary>Held-out perplexity per weight-quantization setting (empty unless asked for).</summary>
    public IReadOnlyList<WeightQuantResult> WeightQuantization { get; init; } = Array.Empty<WeightQuantResult>();
    /// <summary>KV-cache quantization on long held-out sequences (empty unless asked for, or without attention).</summary>
    public IReadOnlyList<KvQuantResult> KvQuantization { get; init; } = Array.Empty<KvQuantResult>();
}

/// <summary>Character-level Mamba, attention, hybrid, Mamba-2 and GLA models on <i>The Devil's Dictionary</i>.</summary>
public static class LanguageApp
{
    /// <summary>The text's file name in <c>examples/data/</c>.</summary>
    public const string FileName = "devils_dictionary.txt.gz";

    /// <summary>The command line.</summary>
    public static int RunCommandLine(string[] args, IAnsiConsole? console = null, TextWriter? helpOutput = null)
    {
        var steps = new Option<int>("--steps") { Description = "Training steps per model", DefaultValueFactory = _ => 150 };
        var context = new Option<int>("--context") { Description = "Characters per training sequence", DefaultValueFactory = _ => 64 };
        var models = new Option<string[]>("--models") { Description = "Models to train: mamba, attention, hybrid, mamba2, gla (default: all)", AllowMultipleArgumentsPerToken = true };
        var prompt = new Option<string>("--prompt") { Description = "Start of the generated text", DefaultValueFactory = _ => "CYNIC, n." };
        var length = new Option<int>("--length") { Description = "Characters to generate", DefaultValueFactory = _ => 160 };
        var temperature = new Option<double>("--temperature") { Description = "Sampling temperature; 0 prints only the greedy text", DefaultValueFactory = _ => 0.8 };
        var seed = new Option<int>("--seed") { Description = "Seed", DefaultValueFactory = _ => 0 };
        var cpu = new Option<bool>("--cpu") { Description = "Run on the CPU even when CUDA is available" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)", DefaultValueFactory = _ => 1 };
        var scanChunk = new Option<int>("--scan-chunk") { Description = "Chunk length of Mamba's chunked selective scan; 0: the sequential scan (fastest for these small models on a CPU)", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--output", "-o") { Description = "Folder for the plot", DefaultValueFactory = _ => Path.Combine("artifacts", "language") };
        var quantize = new Option<bool>("--quantize") { Description = "After training, report held-out perplexity with int8 and int4 (groups 32/64/128, with and without AWQ) weights" };
        var kvQuant = new Option<bool>("--kv-quant") { Description = "After training, report perplexity through a KIVI-4, KIVI-2 and VidKV cache and greedy agreement with the fp32 cache (models with attention)" };
        var summaryKv = new Option<string>("--summary-kv") { Description = "KV format of the summary's second cache column: fp16, kivi4, kivi2, vidkv (fp32: none)", DefaultValueFactory = _ => "kivi4" };
        var root = new RootCommand("Mix language example: character-level Mamba, attention, hybrid, Mamba-2 and gated linear attention models (language.mix) trained on Ambrose Bierce's The Devil's Dictionary, with greedy and temperature sampling.")
        {
            steps, context, models, prompt, length, temperature, seed, cpu, threads, scanChunk, output, quantize, kvQuant, summaryKv,
        };
        root.SetAction(p => Devices.Run(console, () =>
        {
            Run(new LanguageOptions
            {
                Steps = p.GetValue(steps), Context = p.GetValue(context), Models = p.GetValue(models) ?? Array.Empty<string>(),
                Prompt = p.GetValue(prompt)!, Length = p.GetValue(length), Temperature = p.GetValue(temperature), Seed = p.GetValue(seed),
                Cpu = p.GetValue(cpu), Threads = p.GetValue(threads), ScanChunk = p.GetValue(scanChunk), Output = p.GetValue(output)!,
                QuantizeWeights = p.GetValue(quantize), QuantizeKvCache = p.GetValue(kvQuant), SummaryKvFormat = p.GetValue(summaryKv)!,
            }, console);
            return 0;
        }));
        var invocation = new InvocationConfiguration();
        if (helpOutput is not null) { invocation.Output = helpOutput; invocation.Error = helpOutput; }
        return root.Parse(args).Invoke(invocation);
    }

    /// <summary>Trains the selected models, reports held-out bits per character and prints samples.</summary>
    public static IReadOnlyList<LanguageResult> Run(LanguageOptions o, IAnsiConsole? console = null)
    {
        console ??= ConsoleOutput.Default;
        Devices.SetThreads(o.Threads);
        var device = Devices.Pick(o.Cpu);
        var text = ExampleData.ReadAllText(ExampleData.Find(FileName)).Replace("\r", "", StringComparison.Ordinal);
        var vocab = text.Distinct().OrderBy(c => c).ToArray();
        var index = vocab.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => (long)p.i);
        var ids = text.Select(c => index[c]).ToArray();
        int split = (int)(ids.Length * 0.9);
        var train = ids[..split];
        var valid = ids[split..];
        console.MarkupLine($"[bold]Mix language[/]: The Devil's Dictionary (Ambrose Bierce, 1911), {text.Length:N0} characters, {vocab.Length} distinct; " +
                           $"{train.Length:N0} train / {valid.Length:N0} held out; {o.Steps} steps × {o.BatchSize} × {o.Context} characters per model, {Devices.Describe(device)}");

        var catalog = new (string Name, Func<nn.Module<Tensor, Tensor>> Create)[]
        {
            ("mamba", () => new CharMamba(new CharMamba.Options { VocabSize = vocab.Length })),
            ("attention", () => new CharAttention(new CharAttention.Options { VocabSize = vocab.Length })),
            ("hybrid", () => new CharHybrid(new CharHybrid.Options { VocabSize = vocab.Length })),
            ("mamba2", () => new CharMamba2(new CharMamba2.Options { VocabSize = vocab.Length })),
            ("gla", () => new CharGla(new CharGla.Options { VocabSize = vocab.Length })),
        };
        // A fixed held-out batch: evenly spaced windows.
        int evalWindows = 64;
        var evalStarts = Enumerable.Range(0, evalWindows).Select(i => (long)i * (valid.Length - o.Context - 1) / evalWindows).ToArray();
        var (xVal, yVal) = Batch(valid, evalStarts, o.Context, device);

        var results = new List<LanguageResult>();
        var compilation = MixSources.Compile(typeof(LanguageApp).Assembly);
        // The models' Mamba layers are the standard library's .mix mamba, whose selective_scan takes the process-wide
        // algorithm: set for this run, restored afterwards (tests call Run in-process).
        var scanBefore = (Mix.Runtime.SelectiveScan.DefaultAlgorithm, Mix.Runtime.SelectiveScan.DefaultChunkLength);
        Mix.Runtime.SelectiveScan.DefaultAlgorithm = o.ScanChunk > 0 ? Mix.Runtime.SelectiveScanAlgorithm.Chunked : Mix.Runtime.SelectiveScanAlgorithm.Sequential;
        if (o.ScanChunk > 0) Mix.Runtime.SelectiveScan.DefaultChunkLength = o.ScanChunk;
        try
        {
            foreach (var (name, create) in catalog.Where(c => o.Models.Count == 0 || o.Models.Contains(c.Name)))
            {
                // What language.mix declares: layers, parameters and the decoding cache per sequence (fp32 and the
                // KV format of the summary), from the front end alone.
                var definition = compilation.Find("char_" + name) ?? throw new InvalidOperationException($"language.mix has no model char_{name}");
                console.Write(SummaryTable.Create(ModelSummary.Create(definition, maxDepth: 1, kvFormat: KvCacheFormat.Parse(o.SummaryKvFormat))));
                Devices.Seed(o.Seed);
                using var model = create();
                void Configure(nn.Module<Tensor, Tensor> m) => m.to(device);
                Configure(model);
                var rng = new Random(o.Seed);
                using var optimizer = torch.optim.AdamW(model.parameters(), lr: 3e-3, weight_decay: 0.01);
                int stepsPerEpoch = Math.Max(1, o.Steps / 10);
                var watch = Stopwatch.StartNew();
                var history = new TrainLoop
                {
                    Title = name, Epochs = (o.Steps + stepsPerEpoch - 1) / stepsPerEpoch, StepsPerEpoch = stepsPerEpoch, Unit = "chars",
                    Mode = o.Progress, Log = console.Profile.Out.Writer,
                }.Run((epoch, step) =>
                {
                    int global = epoch * stepsPerEpoch + step;
                    Classifier.SetLearningRate(optimizer, Classifier.Schedule(3e-3, global, stepsPerEpoch, o.Steps));
                    model.train();
                    using var scope = torch.NewDisposeScope();
                    var starts = Enumerable.Range(0, o.BatchSize).Select(_ => (long)rng.Next(train.Length - o.Context - 1)).ToArray();
                    var (x, y) = Batch(train, starts, o.Context, device);
                    optimizer.zero_grad();
                    var logits = model.call(x);
                    var loss = nn.functional.cross_entropy(logits.reshape(-1, vocab.Length), y.reshape(-1));
                    loss.backward();
                    nn.utils.clip_grad_norm_(model.parameters(), 1.0);
                    optimizer.step();
                    long correct = logits.argmax(-1).eq(y).sum().item<long>();
                    return new StepResult(loss.item<float>(), x.numel(), correct);
                }, _ =>
                {
                    var (loss, acc) = Evaluate(model, xVal, yVal, vocab.Length);
                    return new EvalResult(loss, acc);
                });
                var seconds = watch.Elapsed.TotalSeconds;
                var (valLoss, _) = Evaluate(model, xVal, yVal, vocab.Length);
                var greedy = Generate(model, o.Prompt, o.Length, 0, o.Context, vocab, index, device, new Random(o.Seed));
                var sampled = o.Temperature > 0 ? Generate(model, o.Prompt, o.Length, o.Temperature, o.Context, vocab, index, device, new Random(o.Seed)) : null;
                var result = new LanguageResult(name, model.parameters().Sum(p => p.numel()), valLoss / Math.Log(2), seconds, greedy, sampled, history);
                console.MarkupLine($"[bold]{name}[/]: {result.BitsPerChar:F3} bits/char held out, {seconds:F1} s");
                console.MarkupLine($"  greedy:          {Markup.Escape(OneLine(greedy))}");
                if (sampled is not null) console.MarkupLine($"  temperature {o.Temperature:0.##}: {Markup.Escape(OneLine(sampled))}");
                if (o.QuantizeWeights)
                {
                    var calibRng = new Random(o.Seed + 1);
                    var calibration = new List<Tensor>();
                    for (int i = 0; i < o.CalibrationWindows; i++)
                    {
                        var (cx, cy) = Batch(train, new[] { (long)calibRng.Next(train.Length - o.Context - 1) }, o.Context, device);
                        cy.Dispose();
                        calibration.Add(cx);
                    }
                    result = result with { WeightQuantization = QuantizationEvaluation.WeightQuantization(model, create, Configure, xVal, yVal, calibration) };
                    foreach (var c in calibration) c.Dispose();
                    console.Write(WeightTable(name, result.WeightQuantization));
                }
                if (o.QuantizeKvCache && name is "attention" or "hybrid")
                {
                    long[] Window(long start, int n) => valid[(int)start..(int)(start + n)];
                    var sequences = Enumerable.Range(0, o.KvSequences).Select(i => Window((long)i * (valid.Length - o.KvLength) / o.KvSequences, o.KvLength)).ToArray();
                    var prompts = Enumerable.Range(0, o.KvPrompts).Select(i => Window((long)((i + 0.5) * (valid.Length - 32) / o.KvPrompts), 32)).ToArray();
                    result = result with { KvQuantization = QuantizationEvaluation.KvCacheQuantization(model, vocab.Length, sequences, o.KvChunk, prompts, o.KvNewTokens) };
                    console.Write(KvTable(name, o, result.KvQuantization));
                }
                results.Add(result);
            }
        }
        finally
        {
            (Mix.Runtime.SelectiveScan.DefaultAlgorithm, Mix.Runtime.SelectiveScan.DefaultChunkLength) = scanBefore;
        }

        var table = new Table().Border(TableBorder.Rounded).Title("[bold]Character-level LMs[/] on The Devil's Dictionary");
        table.AddColumn("model");
        table.AddColumn(new TableColumn("params").RightAligned());
        table.AddColumn(new TableColumn("held-out bits/char").RightAligned());
        table.AddColumn(new TableColumn("train time").RightAligned());
        foreach (var r in results)
            table.AddRow(r.Model, r.Parameters.ToString("N0", CultureInfo.InvariantCulture), r.BitsPerChar.ToString("F3", CultureInfo.InvariantCulture), $"{r.Seconds:F1} s");
        console.Write(table);
        if (results.Count > 0)
        {
            var plot = Plots.SaveLines(Path.Combine(o.Output, "language.png"), "Held-out loss (bits per character)", "training step", "bits per character",
                results.Select(r => (r.Model, r.History.Select(h => (double)h.Epoch * stepsOf(o)).ToArray(), r.History.Select(h => h.ValLoss / Math.Log(2)).ToArray())));
            console.MarkupLine($"Plot: {Markup.Escape(plot)}");
        }
        xVal.Dispose();
        yVal.Dispose();
        return results;

        static int stepsOf(LanguageOptions o) => Math.Max(1, o.Steps / 10);
    }

    static Table WeightTable(string model, IReadOnlyList<WeightQuantResult> rows)
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"[bold]{model}[/]: weight quantization, held-out perplexity per character");
        foreach (var h in new[] { "weights", "layers quantized", "model bytes", "perplexity", "Δ vs fp32", "time" })
            table.AddColumn(h == "weights" ? new TableColumn(h) : new TableColumn(h).RightAligned());
        foreach (var r in rows)
            table.AddRow(r.Setting, r.Setting == "fp32" ? "-" : $"{r.Quantized} ({r.Skipped} kept fp32)", r.ModelBytes.ToString("N0", CultureInfo.InvariantCulture),
                r.Perplexity.ToString("F4", CultureInfo.InvariantCulture), r.Setting == "fp32" ? "" : r.DeltaPercent.ToString("+0.00;-0.00", CultureInfo.InvariantCulture) + " %",
                $"{r.Seconds:F1} s");
        return table;
    }

    static Table KvTable(string model, LanguageOptions o, IReadOnlyList<KvQuantResult> rows)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .Title($"[bold]{model}[/]: KV-cache quantization, {o.KvSequences} × {o.KvLength} held-out characters in chunks of {o.KvChunk}, greedy {o.KvPrompts} × {o.KvNewTokens}");
        foreach (var h in new[] { "KV cache", "bytes/token/layer", "perplexity (pos ≥ 64)", "Δ vs fp32", "greedy agreement", "first divergence", "sampled agreement" })
            table.AddColumn(h == "KV cache" ? new TableColumn(h) : new TableColumn(h).RightAligned());
        foreach (var r in rows)
            table.AddRow(r.Mode, r.BytesPerToken.ToString("0.#", CultureInfo.InvariantCulture), r.Perplexity.ToString("F4", CultureInfo.InvariantCulture),
                r.Mode == "fp32" ? "" : r.DeltaPercent.ToString("+0.00;-0.00", CultureInfo.InvariantCulture) + " %",
                r.Agreement.ToString("P1", CultureInfo.InvariantCulture), r.FirstDivergence.ToString("0.#", CultureInfo.InvariantCulture),
                r.SampledAgreement.ToString("P1", CultureInfo.InvariantCulture));
        return table;
    }

    static string OneLine(string s) => s.Replace("\n", " ⏎ ", StringComparison.Ordinal);

    static (Tensor X, Tensor Y) Batch(long[] ids, long[] starts, int context, Device device)
    {
        var x = new long[starts.Length * context];
        var y = new long[starts.Length * context];
        for (int b = 0; b < starts.Length; b++)
        {
            Array.Copy(ids, starts[b], x, b * context, context);
            Array.Copy(ids, starts[b] + 1, y, b * context, context);
        }
        return (torch.tensor(x, new long[] { starts.Length, context }, device: device), torch.tensor(y, new long[] { starts.Length, context }, device: device));
    }

    static (double Loss, double Accuracy) Evaluate(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y, int vocab)
    {
        model.eval();
        using var g = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var logits = model.call(x);
        var loss = nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1)).item<float>();
        var acc = logits.argmax(-1).eq(y).to_type(ScalarType.Float32).mean().item<float>();
        return (loss, acc);
    }

    /// <summary>Continues <paramref name="prompt"/> by <paramref name="length"/> characters: greedy when
    /// <paramref name="temperature"/> is 0, else sampled from softmax(logits / temperature) with <paramref name="rng"/>.</summary>
    public static string Generate(nn.Module<Tensor, Tensor> model, string prompt, int length, double temperature, int context,
        char[] vocab, IReadOnlyDictionary<char, long> index, Device device, Random rng)
    {
        model.eval();
        using var g = torch.no_grad();
        var ids = prompt.Where(index.ContainsKey).Select(c => index[c]).ToList();
        var sb = new StringBuilder(prompt);
        for (int i = 0; i < length; i++)
        {
            using var scope = torch.NewDisposeScope();
            var window = ids.Skip(Math.Max(0, ids.Count - context)).ToArray();
            var logits = model.call(torch.tensor(window, new long[] { 1, window.Length }, device: device)).select(0, 0).select(0, window.Length - 1).cpu();
            long next;
            if (temperature <= 0) next = logits.argmax().item<long>();
            else
            {
                var p = torch.softmax(logits / temperature, 0).data<float>().ToArray();
                double u = rng.NextDouble(), acc = 0;
                next = p.Length - 1;
                for (int k = 0; k < p.Length; k++) { acc += p[k]; if (u < acc) { next = k; break; } }
            }
            ids.Add(next);
            sb.Append(vocab[next]);
        }
        return sb.ToString();
    }
}
