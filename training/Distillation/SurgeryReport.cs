using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Mix.Training.Distillation;

/// <summary>A student tensor set from the source model: its key, shape, where it came from and how.</summary>
/// <param name="Key">The student's state-dict key.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Source">The source tensor(s) it was made from.</param>
/// <param name="Rule">How: <c>copied</c>, or the mapping (<c>rows 0..63 ← v</c>, ...).</param>
public sealed record MappedTensor(string Key, long[] Shape, string Source, string Rule);

/// <summary>A student tensor with no counterpart in the source: its key, shape and the initial value it was given.</summary>
/// <param name="Key">The student's state-dict key.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Init">Its initial value (<c>identity per head</c>, <c>zeros</c>, <c>as constructed</c>, ...).</param>
public sealed record NewTensor(string Key, long[] Shape, string Init);

/// <summary>
/// What a <see cref="StudentSurgery"/> step did, key by key: every student tensor is either <see cref="Mapped"/>
/// (with its source and rule) or <see cref="New"/> (with its initial value), and every source tensor the student did not
/// take is in <see cref="Unused"/>; nothing is copied silently. <see cref="ToString"/> prints all of it.
/// </summary>
public sealed class SurgeryReport
{
    internal SurgeryReport(string step, IReadOnlyList<MappedTensor> mapped, IReadOnlyList<NewTensor> created, IReadOnlyList<string> unused)
    {
        Step = step;
        Mapped = mapped;
        New = created;
        Unused = unused;
    }

    /// <summary>Which surgery: <c>stage 1: attention → hedgehog_attention</c>, ...</summary>
    public string Step { get; }

    /// <summary>Student tensors set from the source, in state-dict order.</summary>
    public IReadOnlyList<MappedTensor> Mapped { get; }

    /// <summary>Student tensors with no source counterpart, in state-dict order.</summary>
    public IReadOnlyList<NewTensor> New { get; }

    /// <summary>Source tensors no student tensor was made from.</summary>
    public IReadOnlyList<string> Unused { get; }

    /// <summary>Student tensors in all (mapped and new).</summary>
    public int Count => Mapped.Count + New.Count;

    /// <inheritdoc />
    public override string ToString()
    {
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"{Step}: {Mapped.Count} tensors mapped, {New.Count} new, {Unused.Count} source tensors unused");
        foreach (var m in Mapped)
            s.Append("\n  mapped ").Append(m.Key).Append(' ').Append(Shape(m.Shape)).Append(" ← ").Append(m.Source)
                .Append(m.Rule == "copied" ? "" : " (" + m.Rule + ")");
        foreach (var n in New) s.Append("\n  new    ").Append(n.Key).Append(' ').Append(Shape(n.Shape)).Append(": ").Append(n.Init);
        foreach (var u in Unused) s.Append("\n  unused ").Append(u);
        return s.ToString();
    }

    static string Shape(long[] shape) => "[" + string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture))) + "]";
}
