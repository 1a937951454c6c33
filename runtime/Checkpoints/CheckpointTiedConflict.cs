namespace Mix.Runtime.Checkpoints;

/// <summary>Two keys the model ties (one tensor) that a checkpoint holds with different values.</summary>
public sealed class CheckpointTiedConflict
{
    internal CheckpointTiedConflict(string key, string loadedFrom)
    {
        Key = key;
        LoadedFrom = loadedFrom;
    }

    /// <summary>The tied key whose checkpoint value was not used.</summary>
    public string Key { get; }

    /// <summary>The key whose value the shared tensor received (the one registered first: the owner).</summary>
    public string LoadedFrom { get; }

    /// <inheritdoc />
    public override string ToString() =>
        $"{Key} and {LoadedFrom} hold different values, but the model ties them to one tensor (loaded from {LoadedFrom}); the checkpoint was trained untied";
}
