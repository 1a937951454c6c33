// The Quickstart (the README's main command): `dotnet run --project examples/Quickstart [-- --help]`.
return Mix.Quickstart.QuickstartApp.RunCommandLine(args);
