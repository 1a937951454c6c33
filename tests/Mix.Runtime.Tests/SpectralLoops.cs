using System;
using System.Numerics;

namespace Mix.Runtime.Tests;

/// <summary>Direct (O(n²)) DFTs and the AFNO block MLP, for expected values of the frequency mixers.</summary>
internal static class SpectralLoops
{
    /// <summary>rfft2 with norm='ortho' of an [H, W] real grid: [H, W/2+1].</summary>
    public static Complex[,] Rfft2(double[,] x)
    {
        int H = x.GetLength(0), W = x.GetLength(1), Wf = W / 2 + 1;
        var X = new Complex[H, Wf];
        double scale = 1 / Math.Sqrt(H * W);
        for (int k1 = 0; k1 < H; k1++)
        for (int k2 = 0; k2 < Wf; k2++)
        {
            Complex s = 0;
            for (int n1 = 0; n1 < H; n1++)
            for (int n2 = 0; n2 < W; n2++)
                s += x[n1, n2] * Complex.FromPolarCoordinates(1, -2 * Math.PI * ((double)k1 * n1 / H + (double)k2 * n2 / W));
            X[k1, k2] = s * scale;
        }
        return X;
    }

    /// <summary>
    /// irfft2 with norm='ortho' and output size (H, W): complex inverse DFT over the first axis, then the C2R transform
    /// over the last (weights 1 for column 0 and, for even W, column W/2; 2 otherwise; imaginary parts of those
    /// self-conjugate columns ignored, as pocketfft does).
    /// </summary>
    public static double[,] Irfft2(Complex[,] X, int H, int W)
    {
        int Wf = X.GetLength(1);
        var Z = new Complex[H, Wf];
        for (int n1 = 0; n1 < H; n1++)
        for (int k2 = 0; k2 < Wf; k2++)
        {
            Complex s = 0;
            for (int k1 = 0; k1 < H; k1++) s += X[k1, k2] * Complex.FromPolarCoordinates(1, 2 * Math.PI * k1 * n1 / H);
            Z[n1, k2] = s / Math.Sqrt(H);
        }
        var y = new double[H, W];
        for (int n1 = 0; n1 < H; n1++)
        for (int n2 = 0; n2 < W; n2++)
        {
            double s = 0;
            for (int k2 = 0; k2 < Wf; k2++)
            {
                double c = k2 == 0 || (W % 2 == 0 && k2 == W / 2) ? 1 : 2;
                s += c * (Z[n1, k2] * Complex.FromPolarCoordinates(1, 2 * Math.PI * k2 * n2 / W)).Real;
            }
            y[n1, n2] = s / Math.Sqrt(W);
        }
        return y;
    }

    private static double SoftShrink(double v, double l) => v > l ? v - l : v < -l ? v + l : 0;

    /// <summary>AFNO block MLP on one frequency's channel vector (length nb·bs); parameters as flat arrays.</summary>
    public static Complex[] BlockMlp(Complex[] x, int nb, int bs, int hf, double[] w1, double[] b1, double[] w2, double[] b2, double lambda)
    {
        var y = new Complex[nb * bs];
        for (int k = 0; k < nb; k++)
        {
            var o1r = new double[hf]; var o1i = new double[hf];
            for (int o = 0; o < hf; o++)
            {
                double r = b1[(0 * nb + k) * hf + o], im = b1[(1 * nb + k) * hf + o];
                for (int i = 0; i < bs; i++)
                {
                    double xr = x[k * bs + i].Real, xi = x[k * bs + i].Imaginary;
                    double wr = w1[((0 * nb + k) * bs + i) * hf + o], wi = w1[((1 * nb + k) * bs + i) * hf + o];
                    r += xr * wr - xi * wi;
                    im += xi * wr + xr * wi;
                }
                o1r[o] = Math.Max(0, r); o1i[o] = Math.Max(0, im);
            }
            for (int j = 0; j < bs; j++)
            {
                double r = b2[(0 * nb + k) * bs + j], im = b2[(1 * nb + k) * bs + j];
                for (int o = 0; o < hf; o++)
                {
                    double wr = w2[((0 * nb + k) * hf + o) * bs + j], wi = w2[((1 * nb + k) * hf + o) * bs + j];
                    r += o1r[o] * wr - o1i[o] * wi;
                    im += o1i[o] * wr + o1r[o] * wi;
                }
                y[k * bs + j] = new Complex(SoftShrink(r, lambda), SoftShrink(im, lambda));
            }
        }
        return y;
    }
}
