namespace Mix.Runtime
{
    /// <summary>Which TorchSharp implementation of the selective scan <see cref="SelectiveScan.Scan"/> uses.</summary>
    public enum SelectiveScanAlgorithm
    {
        /// <summary>
        /// Chunked closed form (default): within chunks of <c>chunkSize</c> steps the recurrence is evaluated with
        /// segment sums of log-decays (a masked <c>[T, T]</c> decay matrix per channel and state), and the state is carried
        /// across chunks. Cost O(L·T) per channel/state, about L/T sequential steps; suited to CPU training of small models.
        /// </summary>
        Chunked = 0,

        /// <summary>Plain per-time-step recurrence (the reference; L sequential steps).</summary>
        Sequential = 1,
    }
}
