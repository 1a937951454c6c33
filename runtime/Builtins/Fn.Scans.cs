using Mix.Runtime.Scans;
using TorchSharp;
using static TorchSharp.torch;

namespace Mix.Runtime.Builtins;

// The scan primitives of .mix (docs/language.md, "Scans"). Parameter names are the .mix names in camelCase, because
// generated code passes optional arguments by name.
public static partial class Fn
{
    /// <summary>
    /// <c>selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus)</c>: Mamba's S6 scan
    /// (<c>mamba_ssm.selective_scan_fn</c>); see <see cref="Runtime.SelectiveScan"/>.
    /// </summary>
    public static Tensor SelectiveScan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? d = null, Tensor? z = null,
        Tensor? deltaBias = null, bool deltaSoftplus = false) =>
        Runtime.SelectiveScan.Scan(u, delta, A, B, C, d, z, deltaBias, deltaSoftplus);

    /// <summary>
    /// <c>y, state = ssd_scan(x, dt, A, B, C, chunk_size, D, z, dt_bias, dt_softplus, initial_state)</c>: Mamba-2's SSD
    /// (<c>mamba_chunk_scan_combined</c>); see <see cref="Scans.SsdScan"/>. Returns <c>[y, final_state]</c>.
    /// </summary>
    public static Tensor[] SsdScan(Tensor x, Tensor dt, Tensor A, Tensor B, Tensor C, long chunkSize = Scans.SsdScan.DefaultChunkSize,
        Tensor? d = null, Tensor? z = null, Tensor? dtBias = null, bool dtSoftplus = false, Tensor? initialState = null)
    {
        var (y, state) = Scans.SsdScan.Scan(x, dt, A, B, C, checked((int)chunkSize), d, z, dtBias, dtSoftplus, initialState);
        return new[] { y, state };
    }

    /// <summary>
    /// <c>o, state = gla_scan(q, k, v, g, scale, chunk_size, initial_state)</c>: gated linear attention (fla's
    /// <c>chunk_gla</c>); see <see cref="Scans.GlaScan"/>. Returns <c>[o, final_state]</c>.
    /// </summary>
    public static Tensor[] GlaScan(Tensor q, Tensor k, Tensor v, Tensor g, double? scale = null, long chunkSize = Scans.GlaScan.DefaultChunkSize,
        Tensor? initialState = null)
    {
        var (o, state) = Scans.GlaScan.Scan(q, k, v, g, scale, checked((int)chunkSize), initialState);
        return new[] { o, state };
    }

    /// <summary><c>fft_conv(u, k, causal)</c>: long convolution by FFT (Hyena's fftconv without D); see <see cref="Scans.FftConv"/>.</summary>
    public static Tensor FftConv(Tensor u, Tensor k, bool causal = true) => Scans.FftConv.Scan(u, k, causal);

    /// <summary>
    /// <c>causal_conv1d(x, weight, bias, activation)</c>: depthwise causal convolution (Dao's <c>causal_conv1d_fn</c>);
    /// see <see cref="Scans.CausalConv1d"/>, whose <c>Step</c> carries the state when decoding.
    /// </summary>
    public static Tensor CausalConv1d(Tensor x, Tensor weight, Tensor? bias = null, string? activation = null)
    {
        var (y, state) = Scans.CausalConv1d.Forward(x, weight, bias, activation);
        state.Dispose();
        return y;
    }
}
