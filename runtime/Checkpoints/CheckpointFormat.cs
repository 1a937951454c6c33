namespace Mix.Runtime.Checkpoints;

/// <summary>The on-disk formats <see cref="CheckpointLoader"/> reads and writes.</summary>
public enum CheckpointFormat
{
    /// <summary>A single safetensors file (<c>.safetensors</c>).</summary>
    SafeTensors,

    /// <summary>A Hugging Face sharded safetensors checkpoint, addressed by its index (<c>.index.json</c>).</summary>
    ShardedSafeTensors,

    /// <summary>TorchSharp's own <c>Module.save</c> format (<c>.dat</c>, <c>.bin</c>).</summary>
    TorchSharp,
}
