"""The web app's engine runner is the core's engine host (impasto.host): one engine per process,
shared by every browser tab, jobs taken in turn per tab (Gradio's session hash is the client).

Gradio already queues the Run event under one concurrency id, but Gradio forgets a job as soon as
its generator is dropped (a closed tab), while the engine may still be finishing its step: the
host's single engine thread is what guarantees that two jobs never share the engine; Gradio's
queue is what shows waiting users their place in line.
"""

from impasto.host import EngineHost as EngineRunner

__all__ = ["EngineRunner"]
