"""Serving: load a checkpoint (or a base model) and answer inference requests.

Modules, lightest first. The API server may import the first four (no torch):
  errors         exceptions, mapped to HTTP statuses by the API
  params         sampling / message / input validation (pure Python)
  openai_format  results -> OpenAI / Emissary v2 / Emissary v1 wire shapes
  process, client  start / wait for / stop a model-server process; HTTP clients
Inside the model-server process only (torch, transformers):
  server         the FastAPI app and `python -m tuneyard.serving.server`
  model          `LoadedModel` (the base every task implements), `Generation`
  loaded         `load_for_serving` -> the `LoadedModel` of a task
  loading        what a model directory holds and how to load it
  generate       text generation, streaming
  encoders       classification / regression heads, embedders
"""
