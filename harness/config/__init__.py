"""Layer 4, configuration: matrix.yaml loaded and validated into typed cells (`model`), quarantine
rules, and the generated matrix reference. Nothing after this layer reads raw YAML."""
