namespace Mix.Runtime.Checkpoints;

/// <summary>One tensor present in both model and checkpoint whose shape or dtype differs.</summary>
public sealed class CheckpointTensorMismatch
{
    internal CheckpointTensorMismatch(string key, string model, string checkpoint)
    {
        Key = key;
        Model = model;
        Checkpoint = checkpoint;
    }

    /// <summary>The state-dict key.</summary>
    public string Key { get; }

    /// <summary>What the model has (a shape such as <c>[2, 3]</c>, or a dtype such as <c>F32</c>).</summary>
    public string Model { get; }

    /// <summary>What the checkpoint has, in the same notation.</summary>
    public string Checkpoint { get; }

    /// <inheritdoc />
    public override string ToString() => $"{Key}: model {Model}, checkpoint {Checkpoint}";
}
