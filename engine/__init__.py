"""Hearth's engine: models, prompts, generation. Imports no Qt, and no MLX until it is needed."""
