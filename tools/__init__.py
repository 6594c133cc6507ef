"""Development tooling run from the repository (builds, local providers): never imported
by the service. A package so that the tests and mypy name its modules ``tools.…``."""
