// `dotnet run --project examples/Distillation [-- --help]`
return Mix.Examples.Distillation.DistillationApp.RunCommandLine(args);
