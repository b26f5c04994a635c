"""Running a stage over many items: a local process pool or a Ray cluster, streaming and crash-safe.

Public API: :func:`map_items` (apply a function to items in parallel, results as they finish),
:class:`EngineSettings` (config section ``engine``), :func:`process_context` (the start method every pool of the
pipeline uses), and the resume helpers of :mod:`pipeline.engine.parts` (one part file per finished input,
written atomically, merged into the run folder's tables at the end).
"""

from pipeline.engine.pool import ItemResult, map_items, process_context
from pipeline.engine.settings import EngineSettings

__all__ = ["EngineSettings", "ItemResult", "map_items", "process_context"]
