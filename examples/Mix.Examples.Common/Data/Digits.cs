using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Examples.Data;

/// <summary>
/// The UCI handwritten digits as scikit-learn ships them (<c>examples/data/digits.csv.gz</c>): 1,797 images of
/// 8×8 pixels with values 0..16, labels 0..9.
/// </summary>
public sealed class Digits
{
    /// <summary>The file name in <c>examples/data/</c>.</summary>
    public const string FileName = "digits.csv.gz";

    Digits(float[][] images, int[] labels) { Images = images; Labels = labels; }

    /// <summary>Each image's 64 pixels, scaled to 0..1.</summary>
    public float[][] Images { get; }
    /// <summary>The digit each image shows.</summary>
    public int[] Labels { get; }
    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;

    /// <summary>Loads the data set from <paramref name="path"/> (default: <see cref="ExampleData.Find"/>).</summary>
    public static Digits Load(string? path = null)
    {
        path ??= ExampleData.Find(FileName);
        var images = new List<float[]>();
        var labels = new List<int>();
        foreach (var line in ExampleData.ReadAllText(path).Split('\n'))
        {
            if (line.Trim().Length == 0) continue;
            var parts = line.Split(',');
            if (parts.Length != 65) throw new FormatException($"{path}: expected 64 pixels and a label per line, found {parts.Length} values");
            var px = new float[64];
            for (int i = 0; i < 64; i++) px[i] = float.Parse(parts[i], CultureInfo.InvariantCulture) / 16f;
            images.Add(px);
            labels.Add((int)float.Parse(parts[64], CultureInfo.InvariantCulture));
        }
        return new Digits(images.ToArray(), labels.ToArray());
    }

    /// <summary>
    /// A deterministic stratified split: within each class, a seeded shuffle puts <paramref name="testFraction"/>
    /// of the images in the test part. Returns image indices.
    /// </summary>
    public (int[] Train, int[] Test) Split(double testFraction = 0.2, int seed = 0)
    {
        var rng = new Random(seed);
        var train = new List<int>();
        var test = new List<int>();
        foreach (var group in Enumerable.Range(0, Count).GroupBy(i => Labels[i]).OrderBy(g => g.Key))
        {
            var idx = group.ToArray();
            rng.Shuffle(idx);
            int nTest = (int)Math.Round(idx.Length * testFraction);
            test.AddRange(idx.Take(nTest));
            train.AddRange(idx.Skip(nTest));
        }
        var trainArr = train.ToArray();
        var testArr = test.ToArray();
        rng.Shuffle(trainArr);
        Array.Sort(testArr);
        return (trainArr, testArr);
    }

    /// <summary>The images at <paramref name="indices"/> as a <c>[N, 1, 8, 8]</c> tensor and their labels as <c>[N]</c>.</summary>
    public (Tensor X, Tensor Y) Tensors(IReadOnlyList<int> indices, Device? device = null)
    {
        var flat = new float[indices.Count * 64];
        var y = new long[indices.Count];
        for (int i = 0; i < indices.Count; i++)
        {
            Array.Copy(Images[indices[i]], 0, flat, i * 64, 64);
            y[i] = Labels[indices[i]];
        }
        var x = torch.tensor(flat, new long[] { indices.Count, 1, 8, 8 });
        var t = torch.tensor(y);
        if (device is not null && device.type != DeviceType.CPU) { x = x.to(device); t = t.to(device); }
        return (x, t);
    }
}
