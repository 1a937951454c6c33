using System;
using System.Text;

namespace Mix.Runtime.Checkpoints;

/// <summary>
/// A strict load found that the checkpoint does not match the model. Thrown before anything is copied, so the model
/// is unchanged; the message lists every missing key, unexpected key, shape mismatch and dtype mismatch, one per line.
/// </summary>
public sealed class CheckpointMismatchException : Exception
{
    /// <summary>Creates the exception from the comparison's report.</summary>
    /// <param name="report">The report; its problem lines become the message.</param>
    public CheckpointMismatchException(CheckpointLoadReport report) : base(Compose(report))
    {
        Report = report;
    }

    /// <summary>The full comparison.</summary>
    public CheckpointLoadReport Report { get; }

    private static string Compose(CheckpointLoadReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var text = new StringBuilder();
        text.Append($"Checkpoint '{report.Path}' does not match the model ({report.ProblemCount} problems: ");
        text.Append($"{report.MissingKeys.Count} missing, {report.UnexpectedKeys.Count} unexpected, ");
        text.Append($"{report.ShapeMismatches.Count} shape, {report.DTypeMismatches.Count} dtype); nothing was loaded.");
        foreach (var line in report.ProblemLines()) text.Append('\n').Append("  ").Append(line);
        return text.ToString();
    }
}
