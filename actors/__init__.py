"""Integration workers: providers, circuit breakers, health checkers and the integration router."""
