// `dotnet run --project examples/Forecasting [-- --help]`
return Mix.Examples.Forecasting.ForecastingApp.RunCommandLine(args);
