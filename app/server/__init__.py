"""`hearth serve` and the app's server switch: OpenAI- and Ollama-compatible HTTP over Hearth's engine.

A front end like the GUI and the CLI: it submits requests to the one engine thread and turns its
events into each protocol's replies. Nothing here touches MLX.
"""
