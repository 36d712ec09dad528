"""Turning the Llama 2 weights people actually have into standard mlx-lm folders.

Three sources: the old mlx-examples layout (weights.npz), GGUF files (llama.cpp, Ollama, LM Studio),
and Hugging Face fp16/bf16 safetensors (quantized to 4-bit). Each writes config.json,
model*.safetensors, tokenizer files and a chat template into a staging folder in Hearth's models
directory and renames it into place only when complete, so nothing half-converted is ever listed.
These functions use MLX on the calling thread: the CLI calls them directly, the app on its engine
thread.
"""
