using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.RegularExpressions;
using Mix.Pretrained;
using Mix.Runtime.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix;

/// <summary>
/// The model zoo's registry: every <c>model</c> of <c>models/*.mix</c>, generated into <c>Mix.Zoo</c>, by its
/// <c>.mix</c> name. <c>Models.Create("poolformer_s12", new() { NumClasses = 10 })</c>,
/// <c>Models.List("*former*")</c>, <c>Models.Info("mamba_130m")</c>, <c>Models.FromPretrained(folder)</c>.
/// </summary>
public static class Models
{
    /// <summary>The names of the registered models matching a glob (<c>*</c> any run, <c>?</c> one character;
    /// case-insensitive), sorted.</summary>
    public static IReadOnlyList<string> List(string pattern = "*")
    {
        ArgumentNullException.ThrowIfNull(pattern);
        var regex = new Regex("^" + Regex.Escape(pattern).Replace("\\*", ".*").Replace("\\?", ".") + "$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
        return ModelCatalog.All.Keys.Where(k => regex.IsMatch(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
    }

    /// <summary>Every registered model's metadata, by name.</summary>
    public static IReadOnlyDictionary<string, ModelInfo> All => ModelCatalog.All;

    /// <summary>The metadata of one model.</summary>
    /// <exception cref="KeyNotFoundException">No model of that name (the message suggests the closest).</exception>
    public static ModelInfo Info(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (ModelCatalog.All.TryGetValue(name, out var info)) return info;
        var closest = ModelCatalog.All.Keys.OrderBy(k => Distance(k, name)).First();
        throw new KeyNotFoundException($"no zoo model '{name}'; did you mean '{closest}'? (Models.List() has all {ModelCatalog.All.Count})");
    }

    /// <summary>The <c>.mix</c> parameter names of a model (what <see cref="ModelOptions.Overrides"/> may set).</summary>
    public static IReadOnlyList<string> Parameters(string name) => OptionBinder.Parameters(Info(name));

    /// <summary>Builds a zoo model with random initial weights.</summary>
    /// <param name="name">The <c>.mix</c> model name.</param>
    /// <param name="options">num_classes, dtype, device and parameter overrides.</param>
    /// <exception cref="KeyNotFoundException">No model of that name.</exception>
    /// <exception cref="ArgumentException">An override names no parameter of the model or has the wrong type.</exception>
    public static nn.Module<Tensor, Tensor> Create(string name, ModelOptions? options = null)
    {
        options ??= new ModelOptions();
        var info = Info(name);
        var module = Build(info, Values(info, null, options.NumClasses, options.Overrides));
        return Place(module, options.DType, options.Device);
    }

    /// <summary>Builds a zoo model as its generated class (<c>Models.Create&lt;PoolformerS12&gt;("poolformer_s12")</c>).</summary>
    public static T Create<T>(string name, ModelOptions? options = null) where T : nn.Module<Tensor, Tensor> =>
        Create(name, options) as T ?? throw new InvalidCastException($"{name} is a {Info(name).Type.Name}, not a {typeof(T).Name}");

    /// <summary>
    /// Builds a zoo model from a local timm or Hugging Face checkpoint and loads its weights. <paramref name="path"/>
    /// is a folder (<c>config.json</c> with <c>model.safetensors</c> or <c>model.safetensors.index.json</c>), a
    /// <c>.safetensors</c> or <c>*.index.json</c> file, a hub-cache repository folder (<c>models--org--name</c>,
    /// resolved through <c>refs/</c>), or a hub id (<c>org/name</c>) looked up in the local hub cache. Nothing is
    /// downloaded.
    /// </summary>
    /// <exception cref="System.IO.FileNotFoundException">Nothing usable at the path (the message says what was tried).</exception>
    /// <exception cref="Mix.Runtime.Checkpoints.CheckpointMismatchException">Strict, and the keys or shapes differ.</exception>
    public static nn.Module<Tensor, Tensor> FromPretrained(string path, PretrainedOptions? options = null) =>
        FromPretrained(path, out _, options);

    /// <summary>As <see cref="FromPretrained(string, PretrainedOptions?)"/>, with the report of what was read, mapped and
    /// loaded.</summary>
    public static nn.Module<Tensor, Tensor> FromPretrained(string path, out PretrainedReport report, PretrainedOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new PretrainedOptions();
        var source = PretrainedSource.Resolve(path, options.Revision, options.CacheDir);
        var config = source.Config;
        var info = options.Model is { } m ? Info(m) : PretrainedSource.Select(config, source, ModelCatalog.All.Values);
        var (fromConfig, unused) = PretrainedSource.MapConfig(info, config);
        var values = Values(info, fromConfig, options.NumClasses, options.Overrides);
        var module = Build(info, values);
        try
        {
            if (options.DType is { } dtype) module.to(dtype);
            // A task model's checkpoint (model.… + head.…) loads into the base model the zoo has, by its prefix.
            var checkpointKeys = CheckpointLoader.Keys(source.Weights);
            var prefix = PretrainedSource.KeyPrefix(module.state_dict().Keys.ToList(), checkpointKeys);
            var load = prefix is null
                ? CheckpointLoader.Load(module, source.Weights, options.Strict, convertDtypes: true)
                : CheckpointLoader.Load(module, source.Weights, prefix, options.Strict, convertDtypes: true);
            var ignored = prefix is null ? Array.Empty<string>() : checkpointKeys.Where(k => !k.StartsWith(prefix, StringComparison.Ordinal)).ToArray();
            if (options.Device is { } device) module.to(device);
            report = new PretrainedReport(info.Name, source.Weights, source.ConfigPath, source.Snapshot, values, fromConfig.Keys.ToList(), unused,
                prefix, ignored, load);
            return module;
        }
        catch
        {
            module.Dispose();
            throw;
        }
    }

    /// <summary>As <see cref="FromPretrained(string, PretrainedOptions?)"/>, as the generated class.</summary>
    public static T FromPretrained<T>(string path, PretrainedOptions? options = null) where T : nn.Module<Tensor, Tensor> =>
        FromPretrained(path, options) as T ?? throw new InvalidCastException($"the checkpoint at {path} builds another class than {typeof(T).Name}");

    static Dictionary<string, object?> Values(ModelInfo info, IReadOnlyDictionary<string, object?>? fromConfig, long? numClasses,
        IReadOnlyDictionary<string, object?> overrides)
    {
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (fromConfig is not null) foreach (var (k, v) in fromConfig) values[k] = v;
        if (numClasses is { } n) values["num_classes"] = n;
        foreach (var (k, v) in overrides) values[k] = v;
        return values;
    }

    static nn.Module<Tensor, Tensor> Build(ModelInfo info, IReadOnlyDictionary<string, object?> values)
    {
        var options = OptionBinder.Bind(info, values);
        var ctor = info.Type.GetConstructor(new[] { options.GetType() })
            ?? throw new InvalidOperationException($"{info.Type.FullName} has no constructor taking its Options");
        try
        {
            return (nn.Module<Tensor, Tensor>)ctor.Invoke(new[] { options });
        }
        catch (System.Reflection.TargetInvocationException e) when (e.InnerException is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
    }

    static nn.Module<Tensor, Tensor> Place(nn.Module<Tensor, Tensor> module, ScalarType? dtype, Device? device)
    {
        if (dtype is { } t) module.to(t);
        if (device is { } d) module.to(d);
        return module;
    }

    static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
        for (int j = 0; j <= b.Length; j++) d[0, j] = j;
        for (int i = 1; i <= a.Length; i++)
            for (int j = 1; j <= b.Length; j++)
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
        return d[a.Length, b.Length];
    }
}
