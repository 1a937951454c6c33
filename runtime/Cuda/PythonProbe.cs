using System;
using System.Diagnostics;

namespace Mix.Runtime.Cuda
{
    /// <summary>Asks the installed <c>python3</c> for a path (PyTorch's lib folder, NVIDIA wheel folders). Used only as a last resort.</summary>
    public static class PythonProbe
    {
        /// <summary>Runs <c>python3 -c code</c> and returns its trimmed standard output, or null on any failure or after 20 s.</summary>
        /// <param name="code">Python code that prints the answer.</param>
        public static string? Run(string code)
        {
            foreach (var exe in new[] { "python3", "python" })
            {
                try
                {
                    var psi = new ProcessStartInfo(exe)
                    {
                        RedirectStandardOutput = true,
                        RedirectStandardError = true,
                        UseShellExecute = false,
                    };
                    psi.ArgumentList.Add("-c");
                    psi.ArgumentList.Add(code);
                    using var p = Process.Start(psi);
                    if (p is null) continue;
                    var stdout = p.StandardOutput.ReadToEndAsync();
                    _ = p.StandardError.ReadToEndAsync();
                    if (!p.WaitForExit(20000)) { try { p.Kill(); } catch (InvalidOperationException) { } continue; }
                    if (p.ExitCode != 0) continue;
                    var s = stdout.Result.Trim();
                    return s.Length == 0 ? null : s;
                }
                catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
                {
                }
            }
            return null;
        }

        /// <summary>Library folders of NVIDIA's pip wheels (<c>site-packages/nvidia/*/lib</c>) that python3 sees, or none.</summary>
        public static string[] NvidiaWheelLibDirs()
        {
            var s = Run("import nvidia,os;print('\\n'.join(os.path.join(p,d,'lib') for p in nvidia.__path__ for d in sorted(os.listdir(p)) if os.path.isdir(os.path.join(p,d,'lib'))))");
            return s is null ? Array.Empty<string>() : s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
    }
}
