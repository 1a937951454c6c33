using System;
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
        Runtime.SelectiveScan.Scan(u, delta, A, B, C, d, z, deltaBias, deltaSoftplus,
            algorithm: Runtime.SelectiveScan.DefaultAlgorithm, chunkSize: Runtime.SelectiveScan.DefaultChunkLength);

    /// <summary>
    /// <c>y, final_state = selective_scan(..., initial_state = s)</c>: the scan continued from <paramref name="initialState"/>
    /// <c>[b, d, n]</c> (float32); returns <c>[y, final_state]</c>. See <see cref="Runtime.SelectiveScan.ScanWithState"/>.
    /// </summary>
    public static Tensor[] SelectiveScanWithState(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? d = null, Tensor? z = null,
        Tensor? deltaBias = null, bool deltaSoftplus = false, Tensor? initialState = null)
    {
        var (y, state) = Runtime.SelectiveScan.ScanWithState(u, delta, A, B, C, d, z, deltaBias, deltaSoftplus, initialState,
            Runtime.SelectiveScan.DefaultAlgorithm, Runtime.SelectiveScan.DefaultChunkLength);
        return new[] { y, state };
    }

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

    /// <summary>
    /// <c>y, final_state = causal_conv1d(x, weight, bias, activation, state = s)</c>: the convolution continued from the
    /// previous W − 1 inputs <paramref name="state"/> <c>[b, d, W − 1]</c>; returns <c>[y, final_state]</c> (the last
    /// W − 1 inputs, in <paramref name="state"/>'s dtype). See <see cref="Scans.CausalConv1d.Forward"/>.
    /// </summary>
    public static Tensor[] CausalConv1dWithState(Tensor x, Tensor weight, Tensor? bias = null, string? activation = null, Tensor? state = null)
    {
        var (y, final) = Scans.CausalConv1d.Forward(x, weight, bias, activation, state);
        if (state is null || final.dtype == state.dtype) return new[] { y, final };
        using (final) return new[] { y, final.to_type(state.dtype) };
    }

    /// <summary>
    /// <c>token_mask(x)</c>: <c>[B, L]</c> in <paramref name="x"/>'s (floating) dtype, 1 at tokens and 0 at padding: the
    /// attention mask of the decoding step a <see cref="Caches.CausalModel"/> is running, else the padding mask of a
    /// <see cref="Caches.PaddingMask.Use"/> scope, else all ones.
    /// </summary>
    public static Tensor TokenMask(Tensor x)
    {
        var dtype = torch.is_floating_point(x) ? x.dtype : ScalarType.Float32;
        var scope = Caches.CacheScope.Current;
        if ((scope is not null ? scope.Mask : Caches.PaddingMask.Current) is { } mask)
        {
            if (mask.dim() != 2 || mask.shape[0] != x.shape[0] || mask.shape[1] != x.shape[1])
                throw new InvalidOperationException(
                    $"token_mask: the {(scope is not null ? "step's" : "padding")} mask is [{string.Join(", ", mask.shape)}] but the input is [{string.Join(", ", x.shape)}] (tokens on axis 1)");
            return mask.to(x.device).ne(0).to_type(dtype);
        }
        return torch.ones(new[] { x.shape[0], x.shape[1] }, dtype: dtype, device: x.device);
    }
}
