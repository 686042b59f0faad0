"""The bundled models, one directory each; installed as the package `edgesleep.bundled`."""
