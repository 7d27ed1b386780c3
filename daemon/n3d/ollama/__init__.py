"""Everything n3d knows about speaking to Ollama: names, hosts, durations, the HTTP client."""
