"""The embedded mode: model servers and the gateway as supervised local processes."""
