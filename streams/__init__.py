"""meterstream's streaming side: settings, storage, the Faust app and the CLI."""
