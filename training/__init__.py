"""The bundled trainer: Llama-style model, blended shard loader, FSDP2 training, planner."""
